"""The same certification, four ways: our checker, the I/O floor, pandera, polars.

Each contender returns whether the product passed, so a benchmark that silently
checks nothing cannot look fast: every contender must agree with the others.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pyarrow.parquet as pq

from batchlane.checks import check_files, hash_file
from benchmarks.data import CHECKED_COLUMNS, CONTRACT, NOW, Dataset

ACCEPTED = CONTRACT["columns"]["status"]["accepted_values"]
NOT_BEFORE = NOW - dt.timedelta(days=7)


def ours(dataset: Dataset) -> bool:
    """Hash + every rule, exactly what the gate runs."""
    return check_files([dataset.path], dataset.contract, now=NOW).verdict == "PASS"


def floor(dataset: Dataset) -> bool:
    """The least any checker must do: read the checked columns and SHA-256 the file."""
    table = pq.read_table(dataset.path, columns=CHECKED_COLUMNS)
    hash_file(dataset.path)
    return table.num_rows >= 1


def read_only(dataset: Dataset) -> bool:
    """Half of the floor, for context: the column read alone."""
    return pq.read_table(dataset.path, columns=CHECKED_COLUMNS).num_rows >= 1


def hash_only(dataset: Dataset) -> bool:
    """The other half: SHA-256 of the file alone."""
    return hash_file(dataset.path)[0] > 0


def pandera(dataset: Dataset) -> bool:
    """Read into pandas, then pandera's lazy validation of the same rules (no hash)."""
    import warnings

    import pandas as pd
    with warnings.catch_warnings():  # pandera warns about typeguard < 3 at import; not ours to fix
        warnings.simplefilter("ignore", UserWarning)
        import pandera.pandas as pa
        from pandera.errors import SchemaErrors

    frame = pd.read_parquet(dataset.path, columns=CHECKED_COLUMNS)
    schema = pa.DataFrameSchema(
        {
            "id": pa.Column("int64", nullable=False, unique=True),
            "created_at": pa.Column(
                "datetime64[us, UTC]", nullable=False,
                checks=pa.Check(lambda s: s.max() >= pd.Timestamp(NOT_BEFORE), element_wise=False,
                                name="max_age"),
            ),
            "status": pa.Column(nullable=False, checks=pa.Check.isin(ACCEPTED)),
            "amount": pa.Column("float64", nullable=True, checks=pa.Check.in_range(0, 1000)),
        },
        checks=pa.Check(lambda df: len(df) >= 1, name="row_count"),
    )
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors:
        return False
    return True


def polars(dataset: Dataset) -> bool:
    """scan_parquet + one lazy query computing every rule's observation (no hash)."""
    import polars as pl

    col = pl.col
    facts = (
        pl.scan_parquet(dataset.path)
        .select(
            pl.len().alias("rows"),
            col("id").null_count().alias("id_nulls"),
            col("id").n_unique().alias("id_distinct"),
            col("id").count().alias("id_values"),
            col("created_at").null_count().alias("created_nulls"),
            col("created_at").max().alias("newest"),
            col("status").null_count().alias("status_nulls"),
            (~col("status").is_in(ACCEPTED) & col("status").is_not_null()).sum().alias("status_outside"),
            col("amount").is_nan().sum().alias("amount_nan"),
            ((col("amount") < 0) | (col("amount") > 1000)).sum().alias("amount_outside"),
        )
        .collect()
        .row(0, named=True)
    )
    return (
        facts["rows"] >= 1 and facts["id_nulls"] == 0 and facts["id_distinct"] == facts["id_values"]
        and facts["created_nulls"] == 0 and facts["newest"] >= NOT_BEFORE
        and facts["status_nulls"] == 0 and facts["status_outside"] == 0
        and facts["amount_nan"] == 0 and facts["amount_outside"] == 0
    )


CONTENDERS: dict[str, Callable[[Dataset], bool]] = {
    "ours": ours, "floor": floor, "pandera": pandera, "polars": polars,
    "read_only": read_only, "hash_only": hash_only,  # context, no target
}
