"""Forge Parquet footers for tests: make a file's footer lie about its own data.

pyarrow cannot write wrong statistics, so this edits the footer bytes in place. The
footer is Thrift compact protocol (parquet.thrift ``FileMetaData``); ``footer_fields``
walks it and records where every scalar field sits, keyed by its field-id path, e.g.
``(4, 0, 1, 0, 3, 12, 6)`` = row_groups[0].columns[0].meta_data.statistics.min_value.
Patches keep each field's encoded length, so every other offset in the file stays valid
and pyarrow still opens the file; only the claimed value changes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

# parquet.thrift field ids used by the tests
FILE_NUM_ROWS = (3,)
ROW_GROUPS = 4
RG_COLUMNS, RG_NUM_ROWS = 1, 3
CHUNK_META = 3
META_NUM_VALUES, META_STATISTICS = 5, 12
STAT_MAX, STAT_MIN, STAT_NULL_COUNT, STAT_MAX_VALUE, STAT_MIN_VALUE = 1, 2, 3, 5, 6

_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(13)


@dataclass(frozen=True)
class Field:
    start: int  # offset of the value inside the footer
    end: int
    kind: int   # compact protocol type id


class _Walker:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.fields: dict[tuple[int, ...], Field] = {}

    def varint(self) -> int:
        shift = result = 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    def value(self, kind: int, path: tuple[int, ...]) -> None:
        start = self.pos
        if kind in (_TRUE, _FALSE):
            pass  # a struct field's bool lives in its header
        elif kind == _BYTE:
            self.pos += 1
        elif kind in (_I16, _I32, _I64):
            self.varint()
        elif kind == _DOUBLE:
            self.pos += 8
        elif kind == _BINARY:
            length = self.varint()
            start = self.pos  # the payload, not its length prefix
            self.pos += length
        elif kind in (_LIST, _SET):
            header = self.data[self.pos]
            self.pos += 1
            size, element = header >> 4, header & 0x0F
            if size == 15:
                size = self.varint()
            for index in range(size):
                if element in (_TRUE, _FALSE):
                    self.pos += 1
                else:
                    self.value(element, (*path, index))
            return
        elif kind == _MAP:
            size = self.varint()
            if size:
                types = self.data[self.pos]
                self.pos += 1
                for index in range(size):
                    self.value(types >> 4, (*path, index, 0))
                    self.value(types & 0x0F, (*path, index, 1))
            return
        elif kind == _STRUCT:
            self.struct(path)
            return
        else:
            raise ValueError(f"unknown thrift compact type {kind} at footer offset {self.pos}")
        self.fields[path] = Field(start, self.pos, kind)

    def struct(self, path: tuple[int, ...]) -> None:
        last = 0
        while True:
            header = self.data[self.pos]
            self.pos += 1
            if header == _STOP:
                return
            delta, kind = header >> 4, header & 0x0F
            if delta:
                field_id = last + delta
            else:
                raw = self.varint()
                field_id = (raw >> 1) ^ -(raw & 1)
            last = field_id
            self.value(kind, (*path, field_id))


def _footer_span(data: bytes) -> tuple[int, int]:
    if data[-4:] != b"PAR1":
        raise ValueError("not a Parquet file")
    length = struct.unpack("<i", data[-8:-4])[0]
    return len(data) - 8 - length, len(data) - 8


def footer_fields(path: Path) -> dict[tuple[int, ...], Field]:
    data = path.read_bytes()
    start, end = _footer_span(data)
    walker = _Walker(data[start:end])
    walker.struct(())
    return walker.fields


def _zigzag_varint(value: int) -> bytes:
    raw = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = raw & 0x7F
        raw >>= 7
        if raw:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def patch(path: Path, field: tuple[int, ...], new_value: int | bytes) -> None:
    """Overwrite one footer field in place; the encoding must keep its length."""
    data = bytearray(path.read_bytes())
    start, _ = _footer_span(bytes(data))
    found = footer_fields(path).get(field)
    if found is None:
        raise KeyError(f"footer field {field} not present in {path}")
    encoded = _zigzag_varint(new_value) if isinstance(new_value, int) else new_value
    if len(encoded) != found.end - found.start:
        raise ValueError(f"{field}: new encoding is {len(encoded)} bytes, the field has {found.end - found.start}")
    data[start + found.start : start + found.end] = encoded
    path.write_bytes(bytes(data))


def statistic(row_group: int, column: int, field_id: int) -> tuple[int, ...]:
    return (ROW_GROUPS, row_group, RG_COLUMNS, column, CHUNK_META, META_STATISTICS, field_id)


def lie_about_min(path: Path, column: int, value: bytes, row_group: int = 0) -> None:
    """Both the legacy ``min`` and ``min_value`` (pyarrow writes both for signed types)."""
    for field_id in (STAT_MIN, STAT_MIN_VALUE):
        if statistic(row_group, column, field_id) in footer_fields(path):
            patch(path, statistic(row_group, column, field_id), value)


def lie_about_max(path: Path, column: int, value: bytes, row_group: int = 0) -> None:
    for field_id in (STAT_MAX, STAT_MAX_VALUE):
        if statistic(row_group, column, field_id) in footer_fields(path):
            patch(path, statistic(row_group, column, field_id), value)


def lie_about_null_count(path: Path, column: int, value: int, row_group: int = 0) -> None:
    patch(path, statistic(row_group, column, STAT_NULL_COUNT), value)
