"""Where a consumer's events come from: the local event log (offset cursor) or its SQS queue (AWS).

Both hand the consumer ``Envelope`` objects; ``settle(envelope)`` removes one for good (local: the
offset may move past it; SQS: DeleteMessage). An envelope never settled is delivered again: locally
when the consumer starts next, on SQS when the visibility timeout expires (and to the queue's DLQ after
the redrive policy's maxReceiveCount receives).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from batchlane.consume.state import ConsumerState
from batchlane.receipts import LaneEvent

log = logging.getLogger("batchlane.consume")


class ConsumerConfigError(ValueError):
    """A consumer cannot start: missing queue URL, unknown consumer, unusable store."""


@dataclass
class Envelope:
    event_id: str
    event: LaneEvent | None          # None: the message could not be parsed (left for redelivery / the DLQ)
    problem: str | None = None
    start: int = 0                   # local log: byte offset of the line
    end: int = 0                     # local log: byte offset after the line
    receipt_handle: str | None = None
    receive_count: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def parse_event(document: dict) -> tuple[str, LaneEvent]:
    """{"id": ..., **event} -> (id, event); the id must be the event's own stable id."""
    body = dict(document)
    event_id = str(body.pop("id", ""))
    event = LaneEvent.model_validate(body)
    if event_id != event.event_id():
        raise ValueError(f"event id {event_id!r} does not match its content (expected {event.event_id()})")
    return event_id, event


class EventSource(Protocol):
    def receive(self, wait_seconds: float) -> list[Envelope]:
        """The next envelopes (possibly none, after waiting up to wait_seconds where the source can wait)."""

    offset_log: bool
    """True (local log): events are re-read from the committed offset, so what is passed over is dropped (an
    unparsable line is skipped for good). False (SQS): what is not deleted comes back, and to the DLQ in the end."""

    def release(self, envelope: Envelope) -> int | None:
        """Take an envelope out of flight; returns the log offset to commit with its record (local) or None."""

    def committed(self) -> int | None:
        """The offset a restart should read from now (local), or None (SQS)."""

    def settle(self, envelope: Envelope) -> None:
        """Remove an envelope for good, after it was recorded as acked or skipped (SQS: DeleteMessage)."""

    def abandon(self) -> None:
        """Forget what is in flight (a new follow() starts from the durable cursor)."""


class LocalLogSource:
    """The local JSON Lines event log from the consumer's committed offset.

    The committed offset is the start of the oldest envelope delivered but not yet settled (or, when
    none is in flight, the end of the last line read), so a crash before an ack re-reads that line.
    """

    def __init__(self, log_path: Path, state: ConsumerState, consumer: str) -> None:
        self.path = Path(log_path)
        self.state = state
        self.consumer = consumer
        self.position = state.offset(consumer)
        self.in_flight: dict[int, Envelope] = {}

    def receive(self, wait_seconds: float) -> list[Envelope]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as handle:
            handle.seek(self.position)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        envelopes, offset = [], self.position
        for line in complete.splitlines(keepends=True):
            start, offset = offset, offset + len(line)
            if not line.strip():
                continue
            try:
                event_id, event = parse_event(json.loads(line))
                envelope = Envelope(event_id=event_id, event=event, start=start, end=offset)
            except (ValueError, ValidationError) as exc:
                envelope = Envelope(event_id=f"offset-{start}", event=None, problem=str(exc), start=start, end=offset)
            self.in_flight[start] = envelope
            envelopes.append(envelope)
        self.position = offset
        return envelopes

    offset_log = True

    def release(self, envelope: Envelope) -> int | None:
        self.in_flight.pop(envelope.start, None)
        return self.committed()

    def committed(self) -> int | None:
        return min(self.in_flight, default=self.position)

    def settle(self, envelope: Envelope) -> None:
        """Nothing left to do: the committed offset was recorded with the envelope."""

    def abandon(self) -> None:
        self.in_flight.clear()
        self.position = self.state.offset(self.consumer)


class SqsSource:
    """The consumer's SQS queue: EventBridge envelopes whose ``detail`` is {"id": ..., **event}."""

    def __init__(self, queue_url: str, *, client: Any = None, visibility_timeout: int | None = None) -> None:
        if not queue_url:
            raise ConsumerConfigError("an aws consumer needs its queue URL (queue_url= or LANE_CONSUMER_QUEUE_URL; "
                                      "the stack outputs Consumer<Name>QueueUrl)")
        if client is None:
            import boto3

            client = boto3.session.Session().client("sqs")
        self.queue_url = queue_url
        self.sqs = client
        self.visibility_timeout = visibility_timeout

    def receive(self, wait_seconds: float) -> list[Envelope]:
        kwargs: dict[str, Any] = {
            "QueueUrl": self.queue_url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": int(min(20, max(0, wait_seconds))),
            "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
        }
        if self.visibility_timeout is not None:
            kwargs["VisibilityTimeout"] = self.visibility_timeout
        messages = self.sqs.receive_message(**kwargs).get("Messages", [])
        if not messages and 0 < wait_seconds < 1:   # SQS long-polls in whole seconds: do not spin on short polls
            time.sleep(wait_seconds)
        return [self._envelope(message) for message in messages]

    @staticmethod
    def _envelope(message: dict) -> Envelope:
        handle = message["ReceiptHandle"]
        count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        try:
            body = json.loads(message["Body"])
            detail = body.get("detail") if isinstance(body, dict) and "detail" in body else body
            if isinstance(detail, str):
                detail = json.loads(detail)
            if not isinstance(detail, dict):
                raise TypeError("the message carries no event detail object")
            event_id, event = parse_event(detail)
            return Envelope(event_id=event_id, event=event, receipt_handle=handle, receive_count=count)
        except (ValueError, ValidationError, TypeError, AttributeError) as exc:
            return Envelope(event_id=f"message-{message.get('MessageId', '?')}", event=None, problem=str(exc),
                            receipt_handle=handle, receive_count=count)

    offset_log = False

    def release(self, envelope: Envelope) -> int | None:
        return None

    def committed(self) -> int | None:
        return None

    def settle(self, envelope: Envelope) -> None:
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=envelope.receipt_handle)

    def abandon(self) -> None:
        """Nothing to do: unsettled messages reappear when their visibility timeout expires."""
