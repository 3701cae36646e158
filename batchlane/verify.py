"""Verify a run offline: every receipt against the ledger, the chains, and the certified bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from batchlane.evidence import sorted_rows
from batchlane.receipts import (
    CheckReceipt,
    GateReceipt,
    MaterializeReceipt,
    parse_manifest,
    parse_receipt,
    product_key,
    sha256_bytes,
)
from batchlane.stores.base import Backend, NotFound, StoreError


@dataclass
class VerifyReport:
    run_id: str
    receipts: int = 0
    files: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_run(backend: Backend, run_id: str) -> VerifyReport:
    report = VerifyReport(run_id=run_id)
    if backend.ledger.get_run(run_id) is None:
        report.problems.append(f"no run {run_id!r} in the ledger")
        return report
    rows = sorted_rows(backend.ledger.receipts(run_id))
    indexed = {row.key for row in rows}
    for key in backend.store.list_keys(f"receipts/{run_id}/"):
        if key.endswith("-diagnostics.txt"):  # not a receipt: its materialize receipt holds its digest
            continue
        if key not in indexed:
            report.problems.append(f"{key}: stored but not in the ledger index (a crash between the two writes? "
                                   f"`lane repair {run_id}` adopts it if it fits its chain)")
    parsed: dict[str, object] = {}
    for row in rows:
        try:
            data = backend.store.get(row.key)
        except NotFound:
            report.problems.append(f"{row.key}: indexed but missing from the store")
            continue
        report.receipts += 1
        if sha256_bytes(data) != row.digest:
            report.problems.append(f"{row.key}: digest mismatch (receipt altered after it was written)")
            continue
        try:
            parsed[row.key] = parse_manifest(data) if row.kind == "manifest" else parse_receipt(data)
        except ValueError:
            report.problems.append(f"{row.key}: not a valid receipt")
    _verify_chains(report, rows, parsed)
    _verify_bytes(backend, report, parsed)
    return report


def _verify_chains(report: VerifyReport, rows, parsed) -> None:
    """Each attempt is one chain (begin -> materialize -> check -> gate); manifests chain by sequence."""
    by_attempt: dict[tuple[str, int], dict[str, tuple[str, Any]]] = {}
    manifests: list[tuple[int, str, Any]] = []
    for row in rows:
        receipt = parsed.get(row.key)
        if receipt is None:
            continue
        if row.kind == "manifest":
            manifests.append((row.attempt, row.key, receipt))
        else:
            by_attempt.setdefault((row.output, row.attempt), {})[row.kind] = (row.key, receipt)
    for (output, attempt), receipts in sorted(by_attempt.items()):
        previous: str | None = None
        for kind in ("begin", "materialize", "check", "gate"):
            if kind not in receipts:
                continue
            key, receipt = receipts[kind]
            memoized = isinstance(receipt, MaterializeReceipt) and receipt.status in ("memoized", "blocked")
            expected: str | None = None if kind == "begin" or memoized else previous
            if receipt.prev != expected and not (kind == "materialize" and previous is None):
                report.problems.append(f"{key}: chain broken (prev does not match the {kind} receipt before it)")
            previous = receipt.digest()
        materialized = receipts.get("materialize", (None, None))[1]
        checked = receipts.get("check", (None, None))[1]
        gate = receipts.get("gate", (None, None))[1]
        if isinstance(checked, CheckReceipt) and isinstance(materialized, MaterializeReceipt):
            if checked.materialize_digest != materialized.digest() and checked.materialize_digest != "none":
                report.problems.append(f"{output} attempt {attempt}: check does not point at its materialize receipt")
        if isinstance(gate, GateReceipt):
            if not isinstance(checked, CheckReceipt) or gate.check_digest != checked.digest():
                report.problems.append(f"{output} attempt {attempt}: gate decision does not point at its check receipt")
            elif gate.decision == "certified" and (checked.verdict != "PASS" or checked.products != gate.proof):
                report.problems.append(f"{output} attempt {attempt}: certified without a PASS of the same files")
    previous_manifest = None
    for sequence, key, manifest in sorted(manifests, key=lambda item: item[0]):
        if manifest.prev != previous_manifest:
            report.problems.append(f"{key}: manifest chain broken (prev does not match manifest {sequence - 1})")
        previous_manifest = manifest.digest()


def _verify_bytes(backend: Backend, report: VerifyReport, parsed) -> None:
    for key, receipt in parsed.items():
        if isinstance(receipt, MaterializeReceipt) and receipt.diagnostics:
            try:
                data = backend.store.get(receipt.diagnostics)
            except (NotFound, StoreError):
                report.problems.append(f"{receipt.diagnostics}: named by {key} but missing")
            else:
                if sha256_bytes(data) != receipt.diagnostics_sha256:
                    report.problems.append(f"{receipt.diagnostics}: changed since {key} recorded it")
        if not (isinstance(receipt, GateReceipt) and receipt.decision == "certified"):
            continue
        for proof in receipt.proof:
            report.files += 1
            try:
                product = product_key(proof.uri)
                actual = backend.store.digest(product)
            except NotFound:
                report.problems.append(f"{proof.uri}: certified by {key} but missing")
                continue
            except (StoreError, ValueError) as exc:
                report.problems.append(f"{proof.uri}: certified by {key} but cannot be read: {exc}")
                continue
            if (actual.sha256, actual.size) != (proof.sha256, proof.size):
                report.problems.append(f"{product}: bytes changed since certification by {key}")
