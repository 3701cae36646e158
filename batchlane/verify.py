"""Verify a run offline: every receipt against the ledger, the chains, and the certified bytes."""

from __future__ import annotations

from dataclasses import dataclass, field

from batchlane.receipts import (
    CheckReceipt,
    GateReceipt,
    MaterializeReceipt,
    parse_manifest,
    parse_receipt,
    product_key,
    sha256_bytes,
)
from batchlane.stores.base import Backend, NotFound


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
    rows = backend.ledger.receipts(run_id)
    indexed = {row.key for row in rows}
    for key in backend.store.list_keys(f"receipts/{run_id}/"):
        if key not in indexed:
            report.problems.append(f"{key}: stored but not in the ledger index")
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
        parsed[row.key] = parse_manifest(data) if row.kind == "manifest" else parse_receipt(data)
    _verify_chains(report, rows, parsed)
    _verify_bytes(backend, report, parsed)
    return report


def _verify_chains(report: VerifyReport, rows, parsed) -> None:
    previous: dict[str, str | None] = {}
    by_attempt: dict[tuple[str, int], dict[str, object]] = {}
    for row in rows:
        receipt = parsed.get(row.key)
        if receipt is None:
            previous[row.output] = row.digest
            continue
        if receipt.prev != previous.get(row.output):
            report.problems.append(f"{row.key}: chain broken (prev does not match the receipt before it)")
        previous[row.output] = row.digest
        if row.kind != "manifest":
            by_attempt.setdefault((row.output, row.attempt), {})[row.kind] = receipt
    for (output, attempt), receipts in by_attempt.items():
        materialized, checked, gate = receipts.get("materialize"), receipts.get("check"), receipts.get("gate")
        if isinstance(checked, CheckReceipt) and isinstance(materialized, MaterializeReceipt):
            if checked.materialize_digest != materialized.digest():
                report.problems.append(f"{output} attempt {attempt}: check does not point at its materialize receipt")
        if isinstance(gate, GateReceipt):
            if not isinstance(checked, CheckReceipt) or gate.check_digest != checked.digest():
                report.problems.append(f"{output} attempt {attempt}: gate decision does not point at its check receipt")
            elif gate.decision == "certified" and checked.verdict != "PASS":
                report.problems.append(f"{output} attempt {attempt}: certified without a PASS")


def _verify_bytes(backend: Backend, report: VerifyReport, parsed) -> None:
    for key, receipt in parsed.items():
        if not (isinstance(receipt, GateReceipt) and receipt.decision == "certified"):
            continue
        for proof in receipt.proof:
            report.files += 1
            product = product_key(proof.uri)
            try:
                actual = backend.store.digest(product)
            except NotFound:
                report.problems.append(f"{product}: certified by {key} but missing")
                continue
            if (actual.sha256, actual.size) != (proof.sha256, proof.size):
                report.problems.append(f"{product}: bytes changed since certification by {key}")
