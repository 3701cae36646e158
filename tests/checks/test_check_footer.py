"""Footers never decide a verdict: every rule is judged on the data, and a footer that
contradicts its data FAILs (``footer`` rule) naming the file, column, footer value and data value.

The lying files are real Parquet files whose footer bytes were edited (``tests.checks.forge``),
so pyarrow opens them and reports the forged statistics exactly as it would a buggy writer's.
"""

from __future__ import annotations

import datetime as dt
import struct
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchlane.checking import engine
from tests.checks import forge
from tests.checks.helpers import NOW, check, contract, rule, write


def _int64(value: int) -> bytes:
    return struct.pack("<q", value)


def _footer_results(outcome):
    return [r for r in outcome.rules if r.rule == "footer"]


def test_the_forged_footer_is_what_pyarrow_reports(tmp_path):
    """The premise of every test below: the page holds -7, the footer says min 5."""
    path = write(tmp_path, {"v": pa.array([-7, 10, 20], pa.int64())})
    forge.lie_about_min(path, column=0, value=_int64(5))
    stats = pq.ParquetFile(path).metadata.row_group(0).column(0).statistics
    assert (stats.min, stats.max) == (5, 20)
    assert pq.read_table(path)["v"].to_pylist() == [-7, 10, 20]


def test_lying_min_fails_and_reports_the_data_minimum(tmp_path):
    path = write(tmp_path, {"v": pa.array([-7, 10, 20], pa.int64())})
    forge.lie_about_min(path, column=0, value=_int64(5))
    outcome = check(path, contract({"v": {"min": 0}}))
    assert outcome.verdict == "FAIL"
    low = rule(outcome, "min", "v")
    assert (low.passed, low.observed, low.failing_count, low.failing_sample) == (False, -7, 1, [-7])
    footer = rule(outcome, "footer", "v")
    assert not footer.passed
    assert footer.expected == [{"file": str(path), "row_group": 0, "min": 5}]
    assert footer.observed == [{"file": str(path), "row_group": 0, "min": -7}]
    assert "the footer contradicts the data" in footer.detail
    assert f"{path} row group 0 column 'v': footer min 5" in footer.detail and "data min -7" in footer.detail


def test_lying_min_fails_even_when_no_rule_is_about_the_minimum(tmp_path):
    path = write(tmp_path, {"v": pa.array([-7, 10, 20], pa.int64())})
    forge.lie_about_min(path, column=0, value=_int64(5))
    outcome = check(path, contract({"v": {"not_null": True}}))
    assert rule(outcome, "not_null", "v").passed
    assert outcome.verdict == "FAIL" and not rule(outcome, "footer", "v").passed


def test_lying_max_fails(tmp_path):
    path = write(tmp_path, {"v": pa.array([1, 100, 3], pa.int64())})
    forge.lie_about_max(path, column=0, value=_int64(10))
    outcome = check(path, contract({"v": {"max": 50}}))
    high = rule(outcome, "max", "v")
    assert (high.passed, high.observed, high.failing_sample) == (False, 100, [100])
    footer = rule(outcome, "footer", "v")
    assert footer.observed == [{"file": str(path), "row_group": 0, "max": 100}]
    assert "footer max 10" in footer.detail and "data max 100" in footer.detail


def test_lying_null_count_fails(tmp_path):
    path = write(tmp_path, {"v": pa.array([1, None, 3], pa.int64())})
    forge.lie_about_null_count(path, column=0, value=0)
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).statistics.null_count == 0
    outcome = check(path, contract({"v": {"not_null": True}}))
    nulls = rule(outcome, "not_null", "v")
    assert (nulls.passed, nulls.observed, nulls.failing_sample) == (False, 1, [1])
    footer = rule(outcome, "footer", "v")
    assert footer.expected == [{"file": str(path), "row_group": 0, "null_count": 0}]
    assert footer.observed == [{"file": str(path), "row_group": 0, "null_count": 1}]
    assert "footer null_count 0, data null_count 1" in footer.detail


def test_lying_row_count_fails_and_rows_are_counted(tmp_path):
    path = write(tmp_path, {"v": pa.array([1, 2, 3, 4], pa.int64())})
    forge.patch(path, forge.FILE_NUM_ROWS, 3)
    forge.patch(path, (forge.ROW_GROUPS, 0, forge.RG_NUM_ROWS), 3)
    assert pq.ParquetFile(path).metadata.num_rows == 3
    outcome = check(path, contract(row_count={"max": 3}))  # no column rule: a column is read to count
    count = rule(outcome, "row_count")
    assert (count.passed, count.observed) == (False, 4)
    assert outcome.rows == 4 and outcome.files[0].rows == 4
    footer = rule(outcome, "footer")
    assert footer.failing_count == 2  # the row group's count and the file's
    assert {"file": str(path), "rows": 3} in footer.expected and {"file": str(path), "rows": 4} in footer.observed
    assert f"{path}: footer rows 3, data rows 4" in footer.detail


def test_lying_timestamp_max_cannot_make_stale_data_fresh(tmp_path):
    stale = NOW - dt.timedelta(days=30)
    path = write(tmp_path, {"t": pa.array([stale, stale - dt.timedelta(days=1)], pa.timestamp("us", tz="UTC"))})
    fresh_us = int((NOW - dt.timedelta(minutes=1)).timestamp() * 1_000_000)
    forge.lie_about_max(path, column=0, value=_int64(fresh_us))
    outcome = check(path, contract({"t": {"not_null": True, "max_age": "1d"}}))
    freshness = rule(outcome, "max_age", "t")
    assert not freshness.passed and freshness.observed["newest"] == stale.isoformat()
    footer = rule(outcome, "footer", "t")
    assert footer.expected[0]["max"] == (NOW - dt.timedelta(minutes=1)).isoformat()
    assert footer.observed[0]["max"] == stale.isoformat()


@pytest.mark.parametrize("dictionary", [True, False], ids=["dictionary-read", "plain-read"])
def test_lying_string_min_fails(tmp_path, dictionary):
    values = ["aaa", "zzz"] * 50 if dictionary else [f"{i:03d}" for i in range(100)]
    path = write(tmp_path, {"s": values}, use_dictionary=dictionary)
    forge.lie_about_min(path, column=0, value=b"mmm" if dictionary else b"050")
    footer = rule(check(path, contract({"s": {"not_null": True}})), "footer", "s")
    assert footer.observed == [{"file": str(path), "row_group": 0, "min": "aaa" if dictionary else "000"}]


def test_a_dictionary_encoded_number_column_is_judged_on_the_values_used(tmp_path):
    # a categorical whose dictionary holds an unused 1: the values used are 5 and 9
    values = pa.DictionaryArray.from_arrays(pa.array([1, 2, 1], pa.int32()), pa.array([1, 5, 9], pa.int64()))
    path = write(tmp_path, {"c": values})
    assert _footer_results(check(path, contract({"c": {"not_null": True}}))) == []
    forge.lie_about_min(path, column=0, value=_int64(1))  # the unused entry: no value has it
    footer = rule(check(path, contract({"c": {"not_null": True}})), "footer", "c")
    assert (footer.expected[0]["min"], footer.observed[0]["min"]) == (1, 5)


def test_lying_float_min_fails_and_nan_is_not_a_contradiction(tmp_path):
    path = write(tmp_path, {"f": pa.array([float("nan"), -1.5, 2.0])})
    forge.lie_about_min(path, column=0, value=struct.pack("<d", 0.5))
    outcome = check(path, contract({"f": {"min": -10}}))
    footer = rule(outcome, "footer", "f")
    assert footer.expected[0]["min"] == 0.5 and footer.observed[0]["min"] == -1.5
    assert footer.failing_count == 1  # NaN is outside every footer min/max by the spec, not a lie


def test_a_number_footer_must_state_the_true_extremes(tmp_path):
    """A claimed min no value has is a lie too (it would let a footer reader FAIL good data)."""
    path = write(tmp_path, {"v": pa.array([5, 6, 7], pa.int64())})
    forge.lie_about_min(path, column=0, value=_int64(-100))
    outcome = check(path, contract({"v": {"min": 0}}))
    assert rule(outcome, "min", "v").passed and rule(outcome, "min", "v").observed == 5
    footer = rule(outcome, "footer", "v")
    assert (footer.expected[0]["min"], footer.observed[0]["min"]) == (-100, 5)


def test_a_string_footer_may_widen_its_bounds(tmp_path):
    """Writers may truncate string statistics (a shorter min, a larger max): only data outside them contradicts."""
    path = write(tmp_path, {"s": ["bbb", "ccc"]})
    forge.lie_about_min(path, column=0, value=b"aaa")
    outcome = check(path, contract({"s": {"not_null": True}}))
    assert outcome.verdict == "PASS" and _footer_results(outcome) == []


def test_each_row_group_and_file_is_judged_and_named(tmp_path):
    first = write(tmp_path, {"v": pa.array([1, 2, 3, 4], pa.int64())}, "a.parquet", row_group_size=2)
    second = write(tmp_path, {"v": pa.array([5, 6, 7, 8], pa.int64())}, "b.parquet", row_group_size=2)
    forge.lie_about_max(second, column=0, value=_int64(7), row_group=1)
    outcome = check([first, second], contract({"v": {"max": 100}}))
    footer = rule(outcome, "footer", "v")
    assert footer.expected == [{"file": str(second), "row_group": 1, "max": 7}]
    assert footer.observed == [{"file": str(second), "row_group": 1, "max": 8}]
    assert rule(outcome, "max", "v").passed  # the contract itself holds: only the footer lied


def test_many_contradictions_are_counted_and_the_first_few_shown(tmp_path):
    path = write(tmp_path, {"v": pa.array(np.arange(-20, 0), pa.int64())}, row_group_size=2)
    for group in range(10):
        forge.lie_about_min(path, column=0, value=_int64(0), row_group=group)
    footer = rule(check(path, contract({"v": {"not_null": True}})), "footer", "v")
    assert footer.failing_count == 10 and len(footer.expected) == 5
    assert footer.detail.endswith("; and 5 more")


def test_the_cli_fails_a_lying_file_and_names_the_contradiction(tmp_path, capsys):
    from batchlane.cli import check_cmd

    path = write(tmp_path, {"v": pa.array([-7, 10, 20], pa.int64())})
    forge.lie_about_min(path, column=0, value=_int64(5))
    rules = tmp_path / "contract.yaml"
    rules.write_text("columns:\n  v: {min: 0}\n")
    capsys.readouterr()
    assert check_cmd.main([str(path), "--contract", str(rules), "--json"]) == 1
    import json

    document = json.loads(capsys.readouterr().out)
    failing = {(r["rule"], r["column"]): r for r in document["rules"] if not r["passed"]}
    assert failing[("min", "v")]["observed"] == -7
    assert "footer min 5" in failing[("footer", "v")]["detail"]


# Honest files: the cross-check must never cry wolf.

HONEST = {
    "int64": pa.array([3, None, -2**63, 2**63 - 1], pa.int64()),
    "int8": pa.array([-128, 127, None], pa.int8()),
    "uint64": pa.array([0, 2**64 - 1, None], pa.uint64()),
    "uint8": pa.array([0, 255], pa.uint8()),
    "float64": pa.array([float("nan"), -0.0, 0.0, 1e308, None]),
    "float32": pa.array([1.5, -2.5, float("nan")], pa.float32()),
    "all_nan": pa.array([float("nan"), float("nan")]),
    "bool": pa.array([True, False, None]),
    "string": pa.array(["ä", "z", "", None, "\U0001f600"]),
    "large_string": pa.array(["b", "a"], pa.large_string()),
    "dictionary": pa.array(["x", "y", None, "x"]).dictionary_encode(),
    "binary": pa.array([b"\xff", b"\x00", b""]),
    "decimal": pa.array([Decimal("-1.25"), Decimal("3.50"), None], pa.decimal128(6, 2)),
    "date32": pa.array([dt.date(1900, 1, 1), dt.date(2100, 1, 1), None]),
    "date64": pa.array([dt.date(2020, 1, 1), dt.date(2021, 1, 1)], pa.date64()),
    "ts_s": pa.array([0, 1_800_000_000], pa.timestamp("s", tz="UTC")),
    "ts_ns_naive": pa.array([1, 1_700_000_000_123_456_789], pa.timestamp("ns")),
    "ts_ms_zoned": pa.array([0, 5], pa.timestamp("ms", tz="Europe/Paris")),
    "time": pa.array([1, 2], pa.time64("us")),
    "all_null": pa.array([None, None], pa.int64()),
    "struct": pa.array([{"b": 1}, None]),
    "list": pa.array([[1, 2], None, []]),
}


@pytest.mark.parametrize("name", list(HONEST))
@pytest.mark.parametrize("row_group_size", [None, 1], ids=["one-group", "one-row-groups"])
def test_honest_footers_never_contradict(tmp_path, name, row_group_size):
    values = HONEST[name]
    padded = pa.concat_arrays([values, pa.nulls(4 - len(values) % 4 if len(values) % 4 else 0, values.type)])
    path = write(tmp_path, {"c": padded}, row_group_size=row_group_size)
    outcome = check(path, contract({"c": {"not_null": True}}))  # a rule on the column: it is read
    assert _footer_results(outcome) == []
    assert outcome.rows == len(padded)
    assert rule(outcome, "not_null", "c").observed == padded.null_count


def test_other_writers_footers_never_contradict(tmp_path):
    """DuckDB and polars state their statistics their own way (units, decimals, categoricals, unsigned)."""
    import duckdb
    import polars as pl

    duck = tmp_path / "duck.parquet"
    duckdb.connect().execute(f"""COPY (SELECT i::BIGINT AS i, (i * 1.5)::DOUBLE AS f, 'v' || i AS s,
        TIMESTAMP '2026-01-01' + INTERVAL (i) SECOND AS ts, TIMESTAMPTZ '2026-01-01 00:00:00+00' + INTERVAL (i) SECOND
        AS tz, DATE '2026-01-01' + i::INT AS d, (i % 7)::TINYINT AS t, CASE WHEN i % 3 = 0 THEN NULL ELSE i END AS n,
        (i / 3.0)::DECIMAL(10, 3) AS dec, i % 2 = 0 AS b, (i % 200)::UTINYINT AS u, (i * 1000000000)::UBIGINT AS ub
        FROM range(30000) r(i)) TO '{duck}' (FORMAT parquet, ROW_GROUP_SIZE 7000)""")
    rows = range(30_000)
    polars_file = tmp_path / "polars.parquet"
    pl.DataFrame({
        "i": rows, "s": [f"v{i}" for i in rows], "f": [i * 0.5 for i in rows],
        "ts": [dt.datetime(2026, 1, 1) + dt.timedelta(seconds=i) for i in rows],
        "n": [None if i % 3 == 0 else i for i in rows],
        "cat": pl.Series(["a", "b"] * 15_000, dtype=pl.Categorical),
    }).write_parquet(polars_file, row_group_size=7_000, statistics=True)
    for path in (duck, polars_file):
        names = pq.read_schema(path).names
        outcome = check(path, contract({name: {"not_null": True} for name in names}))
        assert _footer_results(outcome) == [], path.name
        assert outcome.rows == 30_000


def test_files_without_statistics_are_judged_on_data_alone(tmp_path):
    path = write(tmp_path, {"v": pa.array([-1, None], pa.int64())}, write_statistics=False)
    outcome = check(path, contract({"v": {"not_null": True, "min": 0}}))
    assert _footer_results(outcome) == []
    assert rule(outcome, "not_null", "v").observed == 1 and rule(outcome, "min", "v").observed == -1


# Every rule reads its column: there is no path that answers from the footer.

@pytest.fixture
def columns_read(monkeypatch):
    seen: list[tuple[str, ...]] = []
    original = engine._row_groups

    def spy(product, file, names, counting_leaf=None):
        seen.append(tuple(names) if names else ("<leaf>",))
        return original(product, file, names, counting_leaf)

    monkeypatch.setattr(engine, "_row_groups", spy)
    return seen


def test_every_rule_column_is_read_even_with_exact_statistics(tmp_path, columns_read):
    rows = 2_000
    path = write(tmp_path, {
        "id": pa.array(np.arange(rows, dtype=np.int64)),
        "at": pa.array(np.full(rows, 1_790_000_000_000, dtype=np.int64), pa.timestamp("ms", tz="UTC")),
        "amount": pa.array(np.linspace(0, 1, rows)),
        "unused": pa.array(np.zeros(rows)),
    }, row_group_size=300)
    rules = contract({"id": {"not_null": True, "min": 0, "max": rows}, "at": {"not_null": True, "max_age": "1000d"},
                      "amount": {"not_null": True, "min": 0, "max": 1}})
    assert check(path, rules).verdict == "PASS"
    assert columns_read == [("id", "at", "amount")]


def test_a_contract_without_column_rules_still_counts_rows_from_data(tmp_path, columns_read):
    path = write(tmp_path, {"wide": [f"value {i}" * 20 for i in range(10)], "narrow": pa.array(range(10), pa.int8())})
    outcome = check(path, contract(row_count={"min": 10, "max": 10}))
    assert outcome.verdict == "PASS" and rule(outcome, "row_count").observed == 10
    assert columns_read == [("<leaf>",)]


# Footer claims as hints: the dense uniqueness map follows a claimed range, and a false claim
# costs a rescan, never a different answer.

def test_a_false_range_claim_does_not_change_uniqueness(tmp_path):
    path = write(tmp_path, {"id": pa.array([1, 2, 30, 2], pa.int64())})
    forge.lie_about_max(path, column=0, value=_int64(3))  # the dense map would be sized for 1..3
    hinted = check(path, contract({"id": {"unique": True}}))
    unhinted = check(path, contract({"id": {"unique": True}}), _footer_hints=False)
    assert rule(hinted, "unique", "id") == rule(unhinted, "unique", "id")
    assert rule(hinted, "unique", "id").failing_sample == [2]
    assert rule(hinted, "footer", "id").observed[0]["max"] == 30


def _columns(rows: int, seed: int, *, dirty: bool) -> dict[str, pa.Array]:
    rng = np.random.default_rng(seed)
    ids = rng.permutation(rows).astype(np.int64)
    if dirty and rows > 3:
        ids[rows - 1] = ids[0]  # a duplicate far apart (other row group)
        ids[1] = 5_000_000
    amount = rng.random(rows) * 100
    if dirty and rows:
        amount[rows // 2] = np.nan
    null_mask = (rng.random(rows) < 0.1) if dirty else None
    base = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    at = [base - dt.timedelta(hours=int(h)) for h in rng.integers(0, 2000, rows)]
    return {
        "id": pa.array(ids, mask=null_mask),
        "small": pa.array(rng.integers(-5, 9 if dirty else 6, rows).astype(np.int32)),
        "amount": pa.array(amount, mask=null_mask),
        "at": pa.array(at, pa.timestamp("ms", tz="UTC")),
        "status": pa.array(rng.choice(["a", "b", "c"] if dirty else ["a", "b"], rows)),
    }


RULES = contract(
    {
        "id": {"type": "int64", "not_null": True, "unique": True, "min": 0, "max": 1_000_000},
        "small": {"type": "int32", "not_null": True, "min": -5, "max": 5},
        "amount": {"not_null": True, "min": 0, "max": 100},
        "at": {"not_null": True, "max_age": "100d"},
        "status": {"not_null": True, "accepted_values": ["a", "b"], "regex": "^[ab]$"},
    },
    unique=[["id", "status"]],
    row_count={"min": 1},
)


@pytest.mark.parametrize("statistics", [True, False], ids=["with-stats", "no-stats"])
@pytest.mark.parametrize("rows", [0, 1, 3_000])
@pytest.mark.parametrize("dirty", [False, True], ids=["clean", "dirty"])
def test_hints_never_change_a_result(tmp_path, statistics, rows, dirty):
    path = write(tmp_path, _columns(rows, seed=rows, dirty=dirty), write_statistics=statistics, row_group_size=700)
    hinted, unhinted = check(path, RULES), check(path, RULES, _footer_hints=False)
    assert hinted.rules == unhinted.rules and hinted.verdict == unhinted.verdict
    assert _footer_results(hinted) == []
    assert hinted.verdict == ("PASS" if rows and not dirty else "FAIL")
