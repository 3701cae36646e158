"""The gate: check a recorded attempt, then certify or reject it.

No PASS, no read: reading lives in ``batchlane.reading``, pointer policy (certify, revoke, memo) in
``batchlane.certification``, settling and closing runs in ``batchlane.closing``; this module re-exports
their public names so handlers and the CLI have one place to import from.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from batchlane.baseline import certified_baseline
from batchlane.certification import (
    RevokeError,
    apply_certification,
    catalog_follows,
    certification_pointer,
    partition_check_inputs,
    publish_pending,
    revoke,
)
from batchlane.checks import CheckError, FileSource, ReferenceUnavailable, check_files
from batchlane.closing import GateError, certification_order, close_run, repair_run, unsettled
from batchlane.evidence import load_receipt, write_once_or_existing
from batchlane.products import reference_values
from batchlane.reading import NotCertified, ResolvedProduct, read_table, resolve, verify_files
from batchlane.receipts import (
    CheckReceipt,
    FileDigest,
    GateReceipt,
    LaneEvent,
    MaterializeReceipt,
    PinnedReference,
    product_key,
    receipt_key,
)
from batchlane.recording import record_materialized
from batchlane.spec import LaneSpec
from batchlane.state import output_closure
from batchlane.stores.base import Backend, StoreError

if TYPE_CHECKING:  # pyarrow loads when data is read, so planning, memoized runs and the CLI start fast
    from batchlane.checking.references import ReferencedColumn

__all__ = [
    "GateError", "NotCertified", "ResolvedProduct", "RevokeError", "check", "close_run",
    "decide", "publish_pending", "read_table", "repair_run", "resolve", "revoke", "unsettled", "verify_files",
]


# ----------------------------------------------------------------------------- check


class _PinnedReferences:
    """Resolves ``references`` rules at one pinned version of each referenced product (the version the
    attempt read as a product input, else the certification in force when the check begins) and remembers
    which, for the check receipt."""

    def __init__(self, backend: Backend, spec: LaneSpec, run_id: str, materialized: MaterializeReceipt) -> None:
        self.backend, self.spec, self.run_id = backend, spec, run_id
        self.read = {group.product.output: group for group in materialized.inputs
                     if group.product is not None and group.product.lane == spec.lane}
        self.pinned: dict[str, PinnedReference] = {}

    def __call__(self, output: str, column: str) -> ReferencedColumn:
        closure = output_closure(self.backend, self.spec.lane, self.run_id, output)
        if closure.state in ("rejected", "failed", "blocked"):
            raise ReferenceUnavailable(f"referenced product {output} was {closure.state} in run {self.run_id}")
        try:
            values, pin, files = reference_values(self.backend, self.spec.lane, output, column, self.read.get(output))
        except NotCertified as exc:
            raise ReferenceUnavailable(str(exc)) from None
        self.pinned.setdefault(output, PinnedReference(output=output, pinned=pin, files=files))
        return values


def check(backend: Backend, spec: LaneSpec, run_id: str, output: str, attempt: int, *,
          read_in_place: bool = False) -> CheckReceipt:
    """Record the attempt's materialization (trusted, from the job's report) if not yet recorded, then check
    its product against the contract. Idempotent per attempt. ``read_in_place``: product files in S3 are read by
    ranged GETs at the version the materialize receipt recorded (``batchlane.stores.s3_ranged``), not copied to
    a temporary directory first (the Batch check job's way)."""
    existing = load_receipt(backend, run_id, output, attempt, "check")
    if existing is not None:
        assert isinstance(existing, CheckReceipt)
        return existing
    started = time.perf_counter()
    materialized = record_materialized(backend, spec, run_id, output, attempt)

    def failed(error: str, products: list[FileDigest] | None = None, materialize_digest: str = "none") -> CheckReceipt:
        return CheckReceipt(
            lane=spec.lane, run_id=run_id, output=output, attempt=attempt, prev=materialized.digest(),
            verdict="FAIL", materialize_digest=materialize_digest, products=products or [], rules=[],
            seconds=round(time.perf_counter() - started, 6), error=error,
        )

    if materialized.status != "succeeded":
        receipt = failed(materialized.error or f"materialize {materialized.status}", materialize_digest=materialized.digest())
    else:
        receipt = _check_products(backend, spec, run_id, output, attempt, materialized, started, failed,
                                  read_in_place)
    stored = write_once_or_existing(backend, receipt)
    assert isinstance(stored, CheckReceipt)
    return stored


def _check_products(backend, spec, run_id, output, attempt, materialized, started, failed,
                    read_in_place=False) -> CheckReceipt:
    where = f"output {output}, run {run_id}, attempt {attempt}"
    with tempfile.TemporaryDirectory(prefix="lane-check-") as workdir:
        paths: list[FileSource] = []
        uris = []
        for product in materialized.outputs:
            key = product_key(product.uri)
            try:
                local = backend.store.local_path(key)
                if local is None and read_in_place:
                    from batchlane.stores.s3_ranged import RangedReadError, store_object_source

                    try:
                        paths.append(store_object_source(backend.store, key, version=product.version,
                                                         uri=product.uri))
                    except RangedReadError as exc:
                        return failed(f"{where}: product file {key} cannot be read: {exc}",
                                      materialize_digest=materialized.digest())
                    uris.append(product.uri)
                    continue
                if local is None:
                    local = Path(workdir) / Path(key).name
                    backend.store.fetch(key, local)
                elif not local.is_file():
                    return failed(f"{where}: product file {key} is missing", materialize_digest=materialized.digest())
            except StoreError as exc:
                return failed(f"{where}: product file {key} cannot be read: {exc}",
                              materialize_digest=materialized.digest())
            paths.append(local)
            uris.append(product.uri)
        try:
            references = _PinnedReferences(backend, spec, run_id, materialized)
            contract = spec.outputs[output].contract
            outcome = check_files(paths, contract, uris=uris, reference_values=references,
                                  max_memory=spec.check.max_memory_bytes,
                                  baseline=certified_baseline(backend, spec.lane, output, contract),
                                  partitions=partition_check_inputs(backend, spec.lane, output, materialized))
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
        lane=spec.lane, run_id=run_id, output=output, attempt=attempt, prev=materialized.digest(),
        verdict=outcome.verdict, materialize_digest=materialized.digest(), products=products,
        rules=outcome.rules, rows=outcome.rows, seconds=round(time.perf_counter() - started, 6),
        references=[references.pinned[name] for name in sorted(references.pinned)],
        partition_evidence=outcome.partition_evidence, partition_check=outcome.partition_check,
    )


# ----------------------------------------------------------------------------- decide


def record_check_failure(backend: Backend, spec: LaneSpec, run_id: str, output: str, attempt: int,
                         failure: str) -> CheckReceipt:
    """The checker itself failed (timeout, out of memory, crash): an explicit FAIL receipt naming why, never a
    retry that repeats the failure and never a verdict without evidence."""
    materialized = record_materialized(backend, spec, run_id, output, attempt)
    receipt = CheckReceipt(
        lane=spec.lane, run_id=run_id, output=output, attempt=attempt, prev=materialized.digest(), verdict="FAIL",
        materialize_digest=materialized.digest(), products=[], rules=[], seconds=0.0,
        error=f"output {output}, run {run_id}, attempt {attempt}: the checker failed before a verdict: {failure}",
    )
    stored = write_once_or_existing(backend, receipt)
    assert isinstance(stored, CheckReceipt)
    return stored


def decide(backend: Backend, spec: LaneSpec, run_id: str, output: str, attempt: int, *,
           check_failure: str | None = None) -> GateReceipt:
    """Certify on PASS (pointer + event together), reject otherwise. Idempotent per attempt: deciding again
    finishes what a crash interrupted (the pointer swap, the event). ``check_failure`` says the check task
    failed without a receipt: the attempt is rejected with that reason instead of being checked here."""
    existing = load_receipt(backend, run_id, output, attempt, "gate")
    checked = load_receipt(backend, run_id, output, attempt, "check")
    if not isinstance(checked, CheckReceipt):
        if check_failure:
            checked = record_check_failure(backend, spec, run_id, output, attempt, check_failure)
        else:
            checked = check(backend, spec, run_id, output, attempt)
    if existing is None:
        materialized = load_receipt(backend, run_id, output, attempt, "materialize")
        passed = checked.verdict == "PASS" and isinstance(materialized, MaterializeReceipt)
        receipt = GateReceipt(
            lane=spec.lane, run_id=run_id, output=output, attempt=attempt, prev=checked.digest(),
            decision="certified" if passed else "rejected", check_digest=checked.digest(),
            materialize_digest=checked.materialize_digest, proof=checked.products if passed else [],
            memo_key=materialized.memo_key if isinstance(materialized, MaterializeReceipt) else "unavailable",
            reason=None if passed else (checked.error or "failing rules: " + ", ".join(r.label for r in checked.failing_rules)),
        )
        existing = write_once_or_existing(backend, receipt)
    assert isinstance(existing, GateReceipt)
    key = receipt_key(run_id, output, attempt, "gate")
    certified = existing.decision == "certified"
    order = certification_order(backend, run_id, attempt)
    event = LaneEvent(
        type="DataProductCertified" if certified else "DataProductRejected",
        lane=spec.lane, run_id=run_id, output=output, attempt=attempt, receipt=key,
        receipt_digest=existing.digest(), proof=existing.proof, verdict="PASS" if certified else "FAIL",
        failing_rules=[r.label for r in checked.failing_rules], warnings=[r.label for r in checked.warnings],
        time=existing.created_at,
        consumers=list(spec.outputs[output].consumers), order=order, reason=existing.reason,
    )
    if certified:
        apply_certification(backend, certification_pointer(existing, key, order), event)
    else:
        backend.ledger.queue_event(event)
    publish_pending(backend, only={event.event_id()})
    if certified:
        catalog_follows(backend, spec.lane, output)
    return existing
