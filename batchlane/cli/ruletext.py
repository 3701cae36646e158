"""How a rule's result and a verdict read on screen: a PASS with warnings never looks like a clean PASS.

Shared by `lane check`, `lane show` and `lane run` (only Rich is imported: `lane check` stays light).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.text import Text

if TYPE_CHECKING:
    from batchlane.receipts import RuleResult


def result_word(rule: RuleResult) -> Text:
    """pass (green), WARN (yellow: failed, severity warn, not blocking), FAIL (red: blocking); a pass with
    tolerated failures says so."""
    if rule.passed:
        return Text("pass (tolerated)", "green") if rule.failing_count else Text("pass", "green")
    return Text("WARN", "yellow") if rule.severity == "warn" else Text("FAIL", "red")


def verdict_word(verdict: str | None, warnings: Sequence[str] = (), *, bold: bool = False) -> Text:
    """PASS / FAIL coloured; "PASS with N warning(s)" in yellow when warn-severity rules failed."""
    weight = "bold " if bold else ""
    if verdict == "PASS" and warnings:
        count = len(warnings)
        return Text(f"PASS with {count} warning{'s' if count != 1 else ''}", f"{weight}yellow")
    if verdict is None:
        return Text("-")
    return Text(verdict, f"{weight}green" if verdict == "PASS" else f"{weight}red")
