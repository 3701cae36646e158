"""A row group bigger than the budget is read in bounded parts, with the results of reading it whole.

Budgets of a few KiB are made legal for the test (the floor is lowered), so a row group of some
thousands of rows is "too big". Which path ran is read from ``rowgroups.STATS``; the same check is also
run with the row group read whole under the same budget, and without a budget, and compared entirely.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchlane.checking import budget, rowgroups, spill
from tests.checks import forge
from tests.checks.helpers import check, contract, rule, write

TINY = 16 * 1024  # reader share 4 KiB: parts of ~1,024 rows


@pytest.fixture
def small_floor(monkeypatch):
    monkeypatch.setattr(budget, "FLOOR", 1024)
    monkeypatch.setattr(spill, "_MIN_PARTITION", 512)
    rowgroups.STATS.reset()
    yield
    rowgroups.STATS.reset()


def _comparable(outcome):
    return outcome.verdict, outcome.rows, [r.model_dump() for r in outcome.rules], outcome.files


def three_ways(paths, rules, monkeypatch, **options):
    """(unbounded, bounded read in parts, bounded read whole) outcomes, and the parts stats of the second."""
    rowgroups.STATS.reset()
    unbounded = check(paths, rules, **options)
    assert rowgroups.STATS.row_groups == 0, "the unbounded check read parts"
    parts = check(paths, rules, max_memory=TINY, **options)
    stats = rowgroups.ReadStats(**vars(rowgroups.STATS))
    with monkeypatch.context() as patched:
        patched.setattr(rowgroups, "batch_rows", lambda *args: None)
        whole = check(paths, rules, max_memory=TINY, **options)
    return unbounded, parts, whole, stats


def _product(tmp_path, rows=12_000):
    rng = np.random.default_rng(17)
    ids = np.arange(rows, dtype=np.int64) * 7_919
    ids[[5, rows - 3]] = ids[1_500]  # duplicates far apart: in different parts
    amounts = rng.normal(50, 30, rows)
    status = rng.choice(["NEW", "PAID", "SHIPPED"], rows).astype(object)
    status[[2_000, 11_000]] = "LOST"
    email = np.array([f"user{v}@example.com" for v in range(rows)], dtype=object)
    email[[3, 9_999]] = "not-an-email"
    customer = rng.integers(0, 400, rows)
    columns = {
        "id": pa.array(ids, mask=np.isin(np.arange(rows), [7, 8_000])),
        "amount": amounts,
        "status": pa.array(status).dictionary_encode(),
        "email": pa.array(email),
        "customer": customer,
    }
    return write(tmp_path, columns, row_group_size=rows)  # one row group


RULES = {
    "id": {"not_null": True, "unique": True},
    "amount": {"min": 0, "max": 100},
    "status": {"accepted_values": ["NEW", "PAID", "SHIPPED"]},
    "email": {"regex": r"^[^@\s]+@[^@\s]+$"},
    "customer": {"references": "customers.id"},
}


def test_one_big_row_group_is_read_in_parts_with_the_same_outcome(tmp_path, small_floor, monkeypatch):
    path = _product(tmp_path)
    assert pq.ParquetFile(path).metadata.num_row_groups == 1
    rules = contract(RULES, unique=[["customer", "status"]], row_count={"min": 1},
                     expect=[{"name": "small_customers", "sql": "customer < 390"}])
    unbounded, parts, whole, stats = three_ways(path, rules, monkeypatch,
                                                reference_values=lambda o, c: pa.array(np.arange(395)))
    assert stats.row_groups >= 1 and stats.parts >= 5  # the scan (and any rescan) read parts
    assert _comparable(parts) == _comparable(whole) == _comparable(unbounded)
    assert parts.verdict == "FAIL" and parts.rows == 12_000
    assert rule(parts, "not_null", "id").failing_sample == [7, 8_000]  # row numbers across parts
    expect = rule(parts, "expect", "small_customers")
    assert expect.failing_count > 0 and all(example["customer"] >= 390 for example in expect.failing_sample)
    assert [example["row"] for example in expect.failing_sample] == sorted(e["row"] for e in expect.failing_sample)
    assert rule(parts, "regex", "email").failing_sample == ["not-an-email"]
    assert rule(parts, "references", "customer").failing_count > 0


def test_several_files_and_row_groups_keep_their_row_numbers(tmp_path, small_floor, monkeypatch):
    first = write(tmp_path, {"v": pa.array([1.0] * 5_000 + [None] + [2.0] * 4_000)}, "a.parquet",
                  row_group_size=6_000)
    second = write(tmp_path, {"v": pa.array([3.0] * 3_000 + [None] * 2)}, "b.parquet", row_group_size=10_000)
    unbounded, parts, whole, stats = three_ways([first, second], contract({"v": {"not_null": True}}), monkeypatch)
    assert stats.row_groups >= 2
    assert _comparable(parts) == _comparable(whole) == _comparable(unbounded)
    assert rule(parts, "not_null", "v").failing_sample == [5_000, 12_001, 12_002]


def test_a_footer_contradicting_a_row_group_read_in_parts_still_fails(tmp_path, small_floor, monkeypatch):
    values = pa.array(np.arange(-7, 9_993, dtype=np.int64))
    path = write(tmp_path, {"v": values}, row_group_size=10_000)
    forge.lie_about_min(path, column=0, value=(5).to_bytes(8, "little", signed=True))
    forge.lie_about_null_count(path, column=0, value=3)
    unbounded, parts, whole, stats = three_ways(path, contract({"v": {"not_null": True}}), monkeypatch)
    assert stats.parts >= 5
    assert _comparable(parts) == _comparable(whole) == _comparable(unbounded)
    footer = rule(parts, "footer", "v")
    assert not footer.passed and parts.verdict == "FAIL"
    assert footer.observed == [{"file": str(path), "row_group": 0, "null_count": 0},
                               {"file": str(path), "row_group": 0, "min": -7}]


def test_small_row_groups_are_read_whole_under_a_budget(tmp_path):
    path = write(tmp_path, {"v": np.arange(50_000)}, row_group_size=10_000)
    rowgroups.STATS.reset()
    outcome = check(path, contract({"v": {"not_null": True}}), max_memory=64 << 20)
    assert outcome.verdict == "PASS" and rowgroups.STATS.row_groups == 0


def test_the_part_size_comes_from_the_budget_and_the_column_widths(tmp_path):
    path = write(tmp_path, {"n": np.arange(1_000_000, dtype=np.int64), "s": [f"value-{v}" for v in range(1_000_000)]},
                 row_group_size=1_000_000, use_dictionary=False)
    metadata = pq.ParquetFile(path).metadata
    narrow = rowgroups.bytes_per_row(metadata, 0, [0], [])
    wide = rowgroups.bytes_per_row(metadata, 0, [0, 1], [])
    assert 8 < narrow < 9 and wide > narrow + 12
    with budget.bounded(64 << 20) as limit:
        assert limit is not None
        assert rowgroups.batch_rows(metadata, 0, [0], []) is None  # 8.1 MB fits half of the 16 MiB share
        rows = rowgroups.batch_rows(metadata, 0, [0, 1], [])
        assert rows is not None and rows * wide <= limit.reader_reserve // 4 + wide
    assert rowgroups.batch_rows(metadata, 0, [0, 1], []) is None  # no budget: whole
