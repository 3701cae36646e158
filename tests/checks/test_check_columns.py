"""Columns are addressed by top-level field name, never by Parquet leaf path; nested columns get
their real type and a clear FAIL for rules that need primitive values."""

from __future__ import annotations

import struct

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import batchlane.checking.rules as rules_module
from tests.checks import forge
from tests.checks.helpers import check, contract, rule, write


@pytest.fixture
def shadowed(tmp_path):
    """A struct ``a`` with child ``b`` (clean), then a top-level column literally named ``a.b`` (dirty)."""
    path = tmp_path / "shadow.parquet"
    table = pa.table({
        "a": pa.array([{"b": 1}, {"b": 2}, {"b": 3}]),
        "a.b": pa.array([None, -5, 7], pa.int64()),
    })
    pq.write_table(table, path)
    paths = pq.ParquetFile(path).reader.column_paths
    assert paths == [["a", "b"], ["a.b"]]  # both leaves print as "a.b"
    return path


def test_a_dotted_name_means_the_top_level_column_not_a_struct_child(shadowed):
    outcome = check(shadowed, contract({"a.b": {"type": "int64", "not_null": True, "min": 0, "unique": True}}))
    assert outcome.verdict == "FAIL"
    assert rule(outcome, "type", "a.b").passed
    nulls = rule(outcome, "not_null", "a.b")
    assert (nulls.observed, nulls.failing_sample) == (1, [0])
    low = rule(outcome, "min", "a.b")
    assert (low.observed, low.failing_sample) == (-5, [-5])
    assert rule(outcome, "unique", "a.b").passed


def test_a_clean_top_level_column_passes_beside_a_dirty_struct_child(tmp_path):
    path = tmp_path / "reverse.parquet"
    pq.write_table(pa.table({"a": pa.array([{"b": None}, {"b": -1}]), "a.b": pa.array([1, 2], pa.int64())}), path)
    outcome = check(path, contract({"a.b": {"not_null": True, "min": 0}}))
    assert outcome.verdict == "PASS"
    assert rule(outcome, "min", "a.b").observed == 1


def test_the_footer_of_the_struct_child_is_not_taken_for_the_top_level_column(shadowed):
    forge.lie_about_min(shadowed, column=0, value=struct.pack("<q", -100))  # leaf 0 is the struct child a.b
    outcome = check(shadowed, contract({"a.b": {"not_null": False, "min": -10}}))
    assert rule(outcome, "min", "a.b").passed  # -5 is the top-level column's minimum
    assert [r for r in outcome.rules if r.rule == "footer"] == []  # the child's leaf was not read


def test_a_struct_column_shows_its_real_type(shadowed):
    outcome = check(shadowed, contract({"a": {"type": "int64", "not_null": True}}))
    typed = rule(outcome, "type", "a")
    assert not typed.passed and typed.observed == "struct<b: int64>"
    assert "struct<b: int64> is not int64" in typed.detail
    assert rule(outcome, "not_null", "a").passed


def test_a_missing_column_fails_naming_it(tmp_path):
    path = write(tmp_path, {"a": [1]})
    outcome = check(path, contract({"a.b": {"not_null": True}}))
    exists = rule(outcome, "exists", "a.b")
    assert not exists.passed and exists.observed == "missing" and f"'a.b' not in {path}" in exists.detail


def test_a_column_missing_from_one_file_of_several_fails_naming_that_file(tmp_path):
    first = write(tmp_path, {"a": [1], "b": [1]}, "first.parquet")
    second = write(tmp_path, {"a": [2]}, "second.parquet")
    exists = rule(check([first, second], contract({"b": {"not_null": True}})), "exists", "b")
    assert not exists.passed and str(second) in exists.detail and str(first) not in exists.detail


def test_an_ambiguous_key_column_fails_the_composite_key(tmp_path):
    path = tmp_path / "twice.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1]), pa.array([2]), pa.array([3])], names=["x", "x", "y"]), path)
    outcome = check(path, contract({"y": {"not_null": True}}, unique=[["x", "y"]]))
    composite = rule(outcome, "unique", "x,y")
    assert not composite.passed and "2 times" in composite.detail and "ambiguous" in composite.detail
    assert rule(outcome, "not_null", "y").passed


NESTED = {
    "struct": pa.array([{"b": 1}, None, {"b": 2}]),
    "list": pa.array([[1, 2], None, []]),
    "map": pa.array([[("k", 1)], None, []], pa.map_(pa.string(), pa.int64())),
}


@pytest.mark.parametrize("kind", list(NESTED))
def test_rules_on_values_fail_clearly_on_nested_columns(tmp_path, kind):
    path = write(tmp_path, {"n": NESTED[kind], "id": [1, 2, 3]})
    stored = pq.read_schema(path).field("n").type  # as read back, e.g. list<element: int64>
    outcome = check(path, contract(
        {"n": {"not_null": True, "unique": True, "accepted_values": ["x"], "min": 0, "max": 1,
               "max_age": "1d", "regex": "x", "references": "other.id"}},
        unique=[["id", "n"]],
    ), reference_values=lambda output, column: pa.array([1]))
    assert outcome.verdict == "FAIL"
    nulls = rule(outcome, "not_null", "n")
    assert (nulls.observed, nulls.failing_sample) == (1, [1])  # not_null applies to any column
    for name in ("unique", "accepted_values", "references"):
        result = rule(outcome, name, "n")
        assert not result.passed and f"{name} applies to columns of a primitive type, not {stored}" in result.detail
    for name, what in (("min", "numeric"), ("max", "numeric"), ("max_age", "timestamp or date"), ("regex", "string")):
        result = rule(outcome, name, "n")
        assert not result.passed and what in result.detail
    composite = rule(outcome, "unique", "id,n")
    assert not composite.passed and "primitive type" in composite.detail


def test_a_rule_whose_kernel_fails_fails_alone_with_the_reason(tmp_path, monkeypatch):
    def broken(self, batch, offset):
        raise pa.ArrowNotImplementedError("no kernel for this type")

    monkeypatch.setattr(rules_module.Regex, "update", broken)
    path = write(tmp_path, {"s": ["a", None]})
    outcome = check(path, contract({"s": {"regex": "a", "not_null": True}}))
    regex = rule(outcome, "regex", "s")
    assert not regex.passed and regex.expected == "a"
    assert "could not be evaluated" in regex.detail and "no kernel for this type" in regex.detail
    assert "s: string" in regex.detail
    assert rule(outcome, "not_null", "s").observed == 1  # the other rules still ran


@pytest.mark.parametrize("kind", list(NESTED))
def test_the_type_rule_shows_the_real_nested_type(tmp_path, kind):
    path = write(tmp_path, {"n": NESTED[kind]})
    typed = rule(check(path, contract({"n": {"type": "string"}})), "type", "n")
    assert not typed.passed and typed.observed == str(pq.read_schema(path).field("n").type)
    assert typed.observed.startswith(kind)
