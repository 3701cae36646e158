"""Certification pointer policy, once for every backend: apply, revoke, memo lookup, outbox publishing.

Adapters only make a pointer swap atomic (``Ledger.swap_pointer``: compare the version read, store the
new state, append it to the history, queue its event, in one transaction). What a swap may do is decided
here:

- the pointer never moves to an older certification (orders compare run start time, then attempt);
- a revocation is a fact with a write-once receipt and a ``DataProductRevoked`` event; while it stands,
  nothing that started before it can certify that output again (its order is older than the revocation);
- a memo hit reuses a certification only while it is live and its bytes still match the proof.
"""

from __future__ import annotations

import dataclasses
import random
import time
from datetime import datetime
from typing import TYPE_CHECKING

from batchlane.reading import NotCertified, resolve, still_held
from batchlane.receipts import GateReceipt, LaneEvent, MaterializeReceipt, RevokeReceipt, revoke_key
from batchlane.stores.base import AlreadyExists, Backend, CertPointer, ConditionFailed
from batchlane.writepoints import write_point

if TYPE_CHECKING:
    from batchlane.checking.reuse import Partitioning, PriorEvidence

_SWAP_TRIES = 12


class RevokeError(ValueError):
    """A revoke that cannot be applied (no certification, already revoked, no reason)."""


def order_of(started_at: datetime, attempt: int) -> str:
    """Sortable order of an attempt: its run's start (UTC, microseconds), then the attempt number."""
    return f"{started_at.strftime('%Y-%m-%dT%H:%M:%S.%f')}#{attempt:06d}"


def _moment(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")


def refusal(current: CertPointer | None, order: str) -> str | None:
    """Why a certification of ``order`` may not replace ``current`` (None: it may)."""
    if current is None:
        return None
    if order <= current.order:
        return (f"the certification in force (run {current.run_id} attempt {current.attempt}) is newer or the same;"
                " the pointer never moves back")
    if current.revoked is not None and current.revoked_at is not None and order < _moment(current.revoked_at):
        return (f"its run started before the revocation of {current.run_id} attempt {current.attempt} "
                f"({_moment(current.revoked_at)}): a revocation cannot be undone by work that predates it")
    return None


def _backoff(attempt: int) -> None:
    time.sleep(min(0.5, 0.01 * (2 ** attempt)) * (0.5 + random.random()))


def apply_certification(backend: Backend, pointer: CertPointer, event: LaneEvent) -> str | None:
    """Move the pointer to this certification (with its event) unless policy refuses; returns the refusal."""
    for attempt in range(_SWAP_TRIES):
        current = backend.ledger.current(pointer.lane, pointer.output)
        if current is not None and current.key == pointer.key and current.revoked is None:
            return None  # applied before (a retried decide)
        reason = refusal(current, pointer.order)
        if reason is not None:
            return reason
        write_point("pointer.swap")
        try:
            backend.ledger.swap_pointer(current.version if current else 0, pointer, event)
            return None
        except ConditionFailed:
            _backoff(attempt)
    raise ConditionFailed(f"{pointer.lane}/{pointer.output}: the pointer kept moving; decide again")


def was_applied(backend: Backend, lane: str, output: str, certification_key: str) -> bool:
    """Did this certification ever move the pointer (is or was it in force)?"""
    return any(state.key == certification_key and state.revoked is None
               for state in backend.ledger.history(lane, output))


def memo_hit(backend: Backend, lane: str, output: str, memo_key: str) -> tuple[CertPointer | None, str | None]:
    """The live certification with this memo key whose bytes still match, else (None, why not)."""
    current = backend.ledger.current(lane, output)
    if current is None or current.memo_key != memo_key:
        return None, None
    if current.revoked is not None:
        return None, f"the matching certification was revoked ({current.revoked})"
    try:
        still_held(backend, resolve(backend, lane, output, verify_bytes=False))
    except NotCertified as exc:
        return None, f"the matching certification cannot be reused: {exc}"
    return current, None


def revoke(backend: Backend, lane: str, output: str, reason: str, *, consumers: list[str] | None = None) -> CertPointer:
    """Withdraw the certification in force: a write-once receipt, then the pointer swap with its event.

    Re-running a revoke that crashed after its receipt completes it; a certification is revoked once
    (the first reason stands).
    """
    reason = (reason or "").strip()
    if not reason:
        raise RevokeError(f"revoking {lane}/{output} needs a non-empty reason")
    current = backend.ledger.current(lane, output)
    if current is None:
        raise RevokeError(f"{lane}/{output} has no certification to revoke")
    if current.revoked is not None:
        raise RevokeError(
            f"{lane}/{output}: the certification of run {current.run_id} attempt {current.attempt} was already "
            f"revoked at {current.revoked_at:%Y-%m-%d %H:%M:%S} UTC ({current.revoked})"
            if current.revoked_at else f"{lane}/{output} is already revoked ({current.revoked})"
        )
    if consumers is None:
        consumers = _declared_consumers(backend, current)
    key = revoke_key(lane, output, current.run_id, current.attempt)
    receipt = RevokeReceipt(lane=lane, output=output, run_id=current.run_id, attempt=current.attempt,
                            certification=current.key, certification_digest=current.digest, order=current.order,
                            reason=reason)
    write_point("revoke.store")
    try:
        backend.store.put_once(key, receipt.canonical())
    except AlreadyExists:  # an earlier revoke stored its receipt and stopped before the swap: finish it
        receipt = RevokeReceipt.model_validate_json(backend.store.get(key))
    revoked = dataclasses.replace(current, revoked=receipt.reason, revoked_at=receipt.revoked_at, revocation=key)
    event = LaneEvent(type="DataProductRevoked", lane=lane, run_id=current.run_id, output=output,
                      attempt=current.attempt, receipt=key, receipt_digest=receipt.digest(), reason=receipt.reason,
                      consumers=consumers or [], order=current.order, time=receipt.revoked_at)
    write_point("revoke.swap")
    try:
        stored = backend.ledger.swap_pointer(current.version, revoked, event)
    except ConditionFailed:
        raise RevokeError(f"{lane}/{output}: the certification changed while revoking; run revoke again") from None
    publish_pending(backend, only={event.event_id()})
    catalog_follows(backend, lane, output)
    return stored


def _declared_consumers(backend: Backend, pointer: CertPointer) -> list[str]:
    """The consumers the certified run's spec declares for the output (best effort: [] if it cannot be read)."""
    from batchlane.spec import SpecError, load_spec

    run = backend.ledger.get_run(pointer.run_id)
    if run is None or not run.spec_path:
        return []
    try:
        output = load_spec(run.spec_path).outputs.get(pointer.output)
    except (SpecError, OSError):
        return []
    return list(output.consumers) if output else []


def publish_pending(backend: Backend, only: set[str] | None = None) -> list[str]:
    """Publish the ledger's outbox (or just the events named); what fails stays queued (at-least-once).

    A gate publishes only its own event, so concurrent gates do not re-send each other's; closing a
    run sweeps the whole outbox, re-sending whatever an earlier publish lost.
    """
    events = [e for e in backend.ledger.unpublished_events() if only is None or e.event_id() in only]
    if not events:
        return []
    write_point("event.publish")
    accepted = backend.bus.publish(events)
    if accepted:
        write_point("event.mark")
        backend.ledger.mark_published(accepted)
    return accepted


def catalog_follows(backend: Backend, lane: str, output: str) -> None:
    """After a pointer move: the Glue table (when publication is on, AWS only) follows the certification in
    force. Best effort: the certification stands either way, and closing the run syncs again."""
    if backend.name != "aws":
        return
    from batchlane.glue_catalog import sync_if_enabled

    sync_if_enabled(backend, lane, output, quiet=True)


def partition_check_inputs(backend: Backend, lane: str, output: str,
                           materialized: MaterializeReceipt) -> Partitioning | None:
    """What the check of a partitioned attempt is told: each product file's partition name and recorded SHA-256,
    and the partition evidence it may reuse, that of the certification in force for the output (its check, bound
    to the pointer through the certification's digests, a PASS). None for an output that is not partitioned."""
    from batchlane.checking.reuse import Partitioning

    by_uri = {part.file.uri: part.name for part in materialized.partitions if part.file is not None}
    if not materialized.partitions or any(file.uri not in by_uri for file in materialized.outputs):
        return None
    names = [by_uri[file.uri] for file in materialized.outputs]
    expected = [file.sha256 for file in materialized.outputs]
    prior, why = certified_partition_evidence(backend, lane, output)
    return Partitioning(names=names, expected_sha256=expected, prior=prior, no_prior=why)


def certified_partition_evidence(backend: Backend, lane: str, output: str) -> tuple[PriorEvidence | None, str | None]:
    """The partition evidence of the certification in force for ``lane/output``, or (None, why there is none)."""
    from batchlane.checking.reuse import PriorEvidence
    from batchlane.reading import bound_certification
    from batchlane.receipts import CheckReceipt, parse_receipt, receipt_key, sha256_bytes
    from batchlane.stores.base import StoreError

    pointer = backend.ledger.current(lane, output)
    if pointer is None:
        return None, f"no certification of {lane}/{output} in force: every partition is read"
    if pointer.revoked is not None:
        return None, f"the certification of {lane}/{output} in force was revoked ({pointer.revoked}): every " \
                     "partition is read"
    try:
        certification = bound_certification(backend, pointer)  # pointer -> gate receipt -> PASS check, by digest
        data = backend.store.get(receipt_key(pointer.run_id, output, pointer.attempt, "check"))
        checked = parse_receipt(data) if sha256_bytes(data) == certification.check_digest else None
    except (NotCertified, StoreError, ValueError) as exc:
        return None, f"the certification in force cannot lend its evidence ({exc}): every partition is read"
    if not isinstance(checked, CheckReceipt):  # the bytes read are not the ones the certification chains to
        return None, f"the check receipt of certification {pointer.key} is not the one it certifies: every " \
                     "partition is read"
    return PriorEvidence.from_check(pointer.key, checked.verdict, checked.rules, checked.products,
                                    checked.partition_evidence, checked.partition_check)


def certification_pointer(receipt: GateReceipt, key: str, order: str) -> CertPointer:
    return CertPointer(lane=receipt.lane, output=receipt.output, run_id=receipt.run_id, attempt=receipt.attempt,
                       key=key, digest=receipt.digest(), memo_key=receipt.memo_key, order=order,
                       certified_at=receipt.created_at)


__all__ = ["RevokeError", "apply_certification", "catalog_follows", "certification_pointer",
           "certified_partition_evidence", "memo_hit", "order_of", "partition_check_inputs", "publish_pending", "refusal",
           "revoke", "was_applied"]
