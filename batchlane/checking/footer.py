"""Exact facts from Parquet footers, so a rule can be settled without reading data.

Only what the footer states exactly is used: null counts, and min/max of columns
whose statistics are plain integers (signed ints, INT64 timestamps, dates).
Never floats (footer min/max skip NaN, so they cannot rule NaN out), never strings
(some writers truncate string statistics), never unsigned (legacy writers sorted
them as signed). Anything missing in any row group means "unknown": scan instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.types as pat

_TIME_UNIT_NS = {"milliseconds": 1_000_000, "microseconds": 1_000, "nanoseconds": 1}


@dataclass(frozen=True)
class ColumnFooter:
    """Exact statistics of one column over all files; None = not known exactly.

    ``minimum``/``maximum`` are integers in the column's comparison domain:
    the integer itself, nanoseconds since the epoch for timestamps, days for dates.
    ``bounds_known`` with ``minimum is None`` means the column holds no values.
    """

    rows: int
    null_count: int | None
    bounds_known: bool
    minimum: int | None = None
    maximum: int | None = None

    def merge(self, other: ColumnFooter) -> ColumnFooter:
        nulls = None if self.null_count is None or other.null_count is None else self.null_count + other.null_count
        known = self.bounds_known and other.bounds_known
        lows = [v for v in (self.minimum, other.minimum) if v is not None]
        highs = [v for v in (self.maximum, other.maximum) if v is not None]
        return ColumnFooter(
            rows=self.rows + other.rows,
            null_count=nulls,
            bounds_known=known,
            minimum=min(lows) if known and lows else None,
            maximum=max(highs) if known and highs else None,
        )


def _leaf_index(parquet: pq.ParquetFile, name: str) -> int | None:
    schema = parquet.schema
    for index in range(len(schema)):
        if schema.column(index).path == name:
            return index
    return None


def _raw_scale(parquet: pq.ParquetFile, index: int, arrow_type: pa.DataType) -> int | None:
    """Multiplier from the stored integer to the comparison domain, or None if untrusted."""
    column = parquet.schema.column(index)
    if pat.is_signed_integer(arrow_type) and column.physical_type in ("INT32", "INT64"):
        return 1
    if pat.is_date(arrow_type) and column.physical_type == "INT32":
        return 1  # Parquet DATE is days since the epoch whatever the Arrow width
    if pat.is_timestamp(arrow_type) and column.physical_type == "INT64":
        # The stored unit can differ from the Arrow unit read back (seconds are stored as ms).
        logical = json.loads(column.logical_type.to_json() or "{}")
        if logical.get("Type") == "Timestamp":
            return _TIME_UNIT_NS.get(logical.get("timeUnit"))
    return None


def column_footer(parquet: pq.ParquetFile, name: str, arrow_type: pa.DataType) -> ColumnFooter:
    metadata = parquet.metadata
    index = _leaf_index(parquet, name)
    if index is None:
        return ColumnFooter(rows=metadata.num_rows, null_count=None, bounds_known=False)
    scale = _raw_scale(parquet, index, arrow_type)
    nulls: int | None = 0
    bounds_known = scale is not None
    low: int | None = None
    high: int | None = None
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        chunk = row_group.column(index)
        stats = chunk.statistics if chunk.is_stats_set else None
        if stats is None or not stats.has_null_count:
            return ColumnFooter(rows=metadata.num_rows, null_count=None, bounds_known=False)
        nulls += stats.null_count
        if row_group.num_rows == stats.null_count:
            continue  # no values in this row group: nothing to bound
        if not bounds_known or not stats.has_min_max:
            bounds_known = False
            continue
        group_low, group_high = int(stats.min_raw) * scale, int(stats.max_raw) * scale
        low = group_low if low is None else min(low, group_low)
        high = group_high if high is None else max(high, group_high)
    return ColumnFooter(
        rows=metadata.num_rows,
        null_count=nulls,
        bounds_known=bounds_known,
        minimum=low if bounds_known else None,
        maximum=high if bounds_known else None,
    )
