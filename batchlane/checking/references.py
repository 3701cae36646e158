"""``references`` rules: every non-null value of a column must exist in a column of another product.

The referenced values reach the checker as a ``ReferencedColumn``: its Arrow type, what holding all of
it in memory would take (estimated from Parquet footers: a hint that picks the algorithm, never the
answer) and a way to read it batch by batch. It is the one interface of a reference resolver (a plain
Arrow array is accepted too, and wrapped).

- Unbounded, or when the values fit what is free of the memory budget, they are held as one set and
  every batch of the checked column is tested against it (``rules.References``).
- Beyond the budget, a disk-spilled semi-join (``SpilledReferences``): the referenced values are
  hash-partitioned to disk when the check is planned, the checked values (with their row numbers) as
  the scan streams by, with ``spill.PartitionFiles``; equal values land in equal partitions, so each
  partition is decided on its own: its referenced values are loaded as a set and its checked values
  tested against it. A partition too big for the memory still free is split again with another salt.

Both paths cast the referenced values to the checked column's type the same way (a cast that fails is a
FAIL naming both types) and give the same evidence: the count of non-null values not in the set, and
up to 5 distinct failing values in order of first appearance.
"""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pyarrow.types as pat

from batchlane.checking import budget as memory
from batchlane.checking import rules as r
from batchlane.checking import spill
from batchlane.checking.arrowtypes import plain
from batchlane.checking.evidence import scalar_value
from batchlane.checking.filehash import FileSource
from batchlane.checking.footer import leaf_indices
from batchlane.checking.hashing import hash_values
from batchlane.receipts import RuleResult

log = logging.getLogger(__name__)

# What testing values against a set holds: the values and their cast to a batch's type (2x their bytes) and the
# hash table pyarrow's is_in builds over them at every call (measured 50-96 bytes a value, ints and strings).
HASH_BYTES_PER_VALUE = 96
READ_BATCH_ROWS = 65_536  # referenced values read at a time from a Parquet file
_VALUE, _ROW = "v", "row"
_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


@dataclass
class ReferenceStats:
    """What the references semi-join did in this process; tests read it to see which path a check took."""

    spilled: int = 0  # references rules decided on disk
    partitions: int = 0  # partition pairs written (splits included)
    splits: int = 0  # partitions split again because their referenced values did not fit

    def reset(self) -> None:
        for item in fields(self):
            setattr(self, item.name, 0)


STATS = ReferenceStats()


def _nothing() -> None:
    return None


@dataclass
class ReferencedColumn:
    """The values of OUTPUT.COLUMN a ``references`` rule checks against, readable batch by batch.

    ``estimated_bytes``, ``estimated_rows``: what the values take in memory and how many there are (hints:
    they choose between the in-memory set and the spilled semi-join, whose answers are the same). ``read`` yields
    the values
    (nulls included) in chunks; it may be called more than once. ``release`` frees what backs them
    (temporary copies of the referenced files) once the check no longer needs them.
    """

    arrow_type: pa.DataType
    estimated_bytes: int
    estimated_rows: int
    read: Callable[[], Iterable[pa.Array]]
    release: Callable[[], None] = _nothing

    @classmethod
    def of(cls, values: pa.Array | pa.ChunkedArray) -> ReferencedColumn:
        """Values already in memory (a resolver returning an Arrow array)."""
        chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
        return cls(values.type, values.nbytes, len(values), lambda: iter(chunks))

    @classmethod
    def from_parquet(cls, paths: Sequence[FileSource], column: str,
                     release: Callable[[], None] = _nothing) -> ReferencedColumn:
        """The top-level column ``column`` of Parquet files (local, or S3 objects read by ranged GETs), read
        lazily. KeyError names a file without it (or with it twice); the estimate comes from the footers (rows x
        width; stored sizes for strings)."""
        estimated, rows = 0, 0
        arrow_type: pa.DataType | None = None
        for path in paths:
            with pq.ParquetFile(_readable(path)) as parquet:
                schema = parquet.schema_arrow
                index = schema.get_field_index(column)  # -1 when missing or ambiguous
                if index < 0:
                    found = len(schema.get_all_field_indices(column))
                    name = path.name if isinstance(path, Path) else path.uri
                    raise KeyError(f"{name} has {'no' if found == 0 else f'{found} columns named'} {column!r}")
                arrow_type = arrow_type or schema.field(index).type
                estimated += _estimated_bytes(parquet, column, schema.field(index).type)
                rows += parquet.metadata.num_rows
        if arrow_type is None:
            raise KeyError("no file to read")
        return cls(arrow_type, estimated, rows, lambda: _read_parquet(paths, column), release)


def _estimated_bytes(parquet: pq.ParquetFile, column: str, arrow_type: pa.DataType) -> int:
    metadata = parquet.metadata
    rows = metadata.num_rows
    value = arrow_type.value_type if pat.is_dictionary(arrow_type) else arrow_type
    try:
        width = max(value.bit_width // 8, 1)
        return rows * width
    except ValueError:  # variable width: the stored (uncompressed) pages plus 8 bytes of offset a value
        leaves = leaf_indices(parquet, column)
        stored = sum(metadata.row_group(g).column(leaf).total_uncompressed_size
                     for g in range(metadata.num_row_groups) for leaf in leaves)
        return stored + 8 * rows


def _readable(source: FileSource) -> Path | io.RawIOBase | io.BufferedIOBase:
    return source if isinstance(source, Path) else source.open()


def _read_parquet(paths: Sequence[FileSource], column: str) -> Iterator[pa.Array]:
    for path in paths:
        with pq.ParquetFile(_readable(path), buffer_size=1 << 20, pre_buffer=False) as parquet:
            for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS, columns=[column], use_threads=False):
                yield batch.column(0)


def as_referenced(found: ReferencedColumn | pa.Array | pa.ChunkedArray) -> ReferencedColumn:
    return found if isinstance(found, ReferencedColumn) else ReferencedColumn.of(found)


def _fixed(column: str, label: str, detail: str) -> r.Fixed:
    return r.Fixed(RuleResult(rule="references", column=column, passed=False, expected=label, observed=None,
                              detail=detail))


def evaluator(column: str, label: str, found: ReferencedColumn | pa.Array | pa.ChunkedArray,
              kind: pa.DataType) -> r.Evaluator:
    """The evaluator of ``column references label`` whose referenced values are ``found``: in memory when they
    fit the active budget (or there is none), else the spilled semi-join; a Fixed FAIL when they cannot be cast
    to the column's type ``kind`` or cannot be spilled."""
    referenced = as_referenced(found)
    target = plain(pa.array([], type=kind)).type
    try:
        budget = memory.active()
        if budget is None:
            values = _load(referenced, None)
            assert values is not None
            return _in_memory(column, label, referenced, values, kind)
        need = set_memory(referenced.estimated_bytes, referenced.estimated_rows)
        if budget.reserve(need):
            values = _load(referenced, 2 * referenced.estimated_bytes)  # footers claiming far too little: spill
            if values is not None:
                return _in_memory(column, label, referenced, values, kind)
            budget.release(need)
        try:
            return SpilledReferences(column, label, referenced, target, budget)
        except _CAST_ERRORS as exc:
            return _fixed(column, label, _does_not_fit(referenced, kind, exc))
        except spill.SpillError as exc:
            return _fixed(column, label, str(exc))
    finally:
        referenced.release()


def set_memory(values_bytes: int, rows: int) -> int:
    """What testing values against a set of ``rows`` values taking ``values_bytes`` holds at its peak."""
    return 2 * values_bytes + HASH_BYTES_PER_VALUE * rows


def _does_not_fit(referenced: ReferencedColumn, kind: pa.DataType, exc: Exception) -> str:
    return f"referenced values of type {referenced.arrow_type} do not fit {kind}: {exc}"


def _load(referenced: ReferencedColumn, limit: int | None) -> pa.Array | None:
    """Every referenced value as one array; None as soon as they take more than ``limit`` bytes."""
    chunks, held = [], 0
    for chunk in referenced.read():
        chunks.append(chunk)
        held += chunk.nbytes
        if limit is not None and held > limit:
            return None
    if not chunks:
        return pa.array([], type=referenced.arrow_type)
    return pa.chunked_array(chunks, type=chunks[0].type).combine_chunks()


def _in_memory(column: str, label: str, referenced: ReferencedColumn, values: pa.Array,
               kind: pa.DataType) -> r.Evaluator:
    try:
        value_set = plain(values).drop_null().cast(plain(pa.array([], type=kind)).type)
    except _CAST_ERRORS as exc:
        return _fixed(column, label, _does_not_fit(referenced, kind, exc))
    return r.References(column, value_set, label)


class SpilledReferences(r.Evaluator):
    """The semi-join on disk: referenced values (partitioned when built) against the checked values."""

    def __init__(self, column: str, label: str, referenced: ReferencedColumn, target: pa.DataType,
                 budget: memory.MemoryBudget) -> None:
        self.column = column
        self.columns = (column,)
        self.label = label
        self.target = target
        self.budget = budget
        self.values = 0
        self.outside = 0
        self.firsts: dict[Any, int] = {}  # failing value -> its first row, the earliest few only
        with spill.disk(label, Path(tempfile.gettempdir()), "references", "values"):
            self.directory = spill.SpillDirectory("lane-references-")
        self.fanout = spill.fanout_for(set_memory(referenced.estimated_bytes, referenced.estimated_rows),
                                       max(budget.free // 2, spill._MIN_PARTITION))
        self.referenced = spill.PartitionFiles(self.directory.path, "r", self.fanout)
        self.checked = spill.PartitionFiles(self.directory.path, "c", self.fanout)
        STATS.spilled += 1
        STATS.partitions += self.fanout
        log.info("references(%s): about %d bytes of referenced values do not fit in %s: semi-join on disk in %d "
                 "partitions in %s", label, referenced.estimated_bytes, memory.describe(budget.free), self.fanout,
                 self.directory.path)
        try:
            with self._disk():
                for chunk in referenced.read():
                    values = plain(chunk).drop_null().cast(target)
                    if len(values):
                        self.referenced.add(pa.table({_VALUE: values}), hash_values(values), budget)
                self.referenced.close()
        except BaseException:
            self.referenced.close()
            self.directory.remove()
            raise

    def _disk(self):
        return spill.disk(self.label, self.directory.path, "references", "values")

    def judged(self):
        return self.values

    def update(self, batch, offset):
        array = batch.column(self.column)
        found = len(array) - array.null_count
        self.values += found
        if found == 0:
            return
        values = plain(array)
        if values.type != self.target:
            values = values.cast(self.target)
        table = pa.table({_VALUE: values, _ROW: pa.array(np.arange(offset, offset + len(values), dtype=np.int64))})
        if array.null_count:
            table = table.filter(values.is_valid())
        with self._disk():
            self.checked.add(table, hash_values(table.column(_VALUE).combine_chunks()), self.budget)

    def describe(self):
        return [("references", self.column, self.label)]

    def failed(self, reason: str) -> list[RuleResult]:
        self._close()
        return super().failed(reason)

    def _close(self) -> None:
        self.checked.close()
        self.directory.remove()

    def finish(self, rescan):
        try:
            self.checked.close()
            with self._disk():
                for index in range(self.fanout):
                    if self.checked.holds(index):
                        self._join(self._partition(self.referenced, index), self.checked.paths[index], depth=0)
        finally:
            self._close()
        examples = [value for value, _ in sorted(self.firsts.items(), key=lambda item: item[1])[:r.SAMPLE]]
        return [RuleResult(
            rule="references", column=self.column, passed=self.outside == 0, expected=self.label,
            observed=self.outside, failing_count=self.outside, failing_sample=examples,
            detail=f"{self.outside} non-null values not in the set" if self.outside else None,
        )]

    def _join(self, referenced: tuple[Path, int] | None, checked: Path, depth: int) -> None:
        """Decide one partition: its checked values against its referenced values (file, rows; none: all fail)."""
        need = set_memory(referenced[0].stat().st_size, referenced[1]) if referenced is not None else 0
        if need and not self.budget.reserve(need):
            if depth < spill.MAX_DEPTH:
                assert referenced is not None
                self._split(referenced[0], checked, need, depth + 1)
                return
            need = 0  # split as far as it goes: decided anyway, memory grows with its distinct values
        try:
            value_set = self._value_set(referenced[0] if referenced is not None else None)
            # is_in hashes the set at every call: probe as many checked values at once as the memory left allows
            room = max(self.budget.free // 4, spill._MIN_PARTITION)
            pending: list[pa.Table] = []
            held = 0
            for table in spill.read_tables(checked):
                pending.append(table)
                held += table.nbytes
                if held >= room:
                    self._probe(pa.concat_tables(pending), value_set)
                    pending, held = [], 0
            if pending:
                self._probe(pa.concat_tables(pending), value_set)
        finally:
            self.budget.release(need)

    def _split(self, referenced: Path, checked: Path, need: int, depth: int) -> None:
        fanout = spill.fanout_for(need, max(self.budget.free // 2, 1))
        STATS.splits += 1
        STATS.partitions += fanout
        children = []
        for source, stem in ((referenced, "r"), (checked, "c")):
            parts = spill.PartitionFiles(source.parent, f"{source.stem}-{stem}", fanout, depth)
            try:
                for table in spill.read_tables(source):
                    parts.add(table, hash_values(table.column(_VALUE).combine_chunks()), self.budget)
            finally:
                parts.close()
            source.unlink()
            children.append(parts)
        referenced_parts, checked_parts = children
        for index in range(fanout):
            if checked_parts.holds(index):
                self._join(self._partition(referenced_parts, index), checked_parts.paths[index], depth)

    @staticmethod
    def _partition(files: spill.PartitionFiles, index: int) -> tuple[Path, int] | None:
        return (files.paths[index], files.rows[index]) if files.holds(index) else None

    def _value_set(self, referenced: Path | None) -> pa.Array:
        if referenced is None:
            return pa.array([], type=self.target)
        parts = [table.column(_VALUE) for table in spill.read_tables(referenced)]  # is_in drops repeats itself
        if not parts:
            return pa.array([], type=self.target)
        return pa.chunked_array([chunk for part in parts for chunk in part.chunks], type=self.target).combine_chunks()

    def _probe(self, table: pa.Table, value_set: pa.Array) -> None:
        values = table.column(_VALUE).combine_chunks()
        failing = pc.invert(pc.is_in(values, value_set=value_set))
        count = int(pc.sum(failing).as_py() or 0)
        if not count:
            return
        self.outside += count
        # the earliest failing rows of each distinct value, a few of them: enough for the sample
        outside = table.filter(failing)
        groups = outside.group_by(_VALUE, use_threads=False).aggregate([(_ROW, "min")])
        earliest = groups.take(pc.select_k_unstable(groups, 2 * r.SAMPLE, [(f"{_ROW}_min", "ascending")]))
        for value, row in zip(earliest.column(_VALUE), earliest.column(f"{_ROW}_min").to_pylist(), strict=True):
            shown = scalar_value(value)
            if shown not in self.firsts or row < self.firsts[shown]:
                self.firsts[shown] = row
        if len(self.firsts) > r.SAMPLE:
            kept = sorted(self.firsts.items(), key=lambda item: item[1])[:r.SAMPLE]
            self.firsts = dict(kept)
