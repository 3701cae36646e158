"""Every rule, passing and failing, with its expected/observed evidence."""

from __future__ import annotations

import datetime as dt
import json
import math

import pyarrow as pa
import pytest

from batchlane.checks import ReferenceUnavailable
from tests.checks.helpers import check, contract, rule, write


def test_clean_product_passes_and_describes_its_file(tmp_path):
    path = write(tmp_path, {"id": pa.array([1, 2, 3], pa.int64()), "name": ["a", "b", "c"]})
    outcome = check(path, contract({"id": {"type": "int64", "not_null": True, "unique": True}}, row_count={"min": 3}))
    assert outcome.verdict == "PASS"
    assert outcome.rows == 3
    [digest] = outcome.files
    assert digest.uri == str(path)
    assert digest.size == path.stat().st_size
    import hashlib
    assert digest.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest.rows == 3
    assert digest.schema_ == {"id": "int64", "name": "string"}
    json.dumps([r.model_dump(mode="json") for r in outcome.rules])  # evidence is JSON-serialisable


def test_uris_name_the_files(tmp_path):
    path = write(tmp_path, {"id": [1]})
    outcome = check(path, contract(), uris=["s3://bucket/staging/x.parquet"])
    assert outcome.files[0].uri == "s3://bucket/staging/x.parquet"


@pytest.mark.parametrize(
    ("declared", "array", "passes"),
    [
        ("int64", pa.array([1], pa.int64()), True),
        ("int64", pa.array([1], pa.int32()), False),
        ("uint16", pa.array([1], pa.uint16()), True),
        ("float32", pa.array([1.0], pa.float32()), True),
        ("float32", pa.array([1.0], pa.float64()), False),
        ("string", pa.array(["a"], pa.string()), True),
        ("string", pa.array(["a"], pa.large_string()), True),
        ("string", pa.array(["a"], pa.string_view()), True),
        ("string", pa.array(["a"]).dictionary_encode(), True),
        ("string", pa.array([b"a"], pa.binary()), False),
        ("timestamp", pa.array([0], pa.timestamp("ns", tz="Europe/Paris")), True),
        ("timestamp", pa.array([0], pa.timestamp("s")), True),
        ("timestamp", pa.array([0], pa.int64()), False),
        ("date", pa.array([0], pa.date32()), True),
        ("date", pa.array([0], pa.date64()), True),
        ("bool", pa.array([True]), True),
        ("bool", pa.array([1], pa.int8()), False),
    ],
)
def test_type(tmp_path, declared, array, passes):
    outcome = check(write(tmp_path, {"c": array}), contract({"c": {"type": declared}}))
    result = rule(outcome, "type", "c")
    assert result.passed is passes
    assert result.expected == declared
    assert result.observed  # the Arrow type as read back
    assert outcome.verdict == ("PASS" if passes else "FAIL")


def test_type_mismatch_reports_the_arrow_type(tmp_path):
    path = write(tmp_path, {"c": pa.array([1], pa.int32())})
    result = rule(check(path, contract({"c": {"type": "int64"}})), "type", "c")
    assert result.observed == "int32"
    assert "int32" in result.detail


def test_missing_column_is_a_failed_rule_not_a_crash(tmp_path):
    path = write(tmp_path, {"id": [1, 2]})
    outcome = check(path, contract({"absent": {"type": "int64", "not_null": True, "unique": True}},
                                   unique=[["id", "gone"]]))
    assert outcome.verdict == "FAIL"
    exists = rule(outcome, "exists", "absent")
    assert not exists.passed and exists.observed == "missing" and "absent" in exists.detail
    composite = rule(outcome, "unique", "id,gone")
    assert not composite.passed and "gone" in composite.detail


def test_not_null(tmp_path):
    ok_path = write(tmp_path, {"c": [1.0, float("nan")]}, "ok.parquet")
    ok = rule(check(ok_path, contract({"c": {"not_null": True}})), "not_null", "c")
    assert ok.passed and ok.observed == 0  # NaN is a value, not a null
    bad = rule(check(write(tmp_path, {"c": [1, None, 3, None]}), contract({"c": {"not_null": True}})), "not_null", "c")
    assert not bad.passed
    assert (bad.expected, bad.observed, bad.failing_count) == (0, 2, 2)
    assert bad.failing_sample == [1, 3]  # row numbers of the nulls


def test_unique_ignores_nulls_and_samples_duplicated_keys(tmp_path):
    ok_path = write(tmp_path, {"c": [1, None, 2, None]}, "ok.parquet")
    ok = rule(check(ok_path, contract({"c": {"unique": True}})), "unique", "c")
    assert ok.passed and ok.observed == 0
    bad_path = write(tmp_path, {"c": [5, 1, 5, 2, 5, 1, None]})
    bad = rule(check(bad_path, contract({"c": {"unique": True}})), "unique", "c")
    assert not bad.passed
    assert bad.observed == bad.failing_count == 3  # 6 non-null rows, 3 distinct
    assert bad.failing_sample == [1, 5]
    assert "3 distinct" in bad.detail and "2 keys repeat" in bad.detail


@pytest.mark.parametrize(
    ("values", "duplicates", "sample"),
    [
        (pa.array(["x", "y", "x", None, None]), 1, ["x"]),
        (pa.array(["x", "y", "x"], pa.large_string()), 1, ["x"]),
        (pa.array(["x", "y", "x"], pa.string_view()), 1, ["x"]),
        (pa.array(["", "", "a"]), 1, [""]),
        (pa.array([1.5, float("nan"), float("nan"), 1.5, -0.0, 0.0]), 3, [0.0, 1.5, "NaN"]),
        (pa.array([dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 1)], pa.timestamp("ms")), 1,
         ["2026-01-01T00:00:00+00:00"]),
        (pa.array([dt.date(2026, 1, 1), dt.date(2026, 1, 1)]), 1, ["2026-01-01"]),
        (pa.array([True, False, True]), 1, [True]),
        (pa.array([2**64 - 1, 2**64 - 1], pa.uint64()), 1, [2**64 - 1]),
    ],
)
def test_unique_across_types(tmp_path, values, duplicates, sample):
    result = rule(check(write(tmp_path, {"c": values}), contract({"c": {"unique": True}})), "unique", "c")
    assert result.failing_count == duplicates
    assert sorted(map(str, result.failing_sample)) == sorted(map(str, sample))


def test_composite_unique_ignores_rows_with_a_null_key(tmp_path):
    path = write(tmp_path, {
        "a": [1, 1, 1, 2, None, None],
        "b": ["x", "y", "x", "x", "x", "x"],
    })
    result = rule(check(path, contract(unique=[["a", "b"]])), "unique", "a,b")
    assert not result.passed
    assert result.failing_count == 1
    assert result.failing_sample == [[1, "x"]]
    assert "3 distinct keys in 4 rows" in result.detail
    ok = rule(check(path, contract(unique=[["b", "a"]])), "unique", "b,a")
    assert ok.failing_count == 1  # order of key columns does not matter for the count


def test_composite_unique_passes(tmp_path):
    path = write(tmp_path, {"a": [1, 1, 2], "b": ["x", "y", "x"]})
    assert rule(check(path, contract(unique=[["a", "b"]])), "unique", "a,b").passed


def test_accepted_values(tmp_path):
    path = write(tmp_path, {"s": ["new", "paid", None, "lost", "lost", "odd"], "n": [1, 2, 3, 4, None, 1]})
    outcome = check(path, contract({"s": {"accepted_values": ["new", "paid"]}, "n": {"accepted_values": [1, 2, 3, 4]}}))
    bad = rule(outcome, "accepted_values", "s")
    assert not bad.passed
    assert bad.expected == ["new", "paid"]
    assert bad.observed == bad.failing_count == 3  # nulls are ignored
    assert bad.failing_sample == ["lost", "odd"]
    assert rule(outcome, "accepted_values", "n").passed


def test_accepted_values_on_dictionary_column(tmp_path):
    values = pa.array(["a", "b", "c", None, "c"]).dictionary_encode()
    path = write(tmp_path, {"s": values})
    result = rule(check(path, contract({"s": {"accepted_values": ["a", "b"]}})), "accepted_values", "s")
    assert (result.failing_count, result.failing_sample) == (2, ["c"])


def test_min_max(tmp_path):
    path = write(tmp_path, {"v": [5, 0, 10, None, -3, 12]})
    outcome = check(path, contract({"v": {"min": 0, "max": 10}}))
    low, high = rule(outcome, "min", "v"), rule(outcome, "max", "v")
    assert (low.passed, low.expected, low.observed, low.failing_count, low.failing_sample) == (False, 0, -3, 1, [-3])
    assert (high.passed, high.expected, high.observed) == (False, 10, 12)
    assert (high.failing_count, high.failing_sample) == (1, [12])
    inclusive = check(path, contract({"v": {"min": -3, "max": 12}}))
    assert inclusive.verdict == "PASS"
    assert rule(inclusive, "min", "v").observed == -3


def test_min_max_on_decimals_compare_exactly(tmp_path):
    from decimal import Decimal

    values = pa.array([Decimal("0.00"), Decimal("10.01"), Decimal("-0.01"), None], pa.decimal128(10, 2))
    outcome = check(write(tmp_path, {"price": values}), contract({"price": {"min": 0, "max": 10}}))
    low, high = rule(outcome, "min", "price"), rule(outcome, "max", "price")
    assert (low.observed, low.failing_count, low.failing_sample) == ("-0.01", 1, ["-0.01"])
    assert (high.observed, high.failing_count, high.failing_sample) == ("10.01", 1, ["10.01"])


def test_nan_fails_min_and_max(tmp_path):
    path = write(tmp_path, {"v": [0.5, float("nan"), 0.7]})
    outcome = check(path, contract({"v": {"min": 0, "max": 1}}))
    for name in ("min", "max"):
        result = rule(outcome, name, "v")
        assert not result.passed
        assert result.failing_count == 1
        assert "NaN" in result.failing_sample and "1 NaN" in result.detail
    assert rule(outcome, "min", "v").observed == 0.5
    assert rule(outcome, "max", "v").observed == 0.7


def test_min_on_a_string_column_fails_with_reason(tmp_path):
    result = rule(check(write(tmp_path, {"s": ["a"]}), contract({"s": {"min": 1}})), "min", "s")
    assert not result.passed and "numeric" in result.detail


def test_regex_uses_search_semantics(tmp_path):
    path = write(tmp_path, {"s": ["ab-1", "xab-2", None, "zz"]})
    anchored = rule(check(path, contract({"s": {"regex": r"^ab-\d$"}})), "regex", "s")
    assert (anchored.failing_count, anchored.failing_sample) == (2, ["xab-2", "zz"])
    assert anchored.expected == r"^ab-\d$" and anchored.observed == 2
    search = rule(check(path, contract({"s": {"regex": r"ab-\d"}})), "regex", "s")
    assert (search.failing_count, search.failing_sample) == (1, ["zz"])


def test_regex_unsupported_by_re2_fails_with_reason(tmp_path):
    result = rule(check(write(tmp_path, {"s": ["a"]}), contract({"s": {"regex": r"(?=a)a"}})), "regex", "s")
    assert not result.passed and "RE2" in result.detail


def test_references(tmp_path):
    path = write(tmp_path, {"customer": [1, 2, None, 9, 9]})
    calls = []

    def resolver(output, column):
        calls.append((output, column))
        return pa.array([1, 2, 3], pa.int32())  # type differs from the column: cast

    rules = contract({"customer": {"references": "customers.id"}})
    result = rule(check(path, rules, reference_values=resolver), "references", "customer")
    assert calls == [("customers", "id")]
    assert (result.passed, result.expected, result.observed, result.failing_sample) == (False, "customers.id", 2, [9])
    ok = rule(check(path, rules, reference_values=lambda o, c: pa.array([1, 2, 9])), "references", "customer")
    assert ok.passed


def test_references_unavailable_or_unresolvable_fail_with_reason(tmp_path):
    path = write(tmp_path, {"customer": [1]})
    rules = contract({"customer": {"references": "customers.id"}})

    def refuse(output, column):
        raise ReferenceUnavailable("customers was rejected in run r1")

    refused = rule(check(path, rules, reference_values=refuse), "references", "customer")
    assert not refused.passed and "customers was rejected in run r1" in refused.detail
    unresolved = rule(check(path, rules), "references", "customer")
    assert not unresolved.passed and "no resolver" in unresolved.detail


def test_row_count(tmp_path):
    path = write(tmp_path, {"c": [1, 2, 3]})
    assert rule(check(path, contract(row_count={"min": 3, "max": 3})), "row_count").passed
    too_few = rule(check(path, contract(row_count={"min": 4})), "row_count")
    assert (too_few.passed, too_few.expected, too_few.observed) == (False, {"min": 4}, 3)
    too_many = rule(check(path, contract(row_count={"max": 2})), "row_count")
    assert not too_many.passed


def test_several_files_are_one_product(tmp_path):
    first = write(tmp_path, {"id": [1, 2]}, "part-0.parquet")
    second = write(tmp_path, {"id": [3, 1]}, "part-1.parquet")
    outcome = check([first, second], contract({"id": {"unique": True}}, row_count={"min": 4, "max": 4}))
    assert outcome.rows == 4 and len(outcome.files) == 2
    assert rule(outcome, "unique", "id").failing_sample == [1]


def test_evidence_is_plain_json(tmp_path):
    path = write(tmp_path, {
        "f": [float("nan"), 2.0], "t": pa.array([0, 1], pa.timestamp("ns")), "s": ["a", "a"],
    })
    outcome = check(path, contract({"f": {"min": 0, "unique": True}, "t": {"unique": True, "max_age": "1d"},
                                    "s": {"unique": True}}))
    text = json.dumps([r.model_dump(mode="json") for r in outcome.rules], allow_nan=False)
    assert "NaN" in text and not any(isinstance(v, float) and math.isnan(v) for v in json.loads(text))


def test_every_fail_says_why(tmp_path):
    import struct

    from tests.checks import forge

    path = write(tmp_path, {
        "id": pa.array([1, 1, None, -4], pa.int64()),
        "s": ["a", "zz", None, "b"],
        "f": [0.5, float("nan"), 3.0, None],
        "t": pa.array([0, 1, 2, None], pa.timestamp("s")),
        "n": pa.array([{"x": 1}, None, {"x": 2}, {"x": 3}]),
    })
    forge.lie_about_min(path, column=0, value=struct.pack("<q", 0))
    rules = contract({
        "id": {"type": "int32", "not_null": True, "unique": True, "min": 0, "accepted_values": [1, 2]},
        "s": {"regex": "^[a-b]$", "accepted_values": ["a"], "references": "other.s"},
        "f": {"min": 1, "max": 2},
        "t": {"max_age": "1d"},
        "n": {"unique": True, "not_null": True},
        "gone": {"not_null": True},
    }, unique=[["id", "gone"]], row_count={"min": 10})
    outcome = check(path, rules)
    failed = [r for r in outcome.rules if not r.passed]
    assert len(failed) >= 15
    assert all(r.detail for r in failed), [r.label for r in failed if not r.detail]
    json.dumps([r.model_dump(mode="json") for r in outcome.rules], allow_nan=False)
