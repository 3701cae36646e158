"""Ports: what the core needs from storage, the ledger and the event bus.

Local (files + SQLite + JSONL log) and AWS (S3 + DynamoDB + EventBridge) adapters
implement these; one contract test suite (tests/contract/) runs against both.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from batchlane.receipts import FileDigest, LaneEvent, Trigger


class StoreError(Exception):
    """Base class for store failures the core turns into clear, fail-closed errors."""


class AlreadyExists(StoreError):
    """A write-once key was written before; the earlier bytes stand."""


class NotFound(StoreError):
    pass


@runtime_checkable
class ObjectStore(Protocol):
    """Keys are '/'-separated paths (``staging/...``, ``receipts/...``)."""

    def uri(self, key: str) -> str: ...

    def put_once(self, key: str, data: bytes) -> None:
        """Write bytes only if the key does not exist (raises AlreadyExists)."""

    def get(self, key: str) -> bytes:
        """Whole object (receipts are small); raises NotFound."""

    def exists(self, key: str) -> bool: ...

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under prefix, sorted."""

    def put_file_once(self, source: Path, key: str) -> FileDigest:
        """Move/upload a finished local file to key (write-once), hashing it in one streaming pass."""

    def fetch(self, key: str, destination: Path) -> FileDigest:
        """Copy an object to a local file, hashing while copying."""

    def local_path(self, key: str) -> Path | None:
        """A local path to read the object in place, when the store has one (the local store)."""

    def digest(self, key: str) -> FileDigest:
        """Size and SHA-256 of an object, streamed."""

    def open_read(self, key: str) -> Iterator[bytes]:
        """Stream an object's bytes in chunks."""


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    lane: str
    trigger: Trigger
    started_at: datetime
    spec_digest: str
    outputs: tuple[str, ...]
    spec_path: str = ""   # where the spec was loaded from, so `lane rerun RUN_ID` needs no --spec


@dataclass(frozen=True)
class ReceiptRow:
    run_id: str
    output: str
    attempt: int
    kind: str          # materialize | check | gate | manifest
    key: str
    digest: str
    status: str        # succeeded/failed/memoized | PASS/FAIL | certified/rejected | PASS/FAIL (manifest)
    created_at: datetime


@dataclass(frozen=True)
class CertPointer:
    """The certification in force for one output of a lane."""

    lane: str
    output: str
    run_id: str
    attempt: int
    key: str           # the gate receipt (certification) key
    digest: str        # its digest
    memo_key: str
    order: str         # sortable: the pointer never moves to a smaller order
    certified_at: datetime
    revoked: str | None = None   # reason, when revoked


class ConditionFailed(StoreError):
    """A conditional ledger write lost (e.g. the pointer already holds a newer certification)."""


@runtime_checkable
class Ledger(Protocol):
    def create_run(self, run: RunRecord) -> RunRecord:
        """Register a run; returns the stored record (the existing one if the run id was registered before)."""

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def list_runs(self, lane: str | None = None, limit: int = 50) -> list[RunRecord]:
        """Newest first."""

    def next_attempt(self, run_id: str, output: str) -> int:
        """Atomically allocate the next attempt number (1, 2, ...) for an output of a run."""

    def record_receipt(self, row: ReceiptRow) -> None:
        """Index a receipt; raises AlreadyExists for a second row with the same key."""

    def receipts(self, run_id: str, output: str | None = None) -> list[ReceiptRow]:
        """Ordered by (output, attempt, kind order)."""

    def certify(self, pointer: CertPointer, event: LaneEvent) -> None:
        """Move the pointer to this certification and queue its event, together.

        Raises ConditionFailed when the current pointer is live and its order is >= pointer.order.
        """

    def current(self, lane: str, output: str) -> CertPointer | None:
        """The pointer (revoked pointers are returned too, with ``revoked`` set)."""

    def revoke(self, lane: str, output: str, reason: str) -> CertPointer:
        """Mark the current pointer revoked; raises NotFound when there is none."""

    def find_memo(self, lane: str, output: str, memo_key: str) -> CertPointer | None:
        """The live certification whose memo key matches, if any."""

    def queue_event(self, event: LaneEvent) -> None:
        """Put an event in the outbox (for events not tied to a pointer move)."""

    def unpublished_events(self) -> list[LaneEvent]: ...

    def mark_published(self, event_ids: list[str]) -> None: ...


@runtime_checkable
class EventBus(Protocol):
    def publish(self, events: list[LaneEvent]) -> list[str]:
        """Publish; returns the ids of events that were accepted (partial failures are left out)."""


@dataclass
class Backend:
    """The three ports the core runs against."""

    name: str
    store: ObjectStore
    ledger: Ledger
    bus: EventBus
    settings: dict[str, str] = field(default_factory=dict)
