"""Deterministic benchmark product: N rows x 8 columns, snappy, 1M-row row groups, and its contract."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from batchlane.spec import Contract

DATA_DIR = Path(__file__).resolve().parent / "data"
SEED = 20261127
STATUSES = ["new", "paid", "shipped", "cancelled", "returned"]
# Timestamps end at this instant; the contract's freshness rule is judged at NOW.
LATEST = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)

CONTRACT = {
    "row_count": {"min": 1},
    "columns": {
        "id": {"type": "int64", "not_null": True, "unique": True},
        "created_at": {"type": "timestamp", "not_null": True, "max_age": "7d"},
        "status": {"type": "string", "not_null": True, "accepted_values": STATUSES},
        "amount": {"type": "float64", "min": 0, "max": 1000},
    },
}
# The columns those rules are about: what the "floor" reads.
CHECKED_COLUMNS = ["id", "created_at", "status", "amount"]


@dataclass(frozen=True)
class Dataset:
    path: Path
    contract_path: Path
    rows: int

    @property
    def contract(self) -> Contract:
        return Contract.model_validate(CONTRACT)


def _table(rows: int, rng: np.random.Generator) -> pa.Table:
    latest_us = int(LATEST.timestamp() * 1_000_000)
    span_us = 365 * 86_400 * 1_000_000
    created = latest_us - rng.integers(0, span_us, rows)
    created[rng.integers(0, rows)] = latest_us  # the newest row is exactly LATEST
    updated = created + rng.integers(0, 86_400 * 1_000_000, rows)
    status = pa.DictionaryArray.from_arrays(
        pa.array(rng.integers(0, len(STATUSES), rows).astype(np.int8)), pa.array(STATUSES)
    ).dictionary_decode()
    note_number = pc.cast(pa.array(rng.integers(0, 10_000_000, rows)), pa.string())
    note_text = pc.binary_join_element_wise("note-", note_number, "")
    note = pc.if_else(pa.array(rng.random(rows) < 0.10), pa.scalar(None, pa.string()), note_text)
    return pa.table({
        "id": pa.array(rng.permutation(rows).astype(np.int64) + 1),
        "created_at": pa.array(created, pa.timestamp("us", tz="UTC")),
        "updated_at": pa.array(updated, pa.timestamp("us", tz="UTC")),
        "amount": pa.array(rng.random(rows) * 1000.0),
        "score": pa.array(rng.normal(0.0, 1.0, rows)),
        "qty": pa.array(rng.integers(1, 100, rows).astype(np.int32)),
        "status": status,
        "note": note,
    })


def ensure_dataset(rows: int, directory: Path = DATA_DIR, row_group_size: int = 1_000_000) -> Dataset:
    """Generate once; reuse when the file for this row count already exists."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"orders-{rows}.parquet"
    contract_path = directory / "contract.yaml"
    contract_path.write_text(yaml.safe_dump({"contract": CONTRACT}, sort_keys=False))
    if not path.exists():
        table = _table(rows, np.random.default_rng(SEED))
        partial = path.with_suffix(".partial")
        pq.write_table(table, partial, compression="snappy", row_group_size=row_group_size)
        partial.rename(path)  # a crash mid-write never leaves a file that looks complete
    return Dataset(path=path, contract_path=contract_path, rows=rows)
