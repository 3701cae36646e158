"""Human and JSON shapes of runs, outputs and receipts (one shape per document, see docs/cli-json.md).

Everything here builds ``rich.text.Text`` or plain strings printed literally: no Rich markup.
"""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table
from rich.text import Text

from batchlane.cli.ruletext import verdict_word
from batchlane.evidence import EvidenceError, load_receipt
from batchlane.receipts import CheckReceipt, GateReceipt, MaterializeReceipt, OutputClosure, RunManifest, parse_receipt
from batchlane.stores.base import Backend, NotFound

STATE_STYLE = {
    "certified": "green", "memoized": "cyan", "rejected": "red", "failed": "red", "pending": "yellow",
    "blocked": "red", "queued": "dim", "planning": "yellow", "materializing": "yellow", "checking": "yellow",
    "deciding": "yellow", "PASS": "green", "FAIL": "red", "OPEN": "yellow",
}


def styled(state: str | None) -> Text:
    """A state or verdict word, coloured; the word itself is printed as is."""
    word = state or "-"
    return Text(word, style=STATE_STYLE.get(word, ""))


def short(text: str | None, width: int = 90) -> str:
    if not text:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


def evidence_text(value: Any) -> str:
    """A rule's expected/observed/sample value as text: strings as is, floats at full precision."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, default=str, ensure_ascii=False)


def output_facts(backend: Backend, run_id: str, closures: dict[str, OutputClosure]) -> dict[str, dict[str, Any]]:
    """Rows and seconds of each output's latest attempt, read from its receipts.

    A memoized attempt reports the rows of the certification it reuses and its own (short) time,
    so memoized and materialized outputs have the same fields.
    """
    facts: dict[str, dict[str, Any]] = {}
    for name, closure in closures.items():
        rows: int | None = None
        seconds: float | None = None
        if closure.attempts:
            try:
                rows, seconds = _attempt_facts(backend, run_id, name, closure.attempts)
            except (EvidenceError, NotFound, ValueError):
                rows, seconds = None, None  # unreadable evidence: `lane verify` says why
        facts[name] = {"rows": rows, "seconds": None if seconds is None else round(seconds, 3)}
    return facts


def _attempt_facts(backend: Backend, run_id: str, output: str, attempt: int) -> tuple[int | None, float | None]:
    materialized = load_receipt(backend, run_id, output, attempt, "materialize")
    checked = load_receipt(backend, run_id, output, attempt, "check")
    seconds = None
    rows = None
    if isinstance(materialized, MaterializeReceipt):
        seconds = (materialized.finished_at - materialized.started_at).total_seconds()
        if materialized.status == "memoized" and materialized.memoized_from:
            reused = parse_receipt(backend.store.get(materialized.memoized_from))
            if isinstance(reused, GateReceipt):
                counts = [proof.rows for proof in reused.proof]
                rows = sum(count for count in counts if count is not None) if counts else None
    if isinstance(checked, CheckReceipt):
        rows = checked.rows if checked.rows is not None else rows
        seconds = (seconds or 0.0) + checked.seconds
    return rows, seconds


def closure_table(title: str, closures: dict[str, OutputClosure], extra: dict[str, dict[str, Any]] | None = None) -> Table:
    extra = extra or {}
    table = Table(title=title or None, title_justify="left")
    for column in ("output", "verdict", "state", "rows", "attempt", "seconds", "failing rules / error"):
        table.add_column(column, justify="right" if column in ("rows", "attempt", "seconds") else "left",
                         overflow="fold")
    for name, closure in closures.items():
        info = extra.get(name, {})
        rows, seconds = info.get("rows"), info.get("seconds")
        problem = ", ".join(closure.failing_rules) or short(_without_prefix(closure.error), 160)
        if closure.warnings and not closure.failing_rules:
            problem = "; ".join(part for part in (problem, "warn: " + ", ".join(closure.warnings)) if part)
        verdict = verdict_word(closure.verdict, closure.warnings) if closure.warnings else styled(closure.verdict)
        table.add_row(
            name, verdict, styled(closure.state), "" if rows is None else f"{rows:,}",
            str(closure.attempts), "" if seconds is None else f"{seconds:.2f}", problem,
        )
    return table


def _without_prefix(error: str | None) -> str | None:
    """Errors start with 'output O, run R, attempt N: ' — redundant in a table already keyed by output."""
    if not error or not error.startswith("output "):
        return error
    head, sep, rest = error.partition(": ")
    return rest if sep and ", run " in head and ", attempt " in head else error


def outputs_json(closures: dict[str, OutputClosure], facts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One shape for every output, whatever happened to it: the closure fields plus rows and seconds."""
    return {
        name: {**closure.model_dump(mode="json"), "warnings": closure.warnings,
               **facts.get(name, {"rows": None, "seconds": None})}
        for name, closure in closures.items()
    }


def manifest_json(manifest: RunManifest, facts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "run_id": manifest.run_id,
        "lane": manifest.lane,
        "verdict": manifest.verdict,
        "manifest_sequence": manifest.sequence,
        "outputs": outputs_json(manifest.outputs, facts),
    }
