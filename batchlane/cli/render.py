"""Human and JSON shapes of runs, outputs and receipts."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from batchlane.receipts import OutputClosure, RunManifest

STATE_STYLE = {
    "certified": "green", "memoized": "cyan", "rejected": "red", "failed": "red", "pending": "yellow",
    "queued": "dim", "planning": "yellow", "materializing": "yellow", "checking": "yellow", "deciding": "yellow",
}


def styled(state: str) -> str:
    return f"[{STATE_STYLE.get(state, 'white')}]{state}[/]"


def short(text: str | None, width: int = 90) -> str:
    if not text:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


def closure_table(title: str, closures: dict[str, OutputClosure], extra: dict[str, dict[str, Any]] | None = None) -> Table:
    extra = extra or {}
    table = Table(title=title, title_justify="left")
    for column in ("output", "verdict", "state", "rows", "attempt", "seconds", "failing rules / error"):
        table.add_column(column, justify="right" if column in ("rows", "attempt", "seconds") else "left")
    for name, closure in closures.items():
        info = extra.get(name, {})
        rows, seconds = info.get("rows"), info.get("seconds")
        problem = ", ".join(closure.failing_rules) or short(closure.error)
        table.add_row(
            name, closure.verdict or "-", styled(closure.state), "" if rows is None else f"{rows:,}",
            str(closure.attempts), "" if seconds is None else f"{seconds:.2f}", problem,
        )
    return table


def manifest_json(manifest: RunManifest, extra: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    extra = extra or {}
    return {
        "run_id": manifest.run_id,
        "lane": manifest.lane,
        "verdict": manifest.verdict,
        "manifest_sequence": manifest.sequence,
        "outputs": {
            name: {**closure.model_dump(mode="json"), **extra.get(name, {})}
            for name, closure in manifest.outputs.items()
        },
    }
