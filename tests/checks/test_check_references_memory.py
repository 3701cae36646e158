"""`references` under a memory budget: the referenced values beyond it are joined on disk, with the same evidence.

Every test checks the same data in memory (no budget) and spilled (a budget of a few KiB, reached by lowering
the floor for the test) and compares the whole rule result. Which path ran is read from
``references.STATS``, never from timing.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchlane.checking import budget, references, spill
from tests.checks.helpers import check, contract, rule, write

TINY = 16 * 1024  # a key budget of 12 KiB: a few hundred referenced values at most in memory


@pytest.fixture
def small_floor(monkeypatch):
    monkeypatch.setattr(budget, "FLOOR", 1024)
    monkeypatch.setattr(spill, "_MIN_PARTITION", 512)
    references.STATS.reset()
    yield
    references.STATS.reset()


def both_ways(path, rules, resolver, budget_bytes=TINY):
    """(in-memory result, spilled result, reference stats of the spilled check) of the references rule."""
    column = next(iter(rules.columns))
    references.STATS.reset()
    in_memory = rule(check(path, rules, reference_values=resolver), "references", column)
    assert references.STATS.spilled == 0, "the unbounded check spilled"
    spilled = rule(check(path, rules, reference_values=resolver, max_memory=budget_bytes), "references", column)
    return in_memory, spilled, references.ReferenceStats(**vars(references.STATS))


def test_integers_with_nulls_a_cast_and_missing_values_give_the_same_evidence(tmp_path, small_floor):
    rng = np.random.default_rng(7)
    known = rng.permutation(5_000).astype(np.int32) * 13  # referenced as int32: cast to the int64 column
    referenced = pa.array(known, mask=rng.random(5_000) < 0.05)  # nulls among the referenced values
    checked = rng.choice(known, 8_000).astype(np.int64)
    checked[[17, 4_000, 4_001, 7_999]] = [-1, 99_999, -1, 12]  # missing: -1 twice, 99999, 12 (not a multiple)
    column = pa.array(checked, mask=rng.random(8_000) < 0.03)
    path = write(tmp_path, {"customer": column}, row_group_size=1_500)
    rules = contract({"customer": {"references": "customers.id"}})
    in_memory, spilled, stats = both_ways(path, rules, lambda output, column: referenced)
    assert stats.spilled == 1 and stats.partitions >= 2
    assert spilled == in_memory
    present = {v for v in referenced.to_pylist() if v is not None}
    missing = [v for v in column.to_pylist() if v is not None and v not in present]  # a null referenced value too
    assert {-1, 99_999, 12} <= set(missing)
    assert not spilled.passed and spilled.expected == "customers.id" and spilled.failing_count == len(missing)
    assert spilled.failing_sample == list(dict.fromkeys(missing))[:5]


def test_strings_dictionary_encoded_and_plain_across_files_give_the_same_evidence(tmp_path, small_floor):
    words = [f"customer-{v}" for v in range(3_000)]
    rng = np.random.default_rng(3)
    first = [words[int(v)] for v in rng.integers(0, 3_000, 5_000)]
    first[10:6_000:7] = [f"ghost-{v % 9}" for v in range(10, 5_000, 7)]  # > 4,096 failing: order of first rows
    second = [None if v % 11 == 0 else words[v % 3_000] for v in range(2_000)]
    second[1_999] = "late-ghost"
    one = write(tmp_path, {"name": pa.array(first).dictionary_encode()}, "one.parquet", row_group_size=2_000)
    two = write(tmp_path, {"name": pa.array(second, pa.large_string())}, "two.parquet", row_group_size=700)
    referenced = pa.chunked_array([pa.array(words[:1_500], pa.large_string()), pa.array(words[1_500:] + [None], pa.large_string())])
    rules = contract({"name": {"references": "customers.name"}})
    in_memory, spilled, stats = both_ways([one, two], rules, lambda output, column: referenced)
    assert stats.spilled == 1
    assert spilled == in_memory
    assert spilled.failing_sample == [f"ghost-{v % 9}" for v in range(10, 45, 7)]
    assert spilled.failing_count == len(range(10, 5_000, 7)) + 1


def test_no_referenced_values_at_all_fails_every_value_both_ways(tmp_path, small_floor):
    path = write(tmp_path, {"k": np.arange(3_000, dtype=np.int64) * 7}, row_group_size=1_000)
    rules = contract({"k": {"references": "other.k"}})
    # all null: the set is empty; 40 KB claimed, so it is spilled though nothing survives the nulls
    in_memory, spilled, stats = both_ways(path, rules, lambda o, c: pa.nulls(5_000, pa.int64()))
    assert stats.spilled == 1 and spilled == in_memory
    assert (spilled.failing_count, spilled.failing_sample) == (3_000, [0, 7, 14, 21, 28])


def test_every_value_present_passes_both_ways(tmp_path, small_floor):
    values = np.arange(6_000, dtype=np.int64) * 1_000_003
    path = write(tmp_path, {"k": values[::-1].copy()}, row_group_size=1_000)
    in_memory, spilled, stats = both_ways(path, contract({"k": {"references": "o.k"}}),
                                          lambda o, c: pa.array(values))
    assert stats.spilled == 1 and spilled == in_memory and spilled.passed


def test_referenced_values_that_do_not_fit_the_column_type_fail_the_same_way(tmp_path, small_floor):
    path = write(tmp_path, {"k": pa.array(np.arange(2_000, dtype=np.int32))})
    too_big = pa.array(np.arange(2_000, dtype=np.int64) + (1 << 40))
    in_memory, spilled, stats = both_ways(path, contract({"k": {"references": "o.k"}}), lambda o, c: too_big)
    assert stats.spilled == 1
    assert spilled == in_memory
    assert not spilled.passed and "referenced values of type int64 do not fit int32" in spilled.detail


def test_partitions_too_big_for_what_is_free_are_split_again(tmp_path, small_floor, monkeypatch):
    """Few partitions for many values: each is split with another salt until it fits, same evidence."""
    monkeypatch.setattr(spill, "MAX_FANOUT", 2)
    values = np.arange(20_000, dtype=np.int64) * 31
    checked = np.concatenate([values[::3], [5, 6, 7]])
    path = write(tmp_path, {"k": checked}, row_group_size=2_500)
    in_memory, spilled, stats = both_ways(path, contract({"k": {"references": "o.k"}}), lambda o, c: pa.array(values))
    assert stats.splits >= 1
    assert spilled == in_memory
    assert (spilled.failing_count, spilled.failing_sample) == (3, [5, 6, 7])


def test_tolerances_judge_the_spilled_count_like_the_in_memory_one(tmp_path, small_floor):
    values = np.arange(4_000, dtype=np.int64)
    checked = values.copy()
    checked[:3] = -5  # 3 of 4,000 missing: within 0.1%
    path = write(tmp_path, {"k": checked})
    rules = contract({"k": {"references": {"value": "o.k", "max_failing_fraction": 0.001}}})
    in_memory, spilled, stats = both_ways(path, rules, lambda o, c: pa.array(values))
    assert stats.spilled == 1 and spilled == in_memory
    assert spilled.passed and spilled.failing_count == 3 and spilled.judged == 4_000


def test_a_semi_join_that_cannot_write_fails_the_rule_with_the_reason(tmp_path, small_floor, monkeypatch):
    import tempfile

    path = write(tmp_path, {"k": np.arange(3_000, dtype=np.int64), "n": np.arange(3_000)})
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-dir"))
    outcome = check(path, contract({"k": {"references": "o.k"}, "n": {"not_null": True}}),
                    reference_values=lambda o, c: pa.array(np.arange(5_000)), max_memory=TINY)
    found = rule(outcome, "references", "k")
    assert outcome.verdict == "FAIL" and not found.passed
    assert found.detail.startswith("references(o.k): spilling values beyond the memory budget to")
    assert "no-such-dir" in found.detail and "TMPDIR" in found.detail
    assert rule(outcome, "not_null", "n").passed


def test_spill_files_are_removed(tmp_path, small_floor, monkeypatch):
    import tempfile

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    path = write(tmp_path, {"k": np.arange(3_000, dtype=np.int64)})
    outcome = check(path, contract({"k": {"references": "o.k"}}),
                    reference_values=lambda o, c: pa.array(np.arange(2_000)), max_memory=TINY)
    assert references.STATS.spilled == 1 and rule(outcome, "references", "k").failing_count == 1_000
    assert list((tmp_path / "tmp").iterdir()) == []


# ----------------------------------------------------------------------------- the referenced column


def test_a_referenced_column_from_parquet_estimates_from_footers_and_reads_in_batches(tmp_path):
    first = write(tmp_path, {"id": np.arange(100_000, dtype=np.int64), "x": np.zeros(100_000)}, "a.parquet")
    second = write(tmp_path, {"id": pa.array(["a", "bb", None])}, "b.parquet")
    column = references.ReferencedColumn.from_parquet([first], "id")
    assert (column.arrow_type, column.estimated_bytes, column.estimated_rows) == (pa.int64(), 800_000, 100_000)
    chunks = list(column.read())
    assert len(chunks) > 1 and sum(len(c) for c in chunks) == 100_000
    assert pa.chunked_array(chunks).to_numpy().tolist() == list(range(100_000))
    strings = references.ReferencedColumn.from_parquet([second], "id")
    assert strings.estimated_bytes >= 3 * 8 and pa.chunked_array(list(strings.read())).to_pylist() == ["a", "bb", None]
    with pytest.raises(KeyError, match="a.parquet has no 'customer'"):
        references.ReferencedColumn.from_parquet([first], "customer")


def test_an_estimate_far_below_the_data_still_ends_in_the_spilled_join(tmp_path, small_floor):
    """Footers are hints: values claimed small but big once read go to disk, with the same answer."""
    values = pa.array(np.arange(6_000, dtype=np.int64))
    lying = references.ReferencedColumn(pa.int64(), 64, 8, lambda: iter([values]))
    path = write(tmp_path, {"k": np.arange(10, 6_010, dtype=np.int64)})
    in_memory, spilled, stats = both_ways(path, contract({"k": {"references": "o.k"}}), lambda o, c: lying)
    assert stats.spilled == 1 and spilled == in_memory and spilled.failing_count == 10


def test_a_missing_referenced_parquet_column_names_the_file(tmp_path):
    path = write(tmp_path, {"other": [1]}, "ref.parquet")
    with pytest.raises(KeyError, match=r"ref\.parquet has no 'id'"):
        references.ReferencedColumn.from_parquet([path], "id")
    assert pq.read_table(path).num_rows == 1


# ----------------------------------------------------------------------------- inside a run


def _lane(folder, check_block: str) -> str:
    (folder / "customers.csv").write_text("id\n" + "\n".join(str(v * 3) for v in range(2_000)) + "\n")
    (folder / "orders.csv").write_text("customer\n" + "\n".join(str(v) for v in range(0, 600, 2)) + "\n")
    (folder / "lane.yaml").write_text(
        "lane: refs\n" + check_block + "outputs:\n"
        "  customers:\n    inputs: {customers: customers.csv}\n"
        "    contract: {columns: {id: {type: int64, unique: true}}}\n"
        "  orders:\n    inputs: {orders: orders.csv}\n"
        "    contract: {columns: {customer: {type: int64, references: customers.id}}}\n")
    return str(folder / "lane.yaml")


def test_references_inside_a_run_under_the_lanes_budget_join_on_disk_with_the_same_evidence(
        tmp_path, lane_home, lane_json, monkeypatch):
    """Referenced values made to look 4 GB a value (HASH_BYTES_PER_VALUE) cannot fit 64MiB: the run's check reads the
    certified customers batch by batch into the semi-join, and its evidence is the unbounded run's."""
    monkeypatch.setattr(references, "HASH_BYTES_PER_VALUE", 1 << 32)
    evidence, spilled = {}, {}
    for name, block in (("bounded", "check: {max_memory: 64MiB}\n"), ("unbounded", "")):
        folder = tmp_path / name
        folder.mkdir()
        references.STATS.reset()
        code, result = lane_json("run", _lane(folder, block))
        assert code == 1 and result["outputs"]["orders"]["state"] == "rejected", result
        assert result["outputs"]["customers"]["state"] in ("certified", "memoized")  # one store for both
        spilled[name] = references.STATS.spilled
        code, shown = lane_json("show", result["run_id"], "orders")
        assert code == 0
        evidence[name] = _references_evidence(shown)
    assert spilled == {"bounded": 1, "unbounded": 0}
    assert evidence["bounded"] == evidence["unbounded"]
    missing = [v for v in range(0, 600, 2) if v % 3]
    assert evidence["bounded"]["failing_count"] == len(missing)
    assert evidence["bounded"]["failing_sample"] == missing[:5]


def _references_evidence(shown) -> dict:
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("rule") == "references":
                found.append({k: node[k] for k in ("observed", "failing_count", "failing_sample", "detail")})
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(shown)
    assert found, "no references result in lane show --json"
    return found[0]
