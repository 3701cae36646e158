"""Uniqueness internals: hashing, exact confirmation of collisions, the dense path."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from batchlane.checking import keys
from tests.checks.helpers import check, contract, rule, write


def test_string_hash_separates_values_and_ignores_slicing():
    values = pa.array(["", "a", "b", "ab", "ba", "aa", None, "a" * 2000, "a" * 1999 + "b", "é"])
    hashes = keys.hash_values(values)
    valid = [h for h, v in zip(hashes, values.to_pylist()) if v is not None]
    assert len(set(valid)) == len(valid)
    assert np.array_equal(keys.hash_values(values.slice(3, 4)), hashes[3:7])
    assert np.array_equal(keys.hash_values(values.cast(pa.large_string())), hashes)


def test_string_hash_is_consistent_across_slices_of_the_batch_loop():
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


def test_composite_collisions_are_confirmed_exactly(tmp_path, colliding_hash):
    path = write(tmp_path, {"a": [1, 1, 2, 2], "b": ["x", "y", "x", "x"]})
    result = rule(check(path, contract(unique=[["a", "b"]])), "unique", "a,b")
    assert (result.failing_count, result.failing_sample) == (1, [[2, "x"]])


def test_dense_range_and_sort_paths_agree():
    rng = np.random.default_rng(7)
    values = rng.integers(100, 400, 1_000)
    batches = [pa.array(values[i : i + 128]) for i in range(0, len(values), 128)]
    reports = []
    for dense in (True, False):
        collector = keys.KeyCollector(["k"], [pa.int64()], capacity=len(values))
        if dense:
            assert collector.use_range(100, 399)
        for batch in batches:
            collector.add([batch])
        reports.append(collector.finish(rescan=lambda columns: ()))
    assert reports[0] == reports[1]
    assert reports[0].duplicate_rows == len(values) - len(np.unique(values))


def test_dense_range_refuses_sparse_keys():
    collector = keys.KeyCollector(["k"], [pa.int64()], capacity=10)
    assert not collector.use_range(0, 10**12)


def test_data_outside_its_footer_range_is_an_error():
    collector = keys.KeyCollector(["k"], [pa.int64()], capacity=10)
    collector.use_range(0, 9)
    with pytest.raises(ValueError, match="footer"):
        collector.add([pa.array([3, 42])])
