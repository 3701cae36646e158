"""Uniqueness of single and composite keys with ~8 bytes of memory per non-null row.

Every key becomes one 64-bit integer (``hashing``): integer-like values map
exactly; strings and composite keys are hashed. The integers are gathered
into one preallocated array and sorted in place (numpy's SIMD sort: ~0.13 s for 8M).
Equal neighbours are duplicates when the mapping is exact. When hashed they are
only candidates: a second pass, over just the rows with a repeated hash, proves
each repeated hash belongs to one key, and recounts exactly (group-by) the rare
hashes that two different keys share. Unique keys (the passing case) need no
second pass at all.

When the footers claim a range for a signed integer key of at most 8x the row count,
keys stream into a byte map instead (``DenseSeen``): no key array, no sort. The claim
is only a hint: a key outside it abandons the byte map and the keys are rescanned
the sorting way, so a lying footer costs time, never a different answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from batchlane.checking import budget, spill
from batchlane.checking.arrowtypes import plain
from batchlane.checking.evidence import iso_from_days, iso_from_ns, ns_per_unit, scalar_value
from batchlane.checking.hashing import combine, exact_keys, hash_values, is_exact_domain


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


def _valid_mask(arrays: Sequence[pa.Array]) -> np.ndarray | None:
    """Rows with no null in any key column; None when every row qualifies."""
    mask = None
    for array in arrays:
        if array.null_count:
            valid = array.is_valid().to_numpy(zero_copy_only=False)
            mask = valid if mask is None else mask & valid
    return mask


def row_keys(arrays: Sequence[pa.Array], exact: bool) -> np.ndarray:
    """One int64 per row: the exact key, or a hash of all key columns."""
    if exact:
        return exact_keys(plain(arrays[0]))
    combined = hash_values(arrays[0])
    for array in arrays[1:]:
        combined = combine(combined, hash_values(array))
    return combined.view(np.int64)


@dataclass
class DuplicateReport:
    non_null: int
    duplicate_rows: int      # non_null - distinct
    repeated_keys: int       # distinct keys seen more than once
    sample: list[Any] = field(default_factory=list)


class DenseSeen:
    """Integer keys claimed (by footer statistics) to lie in a small range.

    One byte per possible key, set as batches stream by: no key array to keep, nothing
    to sort, one scatter per batch. Keys are unique iff the number of bytes set equals
    the number of rows. Only when they are not does the caller rescan for the exact
    duplicates (the sort path), so the failing evidence is identical either way.
    Used when the range is at most 8 keys per row: never more memory than sorting.
    """

    def __init__(self, low: int, high: int) -> None:
        self.low = low
        self.seen = np.zeros(high - low + 1, dtype=bool)
        self.rows = 0

    def add(self, keys: np.ndarray) -> None:
        if len(keys) == 0:
            return
        index = keys - self.low
        if index.min() < 0 or index.max() >= len(self.seen):
            raise KeyOutsideClaim
        self.seen[index] = True
        self.rows += len(index)

    def unique(self) -> bool:
        return int(np.count_nonzero(self.seen)) == self.rows


class KeyOutsideClaim(Exception):
    """A key outside the range the footer claimed: the dense byte map cannot be used."""


_MAX_DENSE = 1 << 28  # keys in a byte map at most (256 MiB), whatever a footer claims
_MAX_PREALLOCATED = 1 << 27  # keys preallocated at most; more rows than that grow the array
_BYTES_PER_KEY = 14  # in memory: the int64 key, the flags of ``sorted_repeats`` and the repeats it keeps
_BYTES_PER_CANDIDATE = 96  # confirming a repeated hash: its representative key, flags and indexes


class KeyCollector:
    """Feed key columns batch by batch, then ``finish`` for the duplicate report.

    Under a memory budget (``budget.active()``) the key set reserves what it holds; when the
    reservation is refused it spills to disk (``spill``), with the same report either way.
    """

    def __init__(self, columns: Sequence[str], types: Sequence[pa.DataType], capacity: int) -> None:
        self.columns = tuple(columns)
        self.types = list(types)
        self.exact = len(columns) == 1 and is_exact_domain(plain(pa.array([], type=types[0])).type)
        self._capacity = capacity
        self._keys: np.ndarray | None = None
        self._filled = 0
        self._dense: DenseSeen | None = None
        self._abandoned = False  # the claimed range was false: keys are rescanned in ``finish``
        self._budget = budget.active()
        self._reserved = 0
        self._rows = 0  # rows fed so far (nulls included): the next batch's first row number
        self._exact_spill: spill.ExactSpill | None = None
        self._hashed_spill: spill.HashedSpill | None = None
        self._overflowed = False  # hashed keys outgrew the budget mid-scan: spilled by a rescan in ``finish``
        # The claimed rows do not fit: keys go to disk from the first batch (unless a byte map fits, ``use_range``).
        self._to_disk = self._budget is not None and not self._reserve(capacity * _BYTES_PER_KEY)

    @property
    def label(self) -> str:
        return ",".join(self.columns)

    def _reserve(self, size: int) -> bool:
        if self._budget is None:
            return True
        if not self._budget.reserve(size):
            return False
        self._reserved += size
        return True

    def _release(self) -> None:
        if self._budget is not None:
            self._budget.release(self._reserved)
        self._reserved = 0

    def _start_spill(self, expected_keys: int) -> None:
        assert self._budget is not None
        if self.exact:
            self._exact_spill = spill.ExactSpill(self._budget, max(expected_keys, self._filled), self.label)
        else:
            self._hashed_spill = spill.HashedSpill(self._budget, len(self.columns), expected_keys, self.label)

    @property
    def spilled(self) -> bool:
        return self._exact_spill is not None or self._hashed_spill is not None

    def use_range(self, low: int, high: int) -> bool:
        """Switch to the streaming dense path when a claimed range of a signed integer key allows it."""
        span = high - low + 1
        if not (self.exact and pat.is_signed_integer(self.types[0])
                and 0 < span <= min(8 * max(self._capacity, 8192), _MAX_DENSE)):
            return False
        if self._budget is not None:
            if self._filled or self._rows:
                return False  # hints come before the scan
            previous = self._reserved
            self._release()
            if not self._reserve(span):
                self._reserve(previous)
                return False
            self._to_disk = False  # the byte map fits where the key array did not
        self._dense = DenseSeen(low, high)
        return True

    def add(self, arrays: Sequence[pa.Array]) -> None:
        first_row = self._rows
        self._rows += len(arrays[0]) if arrays else 0
        if self._abandoned or self._overflowed:
            return
        if self._to_disk:
            self._to_disk = False
            self._start_spill(self._capacity)
        if self._hashed_spill is not None:
            self._spill_hashed(arrays, first_row)
            return
        keys = row_keys(arrays, self.exact)
        mask = _valid_mask(arrays)
        if mask is not None:
            keys = keys[mask]
        if self._dense is not None:
            try:
                self._dense.add(keys)
            except KeyOutsideClaim:
                self._dense, self._abandoned = None, True
                self._release()
            return
        if self._exact_spill is not None:
            self._exact_spill.add(keys)
            return
        if self._keys is None:
            size = min(max(self._capacity, len(keys)), _MAX_PREALLOCATED)
            if not self._reserve(max(size * _BYTES_PER_KEY - self._reserved, 0)):
                self._overflow(keys)
                return
            self._keys = np.empty(size, dtype=np.int64)
        end = self._filled + len(keys)
        if end > len(self._keys):  # more rows than the footer announced: grow rather than fail
            size = max(end, 2 * len(self._keys))
            if not self._reserve(max(size * _BYTES_PER_KEY - self._reserved, 0)):
                self._overflow(keys)
                return
            self._keys = np.resize(self._keys, size)
        self._keys[self._filled : end] = keys
        self._filled = end

    def _overflow(self, keys: np.ndarray) -> None:
        """The budget refused more key memory mid-scan: exact keys go to disk from here on (with those
        held so far); hashed keys are dropped and spilled by a rescan in ``finish`` (values are needed)."""
        held = self._keys[: self._filled] if self._keys is not None else np.empty(0, np.int64)
        self._keys = None
        if self.exact:
            self._start_spill(max(self._capacity, self._filled + len(keys)) * 2)
            assert self._exact_spill is not None
            self._exact_spill.add(held)
            self._exact_spill.add(keys)
            self._filled = 0
        else:
            self._overflowed = True
            self._filled = 0
        del held
        self._release()

    def _spill_hashed(self, arrays: Sequence[pa.Array], first_row: int) -> None:
        assert self._hashed_spill is not None
        hashes = row_keys(arrays, exact=False)
        mask = _valid_mask(arrays)
        rows = np.arange(len(arrays[0]), dtype=np.int64) if mask is None else np.flatnonzero(mask)
        table = _key_table(self.columns, arrays, rows, first_row)
        self._hashed_spill.add(table, hashes if mask is None else hashes[mask])

    def _spill_by_rescan(self, rescan: Rescan) -> DuplicateReport:
        """Hashed keys beyond the budget: rescan them into a hashed spill and decide there."""
        self._keys, self._filled, self._overflowed = None, 0, False
        self._release()
        self._start_spill(max(self._capacity, self._rows))
        self._rows = 0
        for batch in rescan(self.columns):
            self.add([batch.column(name) for name in self.columns])
        return self._finish_spill()

    def _finish_spill(self) -> DuplicateReport:
        if self._exact_spill is not None:
            report = self._exact_spill.finish()
            self._exact_spill = None
            decode = _decode_exact(plain(pa.array([], type=self.types[0])).type)
            return DuplicateReport(report.non_null, report.duplicate_rows, report.repeated_keys,
                                   [decode(value) for value in report.sample])
        assert self._hashed_spill is not None
        found = self._hashed_spill.finish()
        self._hashed_spill = None
        return DuplicateReport(found.non_null, found.duplicate_rows, found.repeated_keys, found.sample)

    def finish(self, rescan: Rescan) -> DuplicateReport:
        try:
            return self._finish(rescan)
        finally:
            self._release()
            for pending in (self._exact_spill, self._hashed_spill):
                if pending is not None:
                    pending.discard()

    def _finish(self, rescan: Rescan) -> DuplicateReport:
        if self._overflowed:
            return self._spill_by_rescan(rescan)
        if self._abandoned:
            self._abandoned = False
            self._rows = 0
            for batch in rescan(self.columns):
                self.add([batch.column(name) for name in self.columns])
            if self._overflowed:
                return self._spill_by_rescan(rescan)
        if self._dense is not None:
            if self._dense.unique():
                return DuplicateReport(non_null=self._dense.rows, duplicate_rows=0, repeated_keys=0)
            # Duplicates exist: count and sample them exactly the way a full scan does.
            self._dense = None
            self._release()
            self._rows = 0
            for batch in rescan(self.columns):
                self.add([batch.column(name) for name in self.columns])
            if self._overflowed:
                return self._spill_by_rescan(rescan)
        if self.spilled:
            return self._finish_spill()
        non_null = self._filled
        keys = self._sorted_keys()
        duplicates, repeated_count, repeated = spill.sorted_repeats(keys, keep_all=not self.exact)
        del keys
        self._keys = None
        if duplicates == 0:
            return DuplicateReport(non_null=non_null, duplicate_rows=0, repeated_keys=0)
        if not self.exact:
            if self._budget is not None and not self._reserve(repeated_count * _BYTES_PER_CANDIDATE):
                del repeated
                return self._spill_by_rescan(rescan)
            return self._confirm(non_null, duplicates, repeated, rescan)
        decode = _decode_exact(plain(pa.array([], type=self.types[0])).type)
        return DuplicateReport(
            non_null=non_null,
            duplicate_rows=duplicates,
            repeated_keys=repeated_count,
            sample=[decode(int(value)) for value in repeated[:5]],
        )

    def _sorted_keys(self) -> np.ndarray:
        if self._keys is None:
            return np.empty(0, dtype=np.int64)
        keys = self._keys[: self._filled]
        keys.sort()  # in place: no second copy of the keys
        return keys

    def _confirm(self, non_null: int, hash_duplicates: int, candidates: np.ndarray, rescan: Rescan) -> DuplicateReport:
        """Equal hashes are duplicates unless two different keys share a hash: prove it.

        One pass keeps a representative key per repeated hash (first seen) and compares
        every other row with that hash to it. Equal everywhere (the normal case): the
        hash counts are exact. Hashes where keys differ are recounted exactly by a
        group-by over just their rows. The sample is the repeated keys in order of first
        appearance (row number), whichever way each was counted.
        """
        representatives = _Representatives(self.columns, len(candidates))
        offset = 0
        for batch in rescan(self.columns):
            arrays = [batch.column(name) for name in self.columns]
            rows, which = _rows_with_hash(arrays, candidates)
            if len(rows):
                representatives.compare(_key_table(self.columns, arrays, rows, offset), which)
            offset += batch.num_rows
        collided = representatives.collided
        firsts = representatives.firsts()
        if not collided.any():
            return DuplicateReport(non_null, hash_duplicates, len(candidates), _in_row_order(firsts))
        exact, kept = self._exact_counts(candidates[collided], rescan)
        rows_in_collided = int(pc.sum(exact["count"]).as_py() or 0)
        repeated = exact.filter(pc.greater(exact["count"], 1))
        duplicate_rows = (
            hash_duplicates - (rows_in_collided - int(collided.sum()))
            + int(pc.sum(pc.subtract(repeated["count"], 1)).as_py() or 0)
        )
        first_rows = sorted(repeated["first_row"].to_pylist())[:5]
        values = spill.values_at_rows(kept, len(self.columns), first_rows)
        firsts.extend((row, values[row]) for row in first_rows)
        return DuplicateReport(non_null, duplicate_rows, int((~collided).sum()) + repeated.num_rows,
                               _in_row_order(firsts))

    def _exact_counts(self, hashes: np.ndarray, rescan: Rescan) -> tuple[pa.Table, list[pa.Table]]:
        kept = []
        offset = 0
        for batch in rescan(self.columns):
            arrays = [batch.column(name) for name in self.columns]
            rows, _ = _rows_with_hash(arrays, hashes)
            if len(rows):
                kept.append(_key_table(self.columns, arrays, rows, offset))
            offset += batch.num_rows
        return spill.group_first_rows(pa.concat_tables(kept), len(self.columns)), kept


def _in_row_order(firsts: list[tuple[int, Any]], limit: int = 5) -> list[Any]:
    return [value for _, value in sorted(firsts, key=lambda pair: pair[0])[:limit]]


Rescan = Callable[[tuple[str, ...]], Iterable[pa.RecordBatch]]


def _rows_with_hash(arrays: Sequence[pa.Array], hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (without null keys) whose key hash is in the sorted ``hashes``, and its index there."""
    keys = row_keys(arrays, exact=False)
    order = np.argsort(keys)  # sorted needles make the binary searches ~3x faster (cache locality)
    ordered = keys[order]
    position = np.searchsorted(hashes, ordered)
    position[position == len(hashes)] = 0
    hit = hashes[position] == ordered
    mask = _valid_mask(arrays)
    if mask is not None:
        hit &= mask[order]
    rows, which = order[hit], position[hit]
    in_row_order = np.argsort(rows)
    return rows[in_row_order], which[in_row_order]


def _comparable(array: pa.Array) -> pa.Array:
    """One type per key column whatever the file wrote (dictionary, string or large_string)."""
    array = plain(array)
    if pat.is_signed_integer(array.type) or pat.is_unsigned_integer(array.type) and array.type != pa.uint64():
        return array.cast(pa.int64())
    if pat.is_string(array.type):
        return array.cast(pa.large_string())
    if pat.is_binary(array.type):
        return array.cast(pa.large_binary())
    return array


def _key_table(columns: Sequence[str], arrays: Sequence[pa.Array], rows: np.ndarray, first_row: int) -> pa.Table:
    """The selected rows' keys (k0.., comparable types) and their row numbers (``row``); dictionaries are
    decoded after the take, so only those rows."""
    taken = pa.array(rows)
    table = {
        name: _comparable((plain(array) if pat.is_string_view(array.type) else array).take(taken))
        for name, array in zip(spill.key_names(len(columns)), arrays, strict=True)
    }
    return pa.table({**table, spill.ROW: pa.array(rows.astype(np.int64) + first_row)})


_key_value = spill.key_value


def _same(left: pa.Array, right: pa.Array) -> np.ndarray:
    if is_exact_domain(left.type):  # bit-exact, so NaN equals NaN as in the hash
        return exact_keys(left) == exact_keys(right)
    return pc.equal(left, right).to_numpy(zero_copy_only=False)


class _Representatives:
    """The first key seen for each candidate hash (with its row), and which hashes turned out shared."""

    def __init__(self, columns: Sequence[str], candidates: int) -> None:
        self.names = spill.key_names(len(columns))
        self.row_of = np.full(candidates, -1, dtype=np.int64)
        self.collided = np.zeros(candidates, dtype=bool)
        self.parts: list[pa.Table] = []
        self.order: list[np.ndarray] = []  # candidate index of each representative row
        self.count = 0

    def compare(self, keys: pa.Table, which: np.ndarray) -> None:
        unseen = self.row_of[which] == -1
        if unseen.any():
            fresh, first = np.unique(which[unseen], return_index=True)
            self.parts.append(keys.take(pa.array(np.flatnonzero(unseen)[first])))
            self.order.append(fresh)
            self.row_of[fresh] = np.arange(self.count, self.count + len(fresh))
            self.count += len(fresh)
        reference = pa.concat_tables(self.parts).take(pa.array(self.row_of[which]))
        same = np.ones(keys.num_rows, dtype=bool)
        for name in self.names:
            same &= _same(keys[name].combine_chunks(), reference[name].combine_chunks())
        if not same.all():
            self.collided[which[~same]] = True

    def firsts(self, limit: int = 5) -> list[tuple[int, Any]]:
        """(first row, key) of the ``limit`` earliest repeated keys whose hash is not shared."""
        if not self.parts:
            return []
        table = pa.concat_tables(self.parts)
        keep = ~self.collided[np.concatenate(self.order)]
        rows = table.column(spill.ROW).to_numpy()
        chosen = np.flatnonzero(keep)
        chosen = chosen[np.argsort(rows[chosen], kind="stable")[:limit]]
        return [(int(rows[index]), _key_value([table.column(name)[int(index)] for name in self.names]))
                for index in chosen]
