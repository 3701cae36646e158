"""`lane plan`: run / memoized / blocked per output, and why; writes nothing."""

from __future__ import annotations

import json
import sqlite3


def _snapshot(folder):
    """Every file's bytes, and the ledger's rows (SQLite may move its write-ahead log into the main file
    whenever a connection closes, so the ledger is compared by content, not by bytes)."""
    files = {p: p.read_bytes() for p in folder.rglob("*")
             if p.is_file() and not p.name.startswith("ledger.sqlite")}
    with sqlite3.connect(folder / "ledger.sqlite") as db:
        files[folder / "ledger.sqlite"] = "\n".join(db.iterdump()).encode()
    return files


def test_plan_before_any_run_creates_no_store(lane_dir, lane_home, lane_json):
    code, plan = lane_json("plan", lane_dir / "lane.yaml")
    assert code == 0 and plan["store"] is False
    assert {n: o["action"] for n, o in plan["outputs"].items()} == dict.fromkeys(
        ["customers_clean", "orders_clean", "order_payments", "daily_revenue"], "run")
    assert plan["outputs"]["orders_clean"]["reasons"] == ["no certification yet"]
    assert plan["outputs"]["orders_clean"]["waits_for"] == ["customers_clean"]
    assert plan["outputs"]["daily_revenue"]["waits_for"] == ["order_payments", "orders_clean"]
    assert plan["outputs"]["daily_revenue"]["reasons"] == [
        "after its upstream order_payments, orders_clean (memoized then if the bytes it reads do not change)"]
    assert not lane_home.exists()


def test_plan_says_memoized_then_which_part_changed(lane_dir, lane_home, lane, lane_json):
    spec = lane_dir / "lane.yaml"
    run = lane_json("run", spec)[1]
    before = _snapshot(lane_home)
    code, plan = lane_json("plan", spec)
    assert {o["action"] for o in plan["outputs"].values()} == {"memoized"}
    assert plan["outputs"]["orders_clean"]["certification"] == {"run_id": run["run_id"], "attempt": 1, "revoked": None}

    with open(lane_dir / "data" / "payments.jsonl", "a") as handle:
        handle.write(json.dumps({"payment_id": 99999, "order_id": 1, "amount": 1.0, "paid_at": "2026-02-01"}) + "\n")
    (lane_dir / "transforms.py").write_text((lane_dir / "transforms.py").read_text() + "\n# touched\n")
    spec.write_text(spec.read_text().replace("consumers: [crm-sync]", "consumers: [crm-sync, audit]"))
    code, plan = lane_json("plan", spec)
    outputs = plan["outputs"]
    assert outputs["customers_clean"]["action"] == "run"
    assert outputs["customers_clean"]["reasons"] == [
        "the output's spec changed (inputs, transform, contract or consumers)"]
    assert outputs["orders_clean"]["reasons"] == ["the code changed (transforms:clean_orders)"]
    payments = outputs["order_payments"]["reasons"]
    assert payments[0] == "the code changed (transforms:join_payments)"
    assert payments[1].startswith("input payments changed: file://") and "payments.jsonl (sha256 " in payments[1]
    assert outputs["daily_revenue"]["action"] == "run" and outputs["daily_revenue"]["reasons"][0].startswith(
        "after its upstream order_payments, orders_clean")
    assert _snapshot(lane_home) == before, "plan must not write to the store"

    code, out, _err = lane("plan", spec, "--outputs", "order_payments")
    assert code == 0 and "order_payments" in out and "customers_clean" not in out and "input payments changed" in out


def test_plan_blocked_and_revoked(lane_dir, lane, lane_json):
    spec = lane_dir / "lane.yaml"
    lane_json("run", spec, "--outputs", "customers_clean")
    assert lane("revoke", "orders", "customers_clean", "--reason", "bad batch")[0] == 0
    (lane_dir / "data" / "orders.csv").unlink()
    _code, plan = lane_json("plan", spec)
    outputs = plan["outputs"]
    assert outputs["customers_clean"]["action"] == "run"
    assert "was revoked (bad batch)" in outputs["customers_clean"]["reasons"][0]
    assert outputs["orders_clean"]["action"] == "blocked"
    assert "input 'orders'" in outputs["orders_clean"]["reasons"][0] and "no file matches" in outputs["orders_clean"]["reasons"][0]


def test_plan_of_a_tampered_certification_says_it_cannot_be_reused(lane_dir, lane_home, lane_json):
    spec = lane_dir / "lane.yaml"
    run = lane_json("run", spec, "--outputs", "customers_clean")[1]
    product = next((lane_home / "staging" / run["run_id"] / "customers_clean").rglob("*.parquet"))
    product.chmod(0o644)
    product.write_bytes(product.read_bytes() + b"x")
    _code, plan = lane_json("plan", spec, "--outputs", "customers_clean")
    item = plan["outputs"]["customers_clean"]
    assert item["action"] == "run" and "cannot be reused" in item["reasons"][0] and "changed" in item["reasons"][0]


def test_plan_usage_errors(lane_dir, lane):
    code, _, err = lane("plan", lane_dir / "lane.yaml", "--outputs", "nope")
    assert code == 2 and "no output 'nope'" in err
    code, _out, err = lane("plan", lane_dir / "missing.yaml")
    assert code == 2 and "file not found" in err
