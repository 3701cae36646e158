"""Files that cannot be checked raise CheckError naming the file and the reason."""

from __future__ import annotations

import pyarrow as pa
import pytest

from batchlane.checks import CheckError
from tests.checks.helpers import check, contract, write

RULES = contract({"id": {"not_null": True}})


def test_missing_file(tmp_path):
    with pytest.raises(CheckError, match=r"nope\.parquet: file not found"):
        check(tmp_path / "nope.parquet", RULES)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.parquet"
    path.write_bytes(b"")
    with pytest.raises(CheckError, match=r"empty\.parquet: empty file"):
        check(path, RULES)


def test_not_parquet(tmp_path):
    path = tmp_path / "junk.parquet"
    path.write_bytes(b"this is not parquet at all" * 10)
    with pytest.raises(CheckError, match=r"junk\.parquet: not a readable Parquet file"):
        check(path, RULES)


def test_truncated_file(tmp_path):
    path = write(tmp_path, {"id": list(range(1000))})
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckError, match="product.parquet"):
        check(path, RULES)


def test_corrupt_data_pages(tmp_path):
    path = write(tmp_path, {"id": pa.array(range(100_000)), "s": [f"value {i}" for i in range(100_000)]},
                 compression="snappy", write_statistics=False)
    data = bytearray(path.read_bytes())
    middle = len(data) // 3
    data[middle : middle + 2_000] = b"\xff" * 2_000
    path.write_bytes(bytes(data))
    with pytest.raises(CheckError, match=r"product\.parquet: row group 0 unreadable"):
        check(path, contract({"id": {"not_null": True}, "s": {"not_null": True}}))


def test_no_files(tmp_path):
    with pytest.raises(CheckError, match="at least one file"):
        check([], RULES)


def test_zero_row_file_is_checked_not_rejected(tmp_path):
    path = write(tmp_path, {"id": pa.array([], pa.int64())})
    outcome = check(path, contract({"id": {"not_null": True, "unique": True, "min": 0}}, row_count={"min": 1}))
    assert outcome.rows == 0
    assert outcome.verdict == "FAIL"
    assert [r.rule for r in outcome.rules if not r.passed] == ["row_count"]


def test_ambiguous_duplicate_column_names_fail_the_rule(tmp_path):
    import pyarrow.parquet as pq

    path = tmp_path / "twice.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["x", "x"]), path)
    outcome = check(path, contract({"x": {"not_null": True}}))
    [result] = outcome.rules
    assert (result.rule, result.passed) == ("exists", False)
    assert "2 times" in result.detail and "ambiguous" in result.detail
