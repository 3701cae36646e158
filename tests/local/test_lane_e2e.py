"""The example lane end to end through the `lane` CLI: run, break, refuse, fix, targeted rerun, read."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from batchlane.backends import local_backend


def break_payments(lane_dir: Path) -> None:
    with open(lane_dir / "data" / "payments.jsonl", "a") as handle:
        handle.write(json.dumps({"payment_id": 99999, "order_id": 1, "amount": 10000.0, "paid_at": "2026-02-01T00:00:00"}) + "\n")


def receipt_bytes(home: Path, run_id: str, output: str) -> dict[str, bytes]:
    folder = home / "receipts" / run_id / output
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_run_certifies_every_output_and_read_works(lane_dir, lane_home, lane, lane_json, tmp_path):
    code, result = lane_json("run", lane_dir / "lane.yaml")
    assert code == 0, result
    assert result["verdict"] == "PASS"
    assert {name: o["state"] for name, o in result["outputs"].items()} == {
        "customers_clean": "certified", "orders_clean": "certified", "order_payments": "certified",
        "daily_revenue": "certified"}
    assert result["outputs"]["orders_clean"]["rows"] == 2000

    code, out, err = lane("read", "orders_clean", "--out", tmp_path / "orders.csv")
    assert code == 0, err
    frame = pd.read_csv(tmp_path / "orders.csv")
    assert len(frame) == 2000 and set(frame["status"]) <= {"NEW", "PAID", "SHIPPED"}

    code, verified = lane_json("verify", result["run_id"])
    assert code == 0 and verified["ok"] and verified["files"] == 4

    code, status = lane_json("status", result["run_id"])
    assert code == 0 and status["verdict"] == "PASS"
    assert status["certifications_in_force"]["orders_clean"]["run_id"] == result["run_id"]

    code, events, _ = lane("events", "--json")
    kinds = [json.loads(line)["type"] for line in events.splitlines()]
    assert kinds.count("DataProductCertified") == 4 and kinds[-1] == "RunClosed"


def test_break_fail_refuse_fix_rerun_only_the_failed_output(lane_dir, lane_home, lane, lane_json, tmp_path):
    spec = lane_dir / "lane.yaml"
    assert lane_json("run", spec)[0] == 0
    break_payments(lane_dir)

    code, failed_run = lane_json("run", spec)
    run_id = failed_run["run_id"]
    assert code == 1
    states = {name: o["state"] for name, o in failed_run["outputs"].items()}
    assert states == {"customers_clean": "memoized", "orders_clean": "memoized", "order_payments": "rejected",
                      "daily_revenue": "blocked"}  # it reads order_payments: not built on a rejected product
    assert failed_run["outputs"]["order_payments"]["failing_rules"] == ["min(outstanding)"]

    # the earlier certification stays in force: consumers keep reading the last good product
    code, out, err = lane("read", "order_payments", "--out", tmp_path / "p.parquet")
    assert code == 0

    before = {name: receipt_bytes(lane_home, run_id, name) for name in ("customers_clean", "orders_clean")}
    (lane_dir / "data" / "payments.jsonl").write_text(
        "".join(line for line in (lane_dir / "data" / "payments.jsonl").read_text().splitlines(keepends=True)
                if '"payment_id": 99999' not in line))
    code, rerun = lane_json("rerun", run_id, "--failed")
    assert code == 0, rerun
    assert rerun["rerun_outputs"] == ["order_payments", "daily_revenue"]  # the failed and the blocked
    # the fix restored the bytes of the last certified input: the rerun reuses that certification, and
    # daily_revenue, reading the same certified bytes again, is memoized too
    assert rerun["outputs"]["order_payments"]["state"] == "memoized"
    assert rerun["outputs"]["daily_revenue"]["state"] == "memoized"
    assert rerun["outputs"]["order_payments"]["attempts"] == 2
    assert rerun["manifest_sequence"] == 2
    after = {name: receipt_bytes(lane_home, run_id, name) for name in ("customers_clean", "orders_clean")}
    assert after == before, "certified outputs' receipts must stay byte-identical"
    code, verified = lane_json("verify", run_id)
    assert code == 0 and verified["ok"], verified


def test_first_run_failure_refuses_read_until_rerun(lane_dir, lane_home, lane, lane_json, tmp_path):
    break_payments(lane_dir)
    code, result = lane_json("run", lane_dir / "lane.yaml")
    assert code == 1
    code, out, err = lane("read", "order_payments", "--out", tmp_path / "p.csv")
    assert code == 1
    assert "no certification" in err and "no PASS, no read" in err
    assert not (tmp_path / "p.csv").exists()

    code, out, err = lane("show", result["run_id"], "order_payments")
    assert code == 0
    assert "FAIL" in out and "min" in out and "outstanding" in out

    code, events, _ = lane("events", "--json", "--type", "DataProductRejected")
    (rejected,) = [json.loads(line) for line in events.splitlines()]
    assert rejected["output"] == "order_payments" and rejected["verdict"] == "FAIL"

    payments = lane_dir / "data" / "payments.jsonl"
    payments.write_text("".join(line for line in payments.read_text().splitlines(keepends=True) if "99999" not in line))
    code, rerun = lane_json("rerun", result["run_id"], "--failed")
    assert code == 0 and rerun["rerun_outputs"] == ["order_payments", "daily_revenue"]
    assert rerun["outputs"]["order_payments"]["state"] == "certified"
    assert rerun["outputs"]["daily_revenue"]["state"] == "certified"
    assert rerun["outputs"]["order_payments"]["certified_attempt"] == 2
    assert lane("read", "order_payments", "--out", tmp_path / "p.csv")[0] == 0
    assert len(pd.read_csv(tmp_path / "p.csv")) == 2000


def test_memoized_run_skips_and_force_reruns(lane_dir, lane_home, lane_json):
    spec = lane_dir / "lane.yaml"
    first = lane_json("run", spec)[1]
    second = lane_json("run", spec)[1]
    assert {o["state"] for o in second["outputs"].values()} == {"memoized"}
    for name, output in second["outputs"].items():
        assert output["certification"] == first["outputs"][name]["certification"]
    receipt = json.loads((lane_home / "receipts" / second["run_id"] / "orders_clean" / "0001-materialize.json").read_text())
    assert receipt["status"] == "memoized" and receipt["memoized_from"] == first["outputs"]["orders_clean"]["certification"]

    forced = lane_json("run", spec, "--force", "--outputs", "orders_clean")[1]
    assert forced["outputs"]["orders_clean"]["state"] == "certified"
    assert list(forced["outputs"]) == ["orders_clean"]

    # a code change is a different product: no memo hit (a pass-through output runs no lane code)
    transforms = lane_dir / "transforms.py"
    transforms.write_text(transforms.read_text() + "\n# touched\n")
    changed = lane_json("run", spec)[1]
    assert changed["outputs"]["orders_clean"]["state"] == "certified"
    assert changed["outputs"]["customers_clean"]["state"] == "memoized"

    # so is a change to a helper module the transforms import, or to any Python file of the lane
    (lane_dir / "helpers.py").write_text("RATE = 1\n")
    helped = lane_json("run", spec)[1]
    assert helped["outputs"]["orders_clean"]["state"] == "certified"
    assert lane_json("run", spec)[1]["outputs"]["orders_clean"]["state"] == "memoized"


def test_rerun_with_nothing_failed_is_a_no_op(lane_dir, lane_home, lane_json):
    run = lane_json("run", lane_dir / "lane.yaml")[1]
    code, rerun = lane_json("rerun", run["run_id"], "--failed")
    # nothing to rerun and the run already closed as it stands: no new manifest is written
    assert code == 0 and rerun["rerun_outputs"] == [] and rerun["manifest_sequence"] == 1
    assert not (lane_home / "receipts" / run["run_id"] / "manifest-0002.json").exists()


def test_selected_outputs_and_usage_errors(lane_dir, lane_home, lane, lane_json):
    code, result = lane_json("run", lane_dir / "lane.yaml", "--outputs", "customers_clean")
    assert code == 0 and list(result["outputs"]) == ["customers_clean"]
    code, out, err = lane("run", lane_dir / "lane.yaml", "--outputs", "nope")
    assert code == 2 and "no output 'nope'" in err
    code, out, err = lane("run", lane_dir / "lane.yaml", "--jobs", "0")
    assert code == 2 and "--jobs" in err
    code, out, err = lane("rerun", "no-such-run", "--failed")
    assert code == 2 and "no run 'no-such-run'" in err
    code, out, err = lane("rerun", result["run_id"])
    assert code == 2 and "one of the arguments --failed --outputs is required" in err
    code, out, err = lane("read", "customers_clean", "--out", "x.txt")
    assert code == 2 and ".parquet, .csv or .jsonl" in err
    code, out, err = lane("show", result["run_id"], "orders_clean")
    assert code == 2 and "has no output 'orders_clean'" in err


def test_invalid_spec_exits_2_before_anything_runs(lane_dir, lane_home, lane):
    spec = lane_dir / "lane.yaml"
    spec.write_text(spec.read_text().replace("not_null: true, unique: true}", "not_nul: true, unique: true}", 1))
    code, out, err = lane("run", spec)
    assert code == 2
    assert "outputs.customers_clean.contract.columns.customer_id.not_nul" in err
    assert local_backend(lane_home).ledger.list_runs() == []


def test_status_and_show_human_output(lane_dir, lane_home, lane, lane_json):
    run = lane_json("run", lane_dir / "lane.yaml")[1]
    code, out, err = lane("status")
    assert code == 0 and run["run_id"] in out and "PASS" in out
    code, out, err = lane("show", run["run_id"], "customers_clean")
    assert code == 0
    assert "sha256" in out and "customers.csv" in out and "accepted_values" in out and "certified" in out


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_read_formats(lane_dir, lane_home, lane, lane_json, tmp_path, suffix):
    lane_json("run", lane_dir / "lane.yaml", "--outputs", "customers_clean")
    target = tmp_path / f"out{suffix}"
    assert lane("read", "customers_clean", "--out", target)[0] == 0
    frame = pd.read_parquet(target) if suffix == ".parquet" else pd.read_json(target, lines=True)
    assert len(frame) == 200


def test_python_api_reads_only_certified(lane_dir, lane_home, lane_json):
    import batchlane
    from batchlane.gate import NotCertified

    with pytest.raises(NotCertified, match="no PASS, no read"):
        batchlane.read("orders_clean")
    lane_json("run", lane_dir / "lane.yaml")
    frame = batchlane.read("orders_clean")
    assert len(frame) == 2000 and str(frame["loaded_at"].dtype).startswith("datetime64")
    assert len(batchlane.read("customers_clean", lane="orders", home=str(lane_home))) == 200


def test_events_follow_streams_new_events(lane_home):
    import os
    import subprocess
    import sys
    import time

    from batchlane.receipts import LaneEvent

    backend = local_backend(lane_home)
    backend.bus.publish([LaneEvent(type="RunClosed", lane="orders", run_id="r0", verdict="PASS")])
    follower = subprocess.Popen(
        [sys.executable, "-c", "from batchlane.cli import main; main()", "events", "--follow", "--json",
         "--type", "DataProductCertified", "--interval", "0.05"],
        env={**os.environ, "LANE_HOME": str(lane_home)}, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        backend.bus.publish([LaneEvent(type="DataProductCertified", lane="orders", run_id="r1", output="orders_clean",
                                       attempt=1, verdict="PASS")])
        line = follower.stdout.readline()
    finally:
        follower.kill()
        follower.wait()
    event = json.loads(line)
    assert event["type"] == "DataProductCertified" and event["run_id"] == "r1" and event["id"]
