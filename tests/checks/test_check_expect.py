"""Issue 14, row expressions (``expect:``): named SQL boolean expressions evaluated by DuckDB inside the
checker; malformed ones are spec errors (exit 2) at load, in `lane validate`, `lane check` and `lane run`."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchlane.checking import sqlexpr
from batchlane.cli import check_cmd
from batchlane.spec import SpecError, load_contract
from tests.checks.helpers import check, contract, rule, write

PAID = {"name": "paid_not_negative", "sql": "amount >= 0 OR status = 'REFUND'"}


@pytest.fixture
def product(tmp_path):
    return write(tmp_path, {
        "id": pa.array(range(8), pa.int64()),
        "amount": pa.array([5.0, -1.0, 3.0, -2.0, None, 4.0, -3.0, 1.0]),
        "status": ["PAID", "REFUND", "PAID", "PAID", "PAID", "NEW", "PAID", None],
    })


def test_rows_where_the_expression_is_false_or_null_fail_with_a_sample(product):
    outcome = check(product, contract(expect=[PAID]))
    result = rule(outcome, "expect", "paid_not_negative")
    assert outcome.verdict == "FAIL" and not result.passed
    # row 1 is a refund; rows 3 and 6 are negative payments; row 4's amount is null (null OR false is null)
    assert result.failing_count == 3
    assert result.failing_sample == [
        {"row": 3, "amount": -2.0, "status": "PAID"},
        {"row": 4, "amount": None, "status": "PAID"},
        {"row": 6, "amount": -3.0, "status": "PAID"},
    ]
    assert result.expected == PAID["sql"] and "3 of 8 rows are not true" in (result.detail or "")


def test_a_passing_expression_and_the_sample_only_holds_the_columns_it_reads(product):
    outcome = check(product, contract(expect=[{"name": "ids", "sql": "id >= 0"},
                                              {"name": "small", "sql": "id < 7"}]))
    assert rule(outcome, "expect", "ids").passed
    assert rule(outcome, "expect", "small").failing_sample == [{"row": 7, "id": 7}]


def test_severity_and_tolerances_apply_to_expectations(product):
    warned = check(product, contract(expect=[{**PAID, "severity": "warn"}]))
    assert warned.verdict == "PASS" and [r.label for r in warned.warnings] == ["expect(paid_not_negative)"]
    at_limit = check(product, contract(expect=[{**PAID, "max_failing": 3}]))
    assert at_limit.verdict == "PASS" and rule(at_limit, "expect", "paid_not_negative").judged == 8
    assert check(product, contract(expect=[{**PAID, "max_failing": 2}])).verdict == "FAIL"
    assert check(product, contract(expect=[{**PAID, "max_failing_fraction": 0.375}])).verdict == "PASS"  # 3/8
    assert check(product, contract(expect=[{**PAID, "max_failing_fraction": 0.374}])).verdict == "FAIL"


def test_row_numbers_run_across_row_groups_and_files(tmp_path):
    first = tmp_path / "part-0000.parquet"
    second = tmp_path / "part-0001.parquet"
    pq.write_table(pa.table({"x": pa.array(range(10), pa.int64())}), first, row_group_size=3)
    pq.write_table(pa.table({"x": pa.array([-1, 5, -2], pa.int64())}), second)
    outcome = check([first, second], contract(expect=[{"name": "positive", "sql": "x >= 0"}]))
    result = rule(outcome, "expect", "positive")
    assert result.failing_count == 2
    assert result.failing_sample == [{"row": 10, "x": -1}, {"row": 12, "x": -2}]


def test_a_missing_column_or_a_non_boolean_fails_the_rule_with_the_reason(product):
    outcome = check(product, contract(expect=[{"name": "gone", "sql": "discount > 0"},
                                              {"name": "number", "sql": "amount + 1"}]))
    gone, number = rule(outcome, "expect", "gone"), rule(outcome, "expect", "number")
    assert outcome.verdict == "FAIL"
    assert not gone.passed and "discount" in (gone.detail or "")
    assert not number.passed and "not a boolean" in (number.detail or "")
    # a tolerance never forgives an expression that could not be evaluated
    tolerant = check(product, contract(expect=[{"name": "gone", "sql": "discount > 0", "max_failing": 100}]))
    assert tolerant.verdict == "FAIL"


def test_the_checker_refuses_sql_that_reads_beyond_the_row_even_when_built_in_code(product):
    """load_contract refuses these (below); a contract built in code reaches the checker, which refuses too."""
    outcome = check(product, contract(expect=[{"name": "sneaky", "sql": "(SELECT count(*) FROM read_csv('/etc/hostname')) > 0"}]))
    result = rule(outcome, "expect", "sneaky")
    assert outcome.verdict == "FAIL" and "subquery" in (result.detail or "")


def test_the_sql_engine_has_no_file_network_or_extension_access():
    connection = sqlexpr.connect()
    for statement in ("SELECT * FROM read_csv('/etc/hostname')", "COPY (SELECT 1) TO '/tmp/lane-h14-escape.csv'",
                      "INSTALL httpfs", "SET enable_external_access = true"):
        with pytest.raises(duckdb.Error):
            connection.execute(statement).fetchall()


@pytest.mark.parametrize("sql, reason", [
    ("amount >= ", "not a valid SQL expression: it ends before the expression is complete"),
    ("amount >>> 0", "unknown operator >>>"),
    ("1) AS x FROM read_csv('/etc/hostname') --", "must be one boolean expression over a row"),
    ("amount > 0; DROP TABLE product", "not a valid SQL expression"),
    ("sum(amount) > 0", "sum() is an aggregate"),
    ("row_number() OVER () > 1", "window function row_number() reads beyond the row"),
    ("amount > (SELECT 1)", "a subquery reads beyond the row"),
    ("random() > 0.5", "random() gives a different answer each time"),
    ("no_such_function(amount)", "unknown function no_such_function()"),
    ("amount", "is DOUBLE, not a boolean"),
    ("amount + status", "does not bind over the declared columns"),
])
def test_a_malformed_expression_is_refused_at_load_with_its_path(tmp_path, sql, reason):
    path = tmp_path / "contract.yaml"
    path.write_text("columns:\n  amount: {type: float64}\n  status: {type: string}\n"
                    f"expect:\n  - name: e\n    sql: {json.dumps(sql)}\n")  # a JSON string is a YAML scalar
    with pytest.raises(SpecError) as caught:
        load_contract(path)
    message = str(caught.value)
    assert "expect[0].sql" in message and reason in message and "(line 6)" in message


def test_an_expression_over_undeclared_columns_is_judged_on_the_data(tmp_path):
    path = tmp_path / "contract.yaml"
    path.write_text("expect:\n  - {name: e, sql: 'amount >= 0'}\n")
    assert load_contract(path).expect[0].sql == "amount >= 0"


def test_lane_check_exits_2_on_malformed_sql_and_runs_a_good_one(tmp_path, product, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns:\n  amount: {type: float64}\nexpect:\n  - {name: e, sql: 'amount >= '}\n")
    assert check_cmd.main([str(product), "--contract", str(bad)]) == 2
    assert "expect[0].sql" in capsys.readouterr().err
    good = tmp_path / "good.yaml"
    good.write_text("expect:\n  - {name: paid, sql: \"amount >= 0 OR status = 'REFUND'\", severity: warn}\n")
    assert check_cmd.main([str(product), "--contract", str(good)]) == 0
    out = capsys.readouterr().out
    assert "PASS with 1 warning" in out and "WARN" in out and "expect(paid)" in out


def test_lane_validate_and_lane_run_refuse_malformed_sql_with_exit_2(tmp_path, lane_home, lane):
    (tmp_path / "data.csv").write_text("id,amount\n1,2.0\n")
    spec = tmp_path / "lane.yaml"
    spec.write_text("lane: sql\noutputs:\n  t:\n    inputs: {t: data.csv}\n    contract:\n"
                    "      columns: {amount: {type: float64}}\n"
                    "      expect:\n        - {name: broken, sql: 'amount >>> 0'}\n")
    code, out, err = lane("validate", spec)
    assert code == 2 and "outputs.t.contract.expect[0].sql" in out + err
    code, out, err = lane("run", spec)
    assert code == 2 and "outputs.t.contract.expect[0].sql" in err and "unknown operator >>>" in err
    assert not (lane_home / "receipts").exists()
