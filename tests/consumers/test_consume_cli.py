"""`lane events --consumer NAME`: the CLI as a consumer (prints each delivered item, acks it)."""

from __future__ import annotations

import json


def test_events_for_a_consumer_print_its_items_once(lane_dir, lane_home, lane):
    assert lane("run", lane_dir / "lane.yaml")[0] == 0
    code, out, err = lane("events", "--consumer", "fraud-stream", "--json")
    assert code == 0, err
    items = [json.loads(line) for line in out.splitlines()]
    assert sorted(item["output"] for item in items) == ["order_payments", "orders_clean"]
    assert {item["kind"] for item in items} == {"certified"} and all(item["consumer"] == "fraud-stream" for item in items)
    assert lane("events", "--consumer", "fraud-stream", "--json")[1] == ""      # acked: the cursor moved
    code, out, _ = lane("events", "--consumer", "billing")                    # another consumer, its own cursor
    assert code == 0 and "certified  orders/order_payments" in out and "orders_clean" not in out


def test_events_follow_for_a_consumer_prints_revocations(lane_dir, lane_home, lane):
    assert lane("run", lane_dir / "lane.yaml")[0] == 0
    assert lane("events", "--consumer", "crm-sync")[0] == 0
    assert lane("revoke", "orders", "customers_clean", "--reason", "wrong country codes")[0] == 0
    code, out, err = lane("events", "--consumer", "crm-sync", "--follow", "--interval", "0.01", "--max-seconds", "0.2")
    assert code == 0, err
    assert "revoked    orders/customers_clean" in out and "reason: wrong country codes" in out


def test_events_consumer_refuses_type_filters_and_an_aws_consumer_without_its_queue(lane_dir, lane_home, lane,
                                                                                   monkeypatch):
    assert lane("run", lane_dir / "lane.yaml", "--outputs", "customers_clean")[0] == 0
    code, _, err = lane("events", "--consumer", "crm-sync", "--type", "RunClosed")
    assert code == 2 and "--type cannot be combined with --consumer" in err
    monkeypatch.setenv("LANE_BUCKET", "b-bucket")
    monkeypatch.setenv("LANE_TABLE", "t")
    monkeypatch.setenv("LANE_EVENT_BUS", "bus")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("LANE_CONSUMER_QUEUE_URL", raising=False)
    code, _, err = lane("events", "--consumer", "crm-sync", "--backend", "aws")
    assert code == 2 and "queue URL" in err
