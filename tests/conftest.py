"""Shared fixtures: a private copy of the example lane and a private local store per test."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "orders"


@pytest.fixture
def lane_dir(tmp_path: Path) -> Path:
    """examples/orders copied to a temp folder, so tests can break its inputs."""
    target = tmp_path / "lane"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture
def lane_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("LANE_HOME", str(home))
    monkeypatch.setenv("LANE_BACKEND", "local")
    return home


@pytest.fixture
def lane(lane_home: Path, capsys: pytest.CaptureFixture):
    """Call the `lane` CLI in-process: lane("run", spec, "--json") -> (exit code, stdout, stderr)."""
    from batchlane.cli import main

    def call(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = main([str(arg) for arg in argv])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code if isinstance(exc.code, int) else 2
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


@pytest.fixture
def lane_json(lane):
    def call(*argv: str) -> tuple[int, dict]:
        code, out, err = lane(*argv, "--json")
        assert out.strip(), f"no JSON on stdout (exit {code}); stderr: {err}"
        return code, json.loads(out)

    return call
