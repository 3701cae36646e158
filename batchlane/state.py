"""Where each output of a run stands, derived from the ledger's receipt index."""

from __future__ import annotations

from batchlane.evidence import load_receipt
from batchlane.receipts import CheckReceipt, MaterializeReceipt, OutputClosure
from batchlane.stores.base import Backend, ReceiptRow

SETTLED = ("certified", "memoized")


def output_closure(backend: Backend, run_id: str, output: str, rows: list[ReceiptRow] | None = None) -> OutputClosure:
    rows = [r for r in (rows if rows is not None else backend.ledger.receipts(run_id, output)) if r.kind != "manifest"]
    if not rows:
        return OutputClosure(state="pending", attempts=0)
    latest = max(row.attempt for row in rows)
    current = {row.kind: row for row in rows if row.attempt == latest}
    certified = [row for row in rows if row.kind == "gate" and row.status == "certified"]
    closure = dict(
        attempts=latest,
        head=rows[-1].digest,
        certified_attempt=certified[-1].attempt if certified else None,
        certification=certified[-1].key if certified else None,
    )
    materialized, gate, checked = current.get("materialize"), current.get("gate"), current.get("check")
    if materialized and materialized.status == "memoized":
        receipt = load_receipt(backend, run_id, output, latest, "materialize")
        assert isinstance(receipt, MaterializeReceipt)
        return OutputClosure(state="memoized", verdict="PASS", **{**closure, "certification": receipt.memoized_from})
    if gate is None:
        return OutputClosure(state="pending", **closure)
    if gate.status == "certified":
        return OutputClosure(state="certified", verdict="PASS", **closure)
    failing, error = [], None
    if checked:
        check = load_receipt(backend, run_id, output, latest, "check")
        assert isinstance(check, CheckReceipt)
        failing, error = [rule.label for rule in check.failing_rules], check.error
    state = "failed" if materialized is None or materialized.status == "failed" else "rejected"
    return OutputClosure(state=state, verdict="FAIL", failing_rules=failing, error=error, **closure)


def run_closures(backend: Backend, run_id: str, outputs: list[str] | tuple[str, ...]) -> dict[str, OutputClosure]:
    rows = backend.ledger.receipts(run_id)
    return {
        output: output_closure(backend, run_id, output, [row for row in rows if row.output == output])
        for output in outputs
    }
