"""Small builders shared by the checker tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from batchlane.checks import CheckOutcome, check_files
from batchlane.receipts import RuleResult
from batchlane.spec import Contract

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def write(directory: Path, columns: dict[str, Any], name: str = "product.parquet", **options: Any) -> Path:
    """A Parquet file from {column: pa.Array or list}; options go to pq.write_table."""
    path = directory / name
    pq.write_table(pa.table(columns), path, **options)
    return path


def contract(columns: dict[str, dict] | None = None, **table_rules: Any) -> Contract:
    return Contract.model_validate({"columns": columns or {}, **table_rules})


def check(path: Path | list[Path], rules: Contract, **options: Any) -> CheckOutcome:
    paths = path if isinstance(path, list) else [path]
    options.setdefault("now", NOW)
    return check_files(paths, rules, **options)


def rule(outcome: CheckOutcome, name: str, column: str | None = None) -> RuleResult:
    found = [r for r in outcome.rules if r.rule == name and r.column == column]
    assert len(found) == 1, f"expected one {name}({column}) in {[r.label for r in outcome.rules]}"
    return found[0]
