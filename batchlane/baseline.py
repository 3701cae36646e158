"""Baselines for change rules (``row_count.max_change``, ``not_null.max_fraction_change``).

Inside a lane the baseline is the certification in force for the output when its new attempt is checked:
the row count and the per-column null counts its check receipt recorded (bound to the pointer through the
certification's digest chain, so a swapped or altered receipt is refused, not compared with). Outside a lane
``lane check --baseline FILE`` takes the previous version itself: Parquet file(s), whose rows and nulls are
counted from the data (never taken from a footer), or the JSON of an earlier ``lane check --json`` (or of a
check receipt), which holds the counts already.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from batchlane.checking.change import Baseline
from batchlane.contract import Contract
from batchlane.stores.base import Backend

__all__ = ["Baseline", "BaselineError", "certified_baseline", "file_baseline"]


class BaselineError(ValueError):
    """A ``--baseline`` file that cannot serve as a baseline; the message names it and says why."""


def certified_baseline(backend: Backend, lane: str, output: str, contract: Contract) -> Baseline | None:
    """The certification in force for ``lane/output`` as a baseline; None when the contract has no change rule
    (nothing is read then). A certification whose evidence does not hold is a baseline that fails the change
    rules with the reason (fail closed), never a silent pass."""
    if not contract.change_rules():
        return None
    from batchlane.evidence import load_receipt
    from batchlane.reading import NotCertified, bound_certification
    from batchlane.receipts import CheckReceipt

    pointer = backend.ledger.current(lane, output)
    if pointer is None:
        return Baseline.nothing(f"no certification of {lane}/{output} in force: this is the first, "
                                "nothing to compare against")
    if pointer.revoked is not None:
        return Baseline.nothing(f"the certification of {lane}/{output} (run {pointer.run_id}) was revoked "
                                f"({pointer.revoked}): nothing in force to compare against")
    try:
        bound_certification(backend, pointer)  # the pointer -> its gate receipt -> a PASS check receipt, by digest
    except NotCertified as exc:
        return Baseline(source=pointer.key, error=f"the certification in force cannot serve as the baseline: {exc}")
    checked = load_receipt(backend, pointer.run_id, output, pointer.attempt, "check")
    if not isinstance(checked, CheckReceipt):
        return Baseline(source=pointer.key, error=f"the check receipt of certification {pointer.key} is missing")
    return _from_rules(pointer.key, checked.rows, [rule.model_dump(mode="json") for rule in checked.rules])


def _from_rules(source: str, rows: Any, rules: Sequence[Any]) -> Baseline:
    nulls = {rule["column"]: rule["observed"] for rule in rules
             if isinstance(rule, dict) and rule.get("rule") == "not_null" and isinstance(rule.get("column"), str)
             and isinstance(rule.get("observed"), int) and not isinstance(rule.get("observed"), bool)}
    if not isinstance(rows, int) or isinstance(rows, bool):
        return Baseline(source=source, error=f"{source} records no row count")
    return Baseline(source=source, rows=rows, nulls=nulls)


def file_baseline(paths: Sequence[Path], contract: Contract) -> Baseline:
    """``lane check --baseline FILE``: Parquet file(s) of the previous version (counted from the data), or one
    JSON file from ``lane check --json`` / a check receipt. Raises BaselineError naming the file and the reason."""
    if not paths:
        raise BaselineError("--baseline needs a file")
    if len(paths) == 1 and paths[0].suffix.lower() == ".json":
        return _json_baseline(paths[0])
    return _parquet_baseline(paths, contract)


def _json_baseline(path: Path) -> Baseline:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(f"baseline {path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"baseline {path}: not a readable JSON document: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list) or "rows" not in document:
        raise BaselineError(f"baseline {path}: expected the JSON of `lane check --json` (or of a check receipt), "
                            "with rows and rules")
    found = _from_rules(str(path), document.get("rows"), document["rules"])
    if found.error:
        raise BaselineError(f"baseline {path}: {found.error}")
    return found


def _parquet_baseline(paths: Sequence[Path], contract: Contract) -> Baseline:
    import pyarrow as pa
    import pyarrow.parquet as pq

    wanted = [column for column, rules in contract.columns.items()
              if rules.options("not_null").max_fraction_change is not None]
    rows = 0
    nulls = dict.fromkeys(wanted, 0)
    for path in paths:
        if not path.is_file():
            raise BaselineError(f"baseline {path}: file not found")
        try:
            with pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20) as parquet:  # no whole row group
                names = parquet.schema_arrow.names
                present = [column for column in wanted if names.count(column) == 1]
                for column in wanted:
                    if column not in present:
                        nulls.pop(column, None)  # not in every file: no null count to compare with
                read = present or names[:1]
                for batch in parquet.iter_batches(columns=read):   # rows are counted, not taken from the footer
                    rows += batch.num_rows
                    for column in present:
                        nulls[column] += batch.column(column).null_count
        except (OSError, pa.ArrowException) as exc:
            raise BaselineError(f"baseline {path}: not a readable Parquet file: {exc}") from None
    return Baseline(source=", ".join(str(path) for path in paths), rows=rows, nulls=nulls)
