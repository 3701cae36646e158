"""What a consumer receives: a certified version (readable, fail closed) or a revocation. Ack after processing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

from batchlane.consume.pinned import VersionReader, VersionState
from batchlane.consume.sources import Envelope
from batchlane.receipts import LaneEvent

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


class AlreadyAcknowledgedError(RuntimeError):
    pass


@dataclass
class Delivery:
    """One event delivered to one consumer. ``ack()`` once processed; unacked deliveries come again."""

    kind: ClassVar[Literal["certified", "revoked"]]
    consumer: str
    event_id: str
    event: LaneEvent
    _acknowledge: Callable[[Delivery], None] = field(repr=False)
    envelope: Envelope | None = field(default=None, repr=False)   # where it came from (log offset, SQS handle)
    acked: bool = field(default=False, init=False)

    @property
    def lane(self) -> str:
        return self.event.lane

    @property
    def output(self) -> str:
        return self.event.output or ""

    @property
    def run_id(self) -> str:
        return self.event.run_id

    @property
    def attempt(self) -> int | None:
        return self.event.attempt

    @property
    def order(self) -> str | None:
        return self.event.order

    def ack(self) -> None:
        """Mark processed: the cursor moves past it (locally) or the message is deleted (SQS)."""
        if self.acked:
            raise AlreadyAcknowledgedError(f"{self.kind} {self.lane}/{self.output} event {self.event_id} was acked before")
        self._acknowledge(self)
        self.acked = True

    def summary(self) -> dict:
        return {"kind": self.kind, "id": self.event_id, "consumer": self.consumer, "lane": self.lane,
                "output": self.output, "run_id": self.run_id, "attempt": self.attempt, "order": self.order,
                "time": self.event.time.isoformat()}


@dataclass
class CertifiedVersion(Delivery):
    """A certified version of an output, pinned to the certification the event names.

    ``table()`` / ``read()`` return its bytes only while it is the certification in force and every file
    still hashes to its proof; otherwise they raise ``batchlane.gate.NotCertified`` (fail closed).
    """

    kind: ClassVar[Literal["certified", "revoked"]] = "certified"
    reader: VersionReader | None = field(default=None, repr=False)

    def _reader(self) -> VersionReader:
        if self.reader is None:
            raise RuntimeError("this delivery has no reader")
        return self.reader

    def state(self) -> VersionState:
        """in_force, superseded, revoked or uncertified, asked of the ledger now (no bytes read)."""
        return self._reader().state(self.event)

    def table(self, columns: list[str] | None = None) -> pa.Table:
        return self._reader().table(self.event, columns)

    def read(self, columns: list[str] | None = None) -> pd.DataFrame:
        return self.table(columns).to_pandas()

    @property
    def rows(self) -> int | None:
        counts = [proof.rows for proof in self.event.proof]
        return None if any(count is None for count in counts) else sum(c or 0 for c in counts)


@dataclass
class Revocation(Delivery):
    """A certification this consumer subscribes to was withdrawn: stop using data derived from it."""

    kind: ClassVar[Literal["certified", "revoked"]] = "revoked"

    @property
    def reason(self) -> str:
        return self.event.reason or "revoked"

    def summary(self) -> dict:
        return {**super().summary(), "reason": self.reason}
