"""The store-port contract: every adapter (local files + SQLite + JSONL, S3 + DynamoDB + EventBridge) passes it."""

from __future__ import annotations

import hashlib
import inspect
import threading
from datetime import UTC, datetime, timedelta

import pytest

from batchlane.evidence import sorted_rows
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


def _public_signatures(cls: type) -> dict[str, list[str]]:
    return {
        name: list(inspect.signature(member).parameters)
        for name, member in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")
    }


def test_ports_implement_every_protocol_method_with_its_signature(backend):
    """Not isinstance on a runtime_checkable Protocol (that only compares names): every method of the port,
    with the same parameter names, in the same order."""
    for adapter, port in ((backend.store, ObjectStore), (backend.ledger, Ledger), (backend.bus, EventBus)):
        wanted = _public_signatures(port)
        have = _public_signatures(type(adapter))
        for name, parameters in wanted.items():
            assert name in have, f"{type(adapter).__name__} lacks {port.__name__}.{name}"
            assert have[name][: len(parameters)] == parameters, f"{type(adapter).__name__}.{name} signature differs"


def test_signature_check_can_fail():
    class Incomplete:
        def publish(self, batch):  # wrong parameter name
            return []

    assert _public_signatures(Incomplete)["publish"] != _public_signatures(EventBus)["publish"]


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


def test_holds_tells_whether_an_object_still_has_its_recorded_bytes(backend, tmp_path):
    source = tmp_path / "part-0000.parquet"
    source.write_bytes(b"certified bytes")
    key = "staging/r1/clean/0001/part-0000.parquet"
    recorded = backend.store.put_file_once(source, key)
    assert backend.store.holds(key, recorded)
    assert not backend.store.holds(key, recorded.model_copy(update={"sha256": "0" * 64, "version": "other"}))
    assert not backend.store.holds("staging/r1/clean/0001/part-0001.parquet", recorded)
    local = backend.store.local_path(key)
    if local is not None:  # rewritten in place, same size
        local.write_bytes(b"tampered bytes!")
    else:  # a new version of the key (what an overwrite does in a versioned bucket); one HEAD decides
        assert recorded.version, "S3 digests pin a version id, so holds() needs no re-hash"
        backend.store.s3.put_object(Bucket=backend.store.bucket, Key=backend.store._key(key), Body=b"tampered bytes!")
    assert not backend.store.holds(key, recorded)


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
    rows = sorted_rows(ledger.receipts("r1"))
    assert [(r.output, r.attempt, r.kind) for r in rows] == [
        ("clean", 1, "materialize"), ("clean", 1, "check"), ("clean", 1, "gate"), ("clean", 2, "materialize"),
        ("summary", 1, "materialize")]
    assert rows[1].status == "FAIL" and rows[1].created_at == T0
    assert [r.kind for r in ledger.receipts("r1", "summary")] == ["materialize"]
    assert ledger.receipts("r2") == []


def test_pointer_swap_is_compare_and_swap_with_history_and_event(backend):
    ledger = backend.ledger
    assert ledger.current("orders", "clean") is None and ledger.pointers() == []
    first = ledger.swap_pointer(0, pointer("0002"), event(digest="a"))
    assert first.version == 1 and ledger.current("orders", "clean") == first
    with pytest.raises(ConditionFailed):  # a writer that read version 0 lost the race
        ledger.swap_pointer(0, pointer("0003"), event(digest="lost"))
    second = ledger.swap_pointer(1, pointer("0003", run_id="r2", memo="m2"), event(run_id="r2", digest="b"))
    assert second.version == 2 and ledger.current("orders", "clean") == second
    assert [p.order for p in ledger.history("orders", "clean")] == ["0002", "0003"]
    assert ledger.history("orders", "summary") == [] and ledger.current("orders", "summary") is None
    ledger.swap_pointer(0, pointer("0001", output="summary"), event(output="summary", digest="c"))
    assert [(p.output, p.version) for p in ledger.pointers()] == [("clean", 2), ("summary", 1)]
    assert [p.output for p in ledger.pointers("orders")] == ["clean", "summary"] and ledger.pointers("other") == []
    # the event of every applied swap is queued with it, the lost one's is not
    queued = {e.receipt_digest for e in ledger.unpublished_events()}
    assert queued == {"a", "b", "c"}


def test_revoked_state_round_trips(backend):
    from dataclasses import replace

    ledger = backend.ledger
    live = ledger.swap_pointer(0, pointer("0005", memo="m5"), event(digest="a"))
    revoked = ledger.swap_pointer(1, replace(live, revoked="bad data", revoked_at=T0, revocation="receipts/x"),
                                  event(digest="r", kind="DataProductRevoked"))
    current = ledger.current("orders", "clean")
    assert current == revoked and current.revoked == "bad data" and current.revoked_at == T0 and not current.live


# ------------------------------------------------- pointer policy (batchlane.certification), on each backend

def test_policy_never_moves_the_pointer_back(backend):
    from batchlane.certification import apply_certification

    assert apply_certification(backend, pointer("2026-01-02T00:00:00.000000#000001"), event(digest="a")) is None
    older = pointer("2026-01-01T00:00:00.000000#000001", run_id="r0")
    assert "never moves back" in apply_certification(backend, older, event(run_id="r0", digest="b"))
    same = pointer("2026-01-02T00:00:00.000000#000001")
    assert apply_certification(backend, same, event(digest="a")) is None  # a retried decide: already applied
    newer = pointer("2026-01-03T00:00:00.000000#000001", run_id="r3")
    assert apply_certification(backend, newer, event(run_id="r3", digest="c")) is None
    assert backend.ledger.current("orders", "clean").run_id == "r3"


def test_policy_revocation_is_a_receipt_an_event_and_a_floor(backend):
    from batchlane.certification import RevokeError, apply_certification, revoke
    from batchlane.receipts import RevokeReceipt

    with pytest.raises(RevokeError, match="no certification"):
        revoke(backend, "orders", "clean", "bad data")
    apply_certification(backend, pointer("2026-01-02T00:00:00.000000#000001"), event(digest="a"))
    for empty in ("", "   "):
        with pytest.raises(RevokeError, match="non-empty reason"):
            revoke(backend, "orders", "clean", empty)
    sent: list[LaneEvent] = []
    real_publish = backend.bus.publish
    backend.bus.publish = lambda events: sent.extend(events) or real_publish(events)  # type: ignore[method-assign]
    revoked = revoke(backend, "orders", "clean", "bad data", consumers=["fraud"])
    assert revoked.revoked == "bad data" and revoked.revoked_at is not None
    receipt = RevokeReceipt.model_validate_json(backend.store.get(revoked.revocation))
    assert receipt.reason == "bad data" and receipt.certification == revoked.key
    (published,) = [e for e in sent if e.type == "DataProductRevoked"]
    assert (published.reason, published.consumers, published.receipt) == ("bad data", ["fraud"], revoked.revocation)
    assert published.event_id() not in {e.event_id() for e in backend.ledger.unpublished_events()}
    with pytest.raises(RevokeError, match="already revoked"):  # the first reason stands
        revoke(backend, "orders", "clean", "another reason")
    assert backend.ledger.current("orders", "clean").revoked == "bad data"
    # work that started before the revocation cannot undo it, even if newer than the revoked certification
    before = pointer("2026-01-03T00:00:00.000000#000001", run_id="r3")
    assert "before the revocation" in apply_certification(backend, before, event(run_id="r3", digest="b"))
    assert backend.ledger.current("orders", "clean").revoked == "bad data"
    later = pointer("2999-01-01T00:00:00.000000#000001", run_id="r9")
    assert apply_certification(backend, later, event(run_id="r9", digest="c")) is None
    assert backend.ledger.current("orders", "clean").live


def test_policy_swaps_race_to_one_winner(backend):
    """Two certifiers that read the same version: the swap lets one through, the policy retries the other."""
    from batchlane.certification import apply_certification

    ledger = backend.ledger
    real_current = ledger.current
    stale = {"calls": 0}

    def current_once_stale(lane, output):  # the first read happens before the other writer's swap
        stale["calls"] += 1
        if stale["calls"] == 1:
            ledger.swap_pointer(0, pointer("2026-01-05T00:00:00.000000#000001", run_id="r5"), event(run_id="r5"))
            return None
        return real_current(lane, output)

    ledger.current = current_once_stale  # type: ignore[method-assign]
    try:
        result = apply_certification(backend, pointer("2026-01-04T00:00:00.000000#000001", run_id="r4"),
                                     event(run_id="r4", digest="z"))
    finally:
        ledger.current = real_current  # type: ignore[method-assign]
    assert "never moves back" in result and ledger.current("orders", "clean").run_id == "r5"


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
