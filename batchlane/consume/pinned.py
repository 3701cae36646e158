"""Read the exact certified version an event names, fail closed.

An event is a claim; the ledger and the receipts are the evidence. A version named by a
``DataProductCertified`` event is readable only while all of these hold:

1. the certification pointer of its lane/output still names this certification (same gate receipt key
   and digest) and is not revoked — a superseded or revoked version is not readable (no PASS, no read:
   the gate would refuse it too, so a consumer never sees data that ``lane read`` refuses);
2. the stored certification receipt hashes to the pointer's digest and is a certification
   (checked by ``batchlane.gate.resolve``) and its proof is the proof the event carries;
3. every certified file, copied locally while hashing, has the SHA-256 and size of its proof;
4. after the bytes were read, the pointer still names this certification (a revoke that raced the
   read makes the read fail instead of handing out revoked data).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from batchlane.gate import NotCertified, ResolvedProduct, resolve
from batchlane.reading import read_proven
from batchlane.receipts import FileDigest, LaneEvent
from batchlane.stores.base import Backend

if TYPE_CHECKING:
    import pyarrow as pa

VersionState = Literal["in_force", "superseded", "revoked", "uncertified"]


class VersionNotInForce(NotCertified):
    """The pinned version is not (or no longer) the certification in force: superseded, revoked or unknown."""

    def __init__(self, message: str, state: VersionState) -> None:
        super().__init__(message)
        self.state: VersionState = state


def describe(event: LaneEvent) -> str:
    return f"{event.lane}/{event.output} run {event.run_id} attempt {event.attempt}"


def _proof_signature(proof: list[FileDigest]) -> list[tuple[str, str, int]]:
    return [(item.uri, item.sha256, item.size) for item in proof]


def version_state(backend: Backend, event: LaneEvent) -> VersionState:
    """Where the event's version stands against the ledger right now (no bytes are read)."""
    pointer = backend.ledger.current(event.lane, event.output or "")
    if pointer is None:
        return "uncertified"
    if (pointer.key, pointer.digest) == (event.receipt, event.receipt_digest):
        return "revoked" if pointer.revoked else "in_force"
    if event.order is not None and pointer.order > event.order:
        return "superseded"
    return "revoked" if pointer.revoked else "uncertified"


def resolve_pinned(backend: Backend, event: LaneEvent) -> ResolvedProduct:
    """The certification of exactly this version, checked against the ledger; raises NotCertified otherwise."""
    if event.type != "DataProductCertified" or not event.output or not event.receipt or not event.receipt_digest:
        raise NotCertified(f"event {event.type} of run {event.run_id} names no certified version")
    state = version_state(backend, event)
    if state != "in_force":
        pointer = backend.ledger.current(event.lane, event.output)
        now = (f"; in force: run {pointer.run_id} attempt {pointer.attempt}"
               + (f" (revoked: {pointer.revoked})" if pointer.revoked else "")) if pointer else ""
        raise VersionNotInForce(f"{describe(event)} is {state.replace('_', ' ')}{now}: no PASS, no read", state)
    resolved = resolve(backend, event.lane, event.output, verify_bytes=False)
    if (resolved.pointer.key, resolved.pointer.digest) != (event.receipt, event.receipt_digest):
        raise VersionNotInForce(f"{describe(event)} was superseded while resolving: no PASS, no read", "superseded")
    if _proof_signature(resolved.certification.proof) != _proof_signature(event.proof):
        raise NotCertified(f"{describe(event)}: the event's proof differs from its certification receipt")
    return resolved


def read_pinned(backend: Backend, event: LaneEvent, columns: list[str] | None = None) -> pa.Table:
    """The certified bytes of exactly this version as an Arrow table; raises NotCertified on any doubt."""

    resolved = resolve_pinned(backend, event)
    with tempfile.TemporaryDirectory(prefix="lane-consume-") as workdir:
        table = read_proven(backend.store, describe(event), resolved.certification.proof, Path(workdir), columns)
    if version_state(backend, event) != "in_force":  # a revoke or a newer certification raced the read
        raise VersionNotInForce(f"{describe(event)} stopped being in force while it was read: no PASS, no read",
                                version_state(backend, event))
    return table


class VersionReader(Protocol):
    """How a consumer checks and reads a pinned version: through the ledger, or through the resolve function."""

    def state(self, event: LaneEvent) -> VersionState: ...

    def table(self, event: LaneEvent, columns: list[str] | None = None) -> pa.Table: ...


class LedgerReader:
    """Reads with the backend's own ports (local store; AWS roles that may read the ledger and staging/)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def state(self, event: LaneEvent) -> VersionState:
        return version_state(self.backend, event)

    def table(self, event: LaneEvent, columns: list[str] | None = None) -> pa.Table:
        return read_pinned(self.backend, event, columns)
