from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `support` helpers


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from support.lane_aws import moto_server

    with moto_server() as endpoint:
        yield endpoint
