"""Uniqueness of single and composite keys with ~8 bytes of memory per non-null row.

Every key becomes one 64-bit integer: integer-like values (ints, timestamps, dates,
bools, float bit patterns) map exactly; strings and composite keys are hashed.
The integers are gathered into one preallocated array and sorted in place
(numpy's SIMD sort: ~0.13 s for 8M). Equal neighbours are duplicates when the
mapping is exact; when hashed they are only candidates, confirmed exactly by a
second pass that keeps just the rows whose hash collided.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from batchlane.checking.arrowtypes import plain
from batchlane.checking.evidence import iso_from_days, iso_from_ns, ns_per_unit, scalar_value

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_LENGTH_MIX = np.uint64(0xD6E8FEB86659FD93)
_BYTE_WEIGHTS = np.random.default_rng(0x5EED).integers(1, 2**63, size=1024, dtype=np.uint64) | np.uint64(1)
_STRING_SLICE = 65_536  # rows hashed at once: bounds the per-byte temporaries


def mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads every input bit over the whole word (wrapping arithmetic)."""
    values = (values ^ (values >> np.uint64(30))) * _M1
    values = (values ^ (values >> np.uint64(27))) * _M2
    return values ^ (values >> np.uint64(31))


def is_exact_domain(arrow_type: pa.DataType) -> bool:
    return (
        pat.is_integer(arrow_type) or pat.is_timestamp(arrow_type) or pat.is_date(arrow_type)
        or pat.is_boolean(arrow_type) or pat.is_floating(arrow_type)
    )


def exact_keys(array: pa.Array) -> np.ndarray:
    """int64 image of every slot (null slots hold arbitrary values) of an integer-like array."""
    kind = array.type
    if pat.is_timestamp(kind) or pat.is_date64(kind):
        return array.cast(pa.int64()).to_numpy(zero_copy_only=False)
    if pat.is_date32(kind):
        return array.cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
    if pat.is_boolean(kind):
        return array.fill_null(False).to_numpy(zero_copy_only=False).astype(np.int64)
    if pat.is_floating(kind):
        values = array.fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64) + 0.0  # -0.0 -> 0.0
        values[np.isnan(values)] = np.nan  # one NaN bit pattern
        return values.view(np.int64)
    values = (array.fill_null(0) if array.null_count else array).to_numpy(zero_copy_only=False)
    return values.view(np.int64) if values.dtype == np.uint64 else values.astype(np.int64, copy=False)


def _decode_exact(arrow_type: pa.DataType) -> Callable[[int], Any]:
    if pat.is_timestamp(arrow_type):
        scale = ns_per_unit(arrow_type.unit)
        return lambda value: iso_from_ns(value * scale)
    if pat.is_date32(arrow_type):
        return iso_from_days
    if pat.is_date64(arrow_type):
        return lambda value: iso_from_days(value // 86_400_000)
    if pat.is_boolean(arrow_type):
        return bool
    if pat.is_floating(arrow_type):
        return lambda value: scalar_value(pa.scalar(np.int64(value).view(np.float64)))
    if arrow_type == pa.uint64():
        return lambda value: int(np.int64(value).view(np.uint64))
    return int


def _hash_binary_slice(array: pa.Array) -> np.ndarray:
    offset_type = np.int64 if pat.is_large_string(array.type) or pat.is_large_binary(array.type) else np.int32
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[array.offset : array.offset + len(array) + 1]
    offsets = offsets.astype(np.int64)
    first, last = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(data_buffer, dtype=np.uint8)[first:last] if data_buffer is not None else np.empty(0, np.uint8)
    relative = offsets - first
    lengths = np.diff(relative)
    # Position of each byte inside its value: a position-weighted sum tells "ab" from "ba".
    position = np.arange(len(data), dtype=np.int64) - np.repeat(relative[:-1], lengths)
    weights = _BYTE_WEIGHTS[position & 1023] + (position >> 10).astype(np.uint64) * _GOLDEN
    sums = np.zeros(len(data) + 1, dtype=np.uint64)
    np.cumsum((data.astype(np.uint64) + np.uint64(1)) * weights, out=sums[1:])
    totals = sums[relative[1:]] - sums[relative[:-1]]
    return mix64(totals ^ (lengths.astype(np.uint64) * _LENGTH_MIX))


def hash_values(array: pa.Array) -> np.ndarray:
    """A uint64 hash of every slot; equal values give equal hashes."""
    array = plain(array)
    if is_exact_domain(array.type):
        return mix64(exact_keys(array).view(np.uint64))
    if not (pat.is_string(array.type) or pat.is_large_string(array.type)
            or pat.is_binary(array.type) or pat.is_large_binary(array.type)):
        array = array.cast(pa.large_string())  # decimals and the like: hash their text
    out = np.empty(len(array), dtype=np.uint64)
    for start in range(0, len(array), _STRING_SLICE):
        part = array.slice(start, _STRING_SLICE)
        out[start : start + len(part)] = _hash_binary_slice(part)
    return out


def _valid_mask(arrays: Sequence[pa.Array]) -> np.ndarray | None:
    """Rows with no null in any key column; None when every row qualifies."""
    mask = None
    for array in arrays:
        if array.null_count:
            valid = array.is_valid().to_numpy(zero_copy_only=False)
            mask = valid if mask is None else mask & valid
    return mask


def row_keys(arrays: Sequence[pa.Array], exact: bool) -> np.ndarray:
    if exact:
        return exact_keys(plain(arrays[0]))
    combined = hash_values(arrays[0])
    for array in arrays[1:]:
        combined = mix64(combined * _GOLDEN + hash_values(array))
    return combined.view(np.int64)


@dataclass
class DuplicateReport:
    non_null: int
    duplicate_rows: int      # non_null - distinct
    repeated_keys: int       # distinct keys seen more than once
    sample: list[Any] = field(default_factory=list)


class DenseSeen:
    """Integer keys known (from exact footer statistics) to lie in a small range.

    One byte per possible key, filled as batches stream by: no key array to keep and
    nothing to sort. Used when the range is at most 8 keys per row, so memory never
    exceeds the sort path's 8 bytes per row.
    """

    def __init__(self, low: int, high: int) -> None:
        self.low = low
        self.seen = np.zeros(high - low + 1, dtype=bool)
        self.repeated: np.ndarray | None = None  # keys seen more than once, allocated on first repeat
        self.rows = 0
        self.distinct = 0

    def add(self, keys: np.ndarray) -> None:
        if len(keys) == 0:
            return
        index = keys - self.low
        if index.min() < 0 or index.max() >= len(self.seen):
            raise ValueError("key outside the range the Parquet footer statistics state")
        before = self.seen[index]
        self.seen[index] = True
        distinct = int(np.count_nonzero(self.seen))
        repeats_of_earlier = int(np.count_nonzero(before))
        repeats_within = len(index) - repeats_of_earlier - (distinct - self.distinct)
        if repeats_of_earlier or repeats_within:
            if self.repeated is None:
                self.repeated = np.zeros(len(self.seen), dtype=bool)
            self.repeated[index[before]] = True
            if repeats_within:
                fresh, counts = np.unique(index[~before], return_counts=True)
                self.repeated[fresh[counts > 1]] = True
        self.rows += len(index)
        self.distinct = distinct

    def report(self) -> DuplicateReport:
        if self.repeated is None:
            return DuplicateReport(non_null=self.rows, duplicate_rows=0, repeated_keys=0)
        repeated = np.flatnonzero(self.repeated)
        return DuplicateReport(
            non_null=self.rows,
            duplicate_rows=self.rows - self.distinct,
            repeated_keys=len(repeated),
            sample=[int(value) + self.low for value in repeated[:5]],
        )


class KeyCollector:
    """Feed key columns batch by batch, then ``finish`` for the duplicate report."""

    def __init__(self, columns: Sequence[str], types: Sequence[pa.DataType], capacity: int) -> None:
        self.columns = tuple(columns)
        self.types = list(types)
        self.exact = len(columns) == 1 and is_exact_domain(plain(pa.array([], type=types[0])).type)
        self._capacity = capacity
        self._keys: np.ndarray | None = None
        self._filled = 0
        self._dense: DenseSeen | None = None

    def use_range(self, low: int, high: int) -> bool:
        """Switch to the streaming dense path when exact bounds of a signed integer key allow it."""
        if self.exact and pat.is_signed_integer(self.types[0]) and high - low + 1 <= 8 * max(self._capacity, 8192):
            self._dense = DenseSeen(low, high)
            return True
        return False

    def add(self, arrays: Sequence[pa.Array]) -> None:
        keys = row_keys(arrays, self.exact)
        mask = _valid_mask(arrays)
        if mask is not None:
            keys = keys[mask]
        if self._dense is not None:
            self._dense.add(keys)
            return
        if self._keys is None:
            self._keys = np.empty(self._capacity, dtype=np.int64)
        end = self._filled + len(keys)
        if end > len(self._keys):  # more rows than the footer announced: grow rather than fail
            self._keys = np.resize(self._keys, max(end, 2 * len(self._keys)))
        self._keys[self._filled : end] = keys
        self._filled = end

    def finish(self, rescan: Callable[[tuple[str, ...]], Iterable[pa.RecordBatch]]) -> DuplicateReport:
        if self._dense is not None:
            return self._dense.report()
        keys = self._keys[: self._filled] if self._keys is not None else np.empty(0, dtype=np.int64)
        keys.sort()  # in place: no second copy of the keys
        repeats = keys[1:][keys[1:] == keys[:-1]]
        non_null = len(keys)
        if len(repeats) == 0:
            return DuplicateReport(non_null=non_null, duplicate_rows=0, repeated_keys=0)
        repeated = np.unique(repeats)
        if self.exact:
            decode = _decode_exact(plain(pa.array([], type=self.types[0])).type)
            del self._keys
            return DuplicateReport(
                non_null=non_null,
                duplicate_rows=len(repeats),
                repeated_keys=len(repeated),
                sample=[decode(int(value)) for value in repeated[:5]],
            )
        del self._keys
        return self._confirm(non_null, repeated, rescan)

    def _confirm(self, non_null: int, candidates: np.ndarray, rescan: Callable) -> DuplicateReport:
        """Hashes collided: count duplicates exactly over just the colliding rows."""
        kept: list[pa.Table] = []
        for batch in rescan(self.columns):
            arrays = [plain(batch.column(name)) for name in self.columns]
            selected = np.isin(row_keys(arrays, exact=False), candidates)
            mask = _valid_mask(arrays)
            if mask is not None:
                selected &= mask
            if selected.any():
                chosen = pa.array(selected)
                kept.append(pa.table({name: array.filter(chosen) for name, array in zip(self.columns, arrays)}))
        if not kept:
            return DuplicateReport(non_null=non_null, duplicate_rows=0, repeated_keys=0)
        groups = pa.concat_tables(kept).group_by(list(self.columns)).aggregate([([], "count_all")])
        repeated = groups.filter(pc.greater(groups["count_all"], 1))
        duplicate_rows = int(pc.sum(pc.subtract(repeated["count_all"], 1)).as_py() or 0)
        sample = []
        for row in range(min(5, repeated.num_rows)):
            values = [scalar_value(repeated[name][row]) for name in self.columns]
            sample.append(values[0] if len(values) == 1 else values)
        return DuplicateReport(non_null, duplicate_rows, repeated.num_rows, sample)
