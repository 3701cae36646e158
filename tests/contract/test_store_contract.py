"""The store-port contract: every adapter (local files + SQLite + JSONL, S3 + DynamoDB + EventBridge) passes it."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta

import pytest

from batchlane.receipts import LaneEvent
from batchlane.stores.base import (
    AlreadyExists,
    CertPointer,
    ConditionFailed,
    EventBus,
    Ledger,
    NotFound,
    ObjectStore,
    ReceiptRow,
    RunRecord,
)

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def run(run_id: str, lane: str = "orders", minutes: int = 0) -> RunRecord:
    return RunRecord(run_id=run_id, lane=lane, trigger="cli", started_at=T0 + timedelta(minutes=minutes),
                     spec_digest="d" * 64, outputs=("clean", "summary"))


def pointer(order: str, *, run_id: str = "r1", attempt: int = 1, memo: str = "m1", output: str = "clean") -> CertPointer:
    return CertPointer(lane="orders", output=output, run_id=run_id, attempt=attempt,
                       key=f"receipts/{run_id}/{output}/{attempt:04d}-gate.json", digest=hashlib.sha256(order.encode()).hexdigest(),
                       memo_key=memo, order=order, certified_at=T0)


def event(run_id: str = "r1", output: str | None = "clean", digest: str = "x", kind: str = "DataProductCertified") -> LaneEvent:
    return LaneEvent(type=kind, lane="orders", run_id=run_id, output=output, attempt=1,
                     receipt=f"receipts/{run_id}/{output}/0001-gate.json", receipt_digest=digest, time=T0)


def test_ports_satisfy_protocols(backend):
    assert isinstance(backend.store, ObjectStore)
    assert isinstance(backend.ledger, Ledger)
    assert isinstance(backend.bus, EventBus)


# ------------------------------------------------------------------ ObjectStore

def test_put_once_is_write_once(backend):
    store = backend.store
    store.put_once("receipts/r1/clean/0001-materialize.json", b'{"a":1}')
    with pytest.raises(AlreadyExists):
        store.put_once("receipts/r1/clean/0001-materialize.json", b'{"a":2}')
    assert store.get("receipts/r1/clean/0001-materialize.json") == b'{"a":1}'
    assert store.exists("receipts/r1/clean/0001-materialize.json")
    assert not store.exists("receipts/r1/clean/0002-materialize.json")
    assert store.uri("receipts/r1/clean/0001-materialize.json").endswith("receipts/r1/clean/0001-materialize.json")


def test_get_missing_raises_not_found(backend):
    with pytest.raises(NotFound):
        backend.store.get("receipts/nope.json")
    with pytest.raises(NotFound):
        backend.store.digest("receipts/nope.json")


def test_list_keys_sorted_under_prefix(backend):
    for key in ["receipts/r1/b/0001-check.json", "receipts/r1/a/0001-check.json", "receipts/r2/a/0001-check.json",
                "staging/r1/a/0001/part-0.parquet"]:
        backend.store.put_once(key, b"x")
    assert backend.store.list_keys("receipts/r1/") == ["receipts/r1/a/0001-check.json", "receipts/r1/b/0001-check.json"]
    assert backend.store.list_keys("receipts/") == [
        "receipts/r1/a/0001-check.json", "receipts/r1/b/0001-check.json", "receipts/r2/a/0001-check.json"]
    assert backend.store.list_keys("nothing/") == []


def test_files_round_trip_with_streamed_digests(backend, tmp_path):
    data = bytes(range(256)) * 4099
    source = tmp_path / "part-0.parquet"
    source.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    key = "staging/r1/clean/0001/part-0.parquet"
    written = backend.store.put_file_once(source, key)
    assert (written.size, written.sha256) == (len(data), expected)
    assert written.uri == backend.store.uri(key)
    again = tmp_path / "again.parquet"
    again.write_bytes(b"other")
    with pytest.raises(AlreadyExists):
        backend.store.put_file_once(again, key)
    assert backend.store.digest(key).sha256 == expected
    fetched = backend.store.fetch(key, tmp_path / "copy.parquet")
    assert fetched.sha256 == expected and (tmp_path / "copy.parquet").read_bytes() == data
    assert b"".join(backend.store.open_read(key)) == data
    local = backend.store.local_path(key)
    assert local is None or local.read_bytes() == data


# ----------------------------------------------------------------------- Ledger

def test_runs_register_once_and_list_newest_first(backend):
    ledger = backend.ledger
    assert ledger.get_run("r1") is None
    first = ledger.create_run(run("r1"))
    assert first.run_id == "r1"
    again = ledger.create_run(RunRecord(run_id="r1", lane="orders", trigger="console", started_at=T0 + timedelta(hours=1),
                                        spec_digest="e" * 64, outputs=("clean",)))
    assert again.trigger == "cli" and again.outputs == ("clean", "summary")
    ledger.create_run(run("r2", minutes=5))
    ledger.create_run(run("r3", lane="other", minutes=10))
    assert [r.run_id for r in ledger.list_runs()] == ["r3", "r2", "r1"]
    assert [r.run_id for r in ledger.list_runs("orders")] == ["r2", "r1"]
    assert [r.run_id for r in ledger.list_runs(limit=1)] == ["r3"]
    stored = ledger.get_run("r2")
    assert stored is not None and stored.started_at == T0 + timedelta(minutes=5) and stored.outputs == ("clean", "summary")


def test_attempts_are_allocated_per_output(backend):
    ledger = backend.ledger
    assert [ledger.next_attempt("r1", "clean") for _ in range(3)] == [1, 2, 3]
    assert ledger.next_attempt("r1", "summary") == 1
    assert ledger.next_attempt("r2", "clean") == 1


def test_attempts_are_allocated_atomically_under_concurrency(backend):
    if backend.name == "aws":
        pytest.skip("moto's UpdateItem is not atomic across threads; DynamoDB's ADD is (see tests/aws/test_adapters.py)")
    ledger = backend.ledger
    got: list[int] = []
    lock = threading.Lock()

    def grab() -> None:
        for _ in range(5):
            value = ledger.next_attempt("r9", "clean")
            with lock:
                got.append(value)

    threads = [threading.Thread(target=grab) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got) == list(range(1, 21))


def test_receipt_rows_are_write_once_and_ordered(backend):
    ledger = backend.ledger

    def row(output: str, attempt: int, kind: str, status: str) -> ReceiptRow:
        return ReceiptRow(run_id="r1", output=output, attempt=attempt, kind=kind,
                          key=f"receipts/r1/{output}/{attempt:04d}-{kind}.json", digest=kind[0] * 64, status=status,
                          created_at=T0)

    for item in [row("summary", 1, "materialize", "succeeded"), row("clean", 2, "materialize", "succeeded"),
                 row("clean", 1, "gate", "rejected"), row("clean", 1, "check", "FAIL"),
                 row("clean", 1, "materialize", "succeeded")]:
        ledger.record_receipt(item)
    with pytest.raises(AlreadyExists):
        ledger.record_receipt(row("clean", 1, "check", "PASS"))
    rows = ledger.receipts("r1")
    assert [(r.output, r.attempt, r.kind) for r in rows] == [
        ("clean", 1, "materialize"), ("clean", 1, "check"), ("clean", 1, "gate"), ("clean", 2, "materialize"),
        ("summary", 1, "materialize")]
    assert rows[1].status == "FAIL" and rows[1].created_at == T0
    assert [r.kind for r in ledger.receipts("r1", "summary")] == ["materialize"]
    assert ledger.receipts("r2") == []


def test_pointer_never_regresses(backend):
    ledger = backend.ledger
    assert ledger.current("orders", "clean") is None
    ledger.certify(pointer("0002"), event(digest="a"))
    assert ledger.current("orders", "clean") == pointer("0002")
    with pytest.raises(ConditionFailed):
        ledger.certify(pointer("0001", run_id="r0"), event(digest="b"))
    with pytest.raises(ConditionFailed):
        ledger.certify(pointer("0002", attempt=2), event(digest="c"))
    ledger.certify(pointer("0003", run_id="r2", memo="m2"), event(run_id="r2", digest="d"))
    current = ledger.current("orders", "clean")
    assert current is not None and (current.run_id, current.order, current.revoked) == ("r2", "0003", None)
    assert ledger.current("orders", "summary") is None


def test_revoke_and_memo(backend):
    ledger = backend.ledger
    with pytest.raises(NotFound):
        ledger.revoke("orders", "clean", "bad data")
    ledger.certify(pointer("0005", memo="m5"), event(digest="a"))
    assert ledger.find_memo("orders", "clean", "m5") == pointer("0005", memo="m5")
    assert ledger.find_memo("orders", "clean", "other") is None
    assert ledger.find_memo("orders", "summary", "m5") is None
    revoked = ledger.revoke("orders", "clean", "bad data")
    assert revoked.revoked == "bad data" and revoked.order == "0005"
    assert ledger.current("orders", "clean").revoked == "bad data"
    assert ledger.find_memo("orders", "clean", "m5") is None
    # a revoked pointer may be replaced even by a smaller order
    ledger.certify(pointer("0004", run_id="r4"), event(run_id="r4", digest="b"))
    current = ledger.current("orders", "clean")
    assert current is not None and current.revoked is None and current.run_id == "r4"


def test_certification_and_its_event_are_recorded_together(backend):
    ledger = backend.ledger
    certified = event(digest="a")
    ledger.certify(pointer("0001"), certified)
    with pytest.raises(ConditionFailed):
        ledger.certify(pointer("0001", attempt=2), event(digest="lost"))
    assert [e.event_id() for e in ledger.unpublished_events()] == [certified.event_id()]
    assert ledger.unpublished_events()[0] == certified


def test_outbox_queue_publish_cycle(backend):
    ledger = backend.ledger
    first, second = event(digest="1"), event(output=None, digest="2", kind="RunClosed")
    ledger.queue_event(first)
    ledger.queue_event(second)
    ledger.queue_event(first)  # same id: queued once
    assert [e.event_id() for e in ledger.unpublished_events()] == [first.event_id(), second.event_id()]
    ledger.mark_published([first.event_id()])
    assert [e.event_id() for e in ledger.unpublished_events()] == [second.event_id()]
    ledger.queue_event(first)  # already published: not queued again
    assert [e.event_id() for e in ledger.unpublished_events()] == [second.event_id()]
    ledger.mark_published([second.event_id(), "unknown-id"])
    assert ledger.unpublished_events() == []


# ---------------------------------------------------------------------- EventBus

def test_bus_accepts_batches_and_returns_ids(backend):
    events = [event(run_id=f"r{i}", digest=str(i)) for i in range(23)]
    accepted = backend.bus.publish(events)
    assert sorted(accepted) == sorted(e.event_id() for e in events)
    assert backend.bus.publish([]) == []
