"""Fixtures for the `lane` CLI tests: small lanes written on the fly (the shared `lane`, `lane_json`,
`lane_home` and `lane_dir` fixtures come from tests/conftest.py)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write_lane(tmp_path: Path) -> Callable[..., Path]:
    """write_lane(spec_yaml, files={"data/x.csv": "...", "t.py": "..."}) -> path of lane.yaml."""

    def write(spec: str, files: dict[str, str] | None = None, folder: str = "lane") -> Path:
        root = tmp_path / folder
        root.mkdir(parents=True, exist_ok=True)
        for relative, text in (files or {}).items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        spec_path = root / "lane.yaml"
        spec_path.write_text(textwrap.dedent(spec))
        return spec_path

    return write
