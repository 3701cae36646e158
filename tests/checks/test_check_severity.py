"""Issue 14, the checker: severity (error blocks, warn records) and tolerances (max_failing,
max_failing_fraction), with their edges: exactly at the limit passes, one over fails."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from batchlane.receipts import CheckReceipt, RuleResult
from tests.checks.helpers import check, contract, rule, write

# 10 rows: 2 nulls in `n`, ids with 2 duplicate rows, 3 values below 0 in `v`, 2 statuses outside the set,
# 2 codes not matching the pattern.
DATA = {
    "id": pa.array([1, 2, 3, 4, 5, 6, 7, 8, 8, 8], pa.int64()),
    "n": pa.array([1, None, 3, None, 5, 6, 7, 8, 9, 10], pa.int64()),
    "v": pa.array([-1.0, -2.0, -3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, None]),
    "status": ["NEW", "PAID", "PAID", "LOST", "NEW", "GONE", "NEW", "PAID", "NEW", None],
    "code": ["ab", "cd", "EF", "gh", "ij", "kl", "MN", "op", "qr", "st"],
    "a": pa.array([1, 1, 1, 2, 2, 2, 3, 3, 3, 3], pa.int64()),
    "b": pa.array([1, 2, 3, 1, 2, 3, 1, 2, 3, 3], pa.int64()),
}


@pytest.fixture
def product(tmp_path):
    return write(tmp_path, DATA)


def test_the_short_forms_still_fail_on_a_single_violation(product):
    outcome = check(product, contract({"n": {"not_null": True}, "id": {"unique": True}, "v": {"min": 0}}))
    assert outcome.verdict == "FAIL"
    assert {r.label for r in outcome.failing_rules} == {"not_null(n)", "unique(id)", "min(v)"}
    assert outcome.warnings == []


def test_warn_severity_records_the_evidence_and_leaves_the_verdict_pass(product):
    outcome = check(product, contract({"n": {"not_null": {"severity": "warn"}},
                                       "v": {"min": {"value": 0, "severity": "warn"}}}))
    assert outcome.verdict == "PASS"
    assert outcome.failing_rules == []
    assert [r.label for r in outcome.warnings] == ["not_null(n)", "min(v)"]
    nulls = rule(outcome, "not_null", "n")
    assert (nulls.passed, nulls.severity, nulls.failing_count, nulls.failing_sample) == (False, "warn", 2, [1, 3])
    low = rule(outcome, "min", "v")
    assert (low.passed, low.failing_count, low.observed) == (False, 3, -3.0)
    assert outcome.to_json()["warnings"] == ["not_null(n)", "min(v)"]


def test_error_severity_written_out_is_the_default(product):
    outcome = check(product, contract({"n": {"not_null": {"severity": "error"}}}))
    assert outcome.verdict == "FAIL" and rule(outcome, "not_null", "n").severity == "error"


def test_a_warning_and_a_blocking_failure_together_fail_and_keep_them_apart(product):
    outcome = check(product, contract({"n": {"not_null": {"severity": "warn"}}, "v": {"min": 0}}))
    assert outcome.verdict == "FAIL"
    assert [r.label for r in outcome.failing_rules] == ["min(v)"]
    assert [r.label for r in outcome.warnings] == ["not_null(n)"]


@pytest.mark.parametrize("column, rules, name, failing", [
    ("n", {"not_null": {}}, "not_null", 2),
    ("id", {"unique": {}}, "unique", 2),
    ("v", {"min": {"value": 0}}, "min", 3),
    ("v", {"max": {"value": -2}}, "max", 7),
    ("status", {"accepted_values": {"value": ["NEW", "PAID"]}}, "accepted_values", 2),
    ("code", {"regex": {"value": "^[a-z]+$"}}, "regex", 2),
])
def test_max_failing_exactly_at_the_limit_passes_and_one_over_fails(product, column, rules, name, failing):
    (key, settings), = rules.items()
    at_limit = check(product, contract({column: {key: {**settings, "max_failing": failing}}}))
    result = rule(at_limit, name, column)
    assert at_limit.verdict == "PASS" and result.passed
    assert (result.failing_count, result.tolerance) == (failing, {"max_failing": failing})
    assert "within the tolerance" in (result.detail or "")
    over = check(product, contract({column: {key: {**settings, "max_failing": failing - 1}}}))
    result = rule(over, name, column)
    assert over.verdict == "FAIL" and not result.passed and "beyond the tolerance" in (result.detail or "")


@pytest.mark.parametrize("column, rules, name, failing, judged", [
    ("n", {"not_null": {}}, "not_null", 2, 10),                      # not_null judges every row
    ("v", {"min": {"value": 0}}, "min", 3, 9),                       # value rules judge the non-null values
    ("status", {"accepted_values": {"value": ["NEW", "PAID"]}}, "accepted_values", 2, 9),
    ("code", {"regex": {"value": "^[a-z]+$"}}, "regex", 2, 10),
    ("id", {"unique": {}}, "unique", 2, 10),
])
def test_max_failing_fraction_counts_against_the_rows_the_rule_judged(product, column, rules, name, failing, judged):
    (key, settings), = rules.items()
    just_above = math.ceil(failing / judged * 1000) / 1000      # 2/10 -> 0.2 (exact), 3/9 -> 0.334
    outcome = check(product, contract({column: {key: {**settings, "max_failing_fraction": just_above}}}))
    result = rule(outcome, name, column)
    assert result.passed, result
    assert (result.judged, result.failing_count) == (judged, failing)
    assert result.failing_fraction == pytest.approx(failing / judged)
    below = check(product, contract({column: {key: {**settings, "max_failing_fraction": just_above - 0.001}}}))
    assert not rule(below, name, column).passed


def test_fraction_edge_is_compared_as_written_not_as_a_float(tmp_path):
    """7 nulls in 100 rows against 0.07: 7/100 == 0.07 exactly as a decimal (a float product would round)."""
    path = write(tmp_path, {"x": pa.array([None] * 7 + list(range(93)), pa.int64())})
    at_limit = check(path, contract({"x": {"not_null": {"max_failing_fraction": 0.07}}}))
    assert at_limit.verdict == "PASS"
    over = check(path, contract({"x": {"not_null": {"max_failing_fraction": 0.069}}}))
    assert over.verdict == "FAIL"


def test_both_tolerances_must_hold(product):
    both = {"n": {"not_null": {"max_failing": 5, "max_failing_fraction": 0.1}}}  # 2 nulls = 0.2 of 10
    assert check(product, contract(both)).verdict == "FAIL"
    both = {"n": {"not_null": {"max_failing": 1, "max_failing_fraction": 0.5}}}
    assert check(product, contract(both)).verdict == "FAIL"
    both = {"n": {"not_null": {"max_failing": 2, "max_failing_fraction": 0.2}}}
    assert check(product, contract(both)).verdict == "PASS"


def test_composite_keys_take_severity_and_tolerance(product):
    # (a, b) repeats one key once: (3, 3) twice
    short = check(product, contract(unique=[["a", "b"]]))
    assert short.verdict == "FAIL" and rule(short, "unique", "a,b").failing_count == 1
    tolerated = check(product, contract(unique=[{"columns": ["a", "b"], "max_failing": 1}]))
    assert tolerated.verdict == "PASS" and rule(tolerated, "unique", "a,b").passed
    warned = check(product, contract(unique=[{"columns": ["a", "b"], "severity": "warn"}]))
    assert warned.verdict == "PASS" and [r.label for r in warned.warnings] == ["unique(a,b)"]


def test_row_count_takes_severity(product):
    warned = check(product, contract(row_count={"min": 11, "severity": "warn"}))
    assert warned.verdict == "PASS" and [r.label for r in warned.warnings] == ["row_count"]
    assert check(product, contract(row_count={"min": 11})).verdict == "FAIL"


def test_a_rule_that_could_not_be_evaluated_is_never_tolerated(product):
    """A tolerance forgives counted failures, not a rule that could not judge the data."""
    outcome = check(product, contract({"code": {"regex": {"value": "^(?=a)", "max_failing": 100}}}))
    result = rule(outcome, "regex", "code")
    assert outcome.verdict == "FAIL" and not result.passed and "RE2" in (result.detail or "")
    missing = check(product, contract({"absent": {"not_null": {"max_failing": 100}}}))
    assert missing.verdict == "FAIL" and rule(missing, "exists", "absent").severity == "error"


def test_a_missing_column_warns_only_when_every_rule_on_it_warns(product):
    warned = check(product, contract({"absent": {"not_null": {"severity": "warn"}, "min": {"value": 0, "severity":
                                                                                           "warn"}}}))
    assert warned.verdict == "PASS" and rule(warned, "exists", "absent").severity == "warn"
    mixed = check(product, contract({"absent": {"not_null": {"severity": "warn"}, "min": 0}}))
    assert mixed.verdict == "FAIL"


def test_an_inapplicable_rule_keeps_its_severity(product):
    # min on a string column cannot be judged: a FAIL, recorded as a warning when the rule is warn-only
    outcome = check(product, contract({"status": {"min": {"value": 0, "severity": "warn"}}}))
    assert outcome.verdict == "PASS" and rule(outcome, "min", "status").severity == "warn"


def test_receipt_fields_appear_only_when_used():
    """A receipt of a contract without severities or tolerances is byte-identical to before issue 14."""
    plain = RuleResult(rule="not_null", column="x", passed=True, expected=0, observed=0)
    assert set(plain.model_dump(mode="json")) == {"rule", "column", "passed", "expected", "observed",
                                                  "failing_count", "failing_sample", "detail"}
    warned = plain.model_copy(update={"passed": False, "severity": "warn", "tolerance": {"max_failing": 1},
                                      "judged": 10, "failing_fraction": 0.2})
    assert {"severity", "tolerance", "judged", "failing_fraction"} <= set(warned.model_dump(mode="json"))
    receipt = CheckReceipt(lane="l", run_id="r", output="o", attempt=1, verdict="PASS", materialize_digest="m",
                           products=[], rules=[plain, warned], seconds=0.1)
    assert receipt.failing_rules == [] and receipt.warnings == [warned]
    blocking = warned.model_copy(update={"severity": "error"})
    assert receipt.model_copy(update={"rules": [blocking]}).failing_rules == [blocking]


def test_extra_columns_forbid_fails_on_unlisted_columns(tmp_path):
    path = write(tmp_path, {"id": pa.array([1, 2], pa.int64()), "secret": ["x", "y"], "note": ["a", "b"]})
    allowed = check(path, contract({"id": {"not_null": True}}))
    assert allowed.verdict == "PASS" and all(r.rule != "extra_columns" for r in allowed.rules)
    strict = check(path, contract({"id": {"not_null": True}}, extra_columns="forbid"))
    result = rule(strict, "extra_columns")
    assert strict.verdict == "FAIL"
    assert (result.observed, result.failing_count) == (["secret", "note"], 2)
    listed = check(path, contract({"id": {}, "secret": {}, "note": {}}, extra_columns="forbid"))
    assert listed.verdict == "PASS" and rule(listed, "extra_columns").passed
    warned = check(path, contract({"id": {}}, extra_columns={"value": "forbid", "severity": "warn"}))
    assert warned.verdict == "PASS" and [r.label for r in warned.warnings] == ["extra_columns"]
