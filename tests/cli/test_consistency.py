"""The small promises of issue 12: version, no store created by reading, exit codes, one JSON shape."""

from __future__ import annotations

import json
import re

import pytest

from batchlane import __version__

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_version(lane):
    code, out, _err = lane("--version")
    assert code == 0 and out.strip() == f"lane (batchlane) {__version__}"


@pytest.mark.parametrize("argv", [
    ("status",), ("status", "r1"), ("show", "r1"), ("verify", "r1"), ("read", "o", "--out", "{tmp}/o.csv"),
    ("events",), ("catalog",), ("report", "r1", "--out", "{tmp}/r.html"), ("revoke", "l", "o", "--reason", "x"),
    ("rerun", "r1", "--failed"),
])
def test_commands_that_read_never_create_a_store(argv, lane, lane_home, tmp_path):
    code, out, err = lane(*(arg.format(tmp=tmp_path) for arg in argv))
    assert code == 2, (out, err)
    assert f"no lane store at {lane_home}" in err
    assert not lane_home.exists()
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "r.html").exists()


def test_home_option_is_checked_too(lane, tmp_path):
    code, _out, err = lane("status", "--home", tmp_path / "nowhere")
    assert code == 2 and "no lane store" in err and not (tmp_path / "nowhere").exists()


def test_unknown_run_exits_2_everywhere(lane_dir, lane, lane_json):
    lane_json("run", lane_dir / "lane.yaml", "--outputs", "customers_clean")
    for argv in (("verify", "nope"), ("verify", "nope", "--json"), ("show", "nope"), ("status", "nope"),
                 ("rerun", "nope", "--failed")):
        code, _out, err = lane(*argv)
        assert code == 2 and "no run 'nope'" in err, argv


def test_run_json_has_one_shape_for_memoized_and_materialized_outputs(lane_dir, lane_json):
    spec = lane_dir / "lane.yaml"
    code, first = lane_json("run", spec)
    code, second = lane_json("run", spec)
    assert code == 0
    assert "rerun_outputs" not in first and "rerun_outputs" not in second
    assert set(first) == set(second) == {"run_id", "lane", "verdict", "manifest_sequence", "outputs"}
    for name in first["outputs"]:
        materialized, memoized = first["outputs"][name], second["outputs"][name]
        assert materialized["state"] == "certified" and memoized["state"] == "memoized"
        assert set(materialized) == set(memoized)
        assert memoized["rows"] == materialized["rows"] and memoized["rows"] > 0
        assert isinstance(memoized["seconds"], float) and isinstance(materialized["seconds"], float)


def test_status_json_times_and_rows(lane_dir, lane, lane_json):
    run = lane_json("run", lane_dir / "lane.yaml")[1]
    listing = lane_json("status")[1]
    detail = lane_json("status", run["run_id"])[1]
    assert listing[0]["run_id"] == run["run_id"]
    assert ISO_UTC.match(listing[0]["started_at"]) and listing[0]["started_at"] == detail["started_at"]
    for pointer in detail["certifications_in_force"].values():
        assert ISO_UTC.match(pointer["certified_at"])
    assert detail["outputs"]["orders_clean"]["rows"] == 2000
    assert detail["outputs"]["orders_clean"]["seconds"] > 0
    assert {n: o["rows"] for n, o in detail["outputs"].items()} == {n: o["rows"] for n, o in run["outputs"].items()}

    code, out, _err = lane("status", run["run_id"])
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("│ orders_clean"))
    cells = [cell.strip() for cell in row.strip("│").split("│")]
    assert cells[3] == "2,000" and float(cells[5]) > 0


def test_show_of_a_failed_job_never_says_none_rows(write_lane, lane, lane_json):
    spec = write_lane("lane: x\noutputs:\n  a:\n    inputs: {i: data/i.csv}\n    transform: t:f\n",
                      {"data/i.csv": "a\n1\n", "t.py": "def f(i):\n    raise KeyError('no_such_column')\n"})
    code, result = lane_json("run", spec)
    assert code == 1 and result["outputs"]["a"]["state"] == "failed"
    code, out, _err = lane("show", result["run_id"], "a")
    assert code == 0
    assert "None" not in out and "rows unknown" in out
    assert "no_such_column" in out


def test_rerun_failed_with_nothing_to_rerun_writes_nothing(lane_dir, lane_home, lane, lane_json):
    run = lane_json("run", lane_dir / "lane.yaml", "--outputs", "customers_clean")[1]
    receipts = sorted(p.name for p in (lane_home / "receipts" / run["run_id"]).iterdir())
    code, out, err = lane("rerun", run["run_id"], "--failed")
    assert code == 0, err
    assert "nothing to rerun" in out and "no new manifest written" in out
    code, rerun = lane_json("rerun", run["run_id"], "--failed")
    assert code == 0 and rerun["rerun_outputs"] == [] and rerun["manifest_sequence"] == 1
    assert rerun["outputs"]["customers_clean"]["state"] == "certified"
    assert sorted(p.name for p in (lane_home / "receipts" / run["run_id"]).iterdir()) == receipts


def test_rerun_closes_a_settled_run_that_was_never_closed(lane_dir, lane_home, lane, lane_json):
    run = lane_json("run", lane_dir / "lane.yaml", "--outputs", "customers_clean")[1]
    manifest = lane_home / "receipts" / run["run_id"] / "manifest-0001.json"
    # simulate a crash before closing: drop the manifest from the store and the index
    import sqlite3

    with sqlite3.connect(lane_home / "ledger.sqlite") as db:
        db.execute("DELETE FROM receipts WHERE kind='manifest'")
    manifest.chmod(0o644)
    manifest.unlink()
    code, rerun = lane_json("rerun", run["run_id"], "--failed")
    assert code == 0 and rerun["manifest_sequence"] == 1 and rerun["verdict"] == "PASS"
    assert manifest.exists()


def test_events_follow_ctrl_c_exits_130_quietly(lane_dir, lane, lane_json, monkeypatch):
    lane_json("run", lane_dir / "lane.yaml", "--outputs", "customers_clean")

    def interrupted(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr("batchlane.cli.inspect_cmd.time.sleep", interrupted)
    code, out, err = lane("events", "--follow")
    assert code == 130
    assert "DataProductCertified" in out
    assert err == ""


def test_run_usage_errors(lane_dir, lane):
    code, _, err = lane("run", lane_dir / "lane.yaml", "--timeout", "0")
    assert code == 2 and "--timeout" in err
    code, _out, err = lane("run", lane_dir / "lane.yaml", "--timeout", "soon")
    assert code == 2 and "is not a number of seconds" in err


def test_events_json_lines_are_json(lane_dir, lane, lane_json):
    lane_json("run", lane_dir / "lane.yaml", "--outputs", "customers_clean")
    _code, out, _err = lane("events", "--json", "--type", "RunClosed")
    (event,) = [json.loads(line) for line in out.splitlines()]
    assert event["type"] == "RunClosed" and event["verdict"] == "PASS"


def test_show_prints_every_rules_evidence_in_full(lane_dir, lane, lane_json):
    with open(lane_dir / "data" / "payments.jsonl", "a") as handle:
        handle.write(json.dumps({"payment_id": 99999, "order_id": 1, "amount": 10000.0, "paid_at": "2026-02-01"}) + "\n")
    run = lane_json("run", lane_dir / "lane.yaml", "--outputs", "order_payments")[1]
    receipts = lane_json("show", run["run_id"], "order_payments")[1]["receipts"]
    (check,) = [r["receipt"] for r in receipts if r["receipt"]["kind"] == "check"]
    code, out, _ = lane("show", run["run_id"], "order_payments")
    assert code == 0
    flat = " ".join(out.split())  # table cells may fold across lines
    details = [rule["detail"] for rule in check["rules"] if rule["detail"]]
    assert details
    for detail in details:
        assert " ".join(detail.split()) in flat, detail
    failing = next(r for r in check["rules"] if not r["passed"])
    assert failing["rule"] == "min" and repr(failing["observed"]) in flat and "-10000.0" in flat
