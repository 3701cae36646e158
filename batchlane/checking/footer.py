"""Parquet footers: the writer's claims about its data, cross-checked, never trusted.

A footer states row counts, and per row group and column a null count and min/max.
Those are claims: a buggy writer or an edited file can state min 5 over a page holding
-7. So no rule is ever decided from them. They serve two purposes only:

* Cross-check (``FooterCrossCheck``): while the data is scanned anyway, every claim about
  a scanned column is compared with what the data holds. A footer that contradicts its
  data (row count, null count, min or max) is a FAIL naming the file, row group, column,
  the footer's value and the data's value. Numbers, dates, timestamps, booleans and
  decimals must match exactly (every writer states their true extremes; NaN is left out
  of float statistics by the spec). Strings and binaries may be truncated by writers,
  so for them only values outside the stated bounds contradict.
* Hints (``integer_range_hint``) that pick a cheaper algorithm whose answer does not
  depend on the hint being true (the dense uniqueness map falls back when a key lies
  outside the claimed range).

Columns are addressed by top-level field name: leaf columns are found through their
path components (``ParquetReader.column_paths``), never through dotted path strings, so
a struct ``a`` with child ``b`` is never mistaken for a top-level column named ``a.b``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pyarrow.types as pat

from batchlane.checking.arrowtypes import float_extremes, plain
from batchlane.checking.evidence import iso_from_days, iso_from_ns, jsonable, ns_per_unit
from batchlane.receipts import RuleResult

_TIME_UNIT_NS = {"milliseconds": 1_000_000, "microseconds": 1_000, "nanoseconds": 1}
_SHOWN = 5  # contradictions spelled out in a detail


def leaf_indices(parquet: pq.ParquetFile, name: str) -> list[int]:
    """The Parquet leaf columns of the top-level field ``name`` (by path components, not dotted text)."""
    return [index for index, path in enumerate(parquet.reader.column_paths) if path[0] == name]


def is_single_leaf(parquet: pq.ParquetFile, name: str, leaves: Sequence[int]) -> bool:
    """A top-level primitive field: exactly one leaf whose path is the field itself."""
    return len(leaves) == 1 and list(parquet.reader.column_paths[leaves[0]]) == [name]


def cheapest_leaf(parquet: pq.ParquetFile) -> int | None:
    """The leaf column with the fewest stored bytes: read to count rows when no rule reads data."""
    metadata = parquet.metadata
    sizes = [sum(metadata.row_group(g).column(leaf).total_compressed_size for g in range(metadata.num_row_groups))
             for leaf in range(metadata.num_columns)]
    return min(range(len(sizes)), key=sizes.__getitem__) if sizes else None


def _timestamp_scale(parquet: pq.ParquetFile, leaf: int) -> int | None:
    """Stored INT64 timestamp unit -> nanoseconds (the stored unit can differ from the Arrow one)."""
    column = parquet.schema.column(leaf)
    if column.physical_type != "INT64":
        return None  # INT96 has no defined statistics order
    logical = json.loads(column.logical_type.to_json() or "{}")
    return _TIME_UNIT_NS.get(logical.get("timeUnit")) if logical.get("Type") == "Timestamp" else None


class _Domain:
    """How one column's footer min/max and its data values are compared: same kind of Python value.

    ``exact``: the footer must state the data's true min and max; otherwise (byte strings,
    which writers may truncate) it must merely bound them.
    """

    def __init__(self, parquet: pq.ParquetFile, leaf: int, arrow_type: pa.DataType) -> None:
        value = arrow_type.value_type if pat.is_dictionary(arrow_type) else arrow_type
        self.kind: str | None = None
        self.scale = 1
        if pat.is_integer(value) or (pat.is_floating(value) and not pat.is_float16(value)):
            self.kind = "number"
        elif pat.is_boolean(value):
            self.kind = "bool"
        elif pat.is_decimal(value):
            self.kind = "decimal"
        elif pat.is_date(value):
            self.kind = "date"
        elif pat.is_timestamp(value):
            scale = _timestamp_scale(parquet, leaf)
            if scale is not None:
                self.kind, self.scale = "timestamp", scale
        elif (pat.is_string(value) or pat.is_large_string(value) or pat.is_string_view(value)
              or pat.is_binary(value) or pat.is_large_binary(value) or pat.is_binary_view(value)):
            self.kind = "bytes"
        self.exact = self.kind != "bytes"

    def claimed(self, stats: Any) -> tuple[Any, Any] | None:
        """(min, max) the footer states, in this domain; None when it states none usable."""
        if self.kind is None or not stats.has_min_max:
            return None
        try:
            if self.kind in ("number", "bool", "decimal"):
                low, high = stats.min, stats.max
                if isinstance(low, float) and (math.isnan(low) or math.isnan(high)):
                    return None  # a NaN bound (old writers): states nothing comparable
                return low, high
            if self.kind == "date":
                return int(stats.min_raw), int(stats.max_raw)
            if self.kind == "timestamp":
                return int(stats.min_raw) * self.scale, int(stats.max_raw) * self.scale
            return bytes(stats.min_raw), bytes(stats.max_raw)
        except (TypeError, ValueError, OverflowError):
            return None

    def value(self, scalar: pa.Scalar) -> Any:
        if self.kind == "timestamp":
            return scalar.value * ns_per_unit(scalar.type.unit)
        if self.kind == "date":
            return scalar.value if pat.is_date32(scalar.type) else scalar.value // 86_400_000
        if self.kind == "bytes":
            found = scalar.as_py()
            return found.encode() if isinstance(found, str) else bytes(found)
        return scalar.as_py()

    def shown(self, value: Any) -> Any:
        """A plain JSON value for the evidence."""
        if self.kind == "timestamp":
            return iso_from_ns(value)
        if self.kind == "date":
            return iso_from_days(value)
        return jsonable(value)


def _data_bounds(column: pa.ChunkedArray, domain: _Domain, claimed: tuple[Any, Any]) -> tuple[Any, Any] | None:
    """(min, max) of the non-null (non-NaN) values in the data; None when there are none."""
    low: Any = None
    high: Any = None
    for chunk in column.chunks:
        if len(chunk) == chunk.null_count:
            continue
        if pat.is_dictionary(chunk.type):
            # The dictionary's extremes bound the values: for a bounds-only claim, only when they
            # fall outside it do the values actually used need to be looked at.
            values = plain(chunk.dictionary)
            bounds = pc.min_max(values)
            if not domain.exact and bounds["min"].is_valid and claimed[0] <= domain.value(bounds["min"]) \
                    and domain.value(bounds["max"]) <= claimed[1]:
                values = None  # every entry is inside the claim, so every value is
            if values is not None:
                used = pc.unique(chunk.indices.drop_null())
                bounds = pc.min_max(values.take(used))
        elif pat.is_floating(chunk.type):
            extremes = float_extremes(chunk)  # NaN left out, as footers leave it out of min/max
            if extremes is None:
                continue
            low = extremes[0] if low is None else min(low, extremes[0])
            high = extremes[1] if high is None else max(high, extremes[1])
            continue
        else:
            bounds = pc.min_max(plain(chunk))
        found_low, found_high = bounds["min"], bounds["max"]
        if not found_low.is_valid:
            continue
        found_low, found_high = domain.value(found_low), domain.value(found_high)
        low = found_low if low is None else min(low, found_low)
        high = found_high if high is None else max(high, found_high)
    return None if low is None else (low, high)


@dataclass(frozen=True)
class Contradiction:
    column: str | None  # None: the row count
    uri: str
    row_group: int | None  # None: the whole file
    what: str  # rows, null_count, min, max
    footer: Any
    data: Any

    def describe(self) -> str:
        where = self.uri if self.row_group is None else f"{self.uri} row group {self.row_group}"
        column = "" if self.column is None else f" column {self.column!r}"
        return f"{where}{column}: footer {self.what} {self.footer}, data {self.what} {self.data}"


@dataclass
class _ColumnTally:
    """What the data of one column of a row group held so far: nulls and (min, max) in the claim's domain."""

    domain: _Domain
    stats: Any
    claimed: tuple[Any, Any] | None
    nulls: int = 0
    low: Any = None
    high: Any = None

    def extend(self, bounds: tuple[Any, Any] | None) -> None:
        if bounds is None:
            return
        self.low = bounds[0] if self.low is None else min(self.low, bounds[0])
        self.high = bounds[1] if self.high is None else max(self.high, bounds[1])


@dataclass
class _Tally:
    where: tuple[int, int]  # (file, row group)
    rows: int = 0
    columns: dict[str, _ColumnTally] = field(default_factory=dict)


class FooterCrossCheck:
    """Compares each file's footer with the data scanned from it; ``results`` lists the contradictions."""

    def __init__(self, uris: Sequence[str], files: Sequence[pq.ParquetFile]) -> None:
        self.uris = list(uris)
        self.files = list(files)
        self.found: list[Contradiction] = []
        self._domains: dict[tuple[int, str], tuple[int, _Domain] | None] = {}
        self._pending: _Tally | None = None  # the row group whose parts are being read

    def _domain(self, file: int, name: str, arrow_type: pa.DataType) -> tuple[int, _Domain] | None:
        key = (file, name)
        if key not in self._domains:
            parquet = self.files[file]
            leaves = leaf_indices(parquet, name)
            self._domains[key] = (leaves[0], _Domain(parquet, leaves[0], arrow_type)) \
                if is_single_leaf(parquet, name, leaves) else None  # nested: claims are per leaf
        return self._domains[key]

    def row_group(self, file: int, group: int, table: pa.Table) -> None:
        """Compare one row group's claims with its data. A row group read in parts (bounded batches) is passed
        part by part, in order: its claims are compared once its last part is in (the next row group,
        ``file_done`` or ``results`` says so), exactly as for the whole row group at once."""
        if self._pending is not None and self._pending.where != (file, group):
            self._settle()
        if self._pending is None:
            self._pending = _Tally((file, group))
        tally = self._pending
        row_group = self.files[file].metadata.row_group(group)
        tally.rows += table.num_rows
        for name in table.column_names:
            column = table.column(name)
            found = self._domain(file, name, column.type)
            if found is None:
                continue
            leaf, domain = found
            chunk = row_group.column(leaf)
            stats = chunk.statistics if chunk.is_stats_set else None
            if stats is None:
                continue
            seen = tally.columns.setdefault(name, _ColumnTally(domain, stats, domain.claimed(stats)))
            seen.nulls += column.null_count
            if seen.claimed is not None:
                seen.extend(_data_bounds(column, domain, seen.claimed))

    def _settle(self) -> None:
        tally, self._pending = self._pending, None
        if tally is None:
            return
        file, group = tally.where
        uri, row_group = self.uris[file], self.files[file].metadata.row_group(group)
        if tally.rows != row_group.num_rows:
            self.found.append(Contradiction(None, uri, group, "rows", row_group.num_rows, tally.rows))
        for name, seen in tally.columns.items():
            domain, stats, claimed = seen.domain, seen.stats, seen.claimed
            if stats.has_null_count and stats.null_count != seen.nulls:
                self.found.append(Contradiction(name, uri, group, "null_count", stats.null_count, seen.nulls))
            if claimed is None or seen.low is None:
                continue
            if seen.low < claimed[0] or (domain.exact and seen.low != claimed[0]):
                self.found.append(Contradiction(name, uri, group, "min", domain.shown(claimed[0]),
                                                domain.shown(seen.low)))
            if seen.high > claimed[1] or (domain.exact and seen.high != claimed[1]):
                self.found.append(Contradiction(name, uri, group, "max", domain.shown(claimed[1]),
                                                domain.shown(seen.high)))

    def file_done(self, file: int, rows: int) -> None:
        self._settle()
        stated = self.files[file].metadata.num_rows
        if rows != stated:
            self.found.append(Contradiction(None, self.uris[file], None, "rows", stated, rows))

    def results(self) -> list[RuleResult]:
        """One FAIL per column (and one for row counts) whose footer contradicts the data; none when all agree."""
        self._settle()
        by_column: dict[str | None, list[Contradiction]] = {}
        for item in self.found:
            by_column.setdefault(item.column, []).append(item)
        results = []
        for column, items in by_column.items():
            shown = "; ".join(item.describe() for item in items[:_SHOWN])
            more = f"; and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
            results.append(RuleResult(
                rule="footer", column=column, passed=False,
                expected=[_claim(item, item.footer) for item in items[:_SHOWN]],
                observed=[_claim(item, item.data) for item in items[:_SHOWN]],
                failing_count=len(items),
                detail=f"the footer contradicts the data: {shown}{more}",
            ))
        return results


def _claim(item: Contradiction, value: Any) -> dict[str, Any]:
    claim: dict[str, Any] = {"file": item.uri}
    if item.row_group is not None:
        claim["row_group"] = item.row_group
    claim[item.what] = value
    return claim


def integer_range_hint(files: Sequence[pq.ParquetFile], name: str) -> tuple[int, int] | None:
    """The (min, max) the footers claim for a signed integer column, as a hint only.

    Whoever uses it must give the same answer when the claim is false (see ``keys.DenseSeen``).
    """
    low: int | None = None
    high: int | None = None
    for parquet in files:
        leaves = leaf_indices(parquet, name)
        if not is_single_leaf(parquet, name, leaves):
            return None
        metadata = parquet.metadata
        column = parquet.schema.column(leaves[0])
        if column.physical_type not in ("INT32", "INT64"):
            return None
        for group in range(metadata.num_row_groups):
            chunk = metadata.row_group(group).column(leaves[0])
            stats = chunk.statistics if chunk.is_stats_set else None
            if stats is None or not stats.has_null_count:
                return None
            if metadata.row_group(group).num_rows == stats.null_count:
                continue
            if not stats.has_min_max:
                return None
            try:
                group_low, group_high = int(stats.min), int(stats.max)
            except (TypeError, ValueError):
                return None
            low = group_low if low is None else min(low, group_low)
            high = group_high if high is None else max(high, group_high)
    return None if low is None or high is None else (low, high)
