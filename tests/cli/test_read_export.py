"""`lane read` exports: exact JSON Lines, a clear refusal for nested values in CSV, never a partial file."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from batchlane.export import ExportError, jsonl_lines, write_table

NESTED_SPEC = """\
lane: nested
outputs:
  shaped:
    inputs: {rows: data/rows.csv}
    transform: t:shape
"""
NESTED_FILES = {
    "data/rows.csv": "id,a,b\n1,0.1,x\n2,0.30000000000000004,y\n",
    "t.py": "import pandas as pd\n\ndef shape(rows):\n"
            "    rows = rows.copy()\n"
            "    rows['s'] = [{'a': a, 'b': b} for a, b in zip(rows['a'], rows['b'])]\n"
            "    rows['third'] = rows['id'] / 3\n"
            "    rows['at'] = pd.to_datetime(['2026-01-02T03:04:05.123456789Z', '2026-01-02T00:00:00.000000001Z'])\n"
            "    return rows\n",
}


def test_jsonl_keeps_full_precision(write_lane, lane, lane_json, tmp_path):
    spec = write_lane(NESTED_SPEC, NESTED_FILES)
    assert lane_json("run", spec)[0] == 0
    target = tmp_path / "rows.jsonl"
    code, _out, err = lane("read", "shaped", "--out", target)
    assert code == 0, err
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert rows[0]["third"] == 1 / 3 and rows[1]["third"] == 2 / 3
    assert rows[1]["a"] == 0.30000000000000004
    assert rows[0]["at"] == "2026-01-02T03:04:05.123456789Z"
    assert rows[1]["at"] == "2026-01-02T00:00:00.000000001Z"
    assert rows[0]["s"] == {"a": 0.1, "b": "x"}


def test_csv_of_a_struct_column_is_refused_and_leaves_no_file(write_lane, lane, lane_json, tmp_path):
    spec = write_lane(NESTED_SPEC, NESTED_FILES)
    assert lane_json("run", spec)[0] == 0
    target = tmp_path / "rows.csv"
    code, _out, err = lane("read", "shaped", "--out", target)
    assert code == 2
    assert "CSV cannot hold nested values" in err and "'s'" in err and ".jsonl" in err
    assert list(tmp_path.glob("rows.csv*")) == [] and list(tmp_path.glob(".rows.csv*")) == []


def test_a_failed_export_leaves_no_partial_file(tmp_path, monkeypatch):
    table = pa.table({"x": list(range(10))})
    target = tmp_path / "x.jsonl"

    def broken(table):
        yield '{"x": 0}\n'
        raise OSError("disk full")

    monkeypatch.setattr("batchlane.export.jsonl_lines", broken)
    with pytest.raises(ExportError, match="disk full"):
        write_table(table, target)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_kept_when_the_export_fails(tmp_path):
    target = tmp_path / "x.csv"
    target.write_text("previous\n")
    with pytest.raises(ExportError, match="nested"):
        write_table(pa.table({"s": [{"a": 1}]}), target)
    assert target.read_text() == "previous\n" and [p.name for p in tmp_path.iterdir()] == ["x.csv"]


def test_jsonl_values():
    table = pa.table({
        "f": pa.array([0.1, float("nan"), None], pa.float64()),
        "naive_ms": pa.array([1_700_000_000_123, 0, None], pa.timestamp("ms")),
        "zoned_s": pa.array([1_700_000_000, -1, None], pa.timestamp("s", tz="Europe/Berlin")),
        "d": pa.array([Decimal("1.10"), None, Decimal(-2)], pa.decimal128(5, 2)),
        "when": pa.array([datetime(2026, 1, 1).date(), None, None], pa.date32()),
        "cat": pa.array(["a", "b", "a"]).dictionary_encode(),
        "raw": pa.array([b"\x00\xff", None, b""], pa.binary()),
    })
    rows = [json.loads(line) for line in jsonl_lines(table)]
    assert rows[0] == {"f": 0.1, "naive_ms": "2023-11-14T22:13:20.123", "zoned_s": "2023-11-14T22:13:20Z",
                       "d": "1.10", "when": "2026-01-01", "cat": "a", "raw": "AP8="}
    assert rows[1]["f"] is None and rows[1]["naive_ms"] == "1970-01-01T00:00:00.000"
    assert rows[1]["zoned_s"] == "1969-12-31T23:59:59Z"
    assert rows[2] == {"f": None, "naive_ms": None, "zoned_s": None, "d": "-2.00", "when": None, "cat": "a",
                       "raw": ""}


def test_unknown_suffix_is_refused(tmp_path):
    with pytest.raises(ExportError, match="use a .parquet, .csv or .jsonl"):
        write_table(pa.table({"x": [1]}), tmp_path / "x.txt")


def test_an_unwritable_destination_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="cannot write there"):
        write_table(pa.table({"x": [1]}), blocker / "sub" / "x.parquet")
    assert blocker.read_text() == "x"


def test_read_refused_leaves_no_file(lane_dir, lane, lane_json, tmp_path):
    lane_json("run", lane_dir / "lane.yaml", "--outputs", "customers_clean")
    code, _, err = lane("read", "orders_clean", "--out", tmp_path / "o.jsonl")
    assert code == 1 and "refused:" in err
    assert list(tmp_path.glob("*o.jsonl*")) == []
