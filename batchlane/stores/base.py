"""Ports: what the core needs from storage, the ledger and the event bus.

Local (files + SQLite + JSONL log) and AWS (S3 + DynamoDB + EventBridge) adapters
implement these; one contract test suite (tests/contract/) runs against both.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from batchlane.receipts import FileDigest, LaneEvent, Trigger


class StoreError(Exception):
    """Base class for store failures the core turns into clear, fail-closed errors."""


class AlreadyExists(StoreError):
    """A write-once key was written before; the earlier bytes stand."""


class NotFound(StoreError):
    pass


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

    def holds(self, key: str, recorded: FileDigest) -> bool:
        """True when the object at key still holds the recorded bytes: re-hashed, or (S3) its current version is
        the recorded version id, whose bytes S3 never changes, with the recorded size. False when it is gone."""

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
    params: dict[str, str] = field(default_factory=dict)   # run parameters (spec vars + --var overrides)


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
    revoked_at: datetime | None = None
    revocation: str | None = None   # key of the revoke receipt
    version: int = 0             # compare-and-swap token: 1 after the first swap, +1 on every swap

    @property
    def live(self) -> bool:
        return self.revoked is None


def pointer_to_json(pointer: CertPointer) -> str:
    """The one serialized form of a pointer, shared by the adapters."""
    body = dataclasses.asdict(pointer)
    for name in ("certified_at", "revoked_at"):
        if body[name] is not None:
            body[name] = body[name].isoformat()
    return json.dumps(body, sort_keys=True)


def pointer_from_json(text: str) -> CertPointer:
    body = json.loads(text)
    for name in ("certified_at", "revoked_at"):
        if body.get(name) is not None:
            body[name] = datetime.fromisoformat(body[name])
    return CertPointer(**body)


class ConditionFailed(StoreError):
    """A conditional ledger write lost (e.g. the pointer already holds a newer certification)."""


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
        """Index rows of a run (or of one output of it), in any order: the core sorts (batchlane.evidence)."""

    def current(self, lane: str, output: str) -> CertPointer | None:
        """The pointer (revoked pointers are returned too, with ``revoked`` set)."""

    def swap_pointer(self, expected_version: int, pointer: CertPointer, event: LaneEvent) -> CertPointer:
        """Atomically: if the stored pointer's version is ``expected_version`` (0: no pointer yet), store
        ``pointer`` with version + 1, append it to the output's history and queue ``event``.

        Raises ConditionFailed when another writer swapped first. Policy (which swaps are allowed) is
        the core's (batchlane.certification); the adapter only makes the swap atomic.
        """

    def history(self, lane: str, output: str) -> list[CertPointer]:
        """Every pointer state ever stored for an output, oldest first (certifications and revocations)."""

    def pointers(self, lane: str | None = None) -> list[CertPointer]:
        """The current pointer of every output (of one lane, or all), sorted by (lane, output)."""

    def queue_event(self, event: LaneEvent) -> None:
        """Put an event in the outbox (for events not tied to a pointer move)."""

    def unpublished_events(self) -> list[LaneEvent]: ...

    def mark_published(self, event_ids: list[str]) -> None: ...


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
