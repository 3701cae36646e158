"""The checking engine behind ``batchlane.checks.check_files``.

Every rule is decided from the data. Only the columns the rules need are read (at least
one, so the row count is counted, never taken from a footer), one row group at a time,
while a background thread hashes every file. As the data streams by, each file's footer
is cross-checked against it: a footer that contradicts its data is a FAIL. Footer
statistics are otherwise only hints that cannot change a verdict (``footer.py``).
Columns are addressed by top-level field name, never by Parquet leaf path.
Imported on first use: it pulls in pyarrow.compute and NumPy, which a `lane` command
that checks nothing never needs.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
import pyarrow.parquet as pq
import pyarrow.types as pat

from batchlane.checking import rowgroups
from batchlane.checking import rules as r
from batchlane.checking.arrowtypes import is_numeric, is_string_like, is_temporal, matches, value_type
from batchlane.checking.change import Baseline, change_results
from batchlane.checking.errors import CheckError, ReferenceUnavailable
from batchlane.checking.filehash import BackgroundHash, FileSource, ObjectSource
from batchlane.checking.footer import (
    FooterCrossCheck,
    cheapest_leaf,
    integer_range_hint,
    is_single_leaf,
    leaf_indices,
)
from batchlane.checking.outcome import CheckOutcome
from batchlane.contract import COLUMN_RULES, RuleOptions, failing_fraction
from batchlane.receipts import FileDigest, RuleResult
from batchlane.spec import ColumnRules, Contract

if TYPE_CHECKING:  # DuckDB loads only for contracts with `expect:` rules
    import duckdb

    from batchlane.checking.references import ReferencedColumn
    from batchlane.checking.reuse import Partitioning

# (output, column) -> the referenced values: a ReferencedColumn (read in batches) or an Arrow array
ReferenceResolver = Callable[[str, str], "ReferencedColumn | pa.Array | pa.ChunkedArray"]
_DEFAULT_FUTURE_SKEW = "5m"  # what ColumnRules.future_skew_delta means when future_skew is not set
# What a rule kernel raises on values or types it cannot handle; the rule then FAILs saying so.
_EVALUATION_ERRORS = (pa.ArrowException, ValueError, TypeError, OverflowError, NotImplementedError)


@dataclass(frozen=True)
class _Product:
    paths: list[FileSource]   # local files, or objects read in place (ObjectSource)
    uris: list[str]
    files: list[pq.ParquetFile]

    @property
    def claimed_rows(self) -> int:
        """What the footers say: used only to size buffers, never as evidence."""
        return sum(f.metadata.num_rows for f in self.files)


def _open(path: FileSource, uri: str) -> pq.ParquetFile:
    if isinstance(path, ObjectSource):
        return _open_object(path, uri)
    if not path.is_file():
        raise CheckError(f"{uri}: file not found")
    if path.stat().st_size == 0:
        raise CheckError(f"{uri}: empty file (0 bytes), not Parquet")
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError with varied messages
        raise CheckError(f"{uri}: not a readable Parquet file: {exc}") from exc


def _open_object(source: ObjectSource, uri: str) -> pq.ParquetFile:
    """Parquet read in place through the source's seekable file (footer now, column chunks as scanned)."""
    if source.size == 0:
        raise CheckError(f"{uri}: empty file (0 bytes), not Parquet")
    try:
        return pq.ParquetFile(source.open())
    except OSError as exc:  # the source's SourceReadError (changed, deleted, unreachable), or pyarrow's I/O error
        raise CheckError(f"{uri}: cannot be read: {exc}") from exc
    except Exception as exc:  # pyarrow raises ArrowInvalid with varied messages
        raise CheckError(f"{uri}: not a readable Parquet file: {exc}") from exc


def _utc(moment: dt.datetime | None) -> dt.datetime:
    if moment is None:
        return dt.datetime.now(dt.UTC)
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _fixed(rule: str, column: str | None, expected, detail: str, observed=None) -> r.Fixed:
    return r.Fixed(RuleResult(rule=rule, column=column, passed=False, expected=expected,
                              observed=observed, detail=detail))


def _column_types(product: _Product, name: str) -> list[pa.DataType] | None:
    """The top-level field's type in each file, or None if any file lacks it or has it twice."""
    types = []
    for parquet in product.files:
        index = parquet.schema_arrow.get_field_index(name)  # -1 when missing or ambiguous
        if index < 0:
            return None
        types.append(parquet.schema_arrow.field(index).type)
    return types


def _missing_in(product: _Product, name: str) -> str:
    problems = []
    for uri, parquet in zip(product.uris, product.files, strict=True):
        found = len(parquet.schema_arrow.get_all_field_indices(name))
        if found == 0:
            problems.append(f"not in {uri}")
        elif found > 1:
            problems.append(f"{found} times in {uri} (ambiguous)")
    return f"column {name!r} " + "; ".join(problems)


def _nested(types: Sequence[pa.DataType]) -> pa.DataType | None:
    """The first struct/list/map type among ``types`` (rules on values need a primitive column)."""
    return next((t for t in types if pat.is_nested(value_type(t))), None)


def _primitive_only(rule: str, name: str, expected, nested: pa.DataType) -> r.Fixed:
    return _fixed(rule, name, expected, f"{rule} applies to columns of a primitive type, not {nested}",
                  observed=str(nested))


def _column_evaluators(
    name: str, rules: ColumnRules, types: list[pa.DataType], rows: int, now: dt.datetime,
    reference_values: ReferenceResolver | None,
) -> list[r.Evaluator]:
    arrow_type = types[0]
    kind = value_type(arrow_type)
    nested = _nested(types)
    found: list[r.Evaluator] = []
    if rules.not_null:
        found.append(r.NotNull(name))
    if rules.unique:
        found.append(_primitive_only("unique", name, 0, nested) if nested else r.Unique([name], [arrow_type], rows))
    if rules.accepted_values is not None:
        if nested:
            found.append(_primitive_only("accepted_values", name, list(rules.accepted_values), nested))
        else:
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
        found.append(_freshness(name, rules, types, now))
    if rules.regex is not None:
        if is_string_like(kind):
            found.append(r.Regex(name, rules.regex))
        else:
            found.append(_fixed("regex", name, rules.regex, f"regex applies to string columns, not {kind}"))
    if rules.reference is not None:
        if nested:
            found.append(_primitive_only("references", name, rules.references, nested))
        else:
            found.append(_references(name, rules.references or "", rules.reference, kind, reference_values))
    return found


def _freshness(name: str, rules: ColumnRules, types: list[pa.DataType], now: dt.datetime) -> r.Evaluator:
    """max_age, once the column's values can be placed in time (zone-aware, or a zone from the contract)."""
    assert rules.max_age is not None and rules.max_age_delta is not None
    expected = {"max_age": rules.max_age}
    kinds = [value_type(t) for t in types]
    odd = next((t for t in kinds if not is_temporal(t)), None)
    if odd is not None:
        return _fixed("max_age", name, expected, f"max_age applies to timestamp or date columns, not {odd}")
    zone = rules.timezone
    if zone is not None:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            return _fixed("max_age", name, {**expected, "timezone": zone},
                          f"timezone {zone!r} is not a known IANA time zone (e.g. UTC, Europe/Berlin)")
    naive = next((t for t in kinds if pat.is_timestamp(t) and t.tz is None), None)
    if naive is not None and zone is None:
        return _fixed("max_age", name, expected,
                      f"column {name!r} holds timestamps without a time zone ({naive}): the contract must state "
                      f"timezone: (the IANA zone its values are in, e.g. UTC) for max_age to judge them",
                      observed=str(naive))
    uses_zone = naive is not None or any(pat.is_date(t) for t in kinds)
    return r.MaxAge(name, rules.max_age, rules.max_age_delta, rules.future_skew or _DEFAULT_FUTURE_SKEW,
                    rules.future_skew_delta, zone if uses_zone else None, now)


def _references(name: str, label: str, target: tuple[str, str], kind: pa.DataType,
                reference_values: ReferenceResolver | None) -> r.Evaluator:
    if reference_values is None:
        return _fixed("references", name, label, "no resolver: referenced product cannot be read")
    try:
        values = reference_values(*target)
    except ReferenceUnavailable as exc:
        return _fixed("references", name, label, f"referenced product unavailable: {exc}")
    from batchlane.checking import references  # in memory, or a semi-join on disk beyond the budget

    return references.evaluator(name, label, values, kind)


def _with_options(evaluators: list[r.Evaluator], options: dict[str, RuleOptions]) -> list[r.Evaluator]:
    if options:
        for evaluator in evaluators:
            evaluator.options = options
    return evaluators


def _column_options(rules: ColumnRules) -> dict[str, RuleOptions]:
    """The column's rules written in the structured form (empty for short forms: the common path)."""
    return {rule: rules.options(rule) for rule in COLUMN_RULES if rule in rules._options}


def _plan(product: _Product, contract: Contract, now: dt.datetime,
          reference_values: ReferenceResolver | None, sql: _Sql) -> list[r.Evaluator]:
    rows = product.claimed_rows
    plan: list[r.Evaluator] = []
    if contract.row_count is not None and (contract.row_count.min is not None or contract.row_count.max is not None
                                           or contract.row_count.max_change is None):
        plan.extend(_with_options([r.RowCount(contract.row_count.min, contract.row_count.max)],
                                  _non_default({"row_count": contract.row_count.options("row_count")})))
    for name, rules in contract.columns.items():
        types = _column_types(product, name)
        options = _column_options(rules)
        if types is None:
            missing = _fixed("exists", name, "column present", _missing_in(product, name), observed="missing")
            plan.extend(_with_options([missing], _non_default({"exists": RuleOptions(
                severity=rules.strictest_severity())})))
            continue
        if rules.type is not None:
            observed = " | ".join(dict.fromkeys(str(t) for t in types))
            passed = all(matches(rules.type, t) for t in types)
            plan.extend(_with_options([r.Fixed(RuleResult(
                rule="type", column=name, passed=passed, expected=rules.type, observed=observed,
                detail=None if passed else f"Arrow type {observed} is not {rules.type}"))], options))
        plan.extend(_with_options(_column_evaluators(name, rules, types, rows, now, reference_values), options))
    for index, key in enumerate(contract.unique):
        label = ",".join(key)
        key_options = _non_default({"unique": contract.key_options(index)})
        types = [_column_types(product, name) for name in key]
        missing_keys = [name for name, found in zip(key, types, strict=True) if found is None]
        evaluator: r.Evaluator
        if missing_keys:
            evaluator = _fixed("unique", label, 0, "key column(s) missing or ambiguous: "
                               + "; ".join(_missing_in(product, name) for name in missing_keys))
        elif (nested := _nested([t for found in types if found for t in found])) is not None:
            evaluator = _primitive_only("unique", label, 0, nested)
        else:
            evaluator = r.Unique(key, [found[0] for found in types if found], rows)
        plan.extend(_with_options([evaluator], key_options))
    if contract.extra_columns == "forbid":
        plan.extend(_with_options([_extra_columns(product, contract)],
                                  _non_default({"extra_columns": contract.options("extra_columns")})))
    for expectation in contract.expect:
        plan.extend(_with_options([sql.evaluator(product, expectation.name, expectation.sql)],
                                  _non_default({"expect": expectation.options})))
    return plan


def _non_default(options: dict[str, RuleOptions]) -> dict[str, RuleOptions]:
    return {rule: found for rule, found in options.items() if found != RuleOptions()}


def _extra_columns(product: _Product, contract: Contract) -> r.Fixed:
    """``extra_columns: forbid``: every top-level column of every file must be listed under ``columns``."""
    present = dict.fromkeys(field.name for parquet in product.files for field in parquet.schema_arrow)
    extra = [name for name in present if name not in contract.columns]
    return r.Fixed(RuleResult(
        rule="extra_columns", passed=not extra, expected={"forbid": "columns not listed under columns:"},
        observed=extra, failing_count=len(extra), failing_sample=extra[:r.SAMPLE],
        detail=f"{len(extra)} column(s) the contract does not list: {', '.join(extra[:10])}"
               + (" ..." if len(extra) > 10 else "") if extra else None,
    ))


class _Sql:
    """The SQL engine for ``expect:`` rules: one locked-down DuckDB connection per check, opened only when the
    contract has row expressions (the common path never imports DuckDB)."""

    def __init__(self) -> None:
        self._connection: duckdb.DuckDBPyConnection | None = None

    def evaluator(self, product: _Product, name: str, sql: str) -> r.Evaluator:
        from batchlane.checking import sqlexpr

        if self._connection is None:
            self._connection = sqlexpr.connect()
        connection = self._connection
        try:
            parsed = sqlexpr.parse(sql, connection)
        except sqlexpr.ExpressionError as exc:  # refused at load already; a contract built in code may differ
            return _fixed("expect", name, sql, f"the expression is not usable: {exc}")
        names = [f.name for f in product.files[0].schema_arrow]
        by_case: dict[str, list[str]] = {}
        for column in names:
            by_case.setdefault(column.lower(), []).append(column)
        columns = []
        for column in parsed.columns:
            if column in names:
                columns.append(column)
            elif len(by_case.get(column.lower(), [])) == 1:  # SQL names are case-insensitive
                columns.append(by_case[column.lower()][0])
        columns = [c for c in dict.fromkeys(columns) if _column_types(product, c) is not None]
        return r.Expect(name, sql, columns, connection)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _judge(evaluator: r.Evaluator, results: list[RuleResult], usable: bool) -> list[RuleResult]:
    """Apply the evaluator's severities and tolerances to its results (nothing to do for short forms)."""
    if not evaluator.options:
        return results
    judged = evaluator.judged() if usable else None
    return [_apply(result, evaluator.options[result.rule], judged) if result.rule in evaluator.options else result
            for result in results]


def _apply(result: RuleResult, options: RuleOptions, judged: int | None) -> RuleResult:
    update: dict[str, object] = {}
    if options.severity != "error":
        update["severity"] = options.severity
    tolerance = options.tolerance()
    if tolerance is not None:
        update["tolerance"] = tolerance
        if judged is not None:
            failing = result.failing_count
            within = options.tolerates(failing, judged)
            update.update(judged=judged, failing_fraction=failing_fraction(failing, judged))
            if not result.passed and failing > 0:
                update["passed"] = within
            if failing:
                verdict = "within" if within else "beyond"
                note = (f"{failing} of {judged} failing ({failing_fraction(failing, judged):.4%}), {verdict} the "
                        f"tolerance " + ", ".join(f"{key} {value}" for key, value in tolerance.items()))
                update["detail"] = f"{result.detail}; {note}" if result.detail else note
    return result.model_copy(update=update) if update else result


def _give_hints(plan: list[r.Evaluator], product: _Product) -> None:
    """Footer claims that pick a cheaper algorithm whose answer does not depend on them."""
    for evaluator in plan:
        if isinstance(evaluator, r.Unique) and len(evaluator.columns) == 1:
            types = _column_types(product, evaluator.columns[0])
            if types and all(pat.is_signed_integer(t) for t in types):
                claimed = integer_range_hint(product.files, evaluator.columns[0])
                if claimed is not None:
                    evaluator.hint_range(*claimed)


def _dictionary_leaves(parquet: pq.ParquetFile, names: Sequence[str]) -> list[int]:
    """Leaves of string columns stored fully dictionary-encoded: read as Arrow dictionaries.

    Decoding a low-cardinality string column into plain strings costs ~10x more than
    reading its indices, and set/regex rules then test each distinct value once.
    A chunk whose data pages average < 4 bytes per value holds RLE indices, not PLAIN
    strings (PLAIN spends 4 bytes on each length prefix alone). This only picks how the
    values are decoded; the values are the same either way.
    """
    chosen = []
    metadata = parquet.metadata
    for name in names:
        field = parquet.schema_arrow.field(name)
        leaves = leaf_indices(parquet, name)
        if not is_single_leaf(parquet, name, leaves) or not is_string_like(field.type) \
                or pa.types.is_dictionary(field.type):
            continue
        chunks = [metadata.row_group(g).column(leaves[0]) for g in range(metadata.num_row_groups)]
        if chunks and all(
            chunk.has_dictionary_page
            and (chunk.total_uncompressed_size - (chunk.data_page_offset - chunk.dictionary_page_offset))
            < 4 * max(chunk.num_values, 1)
            for chunk in chunks
        ):
            chosen.append(leaves[0])
    return chosen


def _row_groups(product: _Product, file: int, names: Sequence[str],
                counting_leaf: int | None = None) -> Iterator[tuple[int, pa.Table]]:
    """(row group number, table of the top-level fields ``names``) for each row group of one file.

    Without names, ``counting_leaf`` alone is read: its rows are counted, its values unused. Under a memory
    budget a row group too big for it comes as several tables (bounded parts, in row order: ``rowgroups``).
    """
    path, uri, footer_only = product.paths[file], product.uris[file], product.files[file]
    leaves = sorted(leaf for name in names for leaf in leaf_indices(footer_only, name))
    if not names and counting_leaf is not None:
        leaves = [counting_leaf]
    dictionaries = _dictionary_leaves(footer_only, names)
    parquet = footer_only
    if dictionaries:
        parquet = pq.ParquetFile(path.open() if isinstance(path, ObjectSource) else path,
                                 read_dictionary=dictionaries, metadata=footer_only.metadata)
    streaming: pq.ParquetFile | None = None  # a row group too big for the budget is read in parts through it
    try:
        for group in range(parquet.metadata.num_row_groups):
            part_rows = rowgroups.batch_rows(parquet.metadata, group, leaves, dictionaries)
            if part_rows is not None:
                if streaming is None:
                    streaming = rowgroups.open_streaming(path.open() if isinstance(path, ObjectSource) else path,
                                                         footer_only.metadata, dictionaries)
                for part in rowgroups.parts(streaming, group, leaves, part_rows, f"{uri}: row group {group}"):
                    yield group, part
                continue
            try:
                table = parquet.reader.read_row_group(group, column_indices=leaves, use_threads=True)
            except Exception as exc:
                raise CheckError(f"{uri}: row group {group} unreadable: {exc}") from exc
            yield group, table
    finally:
        if parquet is not footer_only:
            parquet.close()
        if streaming is not None:
            streaming.close()


def _batches(product: _Product, columns: Sequence[str]) -> Iterator[tuple[pa.RecordBatch, int]]:
    """(batch, global row number of its first row), one row group of ``columns`` at a time."""
    offset = 0
    for file in range(len(product.files)):
        for _, table in _row_groups(product, file, columns):
            for batch in table.to_batches():
                yield batch, offset
                offset += batch.num_rows


def run_check(
    paths: Sequence[FileSource],
    contract: Contract,
    *,
    uris: Sequence[str] | None,
    reference_values: ReferenceResolver | None,
    now: dt.datetime | None,
    footer_hints: bool,
    baseline: Baseline | None = None,
    partitions: Partitioning | None = None,
) -> CheckOutcome:
    started = time.perf_counter()
    paths = [p if isinstance(p, ObjectSource) else Path(p) for p in paths]
    if not paths:
        raise CheckError("a product needs at least one file")
    uris = list(uris) if uris is not None else [str(p) for p in paths]
    if len(uris) != len(paths):
        raise CheckError(f"{len(uris)} uris for {len(paths)} files")
    opened: list[pq.ParquetFile] = []
    try:
        for path, uri in zip(paths, uris, strict=True):
            opened.append(_open(path, uri))
        product = _Product(paths, uris, opened)
        hashing = BackgroundHash(paths)  # runs while we scan
        return _check(product, hashing, contract, now, reference_values, footer_hints, started, baseline, partitions)
    finally:
        for parquet in opened:
            parquet.close()


class _Scan:
    """Feeds every batch to the evaluators that read data; an evaluator whose kernel fails FAILs alone."""

    def __init__(self, evaluators: list[r.Evaluator]) -> None:
        self.evaluators = evaluators
        self.broken: dict[int, str] = {}

    @staticmethod
    def _why(columns: str, exc: Exception) -> str:
        return f"the data could not be evaluated by this rule ({columns}): {type(exc).__name__}: {exc}"

    def update(self, batch: pa.RecordBatch, offset: int) -> None:
        for position, evaluator in enumerate(self.evaluators):
            if position in self.broken:
                continue
            try:
                evaluator.update(batch, offset)
            except _EVALUATION_ERRORS as exc:
                types = ", ".join(f"{c}: {batch.schema.field(c).type}" for c in evaluator.columns)
                self.broken[position] = self._why(types, exc)

    def results(self, position: int, rescan: r.Rescan) -> list[RuleResult]:
        evaluator = self.evaluators[position]
        if position in self.broken:
            return _judge(evaluator, evaluator.failed(self.broken[position]), usable=False)
        try:
            return _judge(evaluator, evaluator.finish(rescan), usable=True)
        except _EVALUATION_ERRORS as exc:
            return _judge(evaluator, evaluator.failed(self._why(", ".join(evaluator.columns), exc)), usable=False)


def _check(product: _Product, hashing: BackgroundHash, contract: Contract, now: dt.datetime | None,
           reference_values: ReferenceResolver | None, footer_hints: bool, started: float,
           baseline: Baseline | None, partitions: Partitioning | None = None) -> CheckOutcome:
    sql = _Sql()
    try:
        if partitions is not None:  # per-partition evidence, reused where it holds (``partitionwise``)
            from batchlane.checking.partitionwise import check_partitioned

            return check_partitioned(product, hashing, contract, now, reference_values, footer_hints, started,
                                     baseline, sql, partitions)
        return _check_with(product, hashing, contract, now, reference_values, footer_hints, started, baseline, sql)
    finally:
        sql.close()


def _check_with(product: _Product, hashing: BackgroundHash, contract: Contract, now: dt.datetime | None,
                reference_values: ReferenceResolver | None, footer_hints: bool, started: float,
                baseline: Baseline | None, sql: _Sql) -> CheckOutcome:
    uris = product.uris
    plan = _plan(product, contract, _utc(now), reference_values, sql)
    if footer_hints:
        _give_hints(plan, product)
    live = [ev for ev in plan if not isinstance(ev, r.Fixed)]
    scan = _Scan(live)
    columns = list(dict.fromkeys(c for ev in live for c in ev.columns))
    cross_check = FooterCrossCheck(uris, product.files)
    file_rows: list[int] = []
    offset = 0
    for file, parquet in enumerate(product.files):
        # With no rule reading data, the cheapest leaf is still read: rows are counted, not claimed.
        counting_leaf = None if columns else cheapest_leaf(parquet)
        rows = 0
        if columns or counting_leaf is not None:
            for group, table in _row_groups(product, file, columns, counting_leaf):
                cross_check.row_group(file, group, table)
                for batch in table.to_batches():
                    scan.update(batch, offset)
                    offset += batch.num_rows
                rows += table.num_rows
            cross_check.file_done(file, rows)  # a file without any column holds no data to contradict
        file_rows.append(rows)

    def rescan(wanted: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
        return (batch for batch, _ in _batches(product, wanted))

    position_of = {id(evaluator): position for position, evaluator in enumerate(live)}
    results: list[RuleResult] = []
    for evaluator in plan:
        if isinstance(evaluator, r.Fixed):
            results.extend(_judge(evaluator, evaluator.finish(rescan), usable=False))
        else:
            results.extend(scan.results(position_of[id(evaluator)], rescan))
    if contract.change_rules():
        results.extend(_apply(result, options, None) if options != RuleOptions() else result
                       for result, options in change_results(contract, sum(file_rows), results, baseline))
    results.extend(cross_check.results())

    try:
        digests = hashing.result()
    except OSError as exc:
        raise CheckError(f"cannot hash product files: {exc}") from exc
    files = [
        FileDigest(uri=uri, size=size, sha256=sha, rows=rows,
                   schema={f.name: str(f.type) for f in parquet.schema_arrow})
        for uri, parquet, rows, (size, sha) in zip(uris, product.files, file_rows, digests, strict=True)
    ]
    verdict: Literal["PASS", "FAIL"] = "PASS" if not any(result.blocking for result in results) else "FAIL"
    return CheckOutcome(verdict=verdict, rules=results, rows=sum(file_rows), files=files,
                        seconds=time.perf_counter() - started)
