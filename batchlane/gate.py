"""The gate: check a materialized attempt, certify or reject it, settle and close the run, resolve reads.

No PASS, no read: a product is readable only through the certification pointer, and only
while the SHA-256 of every certified file still matches the proof.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from batchlane.checks import CheckError, ReferenceUnavailable, check_files
from batchlane.evidence import chain_head, load_receipt, write_once_or_existing
from batchlane.receipts import (
    CheckReceipt,
    FileDigest,
    GateReceipt,
    LaneEvent,
    MaterializeReceipt,
    RunManifest,
    manifest_key,
    parse_receipt,
    product_key,
    sha256_bytes,
    utcnow,
)
from batchlane.spec import LaneSpec
from batchlane.state import SETTLED, output_closure, run_closures
from batchlane.stores.base import AlreadyExists, Backend, CertPointer, ConditionFailed, NotFound, ReceiptRow

if TYPE_CHECKING:  # pyarrow loads when data is read, so planning, memoized runs and the CLI start fast
    import pyarrow as pa


class NotCertified(LookupError):
    """A read was refused: no certification, revoked, or the bytes no longer match the proof."""


class DependencyPending(RuntimeError):
    """A referenced product of the same run is not decided yet; retry later (the ASL retries this)."""


class GateError(RuntimeError):
    pass


def publish_pending(backend: Backend, only: set[str] | None = None) -> list[str]:
    """Publish the ledger's outbox (or just the events named); what fails stays queued (at-least-once).

    A gate publishes only its own event, so concurrent gates do not re-send each other's; closing a
    run sweeps the whole outbox, re-sending whatever an earlier publish lost.
    """
    events = [e for e in backend.ledger.unpublished_events() if only is None or e.event_id() in only]
    if not events:
        return []
    accepted = backend.bus.publish(events)
    if accepted:
        backend.ledger.mark_published(accepted)
    return accepted


# ----------------------------------------------------------------------------- resolve


@dataclass(frozen=True)
class ResolvedProduct:
    pointer: CertPointer
    certification: GateReceipt
    keys: list[str]


def _certification(backend: Backend, pointer: CertPointer) -> GateReceipt:
    try:
        data = backend.store.get(pointer.key)
    except NotFound:
        raise NotCertified(f"{pointer.lane}/{pointer.output}: certification {pointer.key} is missing") from None
    if sha256_bytes(data) != pointer.digest:
        raise NotCertified(f"{pointer.lane}/{pointer.output}: certification {pointer.key} was altered (digest mismatch)")
    receipt = parse_receipt(data)
    if not isinstance(receipt, GateReceipt) or receipt.decision != "certified":
        raise NotCertified(f"{pointer.lane}/{pointer.output}: {pointer.key} is not a certification")
    return receipt


def _proven(resolved: ResolvedProduct, key: str, proof: FileDigest, hash_of: Callable[[str], FileDigest]) -> None:
    """Hash one certified file (via ``hash_of``); raise NotCertified unless it matches its proof."""
    where = f"{resolved.pointer.lane}/{resolved.pointer.output}"
    try:
        actual = hash_of(key)
    except NotFound:
        raise NotCertified(f"{where}: certified file {key} is missing") from None
    if (actual.sha256, actual.size) != (proof.sha256, proof.size):
        raise NotCertified(
            f"{where}: {key} changed since certification "
            f"(sha256 {actual.sha256[:12]}… != certified {proof.sha256[:12]}…)"
        )


def verify_files(backend: Backend, resolved: ResolvedProduct) -> None:
    """Re-hash every certified file; raise NotCertified on any difference from the proof."""
    for key, proof in zip(resolved.keys, resolved.certification.proof, strict=True):
        _proven(resolved, key, proof, backend.store.digest)


def resolve(backend: Backend, lane: str, output: str, *, verify_bytes: bool = True) -> ResolvedProduct:
    pointer = backend.ledger.current(lane, output)
    if pointer is None:
        raise NotCertified(f"{lane}/{output} has no certification: no PASS, no read")
    if pointer.revoked:
        raise NotCertified(f"{lane}/{output}: certification of run {pointer.run_id} was revoked ({pointer.revoked})")
    certification = _certification(backend, pointer)
    resolved = ResolvedProduct(
        pointer=pointer, certification=certification,
        keys=[product_key(proof.uri) for proof in certification.proof],
    )
    if verify_bytes:
        verify_files(backend, resolved)
    return resolved


def read_table(backend: Backend, lane: str, output: str, columns: list[str] | None = None) -> pa.Table:
    """Read a certified product; the bytes read are the bytes hashed (copied and verified in one pass)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    resolved = resolve(backend, lane, output, verify_bytes=False)
    tables = []
    with tempfile.TemporaryDirectory(prefix="lane-read-") as workdir:
        for key, proof in zip(resolved.keys, resolved.certification.proof, strict=True):
            local = Path(workdir) / Path(key).name
            _proven(resolved, key, proof, lambda stored: backend.store.fetch(stored, local))
            tables.append(pq.read_table(local, columns=columns))
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


# ----------------------------------------------------------------------------- check


def _reference_resolver(backend: Backend, spec: LaneSpec, run_id: str):
    """Values of OUTPUT.COLUMN: this run's certified attempt if the run has one, else the lane's certification."""

    def values(output: str, column: str) -> pa.Array:
        import pyarrow as pa

        closure = output_closure(backend, run_id, output)
        if closure.state == "pending" and closure.attempts > 0:
            raise DependencyPending(f"referenced product {output} of run {run_id} is not decided yet")
        if closure.state in ("rejected", "failed"):
            raise ReferenceUnavailable(f"referenced product {output} was {closure.state} in run {run_id}")
        try:
            table = read_table(backend, spec.lane, output, columns=[column])
        except NotCertified as exc:
            raise ReferenceUnavailable(str(exc)) from None
        except (KeyError, pa.ArrowInvalid) as exc:
            raise ReferenceUnavailable(f"referenced product {output} has no column {column}: {exc}") from None
        return table.column(column).combine_chunks()

    return values


def check(backend: Backend, spec: LaneSpec, run_id: str, output: str, attempt: int) -> CheckReceipt:
    existing = load_receipt(backend, run_id, output, attempt, "check")
    if existing is not None:
        assert isinstance(existing, CheckReceipt)
        return existing
    started = time.perf_counter()
    materialized = load_receipt(backend, run_id, output, attempt, "materialize")

    def failed(error: str, products: list[FileDigest] | None = None, materialize_digest: str = "none") -> CheckReceipt:
        return CheckReceipt(
            lane=spec.lane, run_id=run_id, output=output, attempt=attempt, prev=chain_head(backend, run_id, output),
            verdict="FAIL", materialize_digest=materialize_digest, products=products or [], rules=[],
            seconds=round(time.perf_counter() - started, 6), error=error,
        )

    if not isinstance(materialized, MaterializeReceipt):
        receipt = failed(f"output {output}, run {run_id}, attempt {attempt}: no materialize receipt (job did not finish)")
    elif materialized.status != "succeeded":
        receipt = failed(materialized.error or f"materialize {materialized.status}", materialize_digest=materialized.digest())
    else:
        receipt = _check_products(backend, spec, run_id, output, attempt, materialized, started, failed)
    stored = write_once_or_existing(backend, receipt)
    assert isinstance(stored, CheckReceipt)
    return stored


def _check_products(backend, spec, run_id, output, attempt, materialized, started, failed) -> CheckReceipt:
    where = f"output {output}, run {run_id}, attempt {attempt}"
    with tempfile.TemporaryDirectory(prefix="lane-check-") as workdir:
        paths, uris = [], []
        for product in materialized.outputs:
            key = product_key(product.uri)
            local = backend.store.local_path(key)
            if local is None:
                local = Path(workdir) / Path(key).name
                backend.store.fetch(key, local)
            elif not local.is_file():
                return failed(f"{where}: product file {key} is missing", materialize_digest=materialized.digest())
            paths.append(local)
            uris.append(product.uri)
        try:
            outcome = check_files(paths, spec.outputs[output].contract, uris=uris,
                                  reference_values=_reference_resolver(backend, spec, run_id))
        except CheckError as exc:
            return failed(f"{where}: {exc}", materialize_digest=materialized.digest())
    written = {(p.uri, p.sha256, p.size) for p in materialized.outputs}
    checked = {(p.uri, p.sha256, p.size) for p in outcome.files}
    if written != checked:
        return failed(f"{where}: product bytes changed between materialize and check", outcome.files,
                      materialized.digest())
    versions = {p.uri: p.version for p in materialized.outputs}  # S3 version ids pin the certified bytes
    products = [p.model_copy(update={"version": versions.get(p.uri)}) for p in outcome.files]
    return CheckReceipt(
        lane=spec.lane, run_id=run_id, output=output, attempt=attempt, prev=chain_head(backend, run_id, output),
        verdict=outcome.verdict, materialize_digest=materialized.digest(), products=products,
        rules=outcome.rules, rows=outcome.rows, seconds=round(time.perf_counter() - started, 6),
    )


# ----------------------------------------------------------------------------- decide


def _order(backend: Backend, run_id: str, attempt: int) -> str:
    run = backend.ledger.get_run(run_id)
    started = run.started_at.strftime("%Y-%m-%dT%H:%M:%S.%f") if run else "0000"
    return f"{started}#{attempt:06d}"


def decide(backend: Backend, spec: LaneSpec, run_id: str, output: str, attempt: int) -> GateReceipt:
    """Certify on PASS (pointer + event together), reject otherwise. Idempotent per attempt."""
    existing = load_receipt(backend, run_id, output, attempt, "gate")
    if existing is None:
        checked = load_receipt(backend, run_id, output, attempt, "check")
        if not isinstance(checked, CheckReceipt):
            checked = check(backend, spec, run_id, output, attempt)
        materialized = load_receipt(backend, run_id, output, attempt, "materialize")
        passed = checked.verdict == "PASS" and isinstance(materialized, MaterializeReceipt)
        receipt = GateReceipt(
            lane=spec.lane, run_id=run_id, output=output, attempt=attempt, prev=chain_head(backend, run_id, output),
            decision="certified" if passed else "rejected", check_digest=checked.digest(),
            materialize_digest=checked.materialize_digest, proof=checked.products if passed else [],
            memo_key=materialized.memo_key if isinstance(materialized, MaterializeReceipt) else "unavailable",
            reason=None if passed else (checked.error or "failing rules: " + ", ".join(r.label for r in checked.failing_rules)),
        )
        existing = write_once_or_existing(backend, receipt)
        failing = [] if passed else [r.label for r in checked.failing_rules]
    else:
        checked = load_receipt(backend, run_id, output, attempt, "check")
        failing = [r.label for r in checked.failing_rules] if isinstance(checked, CheckReceipt) else []
    assert isinstance(existing, GateReceipt)
    key = f"receipts/{run_id}/{output}/{attempt:04d}-gate.json"
    event = LaneEvent(
        type="DataProductCertified" if existing.decision == "certified" else "DataProductRejected",
        lane=spec.lane, run_id=run_id, output=output, attempt=attempt, receipt=key,
        receipt_digest=existing.digest(), proof=existing.proof, verdict="PASS" if existing.decision == "certified" else "FAIL",
        failing_rules=failing, time=existing.created_at,
    )
    if existing.decision == "certified":
        pointer = CertPointer(
            lane=spec.lane, output=output, run_id=run_id, attempt=attempt, key=key, digest=existing.digest(),
            memo_key=existing.memo_key, order=_order(backend, run_id, attempt), certified_at=existing.created_at,
        )
        try:
            backend.ledger.certify(pointer, event)
        except ConditionFailed:
            pass  # the same or a newer certification is in force: the pointer never regresses
    else:
        backend.ledger.queue_event(event)
    publish_pending(backend, only={event.event_id()})
    return existing


def revoke(backend: Backend, lane: str, output: str, reason: str) -> CertPointer:
    return backend.ledger.revoke(lane, output, reason)


# ----------------------------------------------------------------------------- settle and close


def unsettled(backend: Backend, spec: LaneSpec, run_id: str) -> dict[str, str]:
    run = backend.ledger.get_run(run_id)
    if run is None:
        raise GateError(f"no run {run_id!r}")
    result = {}
    for output, closure in run_closures(backend, run_id, run.outputs).items():
        if closure.state not in SETTLED:
            reason = closure.error or (", ".join(closure.failing_rules) and "failing rules: " + ", ".join(closure.failing_rules))
            result[output] = f"{closure.state}" + (f": {reason}" if reason else "")
    return result


def close_run(backend: Backend, spec: LaneSpec, run_id: str) -> RunManifest:
    """Write the next RunManifest (every output's state and the run's verdict) and a RunClosed event."""
    run = backend.ledger.get_run(run_id)
    if run is None:
        raise GateError(f"no run {run_id!r}")
    for _ in range(20):  # concurrent closers: each takes the next free sequence
        manifests = [row for row in backend.ledger.receipts(run_id) if row.kind == "manifest"]
        sequence = max((row.attempt for row in manifests), default=0) + 1
        closures = run_closures(backend, run_id, run.outputs)
        manifest = RunManifest(
            lane=run.lane, run_id=run_id, sequence=sequence, trigger=run.trigger,
            prev=manifests[-1].digest if manifests else None, outputs=closures,
            verdict="PASS" if all(c.state in SETTLED for c in closures.values()) else "FAIL",
        )
        key = manifest_key(run_id, sequence)
        try:
            backend.store.put_once(key, manifest.canonical())
        except AlreadyExists:
            continue
        backend.ledger.record_receipt(
            ReceiptRow(run_id=run_id, output="", attempt=sequence, kind="manifest", key=key,
                       digest=manifest.digest(), status=manifest.verdict, created_at=manifest.closed_at)
        )
        backend.ledger.queue_event(
            LaneEvent(type="RunClosed", lane=run.lane, run_id=run_id, receipt=key, receipt_digest=manifest.digest(),
                      verdict=manifest.verdict, outputs={name: c.state for name, c in closures.items()},
                      time=manifest.closed_at)
        )
        publish_pending(backend)
        return manifest
    raise GateError(f"run {run_id}: could not write a manifest (too many concurrent closers)")
