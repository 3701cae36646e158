"""Issue 14, change rules against the last certified version: ``row_count.max_change`` and
``not_null.max_fraction_change``; across two runs of a lane (local, through `lane run`), and in
`lane check --baseline FILE` (Parquet or an earlier `lane check --json`)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from batchlane.checks import Baseline
from batchlane.cli import check_cmd
from tests.checks.helpers import check, contract, rule, write


def ids(count: int, nulls: int = 0) -> dict:
    return {"id": pa.array(range(count), pa.int64()),
            "note": pa.array([None] * nulls + ["x"] * (count - nulls), pa.string())}


CHANGE = {"row_count": {"max_change": 0.5}}


@pytest.mark.parametrize("rows, passed", [(150, True), (151, False), (50, True), (49, False), (100, True)])
def test_row_count_change_is_exact_at_the_limit_up_and_down(tmp_path, rows, passed):
    outcome = check(write(tmp_path, ids(rows)), contract(**CHANGE), baseline=Baseline(source="v1", rows=100))
    result = rule(outcome, "row_count_change")
    assert (result.passed, outcome.verdict) == (passed, "PASS" if passed else "FAIL")
    assert result.expected == {"max_change": 0.5, "baseline_rows": 100, "baseline": "v1"}
    assert result.observed == {"rows": rows, "change": (rows - 100) / 100}
    assert f"from 100 to {rows}" in (result.detail or "")


def test_without_a_baseline_the_change_rule_passes_and_says_so(tmp_path):
    path = write(tmp_path, ids(10))
    outcome = check(path, contract(**CHANGE))
    result = rule(outcome, "row_count_change")
    assert outcome.verdict == "PASS" and result.passed and "nothing to compare against" in (result.detail or "")
    first = check(path, contract(**CHANGE), baseline=Baseline.nothing("no certification in force: the first"))
    assert rule(first, "row_count_change").detail == "no certification in force: the first"


def test_an_unusable_baseline_fails_closed(tmp_path):
    outcome = check(write(tmp_path, ids(10)), contract(**CHANGE),
                    baseline=Baseline(source="receipts/x/0001-gate.json", error="altered (digest mismatch)"))
    assert outcome.verdict == "FAIL" and rule(outcome, "row_count_change").detail == "altered (digest mismatch)"


def test_from_an_empty_baseline_any_growth_is_beyond_the_limit(tmp_path):
    outcome = check(write(tmp_path, ids(1)), contract(**CHANGE), baseline=Baseline(source="v1", rows=0))
    assert outcome.verdict == "FAIL"
    assert check(write(tmp_path, ids(0), "empty.parquet"), contract(**CHANGE),
                 baseline=Baseline(source="v1", rows=0)).verdict == "PASS"


def test_max_change_takes_a_severity(tmp_path):
    warned = contract(row_count={"max_change": {"value": 0.5, "severity": "warn"}})
    outcome = check(write(tmp_path, ids(300)), warned, baseline=Baseline(source="v1", rows=100))
    assert outcome.verdict == "PASS" and [r.label for r in outcome.warnings] == ["row_count_change"]


@pytest.mark.parametrize("nulls, passed", [(30, True), (31, False), (10, True), (9, False)])
def test_null_fraction_change_is_exact_at_the_limit(tmp_path, nulls, passed):
    """Baseline 20 nulls in 100 rows (0.2); limit 0.1: 0.1 to 0.3 pass."""
    rules = contract({"note": {"not_null": {"max_failing_fraction": 1, "max_fraction_change": 0.1}}})
    outcome = check(write(tmp_path, ids(100, nulls)), rules, baseline=Baseline(source="v1", rows=100,
                                                                               nulls={"note": 20}))
    result = rule(outcome, "null_fraction_change", "note")
    assert result.passed is passed and outcome.verdict == ("PASS" if passed else "FAIL")
    assert result.expected["baseline_null_fraction"] == 0.2
    assert result.observed["null_fraction"] == nulls / 100


def test_a_column_the_baseline_has_no_null_count_for_is_not_compared(tmp_path):
    rules = contract({"note": {"not_null": {"max_failing_fraction": 1, "max_fraction_change": 0.1}}})
    outcome = check(write(tmp_path, ids(100, 50)), rules, baseline=Baseline(source="v1", rows=100))
    result = rule(outcome, "null_fraction_change", "note")
    assert result.passed and "no null count for 'note'" in (result.detail or "")


# ----------------------------------------------------------------------------- lane check --baseline

CONTRACT = "row_count: {max_change: 0.5}\ncolumns:\n  note: {not_null: {max_failing_fraction: 1, max_fraction_change: 0.1}}\n"


def lane_check(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = check_cmd.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_lane_check_compares_with_a_parquet_baseline(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(CONTRACT)
    old = write(tmp_path, ids(100, 20), "old.parquet")
    grown = write(tmp_path, ids(160, 32), "grown.parquet")
    steady = write(tmp_path, ids(140, 28), "steady.parquet")
    code, out, _ = lane_check(capsys, grown, "--contract", tmp_path / "c.yaml", "--baseline", old, "--json")
    outcome = json.loads(out)
    assert code == 1 and outcome["verdict"] == "FAIL"
    change = next(r for r in outcome["rules"] if r["rule"] == "row_count_change")
    assert change["expected"]["baseline_rows"] == 100 and change["observed"]["rows"] == 160
    code, out, _ = lane_check(capsys, steady, "--contract", tmp_path / "c.yaml", "--baseline", old)
    assert code == 0 and "rows moved from 100 to 140" in out.replace("\n", " ").replace("│", "")


def test_lane_check_takes_an_earlier_check_json_as_the_baseline(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(CONTRACT)
    old = write(tmp_path, ids(100, 20), "old.parquet")
    code, out, _ = lane_check(capsys, old, "--contract", tmp_path / "c.yaml", "--json")
    assert code == 0
    (tmp_path / "last.json").write_text(out)
    nulls_jumped = write(tmp_path, ids(100, 50), "new.parquet")
    code, out, _ = lane_check(capsys, nulls_jumped, "--contract", tmp_path / "c.yaml", "--baseline",
                              tmp_path / "last.json", "--json")
    outcome = json.loads(out)
    result = next(r for r in outcome["rules"] if r["rule"] == "null_fraction_change")
    assert code == 1 and not result["passed"]
    assert result["expected"]["baseline_null_fraction"] == 0.2 and result["observed"]["null_fraction"] == 0.5


def test_lane_check_refuses_an_unusable_baseline_file_with_exit_2(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(CONTRACT)
    product = write(tmp_path, ids(10), "p.parquet")
    (tmp_path / "junk.json").write_text('{"verdict": "PASS"}')
    (tmp_path / "junk.parquet").write_text("not parquet")
    for baseline, reason in ((tmp_path / "missing.parquet", "file not found"),
                             (tmp_path / "junk.json", "expected the JSON of `lane check --json`"),
                             (tmp_path / "junk.parquet", "not a readable Parquet file")):
        code, _, err = lane_check(capsys, product, "--contract", tmp_path / "c.yaml", "--baseline", baseline)
        assert code == 2 and reason in err and str(baseline.name) in err


# ----------------------------------------------------------------------------- across runs of a lane


def write_csv(path, rows: int) -> None:
    path.write_text("id,amount\n" + "".join(f"{i},{'' if i % 10 == 0 else i}\n" for i in range(rows)))


SPEC = """\
lane: change
outputs:
  t:
    inputs: {t: data.csv}
    contract:
      columns:
        id: {type: int64, unique: true}
        amount: {not_null: {severity: warn, max_fraction_change: 0.05}}
      row_count: {min: 1, max_change: 0.5}
"""


def test_max_change_compares_each_run_with_the_certification_in_force(tmp_path, lane_home, lane, lane_json):
    spec = tmp_path / "lane.yaml"
    spec.write_text(SPEC)
    write_csv(tmp_path / "data.csv", 100)
    code, first = lane_json("run", spec)
    assert code == 0 and first["outputs"]["t"]["state"] == "certified"
    # a warn rule that failed: certified anyway, and the run and its manifest say so
    assert first["outputs"]["t"]["warnings"] == ["not_null(amount)"]
    manifest = json.loads((lane_home / "receipts" / first["run_id"] / "manifest-0001.json").read_text())
    assert manifest["outputs"]["t"]["warnings"] == ["not_null(amount)"] and manifest["verdict"] == "PASS"
    code, shown = lane_json("show", first["run_id"], "t")
    check_receipt = next(item["receipt"] for item in shown["receipts"] if item["receipt"]["kind"] == "check")
    change = next(r for r in check_receipt["rules"] if r["rule"] == "row_count_change")
    assert change["passed"] and "this is the first, nothing to compare against" in change["detail"]

    write_csv(tmp_path / "data.csv", 200)                      # +100%: beyond max_change 0.5
    code, second = lane_json("run", spec)
    assert code == 1 and second["outputs"]["t"]["state"] == "rejected"
    assert second["outputs"]["t"]["failing_rules"] == ["row_count_change"]
    code, shown = lane_json("show", second["run_id"], "t")
    check_receipt = next(item["receipt"] for item in shown["receipts"] if item["receipt"]["kind"] == "check")
    change = next(r for r in check_receipt["rules"] if r["rule"] == "row_count_change")
    assert change["expected"]["baseline_rows"] == 100 and change["observed"]["rows"] == 200
    assert change["expected"]["baseline"] == first["outputs"]["t"]["certification"]

    write_csv(tmp_path / "data.csv", 150)                      # +50%: exactly at the limit
    code, third = lane_json("run", spec)
    assert code == 0 and third["outputs"]["t"]["state"] == "certified"

    code, events, _ = lane("events", "--json", "--type", "DataProductCertified")
    certified = [json.loads(line) for line in events.splitlines()]
    assert [event["warnings"] for event in certified] == [["not_null(amount)"], ["not_null(amount)"]]
    code, out, _ = lane("run", spec)                           # memoized: nothing checked again
    assert code == 0


def test_a_run_with_warnings_reads_differently_from_a_clean_pass(tmp_path, lane_home, lane):
    spec = tmp_path / "lane.yaml"
    spec.write_text(SPEC)
    write_csv(tmp_path / "data.csv", 100)
    code, out, _ = lane("run", spec)
    assert code == 0 and "PASS with 1 warning" in out and "warn: not_null(amount)" in out
    assert "PASS: every output certified" not in out
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "lane.yaml").write_text(SPEC.replace("lane: change", "lane: clean").replace(
        "amount: {not_null: {severity: warn, max_fraction_change: 0.05}}", "amount: {}"))
    write_csv(clean / "data.csv", 100)
    code, out, _ = lane("run", clean / "lane.yaml")
    assert code == 0 and "PASS: every output certified" in out and "warning" not in out


def test_after_a_revocation_there_is_nothing_in_force_to_compare_with(tmp_path, lane_home, lane, lane_json):
    spec = tmp_path / "lane.yaml"
    spec.write_text(SPEC)
    write_csv(tmp_path / "data.csv", 100)
    assert lane_json("run", spec)[0] == 0
    assert lane("revoke", "change", "t", "--reason", "bad load")[0] == 0
    write_csv(tmp_path / "data.csv", 300)                      # +200%, but the baseline was revoked
    code, run = lane_json("run", spec)
    assert code == 0 and run["outputs"]["t"]["state"] == "certified"
    code, shown = lane_json("show", run["run_id"], "t")
    check_receipt = next(item["receipt"] for item in shown["receipts"] if item["receipt"]["kind"] == "check")
    change = next(r for r in check_receipt["rules"] if r["rule"] == "row_count_change")
    assert change["passed"] and "was revoked (bad load): nothing in force to compare against" in change["detail"]


def test_a_certification_whose_evidence_does_not_hold_fails_the_change_rule(tmp_path, lane_home, lane_json):
    """Fail closed: the baseline comes only from evidence bound to the pointer; an altered check receipt under
    the certification in force is not compared with, it fails the rule."""
    spec = tmp_path / "lane.yaml"
    spec.write_text(SPEC)
    write_csv(tmp_path / "data.csv", 100)
    code, first = lane_json("run", spec)
    assert code == 0
    stored = lane_home / "receipts" / first["run_id"] / "t" / "0001-check.json"
    receipt = json.loads(stored.read_text())
    receipt["rows"] = 140                                       # a forged baseline that would let 150 rows pass
    stored.chmod(0o644)
    stored.write_text(json.dumps(receipt))
    write_csv(tmp_path / "data.csv", 150)
    code, second = lane_json("run", spec)
    assert code == 1 and second["outputs"]["t"]["failing_rules"] == ["row_count_change"]
    code, shown = lane_json("show", second["run_id"], "t")
    check_receipt = next(item["receipt"] for item in shown["receipts"] if item["receipt"]["kind"] == "check")
    change = next(r for r in check_receipt["rules"] if r["rule"] == "row_count_change")
    assert "cannot serve as the baseline" in change["detail"] and "does not chain" in change["detail"]
