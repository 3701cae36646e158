"""The consumer SDK: follow a consumer's certified versions and revocations, at least once, in order.

    from batchlane.consume import consumer

    for item in consumer("fraud-stream").follow():
        if item.kind == "certified":
            frame = item.read()          # the pinned, certified bytes, or NotCertified
            ...
        else:                            # "revoked": stop using what was derived from that version
            ...
        item.ack()

Delivery rules (the same on both backends):

- Only ``DataProductCertified`` and ``DataProductRevoked`` events of outputs that declare this consumer
  (``consumers:`` in the spec, carried by the event) are delivered; everything else is passed over.
- At least once: an item not acked is delivered again (locally on the next start, on SQS after the
  visibility timeout). Process idempotently; ack after processing.
- Duplicates (an event id this consumer handled before) are skipped and settled.
- Out of order: a certified version whose order is not newer than the newest version this consumer
  acked for that output (and that was not revoked since) is skipped and settled.
- Not in force: a certified version that is superseded, revoked or unknown to the ledger when it is
  delivered is skipped and settled (a newer version's own event, or the revocation, follows or came
  before). ``read()`` re-checks at read time and raises NotCertified if that changed meanwhile.
- Revocations are delivered as their own items (``kind == "revoked"``), never skipped as out of order.

Skipped events are recorded with their reason (``Consumer.history()``), and counted in ``Consumer.skipped``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from batchlane.consume.items import CertifiedVersion, Delivery, Revocation
from batchlane.consume.pinned import LedgerReader, VersionReader
from batchlane.consume.sources import (
    ConsumerConfigError,
    Envelope,
    EventSource,
    LocalLogSource,
    SqsSource,
)
from batchlane.consume.state import STATE_FILE, ConsumerState
from batchlane.stores.base import Backend

log = logging.getLogger("batchlane.consume")

DELIVERED_TYPES = ("DataProductCertified", "DataProductRevoked")
Stop = Callable[[], bool] | threading.Event


class Consumer:
    """One named consumer: its event source (its cursor), its state file and how it reads versions."""

    def __init__(self, name: str, *, backend: Backend, source: EventSource, state: ConsumerState,
                 reader: VersionReader, require_declared: bool = True) -> None:
        if not name or not name.strip():
            raise ConsumerConfigError("a consumer needs a name (the name the spec's consumers: lists)")
        self.name = name
        self.backend = backend
        self.source = source
        self.state = state
        self.reader = reader
        self.require_declared = require_declared
        self.skipped: Counter[str] = Counter()
        self._offset_moved = False
        self._unacked: set[str] = set()   # event ids delivered in this follow and not acked yet

    # -- following

    def follow(self, *, poll: float | None = 1.0, stop: Stop | None = None) -> Iterator[Delivery]:
        """Yield deliveries as they come. ``poll=None``: deliver what is there now, then return.

        ``stop`` (a threading.Event or a callable) ends the loop between deliveries. Ending the loop
        (or a crash) without acking an item leaves it to be delivered again.
        """
        self.source.abandon()  # a new follow starts from the durable cursor: unacked items come again
        self._unacked.clear()
        while not _stopped(stop):
            envelopes = self.source.receive(0 if poll is None else poll)
            if not envelopes:
                if poll is None:
                    return
                if isinstance(self.source, LocalLogSource):  # SQS long-polls; the local log is polled
                    time.sleep(poll)
                continue
            for envelope in envelopes:
                if _stopped(stop):
                    break
                item = self._deliverable(envelope)
                if item is not None:
                    self._unacked.add(item.event_id)
                    yield item
            self._flush_offset()

    def pending(self) -> list[Delivery]:
        """Everything deliverable now, without waiting (ack each; unacked ones come again next time)."""
        return list(self.follow(poll=None))

    def history(self) -> list[dict]:
        """Every event this consumer acked or skipped, with the outcome, oldest first."""
        return self.state.history(self.name)

    # -- one envelope

    def _deliverable(self, envelope: Envelope) -> Delivery | None:
        event = envelope.event
        if event is None:
            log.warning("consumer %s: unreadable event %s: %s", self.name, envelope.event_id, envelope.problem)
            self.skipped["unreadable"] += 1
            if self.source.offset_log:
                self._pass_over(envelope)
            return None     # SQS: left in the queue; after maxReceiveCount receives the DLQ holds it
        if event.type not in DELIVERED_TYPES or not event.output or not self._subscribed(envelope):
            self._pass_over(envelope)
            return None
        if self.state.processed(self.name, envelope.event_id):
            self._skip(envelope, "duplicate")
            return None
        if envelope.event_id in self._unacked:   # a second copy while the first is still being processed
            self.skipped["duplicate_in_flight"] += 1
            if self.source.offset_log:     # local: the first copy holds the cursor; SQS: it comes back later
                self._pass_over(envelope)
            return None
        if event.type == "DataProductRevoked":
            return Revocation(consumer=self.name, event_id=envelope.event_id, event=event, envelope=envelope,
                              _acknowledge=lambda item: self._ack(item, envelope))
        seen = self.state.version(self.name, event.lane, event.output)
        if seen is not None and seen.revoked is None and event.order is not None and event.order <= seen.order:
            self._skip(envelope, "out_of_order")
            return None
        standing = self.reader.state(event)
        if standing != "in_force":
            self._skip(envelope, standing)
            return None
        return CertifiedVersion(consumer=self.name, event_id=envelope.event_id, event=event, reader=self.reader,
                                envelope=envelope, _acknowledge=lambda item: self._ack(item, envelope))

    def _subscribed(self, envelope: Envelope) -> bool:
        event = envelope.event
        assert event is not None
        if event.consumers:
            return self.name in event.consumers
        if not self.require_declared:
            return True      # SQS: the queue's rule did the routing
        # An event without consumer names: a revocation still reaches every consumer that acked a version of
        # that output (it is the news they need); nothing else is delivered.
        return event.type == "DataProductRevoked" and self.state.version(self.name, event.lane, event.output or "") \
            is not None

    def _pass_over(self, envelope: Envelope) -> None:
        """Not for this consumer: settle without remembering it (the offset is committed once per batch)."""
        self._offset_moved |= self.source.release(envelope) is not None
        self.source.settle(envelope)

    def _flush_offset(self) -> None:
        offset = self.source.committed()
        if self._offset_moved and offset is not None:
            self.state.commit_offset(self.name, offset)
        self._offset_moved = False

    def _skip(self, envelope: Envelope, reason: str) -> None:
        assert envelope.event is not None
        log.info("consumer %s: skipped %s %s (%s)", self.name, envelope.event.type, envelope.event_id, reason)
        self.skipped[reason] += 1
        self._record(envelope, reason)

    def _ack(self, item: Delivery, envelope: Envelope) -> None:
        self._record(envelope, "acked")
        self._unacked.discard(item.event_id)

    def _record(self, envelope: Envelope, outcome: str) -> None:
        event = envelope.event
        assert event is not None
        offset = self.source.release(envelope)
        self.state.record(
            self.name, event_id=envelope.event_id, outcome=outcome,
            kind="certified" if event.type == "DataProductCertified" else "revoked",
            lane=event.lane, output=event.output or "", order=event.order, offset=offset,
            revoked_reason=event.reason,
        )
        self.source.settle(envelope)


def _stopped(stop: Stop | None) -> bool:
    if stop is None:
        return False
    return stop.is_set() if isinstance(stop, threading.Event) else bool(stop())


def default_state_path(backend: Backend) -> Path:
    if os.environ.get("LANE_CONSUMER_STATE"):
        return Path(os.environ["LANE_CONSUMER_STATE"])
    if backend.name == "local":
        return Path(backend.settings["home"]) / STATE_FILE
    from batchlane.backends import lane_home

    return lane_home() / STATE_FILE


def consumer(name: str, *, backend: Backend | None = None, state_path: Path | str | None = None,
             queue_url: str | None = None, resolve_function: str | None = None, sqs_client: object = None,
             reader: VersionReader | None = None, visibility_timeout: int | None = None) -> Consumer:
    """The consumer ``name`` on ``backend`` (default: ``LANE_BACKEND`` / ``LANE_HOME``).

    Local: events come from the store's event log; the cursor is this consumer's offset in
    ``<store>/consumers.sqlite``. AWS: events come from the consumer's SQS queue (``queue_url`` or
    ``LANE_CONSUMER_QUEUE_URL``); the queue is the cursor (DeleteMessage on ack), and ``state_path``
    (default ``$LANE_CONSUMER_STATE`` or ``$LANE_HOME/consumers.sqlite``) remembers processed ids and
    versions. Versions are read through the ledger and store, or, with ``resolve_function`` (or
    ``LANE_RESOLVE_FUNCTION``), through the stack's read-only resolve function (consumer roles).
    """
    if backend is None:
        from batchlane.backends import backend_from_env

        backend = backend_from_env()
    state = ConsumerState(Path(state_path) if state_path else default_state_path(backend))
    if reader is None:
        function = resolve_function or (os.environ.get("LANE_RESOLVE_FUNCTION") if backend.name != "local" else None)
        if function:
            from batchlane.consume.resolve_reader import (
                ResolveFunctionReader,
                lambda_invoker,
            )

            reader = ResolveFunctionReader(lambda_invoker(function))
        else:
            reader = LedgerReader(backend)
    source: EventSource
    if backend.name == "local":
        source = LocalLogSource(Path(backend.settings["home"]) / "events.jsonl", state, name)
        return Consumer(name, backend=backend, source=source, state=state, reader=reader, require_declared=True)
    source = SqsSource(queue_url or os.environ.get("LANE_CONSUMER_QUEUE_URL", ""), client=sqs_client,
                       visibility_timeout=visibility_timeout)
    return Consumer(name, backend=backend, source=source, state=state, reader=reader, require_declared=False)
