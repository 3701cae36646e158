"""Trusted recording of what an (untrusted) materializer job reports.

The job may write only its staging prefix. Here, trusted code turns its report into the attempt's
``MaterializeReceipt``: it checks the report belongs to this attempt, that the job read the inputs
pinned when the attempt began (and ran the code fingerprinted then), that the staging prefix holds
exactly the files reported, and hashes every product file itself. Anything else is a failed attempt
with the reason; a job that ended without a report is a failed attempt too (``record_crash``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchlane.diagnostics import FILE as DIAGNOSTICS_FILE
from batchlane.evidence import load_receipt, write_once_or_existing
from batchlane.products import revoked_since_pinned
from batchlane.receipts import (
    BeginReceipt,
    FileDigest,
    InputDigest,
    MaterializeReceipt,
    MaterializeReport,
    Trigger,
    diagnostics_key,
    report_key,
    sha256_bytes,
    staging_prefix,
    utcnow,
)
from batchlane.spec import LaneSpec
from batchlane.stores.base import AlreadyExists, Backend, NotFound, StoreError

if TYPE_CHECKING:
    from batchlane.partitions import RecordedPartitions

DIAGNOSTICS_LIMIT = 256 * 1024  # the job keeps 64 KB of output plus a traceback; never store more than this


class _Refused(Exception):
    """The report cannot be recorded as a success; the message is the attempt's error."""


def _same_inputs(pinned: list[InputDigest], read: list[InputDigest]) -> str | None:
    def key(groups: list[InputDigest]) -> dict[str, set[tuple]]:
        # a product input is pinned by its certified SHA-256; an S3 file input by its version
        return {g.name: {(f.uri, f.size, f.sha256 if g.product is not None or not f.uri.startswith("s3://")
                          else f.version) for f in g.files} for g in groups}

    expected, actual = key(pinned), key(read)
    for name in sorted(set(expected) | set(actual)):
        if expected.get(name) != actual.get(name):
            return f"input {name!r}: the job read other bytes than the attempt pinned when it began"
    return None


def _record_partitions(backend: Backend, spec: LaneSpec, begun: BeginReceipt, *, job_id: str,
                       job_error: str | None) -> RecordedPartitions:
    from batchlane.partitions import PartitionsRefused, record_partitions

    partition_input = spec.outputs[begun.output].partition_by if begun.output in spec.outputs else None
    if partition_input is None:
        raise _Refused("the attempt began partitioned but the spec no longer partitions the output")
    try:
        return record_partitions(backend, begun, partition_input, job_id=job_id, job_error=job_error)
    except PartitionsRefused as exc:
        raise _Refused(str(exc)) from None


def _load_report(backend: Backend, spec: LaneSpec, run_id: str, output: str, attempt: int) -> MaterializeReport | None:
    try:
        data = backend.store.get(report_key(run_id, output, attempt))
    except NotFound:
        return None
    try:
        report = MaterializeReport.model_validate_json(data)
    except ValueError as exc:
        raise _Refused(f"the job's report is not valid: {str(exc).splitlines()[0]}") from None
    if (report.lane, report.run_id, report.output, report.attempt) != (spec.lane, run_id, output, attempt):
        raise _Refused("the job's report names another lane, run, output or attempt")
    return report


def _products(backend: Backend, report: MaterializeReport, prefix: str) -> list[FileDigest]:
    """Hash every reported file ourselves; the staging prefix must hold exactly the reported files."""
    reported = {prefix + item.name: item for item in report.files}
    present = set(backend.store.list_keys(prefix)) - {prefix + "report.json", prefix + DIAGNOSTICS_FILE}
    unexpected = sorted(present - set(reported))
    if unexpected:
        raise _Refused(f"the job wrote files it did not report: {', '.join(unexpected)}")
    if not reported:
        raise _Refused("the job reported success but no product file")
    products = []
    for key, item in sorted(reported.items()):
        try:
            digest = backend.store.digest(key)
        except NotFound:
            raise _Refused(f"reported product file {key} is missing") from None
        products.append(digest.model_copy(update={"rows": item.rows, "schema_": item.schema_}))
    return products


def _receipt(begun: BeginReceipt | None, spec: LaneSpec, run_id: str, output: str, attempt: int, *, job_id: str,
             trigger: Trigger, report: MaterializeReport | None, error: str | None,
             products: list[FileDigest] | None = None) -> MaterializeReceipt:
    now = utcnow()
    where = f"output {output}, run {run_id}, attempt {attempt}"
    return MaterializeReceipt(
        lane=spec.lane, run_id=run_id, output=output, attempt=attempt, prev=begun.digest() if begun else None,
        job_id=report.job_id if report else job_id, trigger=begun.trigger if begun else trigger,
        status="failed" if error else "succeeded", inputs=begun.inputs if begun else [], outputs=products or [],
        code_fingerprint=begun.code_fingerprint if begun else "unknown",
        spec_digest=begun.spec_digest if begun else spec.output_digest(output),
        memo_key=(begun.memo_key if begun and not error else "unavailable"),
        started_at=report.started_at if report else now, finished_at=report.finished_at if report else now,
        error=f"{where}: {error}" if error else None,
    )


def _keep_diagnostics(backend: Backend, report: MaterializeReport | None, run_id: str, output: str,
                      attempt: int) -> dict[str, str | None]:
    """Copy the job's diagnostics (untrusted text, bounded) into the attempt's receipts, write-once."""
    if report is None or report.diagnostics is None:
        return {}
    try:
        data = backend.store.get(staging_prefix(run_id, output, attempt) + DIAGNOSTICS_FILE)[:DIAGNOSTICS_LIMIT]
    except (NotFound, StoreError):
        return {}
    key = diagnostics_key(run_id, output, attempt)
    try:
        backend.store.put_once(key, data)
    except AlreadyExists:
        data = backend.store.get(key)
    return {"diagnostics": key, "diagnostics_sha256": sha256_bytes(data)}


def record_materialized(
    backend: Backend, spec: LaneSpec, run_id: str, output: str, attempt: int, *, job_id: str = "unknown",
    job_error: str | None = None, trigger: Trigger = "cli",
) -> MaterializeReceipt:
    """The attempt's materialize receipt: the one recorded before, or recorded now from the job's report.

    ``job_error`` says how the job ended when it did not succeed (exit code, timeout, Batch status): with
    no report, that is the attempt's error.
    """
    existing = load_receipt(backend, run_id, output, attempt, "materialize")
    if existing is not None:
        assert isinstance(existing, MaterializeReceipt)
        return existing
    begun = load_receipt(backend, run_id, output, attempt, "begin")
    report, products, error, partitioned = None, None, None, None
    try:
        if not isinstance(begun, BeginReceipt):
            raise _Refused("the attempt has no begin receipt (it was never started by the gate)")
        if begun.partitions:  # each partition recorded on its own (batchlane.partitions)
            partitioned = _record_partitions(backend, spec, begun, job_id=job_id, job_error=job_error)
            report, products, error = partitioned.report, partitioned.outputs or None, partitioned.error
        else:
            report = _load_report(backend, spec, run_id, output, attempt)
            if report is None:
                raise _Refused(f"job {job_id} ended without a report: {job_error or 'it did not finish'}")
            if report.status == "failed":
                raise _Refused(report.error or "the job reported a failure without a reason")
            if report.code_fingerprint != begun.code_fingerprint:
                raise _Refused("the job ran other code than the attempt fingerprinted when it began")
            mismatch = _same_inputs(begun.inputs, report.inputs) or revoked_since_pinned(backend, begun.inputs)
            if mismatch:
                raise _Refused(mismatch)
            products = _products(backend, report, staging_prefix(run_id, output, attempt))
    except _Refused as refused:
        error = str(refused)
    except StoreError as exc:
        error = f"cannot read the job's staging files: {exc}"
    receipt = _receipt(begun if isinstance(begun, BeginReceipt) else None, spec, run_id, output, attempt,
                       job_id=job_id, trigger=trigger, report=report, error=error, products=products)
    if partitioned is not None:
        receipt = receipt.model_copy(update={"partitions": partitioned.partitions,
                                             "partitions_root": partitioned.root})
    kept = _keep_diagnostics(backend, report, run_id, output, attempt)
    if kept:
        receipt = receipt.model_copy(update=kept)
    stored = write_once_or_existing(backend, receipt)
    assert isinstance(stored, MaterializeReceipt)
    return stored


def record_crash(
    backend: Backend, spec: LaneSpec, run_id: str, output: str, attempt: int, *, job_id: str, error: str,
    trigger: Trigger = "cli",
) -> MaterializeReceipt:
    """The job ended badly (killed, timed out, non-zero exit): record the attempt from its report if it left
    one (its own reason is the better one), else as failed with ``error``."""
    return record_materialized(backend, spec, run_id, output, attempt, job_id=job_id, job_error=error,
                               trigger=trigger)
