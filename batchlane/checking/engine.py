"""The checking engine behind ``batchlane.checks.check_files``.

Streams only the columns the rules need, one row group at a time, settles what the
Parquet footers state exactly without reading data, and hashes every file on a
background thread while the scan runs. Imported on first use: it pulls in
pyarrow.compute and NumPy, which a `lane` command that checks nothing never needs.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq

from batchlane.checking import rules as r
from batchlane.checking.arrowtypes import is_numeric, is_string_like, is_temporal, matches, value_type
from batchlane.checking.errors import CheckError, ReferenceUnavailable
from batchlane.checking.filehash import BackgroundHash
from batchlane.checking.footer import ColumnFooter, column_footer
from batchlane.checking.outcome import CheckOutcome
from batchlane.receipts import FileDigest, RuleResult
from batchlane.spec import ColumnRules, Contract

ReferenceResolver = Callable[[str, str], pa.Array]


@dataclass(frozen=True)
class _Product:
    paths: list[Path]
    uris: list[str]
    files: list[pq.ParquetFile]

    @property
    def rows(self) -> int:
        return sum(f.metadata.num_rows for f in self.files)


def _open(path: Path, uri: str) -> pq.ParquetFile:
    if not path.is_file():
        raise CheckError(f"{uri}: file not found")
    if path.stat().st_size == 0:
        raise CheckError(f"{uri}: empty file (0 bytes), not Parquet")
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError with varied messages
        raise CheckError(f"{uri}: not a readable Parquet file: {exc}") from exc


def _utc(moment: dt.datetime | None) -> dt.datetime:
    if moment is None:
        return dt.datetime.now(dt.UTC)
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _fixed(rule: str, column: str | None, expected, detail: str, observed=None) -> r.Fixed:
    return r.Fixed(RuleResult(rule=rule, column=column, passed=False, expected=expected,
                              observed=observed, detail=detail))


def _column_types(product: _Product, name: str) -> list[pa.DataType] | None:
    """The column's type in each file, or None if any file lacks it."""
    types = []
    for parquet in product.files:
        index = parquet.schema_arrow.get_field_index(name)
        if index < 0:
            return None
        types.append(parquet.schema_arrow.field(index).type)
    return types


def _missing_in(product: _Product, name: str) -> str:
    problems = []
    for uri, parquet in zip(product.uris, product.files):
        found = len(parquet.schema_arrow.get_all_field_indices(name))
        if found == 0:
            problems.append(f"not in {uri}")
        elif found > 1:
            problems.append(f"{found} times in {uri} (ambiguous)")
    return f"column {name!r} " + "; ".join(problems)


def _column_evaluators(
    name: str, rules: ColumnRules, arrow_type: pa.DataType, rows: int, now: dt.datetime,
    reference_values: ReferenceResolver | None,
) -> list[r.Evaluator]:
    kind = value_type(arrow_type)
    found: list[r.Evaluator] = []
    if rules.not_null:
        found.append(r.NotNull(name))
    if rules.unique:
        found.append(r.Unique([name], [arrow_type], rows))
    if rules.accepted_values is not None:
        value_set = r.accepted_value_set(rules.accepted_values, kind)
        found.append(r.InSet("accepted_values", name, value_set, list(rules.accepted_values)))
    if rules.min is not None or rules.max is not None:
        if is_numeric(kind):
            found.append(r.Range(name, kind, rules.min, rules.max))
        else:
            for rule, bound in (("min", rules.min), ("max", rules.max)):
                if bound is not None:
                    found.append(_fixed(rule, name, bound, f"{rule} applies to numeric columns, not {kind}"))
    if rules.max_age is not None:
        if is_temporal(kind):
            found.append(r.MaxAge(name, kind, rules.max_age, rules.max_age_delta, now))
        else:
            found.append(_fixed("max_age", name, {"max_age": rules.max_age},
                                f"max_age applies to timestamp or date columns, not {kind}"))
    if rules.regex is not None:
        if is_string_like(kind):
            found.append(r.Regex(name, rules.regex))
        else:
            found.append(_fixed("regex", name, rules.regex, f"regex applies to string columns, not {kind}"))
    if rules.reference is not None:
        found.append(_references(name, rules.references, rules.reference, kind, reference_values))
    return found


def _references(name: str, label: str, target: tuple[str, str], kind: pa.DataType,
                reference_values: ReferenceResolver | None) -> r.Evaluator:
    if reference_values is None:
        return _fixed("references", name, label, "no resolver: referenced product cannot be read")
    try:
        values = reference_values(*target)
    except ReferenceUnavailable as exc:
        return _fixed("references", name, label, f"referenced product unavailable: {exc}")
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    try:
        values = r.plain(values).drop_null().cast(r.plain(pa.array([], type=kind)).type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        return _fixed("references", name, label, f"referenced values of type {values.type} do not fit {kind}: {exc}")
    return r.InSet("references", name, values, label)


def _plan(product: _Product, contract: Contract, now: dt.datetime,
          reference_values: ReferenceResolver | None) -> list[r.Evaluator]:
    rows = product.rows
    plan: list[r.Evaluator] = []
    if contract.row_count is not None:
        bounds = contract.row_count
        passed = (bounds.min is None or rows >= bounds.min) and (bounds.max is None or rows <= bounds.max)
        expected = {key: value for key, value in (("min", bounds.min), ("max", bounds.max)) if value is not None}
        plan.append(r.Fixed(RuleResult(rule="row_count", passed=passed, expected=expected, observed=rows,
                                       detail=None if passed else f"{rows} rows outside {expected}")))
    for name, rules in contract.columns.items():
        types = _column_types(product, name)
        if types is None:
            plan.append(_fixed("exists", name, "column present", _missing_in(product, name), observed="missing"))
            continue
        if rules.type is not None:
            observed = " | ".join(dict.fromkeys(str(t) for t in types))
            passed = all(matches(rules.type, t) for t in types)
            plan.append(r.Fixed(RuleResult(rule="type", column=name, passed=passed, expected=rules.type,
                                           observed=observed,
                                           detail=None if passed else f"Arrow type {observed} is not {rules.type}")))
        plan.extend(_column_evaluators(name, rules, types[0], rows, now, reference_values))
    for key in contract.unique:
        types = [_column_types(product, name) for name in key]
        missing = [name for name, found in zip(key, types) if found is None]
        if missing:
            plan.append(_fixed("unique", ",".join(key), 0, f"key column(s) missing: {', '.join(missing)}"))
        else:
            plan.append(r.Unique(key, [found[0] for found in types], rows))
    return plan


def _footers(product: _Product, columns: set[str]) -> dict[str, ColumnFooter]:
    footers: dict[str, ColumnFooter] = {}
    for name in columns:
        merged = None
        for parquet in product.files:
            field = parquet.schema_arrow.field(name)
            footer = column_footer(parquet, name, field.type)
            merged = footer if merged is None else merged.merge(footer)
        footers[name] = merged
    return footers


def _dictionary_columns(parquet: pq.ParquetFile, columns: Sequence[str]) -> list[str]:
    """String columns stored fully dictionary-encoded: read as Arrow dictionaries.

    Decoding a low-cardinality string column into plain strings costs ~10x more than
    reading its indices, and set/regex rules then test each distinct value once.
    A chunk whose data pages average < 4 bytes per value holds RLE indices, not PLAIN
    strings (PLAIN spends 4 bytes on each length prefix alone).
    """
    chosen = []
    metadata = parquet.metadata
    for name in columns:
        field = parquet.schema_arrow.field(name)
        index = next((i for i in range(len(parquet.schema)) if parquet.schema.column(i).path == name), None)
        if index is None or not is_string_like(field.type) or pa.types.is_dictionary(field.type):
            continue
        chunks = [metadata.row_group(g).column(index) for g in range(metadata.num_row_groups)]
        if chunks and all(
            chunk.has_dictionary_page
            and (chunk.total_uncompressed_size - (chunk.data_page_offset - chunk.dictionary_page_offset))
            < 4 * max(chunk.num_values, 1)
            for chunk in chunks
        ):
            chosen.append(name)
    return chosen


def _batches(product: _Product, columns: Sequence[str]) -> Iterator[tuple[pa.RecordBatch, int]]:
    """(batch, global row number of its first row), one row group of ``columns`` at a time."""
    offset = 0
    for path, uri, footer_only in zip(product.paths, product.uris, product.files):
        dictionaries = _dictionary_columns(footer_only, columns)
        parquet = pq.ParquetFile(path, read_dictionary=dictionaries) if dictionaries else footer_only
        try:
            for group in range(parquet.metadata.num_row_groups):
                try:
                    table = parquet.read_row_group(group, columns=list(columns), use_threads=True)
                except Exception as exc:
                    raise CheckError(f"{uri}: row group {group} unreadable: {exc}") from exc
                for batch in table.to_batches():
                    yield batch, offset
                    offset += batch.num_rows
        finally:
            if parquet is not footer_only:
                parquet.close()


def run_check(
    paths: Sequence[Path],
    contract: Contract,
    *,
    uris: Sequence[str] | None,
    reference_values: ReferenceResolver | None,
    now: dt.datetime | None,
    use_statistics: bool,
) -> CheckOutcome:
    started = time.perf_counter()
    paths = [Path(p) for p in paths]
    if not paths:
        raise CheckError("a product needs at least one file")
    uris = list(uris) if uris is not None else [str(p) for p in paths]
    if len(uris) != len(paths):
        raise CheckError(f"{len(uris)} uris for {len(paths)} files")
    opened: list[pq.ParquetFile] = []
    try:
        for path, uri in zip(paths, uris):
            opened.append(_open(path, uri))
        product = _Product(paths, uris, opened)
        hashing = BackgroundHash(paths)  # runs while we scan
        return _check(product, hashing, contract, now, reference_values, use_statistics, started)
    finally:
        for parquet in opened:
            parquet.close()


def _check(product: _Product, hashing: BackgroundHash, contract: Contract, now: dt.datetime | None,
           reference_values: ReferenceResolver | None, use_statistics: bool, started: float) -> CheckOutcome:
    uris = product.uris
    plan = _plan(product, contract, _utc(now), reference_values)
    footers = _footers(product, {c for ev in plan for c in ev.columns}) if use_statistics else {}
    settled: dict[int, list[RuleResult]] = {}
    for position, evaluator in enumerate(plan):
        if isinstance(evaluator, r.Fixed) or use_statistics:
            answer = evaluator.from_footer(footers)
            if answer is not None:
                settled[position] = answer
            elif use_statistics:
                evaluator.prepare(footers)
    to_scan = [ev for position, ev in enumerate(plan) if position not in settled]
    columns = list(dict.fromkeys(c for ev in to_scan for c in ev.columns))
    if columns:
        try:
            for batch, offset in _batches(product, columns):
                for evaluator in to_scan:
                    evaluator.update(batch, offset)
        except (ValueError, pa.ArrowException) as exc:
            # data contradicting its own footer, or values no rule kernel can handle: fail closed, say why
            raise CheckError(f"{', '.join(uris)}: cannot evaluate the contract: {exc}") from exc

    def rescan(wanted: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
        return (batch for batch, _ in _batches(product, wanted))

    results: list[RuleResult] = []
    for position, evaluator in enumerate(plan):
        results.extend(settled[position] if position in settled else evaluator.finish(rescan))

    try:
        digests = hashing.result()
    except OSError as exc:
        raise CheckError(f"cannot hash product files: {exc}") from exc
    files = [
        FileDigest(uri=uri, size=size, sha256=sha, rows=parquet.metadata.num_rows,
                   schema={f.name: str(f.type) for f in parquet.schema_arrow})
        for uri, parquet, (size, sha) in zip(uris, product.files, digests)
    ]
    verdict: Literal["PASS", "FAIL"] = "PASS" if all(result.passed for result in results) else "FAIL"
    return CheckOutcome(verdict=verdict, rules=results, rows=product.rows, files=files,
                        seconds=time.perf_counter() - started)
