"""Change rules: compare a product with the version certified before it (its baseline).

``row_count: {max_change: 0.5}`` fails when the row count moves by more than 50% (up or down) from the
baseline's; ``not_null: {max_fraction_change: 0.05}`` fails when the column's null fraction moves by more than
0.05 (five percentage points, absolute). Both record the two values compared and where the baseline came
from. Without a baseline (a first certification, or ``lane check`` without ``--baseline``) they pass and say
there was nothing to compare against. Comparisons are exact (fractions, not floats): a change of exactly the
limit passes.

The baseline itself is built elsewhere: ``batchlane.baseline`` reads it from the certification in force (its
check receipt) or from a file given to ``lane check --baseline``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from batchlane.contract import Contract, RuleOptions, exact
from batchlane.receipts import RuleResult


@dataclass(frozen=True)
class Baseline:
    """What a change rule compares with: a row count and per-column null counts, and where they came from."""

    source: str | None                                   # a certification key, or the baseline file(s)
    rows: int | None = None
    nulls: Mapping[str, int] = field(default_factory=dict)   # column -> null count, for the columns it knows
    missing: str | None = None                           # why there is nothing to compare with (rules pass)
    error: str | None = None                             # why the baseline is unusable (rules fail: fail closed)

    @classmethod
    def nothing(cls, why: str) -> Baseline:
        return cls(source=None, missing=why)


NO_BASELINE = Baseline.nothing("no baseline given (lane check --baseline FILE): nothing to compare against")


def _percent(change: Fraction) -> str:
    return f"{float(change) * 100:+.1f}%"


def row_count_change(limit: float, rows: int, baseline: Baseline) -> RuleResult:
    expected: dict[str, object] = {"max_change": limit}
    if baseline.error is not None:
        return RuleResult(rule="row_count_change", passed=False, expected={**expected, "baseline": baseline.source},
                          observed={"rows": rows}, detail=baseline.error)
    if baseline.rows is None:
        return RuleResult(rule="row_count_change", passed=True, expected=expected, observed={"rows": rows},
                          detail=baseline.missing or "the baseline has no row count: nothing to compare against")
    expected.update(baseline_rows=baseline.rows, baseline=baseline.source)
    if baseline.rows == 0:
        passed = rows == 0
        observed: dict[str, object] = {"rows": rows, "change": 0.0 if passed else None}
        detail = None if passed else f"rows moved from 0 to {rows}: any change from an empty baseline exceeds max_change"
        return RuleResult(rule="row_count_change", passed=passed, expected=expected, observed=observed, detail=detail)
    change = Fraction(rows - baseline.rows, baseline.rows)
    passed = abs(change) <= exact(limit)
    detail = f"rows moved from {baseline.rows:,} to {rows:,} ({_percent(change)})"
    if not passed:
        detail += f", more than max_change {limit} ({float(exact(limit)) * 100:.1f}%)"
    return RuleResult(rule="row_count_change", passed=passed, expected=expected,
                      observed={"rows": rows, "change": float(change)}, detail=detail)


def null_fraction_change(column: str, limit: float, nulls: int, rows: int, baseline: Baseline) -> RuleResult:
    expected: dict[str, object] = {"max_fraction_change": limit}
    fraction = Fraction(nulls, rows) if rows else Fraction(0)
    observed: dict[str, object] = {"nulls": nulls, "null_fraction": float(fraction)}
    if baseline.error is not None:
        return RuleResult(rule="null_fraction_change", column=column, passed=False,
                          expected={**expected, "baseline": baseline.source}, observed=observed, detail=baseline.error)
    if baseline.rows is None or column not in baseline.nulls:
        why = baseline.missing or f"the baseline ({baseline.source}) has no null count for {column!r} " \
            "(no not_null rule on it then): nothing to compare against"
        return RuleResult(rule="null_fraction_change", column=column, passed=True, expected=expected,
                          observed=observed, detail=why)
    before = Fraction(baseline.nulls[column], baseline.rows) if baseline.rows else Fraction(0)
    change = fraction - before
    expected.update(baseline_null_fraction=float(before), baseline=baseline.source)
    observed["change"] = float(change)
    passed = abs(change) <= exact(limit)
    detail = f"null fraction moved from {float(before):.4%} to {float(fraction):.4%}"
    if not passed:
        detail += f", more than max_fraction_change {limit}"
    return RuleResult(rule="null_fraction_change", column=column, passed=passed, expected=expected,
                      observed=observed, detail=detail)


def change_results(contract: Contract, rows: int, results: list[RuleResult], baseline: Baseline | None
                   ) -> list[tuple[RuleResult, RuleOptions]]:
    """The contract's change rules judged against ``baseline``, each with the options that apply to it."""
    baseline = baseline or NO_BASELINE
    found: list[tuple[RuleResult, RuleOptions]] = []
    if contract.row_count is not None and contract.row_count.max_change is not None:
        found.append((row_count_change(contract.row_count.max_change, rows, baseline),
                      contract.row_count.options("max_change")))
    nulls = {result.column: result.observed for result in results
             if result.rule == "not_null" and isinstance(result.observed, int)}
    for column, rules in contract.columns.items():
        options = rules.options("not_null")
        if options.max_fraction_change is None:
            continue
        if column not in nulls:
            found.append((RuleResult(rule="null_fraction_change", column=column, passed=False,
                                     expected={"max_fraction_change": options.max_fraction_change}, observed=None,
                                     detail=f"the null count of {column!r} is unknown (column missing or unreadable)"),
                          options))
            continue
        found.append((null_fraction_change(column, options.max_fraction_change, nulls[column], rows, baseline),
                      options))
    return found
