"""Where each output of a run stands, derived from the ledger's receipt index and the pointer history.

The state says what reads do: an attempt whose certification never moved the pointer (a crash between
the gate receipt and the pointer swap) is not "certified" but "pending", with the reason and the command
that finishes it.
"""

from __future__ import annotations

from typing import Any

from batchlane.certification import refusal, was_applied
from batchlane.evidence import load_receipt, sorted_rows
from batchlane.joblocks import output_busy
from batchlane.receipts import CheckReceipt, GateReceipt, MaterializeReceipt, OutputClosure, OutputState
from batchlane.stores.base import Backend, ReceiptRow

SETTLED = ("certified", "memoized")


def _warnings(backend: Backend, gate: ReceiptRow) -> list[str]:
    """The warn-severity rules that failed in a certified attempt (issue 14: shown in the manifest)."""
    checked = load_receipt(backend, gate.run_id, gate.output, gate.attempt, "check")
    return [rule.label for rule in checked.warnings] if isinstance(checked, CheckReceipt) else []


def _certified_state(backend: Backend, lane: str, gate: ReceiptRow, closure: dict[str, Any]) -> OutputClosure:
    output = gate.output
    closure = {**closure, "warnings": _warnings(backend, gate)}
    if was_applied(backend, lane, output, gate.key):
        return OutputClosure(state="certified", verdict="PASS", **closure)
    receipt = load_receipt(backend, gate.run_id, output, gate.attempt, "gate")
    assert isinstance(receipt, GateReceipt)
    from batchlane.closing import certification_order

    why = refusal(backend.ledger.current(lane, output), certification_order(backend, gate.run_id, gate.attempt))
    if why is not None:  # passed, but a newer certification (or a revocation) was already in force
        return OutputClosure(state="certified", verdict="PASS",
                             **{**closure, "error": f"passed, but never in force: {why}"})
    return OutputClosure(
        state="pending", **{**closure, "certified_attempt": None, "certification": None,
                            "error": "passed, but the certification pointer has not moved yet (interrupted); "
                                     f"`lane rerun {gate.run_id} --failed` finishes it"},
    )


def output_closure(backend: Backend, lane: str, run_id: str, output: str,
                   rows: list[ReceiptRow] | None = None) -> OutputClosure:
    rows = sorted_rows([r for r in (rows if rows is not None else backend.ledger.receipts(run_id, output))
                        if r.kind != "manifest" and r.output == output])
    if not rows:
        return OutputClosure(state="pending", attempts=0)
    latest = max(row.attempt for row in rows)
    current = {row.kind: row for row in rows if row.attempt == latest}
    certified = [row for row in rows if row.kind == "gate" and row.status == "certified"]
    closure: dict[str, Any] = dict(
        attempts=latest,
        head=[row for row in rows if row.attempt == latest][-1].digest,
        certified_attempt=certified[-1].attempt if certified else None,
        certification=certified[-1].key if certified else None,
    )
    materialized, gate, checked = current.get("materialize"), current.get("gate"), current.get("check")
    if materialized and materialized.status == "memoized":
        receipt = load_receipt(backend, run_id, output, latest, "materialize")
        assert isinstance(receipt, MaterializeReceipt)
        return OutputClosure(state="memoized", verdict="PASS", **{**closure, "certification": receipt.memoized_from})
    if materialized and materialized.status == "blocked":
        receipt = load_receipt(backend, run_id, output, latest, "materialize")
        assert isinstance(receipt, MaterializeReceipt)
        return OutputClosure(state="blocked", verdict="FAIL", **{**closure, "error": receipt.error})
    if gate is not None and gate.status == "certified":
        return _certified_state(backend, lane, gate, closure)
    if gate is None:
        if materialized is None and output_busy(backend, run_id, output) is False:
            return OutputClosure(state="failed", verdict="FAIL", **{**closure, "error": (
                f"interrupted: attempt {latest} stopped before its job finished and nobody is working on it; "
                f"`lane rerun {run_id} --failed` reruns it")})
        if materialized is not None and materialized.status == "failed" and checked is None:
            receipt = load_receipt(backend, run_id, output, latest, "materialize")
            assert isinstance(receipt, MaterializeReceipt)
            return OutputClosure(state="pending", **{**closure, "error": f"failed, not yet decided: {receipt.error}"})
        return OutputClosure(state="pending", **closure)
    failing, error = [], None
    if checked:
        check = load_receipt(backend, run_id, output, latest, "check")
        assert isinstance(check, CheckReceipt)
        failing, error = [rule.label for rule in check.failing_rules], check.error
    state: OutputState = "failed" if materialized is None or materialized.status == "failed" else "rejected"
    return OutputClosure(state=state, verdict="FAIL", failing_rules=failing, error=error, **closure)


def run_closures(backend: Backend, run_id: str, outputs: list[str] | tuple[str, ...]) -> dict[str, OutputClosure]:
    run = backend.ledger.get_run(run_id)
    lane = run.lane if run else ""
    if len(outputs) == 1:  # one output: its own rows (a key-prefix query), not the whole run's
        return {outputs[0]: output_closure(backend, lane, run_id, outputs[0])}
    rows = backend.ledger.receipts(run_id)
    return {
        output: output_closure(backend, lane, run_id, output, [row for row in rows if row.output == output])
        for output in outputs
    }
