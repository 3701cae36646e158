"""`lane catalog`: every certification in force across lanes."""

from __future__ import annotations

import re


def test_catalog_lists_certifications_across_lanes(lane_dir, write_lane, lane, lane_json):
    run = lane_json("run", lane_dir / "lane.yaml")[1]
    other = write_lane("lane: other\noutputs:\n  things:\n    inputs: {t: data/t.csv}\n    consumers: [ops]\n",
                       {"data/t.csv": "id\n1\n2\n3\n"}, folder="other")
    other_run = lane_json("run", other)[1]

    code, entries = lane_json("catalog")
    assert code == 0
    assert [(e["lane"], e["output"]) for e in entries] == [
        ("orders", "customers_clean"), ("orders", "daily_revenue"), ("orders", "order_payments"),
        ("orders", "orders_clean"), ("other", "things")]
    by_output = {e["output"]: e for e in entries}
    orders = by_output["orders_clean"]
    assert orders["run_id"] == run["run_id"] and orders["attempt"] == 1
    assert orders["rows"] == 2000 and orders["size"] > 0 and orders["files"] == 1
    assert orders["consumers"] == ["fraud-stream"] and orders["revoked"] is None and orders["status"] == "in force"
    assert re.match(r"^\d{4}-\d\d-\d\dT.*Z$", orders["certified_at"])
    assert by_output["order_payments"]["consumers"] == ["fraud-stream", "billing"]
    assert by_output["things"]["run_id"] == other_run["run_id"] and by_output["things"]["rows"] == 3

    code, only = lane_json("catalog", "--lane", "other")
    assert [e["output"] for e in only] == ["things"]

    assert lane("revoke", "orders", "orders_clean", "--reason", "bad upstream [dim]batch")[0] == 0
    code, entries = lane_json("catalog")
    revoked = next(e for e in entries if e["output"] == "orders_clean")
    assert revoked["revoked"] == "bad upstream [dim]batch" and revoked["status"].startswith("revoked")

    code, out, _err = lane("catalog")
    assert code == 0
    assert "customers_clean" in out and "things" in out and "revoked: bad upstream [dim]batch" in out
    assert "fraud-stream, billing" in out


def test_catalog_of_a_store_without_certifications(write_lane, lane, lane_json):
    spec = write_lane("lane: x\noutputs:\n  a:\n    inputs: {i: data/i.csv}\n    contract: {row_count: {min: 5}}\n",
                      {"data/i.csv": "a\n1\n"})
    assert lane_json("run", spec)[0] == 1
    code, out, _err = lane("catalog")
    assert code == 0 and "no certifications in the local store" in out
    assert lane_json("catalog")[1] == []


def test_catalog_says_when_a_certification_is_broken(lane_dir, lane_home, lane, lane_json):
    run = lane_json("run", lane_dir / "lane.yaml", "--outputs", "customers_clean")[1]
    gate = lane_home / "receipts" / run["run_id"] / "customers_clean" / "0001-gate.json"
    gate.chmod(0o644)
    gate.write_text(gate.read_text().replace("certified", "certifiez", 1))
    _code, entries = lane_json("catalog")
    assert entries[0]["status"].startswith("broken:") and "digest mismatch" in entries[0]["status"]
