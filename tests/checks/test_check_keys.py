"""Uniqueness internals: hashing, exact confirmation of collisions, the dense path."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from batchlane.checking import hashing, keys
from batchlane.checking.arrowtypes import plain
from tests.checks.helpers import check, contract, rule, write


@pytest.mark.parametrize("hasher", ["_hash_binary_numpy", "_hash_binary_polars"])
def test_string_hash_separates_values_and_ignores_slicing(monkeypatch, hasher):
    monkeypatch.setattr(hashing, "hash_binary", getattr(hashing, hasher))
    values = pa.array(["", "a", "b", "ab", "ba", "aa", None, "a" * 2000, "a" * 1999 + "b", "é"])
    hashes = keys.hash_values(values)
    valid = [h for h, v in zip(hashes, values.to_pylist(), strict=True) if v is not None]
    assert len(set(valid)) == len(valid)
    assert np.array_equal(keys.hash_values(values.slice(3, 4)), hashes[3:7])
    assert np.array_equal(keys.hash_values(values.cast(pa.large_string())), hashes)


def test_dictionary_columns_hash_like_their_values():
    values = pa.array(["p", "q", None, "p"])
    encoded = keys.hash_values(values.dictionary_encode())
    plain_hashes = keys.hash_values(values)
    assert encoded[0] == encoded[3] == plain_hashes[0] and encoded[1] == plain_hashes[1]


def test_string_hash_is_consistent_across_slices_of_the_batch_loop(monkeypatch):
    monkeypatch.setattr(hashing, "hash_binary", hashing._hash_binary_numpy)
    big = pa.array([f"v{i % 70_000}" for i in range(140_000)])
    hashes = keys.hash_values(big)
    assert np.array_equal(hashes[:70_000], hashes[70_000:])


@pytest.fixture
def colliding_hash(monkeypatch):
    """Every value hashes alike: only the exact confirmation can tell keys apart."""
    monkeypatch.setattr(keys, "hash_values", lambda array: np.zeros(len(array), dtype=np.uint64))


def test_hash_collisions_are_confirmed_exactly(tmp_path, colliding_hash):
    distinct = write(tmp_path, {"s": ["a", "b", "c", None, None]}, "distinct.parquet")
    assert rule(check(distinct, contract({"s": {"unique": True}})), "unique", "s").passed
    repeated = write(tmp_path, {"s": ["a", "b", "a", "c", "b", "a"]}, row_group_size=2)
    result = rule(check(repeated, contract({"s": {"unique": True}})), "unique", "s")
    assert (result.failing_count, sorted(result.failing_sample)) == (3, ["a", "b"])


def test_some_hashes_shared_by_different_keys_others_by_true_duplicates(tmp_path, monkeypatch):
    def by_first_letter(array):
        return np.array([ord(v[0]) if v else 0 for v in plain(array).to_pylist()], dtype=np.uint64)

    monkeypatch.setattr(keys, "hash_values", by_first_letter)
    path = write(tmp_path, {"s": ["apple", "avocado", "apple", "banana", "cherry", "cherry", "blue", None]},
                 row_group_size=3)
    result = rule(check(path, contract({"s": {"unique": True}})), "unique", "s")
    assert result.failing_count == 2  # apple twice, cherry twice; avocado/banana/blue only share a hash
    assert result.failing_sample == ["apple", "cherry"]  # in order of first appearance
    assert "5 distinct keys in 7 rows" in result.detail and "2 keys repeat" in result.detail


def test_numpy_string_hash_fallback_agrees_on_equality():
    values = pa.array(["x", "y", "x", "", "", "long" * 500, "long" * 500])
    for hasher in (hashing._hash_binary_numpy, hashing._hash_binary_polars):
        hashes = hasher(values)
        assert hashes[0] == hashes[2] and hashes[3] == hashes[4] and hashes[5] == hashes[6]
        assert len({hashes[0], hashes[1], hashes[3], hashes[5]}) == 4


def test_composite_collisions_are_confirmed_exactly(tmp_path, colliding_hash):
    path = write(tmp_path, {"a": [1, 1, 2, 2], "b": ["x", "y", "x", "x"]})
    result = rule(check(path, contract(unique=[["a", "b"]])), "unique", "a,b")
    assert (result.failing_count, result.failing_sample) == (1, [[2, "x"]])


def test_dense_range_and_sort_paths_agree():
    rng = np.random.default_rng(7)
    values = rng.integers(100, 400, 1_000)
    batches = [pa.array(values[i : i + 128]) for i in range(0, len(values), 128)]

    def rescan(columns):
        assert columns == ("k",)
        return (pa.record_batch({"k": batch}) for batch in batches)

    reports = []
    for dense in (True, False):
        collector = keys.KeyCollector(["k"], [pa.int64()], capacity=len(values))
        if dense:
            assert collector.use_range(100, 399)
        for batch in batches:
            collector.add([batch])
        reports.append(collector.finish(rescan))
    assert reports[0] == reports[1]
    assert reports[0].duplicate_rows == len(values) - len(np.unique(values))


def test_dense_range_without_duplicates_needs_no_rescan():
    collector = keys.KeyCollector(["k"], [pa.int64()], capacity=4)
    assert collector.use_range(10, 13)
    collector.add([pa.array([13, 11, None, 10])])
    report = collector.finish(rescan=lambda columns: pytest.fail("rescanned a unique key"))
    assert (report.non_null, report.duplicate_rows) == (3, 0)


def test_dense_range_refuses_sparse_keys():
    collector = keys.KeyCollector(["k"], [pa.int64()], capacity=10)
    assert not collector.use_range(0, 10**12)


def test_a_key_outside_the_claimed_range_falls_back_to_sorting_all_keys():
    batches = [pa.array([3, 42]), pa.array([7, 42, None])]
    collector = keys.KeyCollector(["k"], [pa.int64()], capacity=10)
    assert collector.use_range(0, 9)  # the footer's claim, false for 42
    for batch in batches:
        collector.add([batch])
    report = collector.finish(rescan=lambda columns: (pa.record_batch({"k": batch}) for batch in batches))
    assert (report.non_null, report.duplicate_rows, report.sample) == (4, 1, [42])


def test_a_claimed_range_too_large_for_memory_is_not_used():
    collector = keys.KeyCollector(["k"], [pa.int64()], capacity=10**12)  # a footer can claim any row count
    assert not collector.use_range(0, 10**11)


def _reference(rows):
    """Duplicate rows and repeated keys the slow, obvious way."""
    from collections import Counter

    counts = Counter(row for row in rows if None not in row)
    return sum(c - 1 for c in counts.values()), sum(1 for c in counts.values() if c > 1), sum(counts.values())


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("collide", [False, True], ids=["real-hash", "first-letter-hash"])
def test_uniqueness_matches_a_plain_python_count(tmp_path, monkeypatch, seed, collide):
    if collide:
        monkeypatch.setattr(keys, "hash_values", lambda array: np.array(
            [hash(str(v)[:1]) & 0xFFFF for v in plain(array).to_pylist()], dtype=np.uint64))
    rng = np.random.default_rng(seed)
    size = 2_000
    numbers = [None if rng.random() < 0.05 else int(v) for v in rng.integers(0, 1_500, size)]
    words = [None if rng.random() < 0.05 else f"w{int(v)}" for v in rng.integers(0, 60, size)]
    path = write(tmp_path, {"n": pa.array(numbers, pa.int64()), "w": words}, row_group_size=333)
    rules = contract({"n": {"unique": True}, "w": {"unique": True}}, unique=[["n", "w"]])
    for statistics in (True, False):
        outcome = check(path, rules, _footer_hints=statistics)
        for label, rows in (("n", [(v,) for v in numbers]), ("w", [(v,) for v in words]),
                            ("n,w", list(zip(numbers, words, strict=True)))):
            duplicates, repeated, non_null = _reference(rows)
            result = rule(outcome, "unique", label)
            assert result.failing_count == duplicates, (label, statistics)
            assert f"{non_null - duplicates} distinct keys in {non_null} rows" in result.detail
            assert (f"{repeated} keys repeat" in result.detail) if repeated else ("repeat" not in result.detail)
            assert len(result.failing_sample) == min(5, repeated)
