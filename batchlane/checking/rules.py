"""Rule evaluators: settle from the footer when exact, otherwise stream batches.

Each evaluator names the columns it reads, may answer from ``ColumnFooter`` facts
(``from_footer`` returns None when it cannot), accumulates over record batches
with pyarrow.compute (never a Python loop over rows), and returns its RuleResults.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from batchlane.checking.arrowtypes import is_signed_integer, is_string_like, plain
from batchlane.checking.evidence import iso_from_days, iso_from_ns, jsonable, ns_per_unit, sample
from batchlane.checking.footer import ColumnFooter
from batchlane.checking.keys import KeyCollector
from batchlane.receipts import RuleResult

SAMPLE = 5
Rescan = Callable[[tuple[str, ...]], Iterable[pa.RecordBatch]]


class Evaluator:
    columns: tuple[str, ...] = ()

    def prepare(self, footers: Mapping[str, ColumnFooter]) -> None:
        """Use exact footer facts to choose a cheaper way to scan (optional)."""

    def from_footer(self, footers: Mapping[str, ColumnFooter]) -> list[RuleResult] | None:
        return None

    def update(self, batch: pa.RecordBatch, offset: int) -> None:
        raise NotImplementedError

    def finish(self, rescan: Rescan) -> list[RuleResult]:
        raise NotImplementedError


def _count(value: pa.Scalar) -> int:
    return int(value.as_py() or 0)


def per_row(array: pa.Array, test: Callable[[pa.Array], pa.Array]) -> pa.Array | None:
    """A boolean per row (null for null rows), or None when every non-null row passes.

    Dictionary-encoded columns are tested once per dictionary entry.
    """
    if pat.is_dictionary(array.type):
        entries = test(plain(array.dictionary))
        if entries.null_count == 0 and pc.all(entries).as_py() is not False:
            return None  # every entry passes: skip the per-row take
        return pc.take(entries, array.indices)
    return test(plain(array))


def _failing_rows(array: pa.Array, passed: pa.Array | None) -> int:
    if passed is None:
        return 0
    return len(array) - array.null_count - _count(pc.sum(passed))


def failing_values(array: pa.Array, passed: pa.Array) -> pa.Array:
    """The non-null values whose test came out false."""
    failing = pc.invert(passed)
    if pat.is_dictionary(array.type):
        used = pc.unique(array.indices.filter(failing).drop_null())
        return plain(array.dictionary).take(used).drop_null()
    return plain(array).filter(failing).drop_null()


def _add_distinct(samples: list[Any], values: pa.Array) -> None:
    """Keep up to SAMPLE distinct failing values in order of first appearance."""
    if len(samples) >= SAMPLE:
        return
    # The first few thousand failing values are plenty to find five distinct ones.
    for value in sample(pc.unique(values.slice(0, 4096)), SAMPLE * 2):
        if value not in samples:
            samples.append(value)
            if len(samples) >= SAMPLE:
                return


class NotNull(Evaluator):
    def __init__(self, column: str) -> None:
        self.column = column
        self.columns = (column,)
        self.nulls = 0
        self.rows: list[int] = []

    def from_footer(self, footers):
        if footers[self.column].null_count == 0:
            return self.finish(rescan=lambda columns: ())
        return None  # nulls present or unknown: scan for the row numbers as evidence

    def update(self, batch, offset):
        array = batch.column(self.column)
        if array.null_count:
            self.nulls += array.null_count
            if len(self.rows) < SAMPLE:
                where = pc.indices_nonzero(array.is_null()).slice(0, SAMPLE - len(self.rows))
                self.rows.extend(offset + int(index) for index in where.to_pylist())

    def finish(self, rescan):
        return [RuleResult(
            rule="not_null", column=self.column, passed=self.nulls == 0, expected=0, observed=self.nulls,
            failing_count=self.nulls, failing_sample=self.rows,
            detail=f"{self.nulls} null values; sample = row numbers" if self.nulls else None,
        )]


class Range(Evaluator):
    """min and max of one numeric column together: one pass computes both. NaN fails both."""

    def __init__(self, column: str, arrow_type: pa.DataType, low: float | None, high: float | None) -> None:
        self.column = column
        self.columns = (column,)
        self.arrow_type = arrow_type
        self.low, self.high = low, high
        self.floating = pat.is_floating(arrow_type)
        # Decimal bounds for decimal columns: a float bound could round across the boundary.
        as_scalar = (lambda b: pa.scalar(decimal.Decimal(str(b)))) if pat.is_decimal(arrow_type) else pa.scalar
        self.low_scalar = None if low is None else as_scalar(low)
        self.high_scalar = None if high is None else as_scalar(high)
        self.minimum: Any = None
        self.maximum: Any = None
        self.nans = 0
        self.below = 0
        self.above = 0
        self.below_sample: list[Any] = []
        self.above_sample: list[Any] = []

    def from_footer(self, footers):
        footer = footers[self.column]
        if not (is_signed_integer(self.arrow_type) and footer.bounds_known):
            return None
        if (self.low is not None and footer.minimum is not None and footer.minimum < self.low) or (
            self.high is not None and footer.maximum is not None and footer.maximum > self.high
        ):
            return None  # a violation: scan for the failing count and values
        self.minimum, self.maximum = footer.minimum, footer.maximum
        return self.finish(rescan=lambda columns: ())

    def update(self, batch, offset):
        array = plain(batch.column(self.column))
        if len(array) == array.null_count:
            return
        if self.floating:
            if array.null_count == 0:
                nans = int(np.count_nonzero(np.isnan(array.to_numpy(zero_copy_only=False))))
            else:
                nans = _count(pc.sum(pc.is_nan(array)))
            self.nans += nans
        bounds = pc.min_max(array)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        if low is not None and not (self.floating and low != low):  # all-NaN batches give NaN
            self.minimum = low if self.minimum is None else min(self.minimum, low)
            self.maximum = high if self.maximum is None else max(self.maximum, high)
            if self.low is not None and low < self.low:
                failing = pc.less(array, self.low_scalar)
                self.below += _count(pc.sum(failing))
                _add_distinct(self.below_sample, array.filter(failing))
            if self.high is not None and high > self.high:
                failing = pc.greater(array, self.high_scalar)
                self.above += _count(pc.sum(failing))
                _add_distinct(self.above_sample, array.filter(failing))

    def _result(self, rule: str, bound: float, observed: Any, failing: int, examples: list[Any]) -> RuleResult:
        failing_count = failing + self.nans
        if self.nans and len(examples) < SAMPLE:
            examples = examples + ["NaN"]
        details = []
        if failing:
            details.append(f"{failing} values {'below' if rule == 'min' else 'above'} {bound}")
        if self.nans:
            details.append(f"{self.nans} NaN values")
        return RuleResult(
            rule=rule, column=self.column, passed=failing_count == 0, expected=jsonable(bound),
            observed=jsonable(observed), failing_count=failing_count, failing_sample=examples,
            detail="; ".join(details) or (None if observed is not None else "no non-null values"),
        )

    def finish(self, rescan):
        results = []
        if self.low is not None:
            results.append(self._result("min", self.low, self.minimum, self.below, self.below_sample))
        if self.high is not None:
            results.append(self._result("max", self.high, self.maximum, self.above, self.above_sample))
        return results


class InSet(Evaluator):
    """Every non-null value must be in a set: accepted_values and references."""

    def __init__(self, rule: str, column: str, value_set: pa.Array, expected: Any) -> None:
        self.rule = rule
        self.column = column
        self.columns = (column,)
        self.value_set = value_set
        self.expected = expected
        self.outside = 0
        self.examples: list[Any] = []
        self._cast_sets: dict[pa.DataType, pa.Array] = {}

    def _set_for(self, arrow_type: pa.DataType) -> pa.Array:
        if arrow_type not in self._cast_sets:
            self._cast_sets[arrow_type] = self.value_set.cast(arrow_type)
        return self._cast_sets[arrow_type]

    def update(self, batch, offset):
        array = batch.column(self.column)
        # null -> false: the set holds no nulls; nulls are subtracted from the count below
        member = per_row(array, lambda values: pc.is_in(values, value_set=self._set_for(values.type)))
        outside = _failing_rows(array, member)
        if outside:
            self.outside += outside
            _add_distinct(self.examples, failing_values(array, member))

    def finish(self, rescan):
        return [RuleResult(
            rule=self.rule, column=self.column, passed=self.outside == 0, expected=self.expected,
            observed=self.outside, failing_count=self.outside, failing_sample=self.examples,
            detail=f"{self.outside} non-null values not in the set" if self.outside else None,
        )]


def accepted_value_set(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    """The contract's values that can exist in this column type (strings compare as text)."""
    if is_string_like(arrow_type):
        return pa.array([str(v).lower() if isinstance(v, bool) else str(v) for v in values], pa.large_string())
    target = plain(pa.array([], type=arrow_type)).type
    kept = []
    for value in values:
        if isinstance(value, bool) != pat.is_boolean(target):
            continue
        try:
            kept.append(pa.array([value]).cast(target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            continue  # a value this column can never hold, e.g. 1.5 in an int column
    return pa.concat_arrays(kept) if kept else pa.array([], type=target)


class Regex(Evaluator):
    def __init__(self, column: str, pattern: str) -> None:
        self.column = column
        self.columns = (column,)
        self.pattern = pattern
        self.failing = 0
        self.examples: list[Any] = []
        self.error: str | None = None

    def update(self, batch, offset):
        if self.error:
            return
        array = batch.column(self.column)
        try:
            matched = per_row(array, lambda values: pc.match_substring_regex(values, self.pattern))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            self.error = f"pattern not usable by the RE2 engine: {exc}"
            return
        failing = _failing_rows(array, matched)
        if failing:
            self.failing += failing
            _add_distinct(self.examples, failing_values(array, matched))

    def finish(self, rescan):
        return [RuleResult(
            rule="regex", column=self.column, passed=self.failing == 0 and not self.error, expected=self.pattern,
            observed=self.failing, failing_count=self.failing, failing_sample=self.examples,
            detail=self.error or (f"{self.failing} non-null values do not match" if self.failing else None),
        )]


class MaxAge(Evaluator):
    """Freshness: the newest timestamp (or date, at 00:00 UTC) is no older than max_age at ``now``."""

    def __init__(self, column: str, arrow_type: pa.DataType, max_age: str, delta: dt.timedelta, now: dt.datetime) -> None:
        self.column = column
        self.columns = (column,)
        self.is_date = pat.is_date(arrow_type)
        self.max_age = max_age
        self.not_before = now - delta
        self.now = now
        self.newest: int | None = None  # ns since epoch, or days for dates

    def from_footer(self, footers):
        footer = footers[self.column]
        if not footer.bounds_known:
            return None
        self.newest = footer.maximum
        return self.finish(rescan=lambda columns: ())

    def update(self, batch, offset):
        array = batch.column(self.column)
        if pat.is_dictionary(array.type):
            array = plain(array)
        newest = pc.max(array)
        if not newest.is_valid:
            return
        if self.is_date:
            value = newest.cast(pa.date32()).cast(pa.int32()).as_py()
        else:
            value = newest.cast(pa.int64()).as_py() * ns_per_unit(array.type.unit)
        self.newest = value if self.newest is None else max(self.newest, value)

    def finish(self, rescan):
        expected = {"max_age": self.max_age, "not_before": self.not_before.isoformat()}
        if self.newest is None:
            return [RuleResult(rule="max_age", column=self.column, passed=False, expected=expected,
                               observed=None, detail="no non-null values: freshness unknown")]
        newest_ns = self.newest * 86_400 * 1_000_000_000 if self.is_date else self.newest
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        not_before_ns = (self.not_before - epoch) // dt.timedelta(microseconds=1) * 1_000
        now_ns = (self.now - epoch) // dt.timedelta(microseconds=1) * 1_000
        age_seconds = (now_ns - newest_ns) / 1e9
        passed = newest_ns >= not_before_ns
        return [RuleResult(
            rule="max_age", column=self.column, passed=passed, expected=expected,
            observed={"newest": iso_from_days(self.newest) if self.is_date else iso_from_ns(self.newest),
                      "age_seconds": age_seconds},
            failing_count=0 if passed else 1,
            detail=None if passed else f"newest value is {age_seconds:.0f}s old, more than {self.max_age}",
        )]


class Unique(Evaluator):
    def __init__(self, columns: Sequence[str], types: Sequence[pa.DataType], capacity: int) -> None:
        self.columns = tuple(columns)
        self.keys = KeyCollector(columns, types, capacity)

    def prepare(self, footers):
        if len(self.columns) == 1:
            footer = footers[self.columns[0]]
            if footer.bounds_known and footer.minimum is not None:
                self.keys.use_range(footer.minimum, footer.maximum)

    def update(self, batch, offset):
        self.keys.add([batch.column(name) for name in self.columns])

    def finish(self, rescan):
        report = self.keys.finish(rescan)
        distinct = report.non_null - report.duplicate_rows
        passed = report.duplicate_rows == 0
        detail = f"{distinct} distinct keys in {report.non_null} rows without nulls"
        if not passed:
            detail += f"; {report.repeated_keys} keys repeat"
        return [RuleResult(
            rule="unique", column=",".join(self.columns), passed=passed, expected=0,
            observed=report.duplicate_rows, failing_count=report.duplicate_rows,
            failing_sample=report.sample, detail=detail,
        )]


class Fixed(Evaluator):
    """A result known at planning time (missing column, inapplicable rule, unavailable reference)."""

    def __init__(self, result: RuleResult) -> None:
        self.result = result

    def from_footer(self, footers):
        return [self.result]

    def update(self, batch, offset):  # pragma: no cover - never scanned
        pass

    def finish(self, rescan):
        return [self.result]

