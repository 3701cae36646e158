"""Reading a row group within the memory budget: whole when it fits the reader's share, else in bounded batches.

The engine reads one row group at a time. A single row group can be bigger than any budget (one writer
call can make a row group of 20M rows), so under a budget a row group whose decoded columns would not
fit half the reader's share (``MemoryBudget.reader_reserve``) is read in batches of rows sized from
that share and the columns' widths (``batch_rows``), through a reader that neither pre-buffers whole
column chunks nor reads them at once (``open_streaming``: ``pre_buffer=False`` and a small read buffer).
The parts come in row order, so row numbers (and the footer cross-check, which sums a row group's parts)
are the same as for the whole row group. The widths come from the footer (a hint: a wrong one changes
the batch size, never a value read). ``STATS`` counts row groups read in parts (tests assert the path).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from batchlane.checking import budget as memory
from batchlane.checking.errors import CheckError

READ_BUFFER = 1 << 20  # bytes read at a time from a column chunk when streaming
MIN_BATCH_ROWS = 1_024
_TEMPORARIES = 4  # a batch, its plain/cast copies and the rules' per-row results: the share / 4 per batch
_FIXED_WIDTH = {"BOOLEAN": 1, "INT32": 4, "INT64": 8, "INT96": 8, "FLOAT": 4, "DOUBLE": 8}
_MIN_DICTIONARY_VALUE = 32  # bytes a dictionary-encoded string decodes to at least (its pages hold indices only)


@dataclass
class ReadStats:
    """Row groups read in bounded parts in this process (tests read it to see which path a check took)."""

    row_groups: int = 0
    parts: int = 0

    def reset(self) -> None:
        for item in fields(self):
            setattr(self, item.name, 0)


STATS = ReadStats()


def bytes_per_row(metadata: pq.FileMetaData, group: int, leaves: Sequence[int], dictionaries: Sequence[int]) -> float:
    """What one row of these leaf columns takes once decoded into Arrow, estimated from the footer."""
    row_group = metadata.row_group(group)
    rows = max(row_group.num_rows, 1)
    total = 0.0
    for leaf in leaves:
        chunk = row_group.column(leaf)
        width = _FIXED_WIDTH.get(chunk.physical_type)
        if width is None and chunk.physical_type == "FIXED_LEN_BYTE_ARRAY":
            width = metadata.schema.column(leaf).length or 16
        if width is not None:
            total += width + 0.125  # and the validity bit
        elif leaf in dictionaries:  # read as a dictionary: indices, the dictionary once
            total += 4 + chunk.total_uncompressed_size / rows
        else:  # strings and binaries: the stored values (PLAIN keeps a 4-byte length each) and 8-byte offsets
            stored = chunk.total_uncompressed_size / rows
            total += (max(stored, _MIN_DICTIONARY_VALUE) if chunk.has_dictionary_page else stored) + 8
    return max(total, 1.0)


def batch_rows(metadata: pq.FileMetaData, group: int, leaves: Sequence[int],
               dictionaries: Sequence[int]) -> int | None:
    """Rows per part to read row group ``group`` within the active budget; None when it is read whole
    (no budget, or its decoded columns fit half the reader's share)."""
    budget = memory.active()
    if budget is None or not leaves:
        return None
    width = bytes_per_row(metadata, group, leaves, dictionaries)
    rows = metadata.row_group(group).num_rows
    if rows * width <= budget.reader_reserve // 2:
        return None
    return max(int(budget.reader_reserve // (_TEMPORARIES * width)), MIN_BATCH_ROWS)


def open_streaming(source: str | IO[bytes] | object, metadata: pq.FileMetaData,
                   dictionaries: Sequence[int]) -> pq.ParquetFile:
    """A reader that holds one buffer per column chunk, not whole chunks (no pre-buffering)."""
    return pq.ParquetFile(source, metadata=metadata, read_dictionary=list(dictionaries) or None,
                          pre_buffer=False, buffer_size=READ_BUFFER)


def parts(parquet: pq.ParquetFile, group: int, leaves: Sequence[int], rows: int, where: str) -> Iterator[pa.Table]:
    """Row group ``group`` of ``leaves`` as tables of at most ``rows`` rows, in row order."""
    STATS.row_groups += 1
    reader = parquet.reader.iter_batches(rows, row_groups=[group], column_indices=list(leaves), use_threads=True)
    while True:
        try:
            batch = next(reader)
        except StopIteration:
            return
        except Exception as exc:  # pyarrow raises ArrowInvalid/OSError with varied messages
            raise CheckError(f"{where} unreadable: {exc}") from exc
        STATS.parts += 1
        yield pa.Table.from_batches([batch])
