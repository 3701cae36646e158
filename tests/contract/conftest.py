"""One contract suite for the store ports, run against the local and the AWS (moto) adapters."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `support` helpers

from batchlane.stores.base import Backend  # noqa: E402


def _local(tmp_path: Path) -> Iterator[Backend]:
    from batchlane.backends import local_backend

    yield local_backend(tmp_path / "lane-home")


def _aws(tmp_path: Path) -> Iterator[Backend]:
    from moto import mock_aws
    from support.aws_env import BUCKET, BUS, DUMMY_ENV, TABLE, create_lane_resources, patched_env

    from batchlane.stores.aws import aws_backend

    with patched_env({**DUMMY_ENV}, drop=("AWS_PROFILE", "AWS_ENDPOINT_URL")), mock_aws():
        create_lane_resources()
        yield aws_backend(BUCKET, TABLE, BUS)


@pytest.fixture(params=["local", "aws"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    factory = {"local": _local, "aws": _aws}[request.param]
    yield from factory(tmp_path)
