"""Uniqueness beyond the memory budget: keys hash-partitioned to disk, each partition decided within budget.

Equal keys always land in the same partition (the partition is a function of the key), so a key's
duplicates are all counted inside one partition and the partitions' counts simply add up.

- Exact keys (one integer-like column, ``ExactSpill``): the int64 image of every key is appended to
  one raw file per partition. A partition is then loaded, sorted in place and its equal neighbours
  counted, exactly as the in-memory path does; the sample is the smallest repeated images, merged
  across partitions, so it is the in-memory sample.
- Hashed keys (strings, binaries, composite keys, ``HashedSpill``): the key values themselves and
  each row's number are written (Arrow IPC) per partition; a partition is grouped by its exact key
  values (no hash decides anything), giving per key its count and first row. The sample is the
  repeated keys of the smallest first rows, as the in-memory path orders it.

The partitioner (``PartitionFiles``: Arrow tables in one IPC file per partition, chosen by a salted hash of
each row's key) is shared with the ``references`` semi-join beyond the budget (``references.py``).

A partition too big for the memory still free is split again with a different hash (``MAX_DEPTH``
levels); one that cannot be split (one key repeated very often) is counted in chunks, whose memory
grows with its distinct keys only. ``STATS`` counts what happened (tests assert the path taken).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batchlane.checking.budget import MIB, MemoryBudget, describe
from batchlane.checking.evidence import scalar_value
from batchlane.checking.hashing import combine, exact_keys, hash_values, is_exact_domain

log = logging.getLogger(__name__)

MAX_FANOUT = 64  # open partition files per key set (4 key sets stay far below a 1,024 file limit)
MAX_DEPTH = 3  # split levels below the first partitioning
_MIN_PARTITION = 4 * MIB
_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)
_SALTS = [np.uint64(s) for s in (0x0, 0x243F6A8885A308D3, 0x13198A2E03707344, 0xA4093822299F31D0, 0x082EFA98EC4E6C89)]
_EXACT_BYTES_PER_KEY = 11.5  # the key, two flag arrays of sorted_repeats, slack
_HASHED_BYTES_FACTOR = 4  # a partition's Arrow data, its grouping columns and the group table
SAMPLE = 5


class SpillError(ValueError):
    """Writing or reading spilled keys failed (disk full, no temporary directory): the rule cannot be decided.

    A ValueError, so the engine FAILs that one rule with this message (fail closed), never crashes."""


@contextmanager
def disk(label: str, directory: Path, rule: str = "unique", what: str = "keys") -> Iterator[None]:
    """OSError while spilling becomes a SpillError naming the rule, the directory and the remedies."""
    try:
        yield
    except OSError as exc:
        raise SpillError(f"{rule}({label}): spilling {what} beyond the memory budget to {directory} failed: {exc}; "
                         "give the checker more memory (max_memory) or more temporary disk (TMPDIR)") from None


def _slices(rows: int, budget: MemoryBudget) -> Iterator[tuple[int, int]]:
    """[start, end) row ranges small enough that partitioning one (about 48 bytes a row of temporaries)
    stays within the reader's share of the budget, whatever the size of the row group being read."""
    step = max(budget.reader_reserve // 48, 65_536)
    for start in range(0, rows, step):
        yield start, min(start + step, rows)


@dataclass
class SpillStats:
    """What spilling did in this process; tests read it to see which path a check took."""

    key_sets: int = 0  # key sets that went to disk
    partitions: int = 0  # partition files written (splits included)
    repartitions: int = 0  # partitions split again because they did not fit
    chunked: int = 0  # partitions counted in chunks (could not be split)
    bytes_written: int = 0

    def reset(self) -> None:
        for item in fields(self):
            setattr(self, item.name, 0)


STATS = SpillStats()


@dataclass
class SpillReport:
    non_null: int
    duplicate_rows: int
    repeated_keys: int
    sample: list[Any]


def fanout_for(expected_bytes: int, target_bytes: int) -> int:
    """Partitions (a power of two, 2..MAX_FANOUT) so that each holds about ``target_bytes``."""
    wanted = max(2, -(-max(expected_bytes, 1) // max(target_bytes, 1)))
    fanout = 2
    while fanout < wanted and fanout < MAX_FANOUT:
        fanout *= 2
    return fanout


def partition_ids(hashes: np.ndarray, depth: int, fanout: int) -> np.ndarray:
    """Partition of each 64-bit key or hash: the top bits of a salted Fibonacci hash (one multiply; a new
    salt at each depth, so a partition split again spreads differently). Equal inputs, equal partitions."""
    bits = fanout.bit_length() - 1
    salted = hashes.view(np.uint64) ^ _SALTS[depth % len(_SALTS)] if depth else hashes.view(np.uint64)
    return ((salted * _FIBONACCI) >> np.uint64(64 - bits)).astype(np.intp)


def _grouped_order(ids: np.ndarray, fanout: int) -> tuple[np.ndarray, np.ndarray]:
    """Row order that groups partitions together, and each partition's [start, end) bounds."""
    order = np.argsort(ids.astype(np.uint16 if fanout <= 65536 else np.int64), kind="stable")  # radix sort
    bounds = np.concatenate(([0], np.cumsum(np.bincount(ids, minlength=fanout))))
    return order, bounds


class SpillDirectory:
    """A private temporary directory removed when the spill is finished or garbage collected."""

    def __init__(self, prefix: str = "lane-spill-") -> None:
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.path, True)

    def remove(self) -> None:
        self._cleanup()


# ----------------------------------------------------------------------------- exact keys


class ExactSpill:
    """int64 key images in raw per-partition files; ``finish`` counts repeats partition by partition."""

    def __init__(self, budget: MemoryBudget, expected_keys: int, label: str) -> None:
        self.budget = budget
        self.label = label
        self.fanout = fanout_for(int(expected_keys * _EXACT_BYTES_PER_KEY), self._target())
        with disk(label, Path(tempfile.gettempdir())):
            self.directory = SpillDirectory()
            self.paths = [self.directory.path / f"p{index:03d}.bin" for index in range(self.fanout)]
            self.handles: list[BinaryIO] = [open(path, "wb") for path in self.paths]  # noqa: SIM115 - closed in finish
        self.non_null = 0
        STATS.key_sets += 1
        STATS.partitions += self.fanout
        log.info("unique(%s): about %d keys do not fit in %s: spilling to %d partitions in %s",
                 label, expected_keys, describe(budget.free), self.fanout, self.directory.path)

    def _target(self) -> int:
        return max(self.budget.key_limit // 2, _MIN_PARTITION)

    def add(self, keys: np.ndarray) -> None:
        self.non_null += len(keys)
        with disk(self.label, self.directory.path):
            for start, end in _slices(len(keys), self.budget):
                part = keys[start:end]
                _write_exact(part, partition_ids(part, 0, self.fanout), self.fanout, self.handles)

    def discard(self) -> None:
        """Drop everything written (the key set was decided another way, or the check failed)."""
        for handle in self.handles:
            handle.close()
        self.directory.remove()

    def finish(self) -> SpillReport:
        try:
            with disk(self.label, self.directory.path):
                return self._finish()
        finally:
            self.directory.remove()

    def _finish(self) -> SpillReport:
        for handle in self.handles:
            handle.close()
        duplicates, repeated, smallest = 0, 0, []
        for path in self.paths:
            found = self._partition(path, depth=0)
            duplicates += found[0]
            repeated += found[1]
            smallest.append(found[2])
        sample = np.sort(np.concatenate(smallest))[:SAMPLE] if smallest else np.empty(0, np.int64)
        return SpillReport(self.non_null, duplicates, repeated, [int(value) for value in sample])

    def _partition(self, path: Path, depth: int) -> tuple[int, int, np.ndarray]:
        """(duplicate rows, repeated keys, up to 5 smallest repeated keys) of one partition file."""
        size = path.stat().st_size
        need = int(size / 8 * _EXACT_BYTES_PER_KEY)
        if size == 0:
            return 0, 0, np.empty(0, np.int64)
        if self.budget.reserve(need):
            try:
                keys = np.fromfile(path, dtype=np.int64)
                path.unlink()
                keys.sort()
                return sorted_repeats(keys, keep_all=False)
            finally:
                self.budget.release(need)
        if depth < MAX_DEPTH:
            children = [child for child in self._split(path, depth + 1) if _holds_data(child)]
            if len(children) > 1:
                totals = [self._partition(child, depth + 1) for child in children]
                return (sum(t[0] for t in totals), sum(t[1] for t in totals),
                        np.sort(np.concatenate([t[2] for t in totals]))[:SAMPLE])
            path = children[0]  # every row in one child: one key repeated, splitting cannot help
        return self._chunked(path)

    def _split(self, path: Path, depth: int) -> list[Path]:
        fanout = fanout_for(int(path.stat().st_size / 8 * _EXACT_BYTES_PER_KEY), max(self.budget.free // 2, 1))
        children = [path.with_name(f"{path.stem}-{index:03d}.bin") for index in range(fanout)]
        handles = [open(child, "wb") for child in children]  # noqa: SIM115 - closed below
        try:
            for chunk in _chunks(path, self._chunk_keys()):
                _write_exact(chunk, partition_ids(chunk, depth, fanout), fanout, handles)
        finally:
            for handle in handles:
                handle.close()
        path.unlink()
        STATS.repartitions += 1
        STATS.partitions += fanout
        return children

    def _chunk_keys(self) -> int:
        return max(self.budget.free // 32, 65_536)

    def _chunked(self, path: Path) -> tuple[int, int, np.ndarray]:
        """Counts per distinct key, chunk by chunk: memory grows with distinct keys, not rows."""
        STATS.chunked += 1
        values = np.empty(0, np.int64)
        counts = np.empty(0, np.int64)
        for chunk in _chunks(path, self._chunk_keys()):
            found, found_counts = np.unique(chunk, return_counts=True)
            merged, where = np.unique(np.concatenate((values, found)), return_inverse=True)
            totals = np.zeros(len(merged), np.int64)
            np.add.at(totals, where, np.concatenate((counts, found_counts)))
            values, counts = merged, totals
        path.unlink()
        repeated = counts > 1
        return int((counts[repeated] - 1).sum()), int(repeated.sum()), values[repeated][:SAMPLE].copy()


def sorted_repeats(keys: np.ndarray, keep_all: bool) -> tuple[int, int, np.ndarray]:
    """(duplicate rows, repeated keys, the repeated keys) of sorted ``keys``; only the first 5 of them
    unless ``keep_all``. Two byte flags per key besides the keys: no array of every repeat."""
    equal = keys[1:] == keys[:-1]
    duplicates = int(np.count_nonzero(equal))
    if duplicates == 0:
        return 0, 0, np.empty(0, keys.dtype)
    starts = equal  # a run of equal neighbours starts where the one before was not equal
    starts[1:] &= ~equal[:-1]
    repeated = int(np.count_nonzero(starts))
    if keep_all:
        return duplicates, repeated, keys[:-1][starts]
    found: list[np.ndarray] = []
    step = 1 << 20
    for begin in range(0, len(starts), step):
        found.append(np.flatnonzero(starts[begin : begin + step])[:SAMPLE] + begin)
        if sum(len(part) for part in found) >= SAMPLE:
            break
    return duplicates, repeated, keys[np.concatenate(found)[:SAMPLE]].copy()


def _holds_data(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def _write_exact(keys: np.ndarray, ids: np.ndarray, fanout: int, handles: Sequence[BinaryIO]) -> None:
    order, bounds = _grouped_order(ids, fanout)
    grouped = keys[order]
    for index in range(fanout):
        start, end = int(bounds[index]), int(bounds[index + 1])
        if end > start:
            handles[index].write(memoryview(grouped[start:end]))
    STATS.bytes_written += grouped.nbytes


def _chunks(path: Path, keys_per_chunk: int) -> Iterable[np.ndarray]:
    with open(path, "rb") as handle:
        while True:
            chunk = np.fromfile(handle, dtype=np.int64, count=keys_per_chunk)
            if len(chunk) == 0:
                return
            yield chunk


# ----------------------------------------------------------------------------- hashed keys

ROW = "row"


def key_names(width: int) -> list[str]:
    return [f"k{index}" for index in range(width)]


def grouping_columns(table: pa.Table, width: int) -> list[pa.Array]:
    """The exact identity of each key column: int64 images for integer-like columns (bit-exact, so
    NaN equals NaN and -0.0 equals 0.0, as in the hash), the values themselves otherwise."""
    columns = []
    for name in key_names(width):
        column = table.column(name).combine_chunks()
        columns.append(pa.array(exact_keys(column)) if is_exact_domain(column.type) else column)
    return columns


def group_first_rows(table: pa.Table, width: int) -> pa.Table:
    """Per distinct key of ``table`` (columns k0.., row): ``count`` and ``first_row``, grouping columns g0.."""
    names = [f"g{index}" for index in range(width)]
    grouped = pa.table({**dict(zip(names, grouping_columns(table, width), strict=True)), ROW: table.column(ROW)})
    result = grouped.group_by(names, use_threads=False).aggregate([(ROW, "count"), (ROW, "min")])
    return result.rename_columns([name if name in names else {"row_count": "count", "row_min": "first_row"}[name]
                                  for name in result.column_names])


def _merge_groups(parts: list[pa.Table], width: int) -> pa.Table:
    names = [f"g{index}" for index in range(width)]
    merged = pa.concat_tables(parts).group_by(names, use_threads=False).aggregate(
        [("count", "sum"), ("first_row", "min")])
    return merged.rename_columns([{"count_sum": "count", "first_row_min": "first_row"}.get(name, name)
                                  for name in merged.column_names])


def key_value(values: Sequence[pa.Scalar]) -> Any:
    found = [scalar_value(value) for value in values]
    return found[0] if len(found) == 1 else found


def values_at_rows(tables: Iterable[pa.Table], width: int, rows: Sequence[int]) -> dict[int, Any]:
    """The key at each of ``rows``, found in tables of (k0.., row)."""
    wanted = pa.array(sorted(set(rows)), pa.int64())
    found: dict[int, Any] = {}
    for table in tables:
        hits = table.filter(pc.is_in(table.column(ROW), value_set=wanted))
        for index in range(hits.num_rows):
            found[hits.column(ROW)[index].as_py()] = key_value([hits.column(name)[index]
                                                               for name in key_names(width)])
    return found


class HashedSpill:
    """Key values and row numbers in Arrow IPC files per partition; ``finish`` groups each exactly."""

    def __init__(self, budget: MemoryBudget, width: int, expected_rows: int, label: str) -> None:
        self.budget = budget
        self.width = width
        self.label = label
        self.expected_rows = expected_rows
        with disk(label, Path(tempfile.gettempdir())):
            self.directory = SpillDirectory()
        self.fanout = 0  # chosen with the first batch, from its bytes per row
        self.files: PartitionFiles | None = None
        self.schema: pa.Schema | None = None
        self.non_null = 0
        STATS.key_sets += 1

    def add(self, table: pa.Table, hashes: np.ndarray) -> None:
        """``table``: the non-null keys of one batch (k0.., row); ``hashes``: their row hashes."""
        if table.num_rows == 0:
            return
        if self.schema is None:
            self.schema = table.schema
            per_row = max(table.nbytes / table.num_rows, 16)
            target = max(self.budget.key_limit // (2 * _HASHED_BYTES_FACTOR), _MIN_PARTITION)
            self.fanout = fanout_for(int(self.expected_rows * per_row), target)
            self.files = PartitionFiles(self.directory.path, "p", self.fanout)
            STATS.partitions += self.fanout
            log.info("unique(%s): about %d keys do not fit in %s: spilling to %d partitions in %s",
                     self.label, self.expected_rows, describe(self.budget.free), self.fanout, self.directory.path)
        elif table.schema != self.schema:
            table = table.cast(self.schema)  # e.g. timestamp units differing between files
        self.non_null += table.num_rows
        assert self.files is not None
        with disk(self.label, self.directory.path):
            self.files.add(table, hashes, self.budget)

    def discard(self) -> None:
        """Drop everything written (the check failed before the key set was decided)."""
        if self.files is not None:
            self.files.close()
        self.directory.remove()

    def finish(self) -> SpillReport:
        try:
            with disk(self.label, self.directory.path):
                return self._finish()
        finally:
            self.directory.remove()

    def _finish(self) -> SpillReport:
        duplicates, repeated, firsts = 0, 0, []
        if self.files is None:
            return SpillReport(self.non_null, 0, 0, [])
        self.files.close()
        for path in self.files.written():
            found = self._partition(path, depth=0)
            duplicates += found[0]
            repeated += found[1]
            firsts.extend(found[2])
        firsts.sort(key=lambda pair: pair[0])
        return SpillReport(self.non_null, duplicates, repeated, [value for _, value in firsts[:SAMPLE]])

    def _partition(self, path: Path, depth: int) -> tuple[int, int, list[tuple[int, Any]]]:
        """(duplicate rows, repeated keys, up to 5 (first row, key) of repeated keys) of one partition."""
        need = path.stat().st_size * _HASHED_BYTES_FACTOR
        if need > self.budget.free and depth < MAX_DEPTH:
            children = [child for child in self._split(path, depth + 1) if _holds_data(child)]
            if len(children) > 1:
                totals = [self._partition(child, depth + 1) for child in children]
                firsts = sorted((pair for t in totals for pair in t[2]), key=lambda pair: pair[0])
                return sum(t[0] for t in totals), sum(t[1] for t in totals), firsts[:SAMPLE]
            path = children[0]  # every row in one child: one key repeated, splitting cannot help
            STATS.chunked += 1
        return self._grouped(path)

    def _batches(self, path: Path) -> Iterable[pa.Table]:
        return read_tables(path)

    def _grouped(self, path: Path) -> tuple[int, int, list[tuple[int, Any]]]:
        """Group the partition batch by batch (partial groups merged as they pile up)."""
        parts: list[pa.Table] = []
        held = 0
        for table in self._batches(path):
            parts.append(group_first_rows(table, self.width))
            held += parts[-1].nbytes
            if len(parts) > 1 and held > max(self.budget.free // 4, _MIN_PARTITION):
                parts = [_merge_groups(parts, self.width)]
                held = parts[0].nbytes
        if not parts:
            return 0, 0, []
        groups = _merge_groups(parts, self.width) if len(parts) > 1 else parts[0]
        repeated = groups.filter(pc.greater(groups.column("count"), 1))
        duplicates = int(pc.sum(pc.subtract(repeated.column("count"), 1)).as_py() or 0)
        first_rows = sorted(repeated.column("first_row").to_pylist())[:SAMPLE]
        values = values_at_rows(self._batches(path), self.width, first_rows) if first_rows else {}
        path.unlink()
        return duplicates, repeated.num_rows, [(row, values[row]) for row in first_rows]

    def _split(self, path: Path, depth: int) -> list[Path]:
        fanout = fanout_for(path.stat().st_size * _HASHED_BYTES_FACTOR, max(self.budget.free // 2, 1))
        children = PartitionFiles(path.parent, f"{path.stem}-", fanout, depth)
        try:
            for table in self._batches(path):
                children.add(table, _identity_hash(table, self.width))
        finally:
            children.close()
        path.unlink()
        STATS.repartitions += 1
        STATS.partitions += fanout
        return children.paths


def _identity_hash(table: pa.Table, width: int) -> np.ndarray:
    """A hash of each row's exact key identity (the grouping columns): equal keys, equal hashes."""
    columns = grouping_columns(table, width)
    combined = hash_values(columns[0])
    for column in columns[1:]:
        combined = combine(combined, hash_values(column))
    return combined


def read_tables(path: Path) -> Iterator[pa.Table]:
    """The tables written to one partition file, in the order written (memory-mapped: nothing read twice)."""
    with pa.memory_map(str(path)) as source, pa.ipc.open_stream(source) as reader:
        for batch in reader:
            yield pa.Table.from_batches([batch])


class PartitionFiles:
    """Arrow tables hash-partitioned into one IPC stream file per partition: the partitioner of the
    uniqueness spill and of the ``references`` semi-join. Rows with equal hashes land in the same partition
    (``partition_ids`` with this ``depth``'s salt); a partition never written has no file."""

    def __init__(self, directory: Path, stem: str, fanout: int, depth: int = 0) -> None:
        self.fanout, self.depth = fanout, depth
        self.paths = [directory / f"{stem}{index:03d}.arrow" for index in range(fanout)]
        self._writers: list[pa.ipc.RecordBatchStreamWriter | None] = [None] * fanout
        self._opened = [False] * fanout
        self.rows = [0] * fanout  # rows written to each partition

    def add(self, table: pa.Table, hashes: np.ndarray, budget: MemoryBudget | None = None) -> None:
        """Append ``table``'s rows to the partitions of their ``hashes`` (under a budget in slices whose
        temporaries fit the reader's share)."""
        slices = _slices(table.num_rows, budget) if budget is not None else [(0, table.num_rows)]
        for start, end in slices:
            counts = _write_tables(table.slice(start, end - start),
                                   partition_ids(hashes[start:end], self.depth, self.fanout),
                                   self.fanout, self.paths, self._writers)
            for partition in np.flatnonzero(counts).tolist():
                self.rows[partition] += int(counts[partition])
        for index, writer in enumerate(self._writers):
            self._opened[index] = self._opened[index] or writer is not None

    def close(self) -> None:
        for index, writer in enumerate(self._writers):
            if writer is not None:
                writer.close()
                self._writers[index] = None

    def written(self) -> list[Path]:
        """The files of the partitions that received rows (call ``close`` first)."""
        return [path for path, opened in zip(self.paths, self._opened, strict=True) if opened]

    def holds(self, index: int) -> bool:
        return self._opened[index]


def _write_tables(table: pa.Table, ids: np.ndarray, fanout: int, paths: Sequence[Path],
                  writers: list[pa.ipc.RecordBatchStreamWriter | None]) -> np.ndarray:
    """Append each row of ``table`` to the file of its partition ``ids``; the rows written to each."""
    order, bounds = _grouped_order(ids, fanout)
    grouped = table.take(pa.array(order))
    for index in range(fanout):
        start, end = int(bounds[index]), int(bounds[index + 1])
        if end > start:
            writer = writers[index]
            if writer is None:
                writer = writers[index] = pa.ipc.new_stream(str(paths[index]), table.schema)
            writer.write_table(grouped.slice(start, end - start))
    STATS.bytes_written += grouped.nbytes
    return np.diff(bounds)
