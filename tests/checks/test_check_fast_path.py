"""Footer statistics are a shortcut, never a different answer: fast path == full scan."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

import batchlane.checking.engine as checks
from tests.checks.helpers import check, contract, rule, write

RULES = contract(
    {
        "id": {"type": "int64", "not_null": True, "unique": True, "min": 0, "max": 1_000_000},
        "small": {"type": "int32", "not_null": True, "min": -5, "max": 5},
        "amount": {"type": "float64", "not_null": True, "min": 0, "max": 100},
        "at": {"type": "timestamp", "not_null": True, "max_age": "30d"},
        "day": {"type": "date", "max_age": "400d"},
        "status": {"type": "string", "not_null": True, "accepted_values": ["a", "b"], "regex": "^[ab]$"},
        "label": {"unique": True},
    },
    unique=[["id", "status"]],
    row_count={"min": 1},
)


def _columns(rows: int, seed: int, *, nulls: bool, nan: bool, dirty: bool) -> dict[str, pa.Array]:
    rng = np.random.default_rng(seed)
    ids = rng.permutation(rows).astype(np.int64)
    if dirty and rows > 3:
        ids[rows - 1] = ids[0]  # a duplicate far apart (other row group)
        ids[1] = 5_000_000       # above max
    amount = rng.random(rows) * 100
    if nan and rows:
        amount[rows // 2] = np.nan
    null_mask = (rng.random(rows) < 0.1) if nulls else None
    base = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    at = [base - dt.timedelta(hours=int(h)) for h in rng.integers(0, 2000, rows)]
    status = rng.choice(["a", "b", "c"] if dirty else ["a", "b"], rows)
    return {
        "id": pa.array(ids, mask=null_mask),
        "small": pa.array(rng.integers(-5, 6 if not dirty else 9, rows).astype(np.int32)),
        "amount": pa.array(amount, mask=null_mask),
        "at": pa.array(at, pa.timestamp("ms", tz="UTC")),
        "day": pa.array([d.date() for d in at], pa.date32()),
        "status": pa.array(status),
        "label": pa.array([f"k{i % (rows - 1 if dirty and rows > 2 else rows or 1)}" for i in range(rows)]),
    }


CASES = {
    "clean": dict(rows=3_000, nulls=False, nan=False, dirty=False),
    "nulls": dict(rows=3_000, nulls=True, nan=False, dirty=False),
    "nan": dict(rows=3_000, nulls=False, nan=True, dirty=False),
    "dirty": dict(rows=3_000, nulls=True, nan=True, dirty=True),
    "empty": dict(rows=0, nulls=False, nan=False, dirty=False),
    "one_row": dict(rows=1, nulls=False, nan=False, dirty=False),
}


@pytest.mark.parametrize("statistics", [True, False], ids=["with-stats", "no-stats"])
@pytest.mark.parametrize("row_group_size", [7_000, 250], ids=["one-group", "many-groups"])
@pytest.mark.parametrize("case", list(CASES))
def test_statistics_and_full_scan_agree(tmp_path, case, row_group_size, statistics):
    options = CASES[case]
    columns = _columns(options["rows"], seed=len(case), nulls=options["nulls"], nan=options["nan"], dirty=options["dirty"])
    path = write(tmp_path, columns, write_statistics=statistics, row_group_size=row_group_size)
    fast = check(path, RULES)
    full = check(path, RULES, _use_statistics=False)
    assert fast.verdict == full.verdict
    assert fast.rules == full.rules
    assert fast.rows == full.rows == options["rows"]
    if case == "clean":
        assert fast.verdict == "PASS"
    if case in ("nulls", "nan", "dirty"):
        assert fast.verdict == "FAIL"


def test_several_files_agree(tmp_path):
    first = write(tmp_path, _columns(500, 1, nulls=True, nan=False, dirty=False), "a.parquet", row_group_size=100)
    second = write(tmp_path, _columns(500, 2, nulls=False, nan=True, dirty=True), "b.parquet", write_statistics=False)
    fast, full = check([first, second], RULES), check([first, second], RULES, _use_statistics=False)
    assert fast.rules == full.rules


@pytest.fixture
def columns_read(monkeypatch):
    seen: list[tuple[str, ...]] = []
    original = checks._batches

    def spy(product, columns):
        seen.append(tuple(columns))
        return original(product, columns)

    monkeypatch.setattr(checks, "_batches", spy)
    return seen


def test_exact_statistics_spare_reading_the_columns(tmp_path, columns_read):
    rows = 2_000
    path = write(tmp_path, {
        "id": pa.array(np.arange(rows, dtype=np.int64)),
        "at": pa.array(np.full(rows, 1_800_000_000_000, dtype=np.int64), pa.timestamp("ms", tz="UTC")),
        "amount": pa.array(np.linspace(0, 1, rows)),
    }, row_group_size=300)
    rules = contract({"id": {"not_null": True, "min": 0, "max": rows}, "at": {"not_null": True, "max_age": "1000d"},
                      "amount": {"not_null": True, "min": 0, "max": 1}})
    outcome = check(path, rules)
    assert outcome.verdict == "PASS"
    assert columns_read == [("amount",)]  # floats are scanned: footer min/max cannot rule out NaN
    columns_read.clear()
    check(path, rules, _use_statistics=False)
    assert set(columns_read[0]) == {"id", "at", "amount"}


def test_without_statistics_everything_is_scanned(tmp_path, columns_read):
    path = write(tmp_path, {"id": pa.array([1, 2], pa.int64())}, write_statistics=False)
    assert check(path, contract({"id": {"not_null": True}})).verdict == "PASS"
    assert columns_read == [("id",)]


def test_footer_violation_is_rescanned_for_evidence(tmp_path):
    path = write(tmp_path, {"v": pa.array([1, 50, 2, 60], pa.int64())}, row_group_size=2)
    result = rule(check(path, contract({"v": {"max": 10}})), "max", "v")
    assert (result.observed, result.failing_count, result.failing_sample) == (60, 2, [50, 60])


def test_seconds_timestamps_read_back_as_milliseconds_keep_their_value(tmp_path):
    moment = dt.datetime(2026, 11, 27, 11, 0, 1, tzinfo=dt.UTC)
    path = write(tmp_path, {"t": pa.array([moment], pa.timestamp("s", tz="UTC"))})
    fast = rule(check(path, contract({"t": {"max_age": "1d"}})), "max_age", "t")
    full = rule(check(path, contract({"t": {"max_age": "1d"}}), _use_statistics=False), "max_age", "t")
    assert fast == full
    assert fast.observed["newest"] == "2026-11-27T11:00:01+00:00"


def test_nanosecond_timestamps_keep_full_precision(tmp_path):
    path = write(tmp_path, {"t": pa.array([1_700_000_000_123_456_789], pa.timestamp("ns"))})
    fast = rule(check(path, contract({"t": {"max_age": "10000d"}})), "max_age", "t")
    assert fast.observed["newest"] == "2023-11-14T22:13:20.123456789+00:00"
    assert fast == rule(check(path, contract({"t": {"max_age": "10000d"}}), _use_statistics=False), "max_age", "t")
