"""The consumer SDK on the local store: real lane runs produce the events, the SDK follows them."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from batchlane.backends import local_backend
from batchlane.consume import AlreadyAcknowledgedError, CertifiedVersion, Revocation, consumer
from batchlane.gate import NotCertified
from batchlane.receipts import product_key
from consumers.helpers import log_events

EXAMPLE_OUTPUTS = {"crm-sync": {"customers_clean"}, "fraud-stream": {"orders_clean", "order_payments"},
                   "billing": {"order_payments"}}


@pytest.fixture
def certified_home(lane_dir, lane_home, lane) -> Path:
    code, _, err = lane("run", lane_dir / "lane.yaml")
    assert code == 0, err
    return lane_home


def test_each_consumer_sees_exactly_the_outputs_that_declare_it(certified_home):
    for name, outputs in EXAMPLE_OUTPUTS.items():
        items = consumer(name).pending()
        assert {item.output for item in items} == outputs, name
        assert all(isinstance(item, CertifiedVersion) and item.consumer == name for item in items)
    assert consumer("nobody-declared-me").pending() == []


def test_a_delivered_version_reads_its_certified_rows_and_ack_moves_the_cursor(certified_home):
    fraud = consumer("fraud-stream")
    items = {item.output: item for item in fraud.pending()}
    orders = items["orders_clean"]
    assert orders.state() == "in_force" and orders.rows == 2000
    frame = orders.read(columns=["order_id", "amount"])
    assert len(frame) == 2000 and list(frame.columns) == ["order_id", "amount"]
    for item in items.values():
        item.ack()
    with pytest.raises(AlreadyAcknowledgedError):
        orders.ack()
    assert fraud.pending() == []
    assert consumer("fraud-stream").pending() == []     # durable: a new process starts after the acked events
    assert [row["outcome"] for row in fraud.history()] == ["acked", "acked"]


def test_a_crash_before_ack_redelivers_the_same_event(certified_home):
    first = consumer("crm-sync")
    (item,) = first.pending()
    item.read()                       # processed ... then the process dies before ack
    del first
    (again,) = consumer("crm-sync").pending()
    assert again.event_id == item.event_id and again.output == "customers_clean"
    again.ack()
    assert consumer("crm-sync").pending() == []


def test_an_unacked_item_holds_the_cursor_while_later_ones_are_acked(certified_home):
    fraud = consumer("fraud-stream")
    held, later = fraud.pending()
    later.ack()                        # the later event is done, the earlier one is not
    restarted = consumer("fraud-stream")
    (redelivered,) = restarted.pending()
    assert redelivered.event_id == held.event_id
    assert restarted.skipped == {"duplicate": 1}   # the acked later event is read again, not offered again
    redelivered.ack()
    assert consumer("fraud-stream").pending() == []


def test_two_consumers_keep_independent_cursors(certified_home):
    fraud, billing = consumer("fraud-stream"), consumer("billing")
    for item in fraud.pending():
        item.ack()
    assert fraud.pending() == []
    (payments,) = billing.pending()          # billing's cursor did not move with fraud-stream's
    assert payments.output == "order_payments"
    payments.ack()
    assert billing.pending() == [] and consumer("fraud-stream").pending() == []


def test_a_duplicate_event_is_skipped_and_settled(certified_home):
    crm = consumer("crm-sync")
    (item,) = crm.pending()
    item.ack()
    backend = local_backend(certified_home)
    backend.bus.publish([item.event])         # the outbox re-sends an event (at-least-once publishing)
    assert crm.pending() == []
    assert crm.skipped["duplicate"] == 1
    assert [row["outcome"] for row in crm.history()] == ["acked"]   # one row per event id: the first outcome
    assert consumer("crm-sync").pending() == []   # settled: not offered again


def test_an_older_version_after_a_newer_one_is_skipped_as_out_of_order(lane_dir, lane_home, lane):
    spec = lane_dir / "lane.yaml"
    assert lane("run", spec, "--outputs", "customers_clean")[0] == 0
    assert lane("run", spec, "--outputs", "customers_clean", "--force")[0] == 0
    older, newer = [e for e in log_events(lane_home) if e["type"] == "DataProductCertified"]
    assert older["order"] < newer["order"]
    # deliver them the wrong way round: the newer version first
    (lane_home / "events.jsonl").write_text(json.dumps(newer) + "\n" + json.dumps(older) + "\n")
    crm = consumer("crm-sync")
    delivered = []
    for item in crm.follow(poll=None):
        delivered.append(item.event_id)
        item.ack()
    assert delivered == [newer["id"]]
    assert crm.skipped == {"out_of_order": 1}
    assert [(row["event_id"], row["outcome"]) for row in crm.history()] == [
        (newer["id"], "acked"), (older["id"], "out_of_order")]
    assert consumer("crm-sync").pending() == []


def test_a_superseded_version_is_not_delivered_the_version_in_force_is(lane_dir, lane_home, lane):
    spec = lane_dir / "lane.yaml"
    assert lane("run", spec, "--outputs", "customers_clean")[0] == 0
    assert lane("run", spec, "--outputs", "customers_clean", "--force")[0] == 0
    crm = consumer("crm-sync")
    (item,) = crm.pending()           # the first version was superseded before this consumer got to it
    newest = [e for e in log_events(lane_home) if e["type"] == "DataProductCertified"][-1]
    assert item.event_id == newest["id"] and crm.skipped["superseded"] == 1


def test_revocation_is_delivered_and_the_revoked_version_is_unreadable(certified_home, lane):
    fraud = consumer("fraud-stream")
    delivered = {}
    for item in fraud.follow(poll=None):
        delivered[item.output] = item
        item.ack()
    code, _, err = lane("revoke", "orders", "orders_clean", "--reason", "late duplicates upstream")
    assert code == 0, err
    held = delivered["orders_clean"]
    assert held.state() == "revoked"
    with pytest.raises(NotCertified, match="revoked"):
        held.read()
    (revocation,) = consumer("fraud-stream").pending()
    assert isinstance(revocation, Revocation) and revocation.kind == "revoked"
    assert (revocation.output, revocation.run_id, revocation.reason) == (
        "orders_clean", held.run_id, "late duplicates upstream")
    revocation.ack()
    assert consumer("fraud-stream").pending() == []
    assert [item.output for item in consumer("billing").pending()] == ["order_payments"]   # not its output


def test_a_version_revoked_before_delivery_is_not_offered_its_revocation_is(certified_home):
    backend = local_backend(certified_home)
    event = next(item.event for item in consumer("crm-sync").pending())
    from batchlane.gate import revoke

    revoke(backend, "orders", "customers_clean", "withdrawn", consumers=["crm-sync"])
    crm = consumer("crm-sync")
    items = crm.pending()
    assert [(item.kind, item.run_id) for item in items] == [("revoked", event.run_id)]
    assert crm.skipped == {"revoked": 1}


def test_a_new_certification_after_a_revocation_is_delivered(certified_home, lane, lane_dir):
    crm = consumer("crm-sync")
    for item in crm.pending():
        item.ack()
    assert lane("revoke", "orders", "customers_clean", "--reason", "bad")[0] == 0
    assert lane("run", lane_dir / "lane.yaml", "--outputs", "customers_clean")[0] == 0
    items = crm.pending()
    assert [item.kind for item in items] == ["revoked", "certified"]
    assert items[1].read().shape[0] == 200


def test_read_refuses_bytes_that_no_longer_match_the_proof(certified_home):
    (item,) = consumer("crm-sync").pending()
    path = local_backend(certified_home).store.local_path(product_key(item.event.proof[0].uri))
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes()[:-8] + b"tampered")
    with pytest.raises(NotCertified, match="changed since certification"):
        item.read()


def test_a_forged_event_is_not_delivered(certified_home):
    (item,) = consumer("crm-sync").pending()
    forged = item.event.model_copy(update={"receipt_digest": "0" * 64})
    local_backend(certified_home).bus.publish([forged])
    crm = consumer("crm-sync")
    delivered = crm.pending()
    assert [d.event_id for d in delivered] == [item.event_id]   # the forged one names no certification in force
    assert crm.skipped["uncertified"] == 1


def test_an_unreadable_log_line_is_passed_over_with_a_warning(certified_home, caplog):
    with open(certified_home / "events.jsonl", "a") as handle:
        handle.write('{"id": "x", "type": "DataProductCertified"}\n')
    crm = consumer("crm-sync")
    assert [item.output for item in crm.pending()] == ["customers_clean"]
    assert crm.skipped["unreadable"] == 1 and "unreadable event" in caplog.text


def test_follow_streams_new_versions_until_stopped(lane_dir, lane_home, lane):
    assert lane("run", lane_dir / "lane.yaml", "--outputs", "customers_clean")[0] == 0
    stop = threading.Event()
    seen: list[str] = []
    crm = consumer("crm-sync")
    for item in crm.follow(poll=0.05, stop=stop):
        seen.append(item.run_id)
        item.ack()
        if len(seen) == 1:
            assert lane("run", lane_dir / "lane.yaml", "--outputs", "customers_clean", "--force")[0] == 0
        else:
            stop.set()
    runs = [e["run_id"] for e in log_events(lane_home) if e["type"] == "DataProductCertified"]
    assert seen == runs and len(set(seen)) == 2


def test_a_consumer_needs_a_name(lane_home):
    from batchlane.consume import ConsumerConfigError

    with pytest.raises(ConsumerConfigError, match="needs a name"):
        consumer(" ")


def test_a_second_copy_while_the_first_is_unacked_is_not_delivered_twice(certified_home):
    (first,) = consumer("crm-sync").pending()
    local_backend(certified_home).bus.publish([first.event])     # the same event again
    follower = consumer("crm-sync")
    items = list(follower.follow(poll=None))                       # nothing acked while following
    assert [item.event_id for item in items] == [first.event_id]
    assert follower.skipped["duplicate_in_flight"] == 1
    items[0].ack()
    assert consumer("crm-sync").pending() == []                    # the second copy is settled as a duplicate
