"""Export a (certified) Arrow table to a file: Parquet, CSV or JSON Lines, exactly and atomically.

- Exact: JSON Lines keeps every float's shortest round-trip representation and every timestamp at its
  stored unit (a nanosecond stays a nanosecond); CSV is Arrow's exact writer.
- Atomic: the file is written next to the destination under a temporary name and renamed into place,
  so a failed export leaves no file (and never a partial or 0-byte one).
- CSV cannot hold nested values: a struct, list or map column is refused before anything is written.
"""

from __future__ import annotations

import base64
import json
import math
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS = (".parquet", ".csv", ".jsonl")
_FRACTION_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}


class ExportError(ValueError):
    """The table cannot be written in the chosen format; nothing was written."""


def export_format(destination: Path) -> str:
    suffix = destination.suffix.lower()
    if suffix not in FORMATS:
        raise ExportError(f"{destination}: use a .parquet, .csv or .jsonl file name")
    return suffix


def nested_columns(table: pa.Table) -> list[str]:
    import pyarrow.types as pat

    return [field.name for field in table.schema
            if pat.is_struct(field.type) or pat.is_list(field.type) or pat.is_large_list(field.type)
            or pat.is_map(field.type) or pat.is_fixed_size_list(field.type) or pat.is_union(field.type)]


def write_table(table: pa.Table, destination: Path) -> None:
    """Write ``table`` to ``destination`` (format by suffix); on any failure no file is left behind."""
    suffix = export_format(destination)
    if suffix == ".csv":
        nested = nested_columns(table)
        if nested:
            raise ExportError(
                f"{destination}: CSV cannot hold nested values (struct/list/map column "
                f"{', '.join(map(repr, nested))}); export to .parquet or .jsonl instead"
            )
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".partial")
        os.close(fd)
    except OSError as exc:
        raise ExportError(f"{destination}: cannot write there: {exc.strerror or exc}") from exc
    staged = Path(temporary)
    try:
        _write(table, staged, suffix)
        os.replace(staged, destination)
    except BaseException as exc:
        staged.unlink(missing_ok=True)
        if isinstance(exc, (OSError, ValueError, TypeError)) and not isinstance(exc, ExportError):
            raise ExportError(f"{destination}: export failed: {type(exc).__name__}: {exc}") from exc
        raise


def _write(table: pa.Table, path: Path, suffix: str) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        if suffix == ".parquet":
            pq.write_table(table, path)
        elif suffix == ".csv":
            pacsv.write_csv(table, path)
        else:
            with open(path, "w", encoding="utf-8") as handle:
                handle.writelines(jsonl_lines(table))
    except (pa.ArrowException, NotImplementedError) as exc:
        raise ExportError(f"cannot write {suffix[1:]}: {exc}") from exc


def jsonl_lines(table: pa.Table) -> Iterator[str]:
    """One JSON object per row, keys in column order, values exact."""
    import pyarrow.types as pat

    names = table.column_names
    for batch in table.to_batches(max_chunksize=65_536):
        columns = []
        for field, column in zip(batch.schema, batch.columns, strict=True):
            if pat.is_timestamp(field.type):
                columns.append(_timestamps(column, field.type))
            elif pat.is_dictionary(field.type):
                columns.append(column.dictionary_decode().to_pylist())
            else:
                columns.append(column.to_pylist())
        rows = zip(*columns, strict=True) if columns else ([] for _ in range(batch.num_rows))
        for values in rows:
            row = {name: _plain(value) for name, value in zip(names, values, strict=True)}
            yield json.dumps(row, ensure_ascii=False, allow_nan=False, default=_json_default) + "\n"


def _timestamps(column: pa.Array, arrow_type: pa.TimestampType) -> list[str | None]:
    """ISO 8601 at the column's own unit; zoned instants in UTC with Z, naive ones as written."""
    import pyarrow as pa

    digits = _FRACTION_DIGITS[arrow_type.unit]
    per_second = 10 ** digits
    suffix = "Z" if arrow_type.tz is not None else ""
    epoch = datetime(1970, 1, 1)
    formatted: list[str | None] = []
    for raw in column.cast(pa.int64()).to_pylist():
        if raw is None:
            formatted.append(None)
            continue
        seconds, fraction = divmod(raw, per_second)
        text = (epoch + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
        formatted.append(text + (f".{fraction:0{digits}d}" if digits else "") + suffix)
    return formatted


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value.tzinfo else value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if hasattr(value, "isoformat"):  # pandas Timestamp inside nested values (nanoseconds kept)
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
