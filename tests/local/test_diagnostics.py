"""A failed transform keeps its traceback (lane frames first) and the tail of what it printed and logged."""

from __future__ import annotations

from pathlib import Path

import yaml

from batchlane.backends import local_backend
from batchlane.diagnostics import LIMIT
from batchlane.verify import verify_run

NOISY = '''import logging

def noisy(items):
    print("starting the batch")
    print("x" * 200_000)
    logging.getLogger("lane.user").warning("suspicious value %s", 42)
    return helper(items)

def helper(items):
    return items["no_such_column"]

def fine(items):
    print("all good")
    return items
'''


def make_lane(folder: Path, transform: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "transforms.py").write_text(NOISY)
    (folder / "items.csv").write_text("id\n1\n")
    spec = {"lane": "noisy", "outputs": {"items_out": {"inputs": {"items": "items.csv"}, "transform": transform}}}
    (folder / "lane.yaml").write_text(yaml.safe_dump(spec))
    return folder / "lane.yaml"


def test_a_failed_transform_keeps_its_traceback_and_output(tmp_path, lane_home, lane, lane_json):
    code, result = lane_json("run", make_lane(tmp_path / "lane", "transforms:noisy"))
    assert code == 1
    run_id = result["run_id"]
    code, shown, _ = lane("show", run_id, "items_out")
    assert code == 0
    assert "in the lane's code:" in shown and "transforms.py:7 in noisy" in shown and "in helper" in shown
    assert "WARNING lane.user: suspicious value 42" in shown
    assert "earlier characters dropped" in shown  # 200 KB printed, the last 64 KB kept
    backend = local_backend(lane_home)
    receipt_key = f"receipts/{run_id}/items_out/0001-diagnostics.txt"
    assert len(backend.store.get(receipt_key)) < LIMIT + 10_000
    assert verify_run(backend, run_id).ok
    report = tmp_path / "report.html"
    assert lane("report", run_id, "--out", report)[0] == 0
    assert "suspicious value 42" in report.read_text() and "KeyError" in report.read_text()


def test_a_successful_transform_keeps_what_it_printed(tmp_path, lane_home, lane, lane_json):
    code, result = lane_json("run", make_lane(tmp_path / "lane", "transforms:fine"))
    assert code == 0
    code, shown, _ = lane("show", result["run_id"], "items_out")
    assert "all good" in shown and "== traceback" not in shown
