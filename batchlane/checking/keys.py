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
        self._abandoned = False  # the claimed range was false: keys are rescanned in ``finish``

    def use_range(self, low: int, high: int) -> bool:
        """Switch to the streaming dense path when a claimed range of a signed integer key allows it."""
        span = high - low + 1
        if (self.exact and pat.is_signed_integer(self.types[0]) and 0 < span <= min(8 * max(self._capacity, 8192),
                                                                                 _MAX_DENSE)):
            self._dense = DenseSeen(low, high)
            return True
        return False

    def add(self, arrays: Sequence[pa.Array]) -> None:
        if self._abandoned:
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
            return
        if self._keys is None:
            self._keys = np.empty(min(self._capacity, _MAX_PREALLOCATED), dtype=np.int64)
        end = self._filled + len(keys)
        if end > len(self._keys):  # more rows than the footer announced: grow rather than fail
            self._keys = np.resize(self._keys, max(end, 2 * len(self._keys)))
        self._keys[self._filled : end] = keys
        self._filled = end

    def finish(self, rescan: Rescan) -> DuplicateReport:
        if self._abandoned:
            self._abandoned = False
            for batch in rescan(self.columns):
                self.add([batch.column(name) for name in self.columns])
        if self._dense is not None:
            if self._dense.unique():
                return DuplicateReport(non_null=self._dense.rows, duplicate_rows=0, repeated_keys=0)
            # Duplicates exist: count and sample them exactly the way a full scan does.
            self._dense = None
            for batch in rescan(self.columns):
                self.add([batch.column(name) for name in self.columns])
        non_null, repeats = self._filled, self._sorted_repeats()
        if len(repeats) == 0:
            return DuplicateReport(non_null=non_null, duplicate_rows=0, repeated_keys=0)
        if not self.exact:
            return self._confirm(non_null, repeats, rescan)
        repeated = repeats[np.concatenate(([True], repeats[1:] != repeats[:-1]))]
        decode = _decode_exact(plain(pa.array([], type=self.types[0])).type)
        return DuplicateReport(
            non_null=non_null,
            duplicate_rows=len(repeats),
            repeated_keys=len(repeated),
            sample=[decode(int(value)) for value in repeated[:5]],
        )

    def _sorted_repeats(self) -> np.ndarray:
        """Every key equal to its sorted predecessor; the key array is released afterwards."""
        if self._keys is None:
            return np.empty(0, dtype=np.int64)
        keys = self._keys[: self._filled]
        keys.sort()  # in place: no second copy of the keys
        repeats = keys[1:][keys[1:] == keys[:-1]]
        self._keys = None
        return repeats

    def _confirm(self, non_null: int, repeats: np.ndarray, rescan: Rescan) -> DuplicateReport:
        """Equal hashes are duplicates unless two different keys share a hash: prove it.

        One pass keeps a representative key per repeated hash (first seen) and compares
        every other row with that hash to it. Equal everywhere (the normal case): the
        hash counts are exact. Hashes where keys differ are recounted exactly by a
        group-by over just their rows.
        """
        # ``repeats`` is sorted: its distinct values without another sort
        candidates = repeats[np.concatenate(([True], repeats[1:] != repeats[:-1]))]
        hash_duplicates = len(repeats)
        representatives = _Representatives(self.columns, len(candidates))
        for batch in rescan(self.columns):
            arrays = [batch.column(name) for name in self.columns]
            rows, which = _rows_with_hash(arrays, candidates)
            if len(rows):
                representatives.compare(_key_table(self.columns, arrays, rows), which)
        collided = representatives.collided
        if not collided.any():
            return DuplicateReport(non_null, hash_duplicates, len(candidates), representatives.sample())
        exact = self._exact_counts(candidates[collided], rescan)
        rows_in_collided = int(pc.sum(exact["count_all"]).as_py() or 0)
        repeated = exact.filter(pc.greater(exact["count_all"], 1))
        duplicate_rows = (
            hash_duplicates - (rows_in_collided - int(collided.sum()))
            + int(pc.sum(pc.subtract(repeated["count_all"], 1)).as_py() or 0)
        )
        sample = representatives.sample()
        for row in range(min(5, repeated.num_rows)):
            if len(sample) < 5:
                sample.append(_key_value([repeated[name][row] for name in self.columns]))
        return DuplicateReport(non_null, duplicate_rows, int((~collided).sum()) + repeated.num_rows, sample)

    def _exact_counts(self, hashes: np.ndarray, rescan: Rescan) -> pa.Table:
        kept = []
        for batch in rescan(self.columns):
            arrays = [batch.column(name) for name in self.columns]
            rows, _ = _rows_with_hash(arrays, hashes)
            if len(rows):
                kept.append(_key_table(self.columns, arrays, rows))
        return pa.concat_tables(kept).group_by(list(self.columns)).aggregate([([], "count_all")])


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


def _key_table(columns: Sequence[str], arrays: Sequence[pa.Array], rows: np.ndarray) -> pa.Table:
    """The selected rows' keys; dictionaries are decoded after the take, so only those rows."""
    taken = pa.array(rows)
    return pa.table({
        name: _comparable((plain(array) if pat.is_string_view(array.type) else array).take(taken))
        for name, array in zip(columns, arrays, strict=True)
    })


def _key_value(scalars: Sequence[pa.Scalar]) -> Any:
    values = [scalar_value(scalar) for scalar in scalars]
    return values[0] if len(values) == 1 else values


def _same(left: pa.Array, right: pa.Array) -> np.ndarray:
    if is_exact_domain(left.type):  # bit-exact, so NaN equals NaN as in the hash
        return exact_keys(left) == exact_keys(right)
    return pc.equal(left, right).to_numpy(zero_copy_only=False)


class _Representatives:
    """The first key seen for each candidate hash, and which hashes turned out shared."""

    def __init__(self, columns: Sequence[str], candidates: int) -> None:
        self.columns = tuple(columns)
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
        for name in self.columns:
            same &= _same(keys[name].combine_chunks(), reference[name].combine_chunks())
        if not same.all():
            self.collided[which[~same]] = True

    def sample(self, limit: int = 5) -> list[Any]:
        """Up to ``limit`` repeated keys whose hash is not shared, in order of first appearance."""
        found: list[Any] = []
        for part, order in zip(self.parts, self.order, strict=True):
            for row in np.flatnonzero(~self.collided[order])[: limit - len(found)]:
                found.append(_key_value([part[name][int(row)] for name in self.columns]))
            if len(found) >= limit:
                break
        return found
