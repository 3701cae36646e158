"""Rule evaluators: every verdict comes from the data, streamed batch by batch.

Each evaluator names the columns it reads, accumulates over record batches with
pyarrow.compute (never a Python loop over rows), and returns its RuleResults.
Nothing here reads Parquet footers; the engine cross-checks those separately.
"""

from __future__ import annotations

import copy
import datetime as dt
import decimal
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from batchlane.checking.arrowtypes import float_extremes, is_string_like, plain
from batchlane.checking.evidence import iso_from_days, iso_from_ns, jsonable, ns_per_unit, sample
from batchlane.checking.keys import KeyCollector
from batchlane.receipts import RuleResult

if TYPE_CHECKING:
    import duckdb

    from batchlane.contract import RuleOptions

SAMPLE = 5
Rescan = Callable[[tuple[str, ...]], Iterable[pa.RecordBatch]]


@dataclass
class Partial:
    """One partition's share of a partition-wise mergeable rule: ``absorb`` adds it to an evaluator exactly as if
    that partition's batches had been fed to it. ``examples`` are failing values, or row numbers counted from the
    partition's first row; ``state`` holds only JSON values (it is stored in check receipts and read back)."""

    judged: int | None
    failing: int
    examples: list[Any]
    state: dict[str, Any] = field(default_factory=dict)


def merge_distinct(samples: list[Any], values: Iterable[Any]) -> None:
    """Add ``values`` (one partition's distinct failing values, in order) to ``samples`` as ``_add_distinct`` does
    batch by batch: the first SAMPLE distinct values in order of appearance."""
    for value in values:
        if len(samples) >= SAMPLE:
            return
        if value not in samples:
            samples.append(value)


class Evaluator:
    columns: tuple[str, ...] = ()
    # Severity and tolerances of the rules this evaluator judges, by rule name (set by the engine only when a
    # contract uses the structured form: the common path never looks at them).
    options: Mapping[str, RuleOptions] = {}
    # Partition-wise mergeable (``fresh``, ``partial`` and ``absorb`` implemented): the evidence of a product of
    # several partitions is the merge of each partition's, in partition order (``batchlane.checking.partitionwise``).
    mergeable = False

    def fresh(self) -> Evaluator:
        """A new evaluator with the same rule and settings and nothing fed yet."""
        raise NotImplementedError

    def partial(self) -> Partial:
        """What was fed so far (one partition), as a mergeable summary."""
        raise NotImplementedError

    def absorb(self, partial: Partial, offset: int) -> None:
        """Add a partition's summary as if its batches were fed now; ``offset`` is its first row's number."""
        raise NotImplementedError

    def judged(self) -> int | None:
        """The rows (or non-null values) the rule judged, after ``finish``: the denominator of a tolerance.
        None when its failures are not a plain count of them (then no tolerance can make it pass)."""
        return None

    def update(self, batch: pa.RecordBatch, offset: int) -> None:
        raise NotImplementedError

    def finish(self, rescan: Rescan) -> list[RuleResult]:
        raise NotImplementedError

    def describe(self) -> list[tuple[str, str | None, Any]]:
        """(rule, column, expected) of each result this evaluator gives, for ``failed``."""
        raise NotImplementedError

    def failed(self, reason: str) -> list[RuleResult]:
        """Its results as FAILs with ``reason``: the data could not be evaluated by this rule."""
        return [RuleResult(rule=rule, column=column, passed=False, expected=expected, observed=None, detail=reason)
                for rule, column, expected in self.describe()]


def _renewed(evaluator: Evaluator, fresh: Evaluator) -> Evaluator:
    if "options" in vars(evaluator):
        fresh.options = evaluator.options
    return fresh


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
        self.seen = 0
        self.rows: list[int] = []

    def judged(self):
        return self.seen

    def update(self, batch, offset):
        array = batch.column(self.column)
        self.seen += len(array)
        if array.null_count:
            self.nulls += array.null_count
            if len(self.rows) < SAMPLE:
                where = pc.indices_nonzero(array.is_null()).slice(0, SAMPLE - len(self.rows))
                self.rows.extend(offset + int(index) for index in where.to_pylist())

    def describe(self):
        return [("not_null", self.column, 0)]

    mergeable = True

    def fresh(self):
        return _renewed(self, NotNull(self.column))

    def partial(self):
        return Partial(self.seen, self.nulls, list(self.rows))

    def absorb(self, partial, offset):
        self.seen += partial.judged or 0
        self.nulls += partial.failing
        if len(self.rows) < SAMPLE:
            self.rows.extend(offset + int(row) for row in partial.examples[: SAMPLE - len(self.rows)])

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
        self.values = 0

    def judged(self):
        return self.values

    def update(self, batch, offset):
        array = plain(batch.column(self.column))
        self.values += len(array) - array.null_count
        if len(array) == array.null_count:
            return
        if self.floating:
            if array.null_count == 0:
                nans = int(np.count_nonzero(np.isnan(array.to_numpy(zero_copy_only=False))))
            else:
                nans = _count(pc.sum(pc.is_nan(array)))
            self.nans += nans
        low: Any
        high: Any
        if self.floating:
            extremes = float_extremes(array)
            low, high = extremes if extremes is not None else (None, None)  # all-NaN: no bounds
        else:
            bounds = pc.min_max(array)
            low, high = bounds["min"].as_py(), bounds["max"].as_py()
        if low is not None:
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

    def describe(self):
        return [(rule, self.column, jsonable(bound)) for rule, bound in (("min", self.low), ("max", self.high))
                if bound is not None]

    mergeable = True

    def fresh(self):
        return _renewed(self, Range(self.column, self.arrow_type, self.low, self.high))

    def partial(self):
        return Partial(self.values, self.below + self.above + self.nans, [], {
            "minimum": _encode_extreme(self.minimum), "maximum": _encode_extreme(self.maximum), "nans": self.nans,
            "below": self.below, "above": self.above, "below_examples": list(self.below_sample),
            "above_examples": list(self.above_sample)})

    def absorb(self, partial, offset):
        state = partial.state
        self.values += partial.judged or 0
        self.nans += int(state["nans"])
        low, high = _decode_extreme(state["minimum"]), _decode_extreme(state["maximum"])
        if low is not None:
            self.minimum = low if self.minimum is None else min(self.minimum, low)
            self.maximum = high if self.maximum is None else max(self.maximum, high)
        self.below += int(state["below"])
        self.above += int(state["above"])
        merge_distinct(self.below_sample, state["below_examples"])
        merge_distinct(self.above_sample, state["above_examples"])

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
        self.values = 0
        self.examples: list[Any] = []
        self._cast_sets: dict[pa.DataType, pa.Array] = {}

    def judged(self):
        return self.values

    def _set_for(self, arrow_type: pa.DataType) -> pa.Array:
        if arrow_type not in self._cast_sets:
            self._cast_sets[arrow_type] = self.value_set.cast(arrow_type)
        return self._cast_sets[arrow_type]

    def update(self, batch, offset):
        array = batch.column(self.column)
        self.values += len(array) - array.null_count
        # null -> false: the set holds no nulls; nulls are subtracted from the count below
        member = per_row(array, lambda values: pc.is_in(values, value_set=self._set_for(values.type)))
        outside = _failing_rows(array, member)
        if outside:
            self.outside += outside
            self._remember(failing_values(array, member))

    def _remember(self, failing: pa.Array) -> None:
        _add_distinct(self.examples, failing)

    def describe(self):
        return [(self.rule, self.column, self.expected)]

    mergeable = True

    def fresh(self):
        renewed = copy.copy(self)  # the same class, set and options; its casts stay shared
        renewed.outside, renewed.values, renewed.examples = 0, 0, []
        return renewed

    def partial(self):
        return Partial(self.values, self.outside, list(self.examples))

    def absorb(self, partial, offset):
        self.values += partial.judged or 0
        self.outside += partial.failing
        merge_distinct(self.examples, partial.examples)

    def finish(self, rescan):
        return [RuleResult(
            rule=self.rule, column=self.column, passed=self.outside == 0, expected=self.expected,
            observed=self.outside, failing_count=self.outside, failing_sample=self.examples,
            detail=f"{self.outside} non-null values not in the set" if self.outside else None,
        )]


class References(InSet):
    """``references`` with the referenced values held in memory (``references.py`` decides when they fit).

    Its sample is exactly the first 5 distinct failing values in row order, as the spilled semi-join
    finds them too (the plain set rule looks at the first 4,096 failing values of a batch only)."""

    def __init__(self, column: str, value_set: pa.Array, expected: Any) -> None:
        super().__init__("references", column, value_set, expected)

    def _remember(self, failing: pa.Array) -> None:
        for start in range(0, len(failing), 4096):
            if len(self.examples) >= SAMPLE:
                return
            _add_distinct(self.examples, failing.slice(start, 4096))  # 10 distinct looked at: all new ones kept


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
        self.values = 0
        self.examples: list[Any] = []
        self.error: str | None = None

    def judged(self):
        return None if self.error else self.values

    def update(self, batch, offset):
        if self.error:
            return
        array = batch.column(self.column)
        self.values += len(array) - array.null_count
        try:
            matched = per_row(array, lambda values: pc.match_substring_regex(values, self.pattern))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            self.error = f"pattern not usable by the RE2 engine: {exc}"
            return
        failing = _failing_rows(array, matched)
        if failing:
            self.failing += failing
            _add_distinct(self.examples, failing_values(array, matched))

    def describe(self):
        return [("regex", self.column, self.pattern)]

    mergeable = True

    def fresh(self):
        return _renewed(self, Regex(self.column, self.pattern))

    def partial(self):
        return Partial(self.values, self.failing, list(self.examples), {"error": self.error} if self.error else {})

    def absorb(self, partial, offset):
        if self.error:
            return  # as when scanning: nothing after the pattern failed counts
        self.values += partial.judged or 0
        self.failing += partial.failing
        merge_distinct(self.examples, partial.examples)
        self.error = partial.state.get("error")

    def finish(self, rescan):
        return [RuleResult(
            rule="regex", column=self.column, passed=self.failing == 0 and not self.error, expected=self.pattern,
            observed=self.failing, failing_count=self.failing, failing_sample=self.examples,
            detail=self.error or (f"{self.failing} non-null values do not match" if self.failing else None),
        )]


class MaxAge(Evaluator):
    """Freshness, from the data: the newest value is no older than ``max_age`` at ``now``, and no
    value lies more than ``future_skew`` after ``now`` (a clock ahead of ours, tolerated up to the skew).

    Values are compared as instants: zone-aware timestamps as stored (Arrow keeps them in UTC);
    naive timestamps as wall-clock times in ``zone`` (at a DST change an ambiguous or skipped wall
    time takes the earliest instant); dates as midnight in ``zone``, UTC when no zone is given.
    The engine refuses naive timestamps without a zone before this evaluator is built.
    """

    def __init__(self, column: str, max_age: str, delta: dt.timedelta, future_skew: str, skew: dt.timedelta,
                 zone: str | None, now: dt.datetime) -> None:
        self.column = column
        self.columns = (column,)
        self.max_age = max_age
        self.future_skew = future_skew
        self.zone = zone
        self.now = now
        self.not_before = now - delta
        self.not_after = now + skew
        self.not_after_ns = _ns_since_epoch(self.not_after)
        self.newest_ns: int | None = None  # the newest value as an instant: ns since the epoch, UTC
        self.newest_date: int | None = None  # days, when the column holds dates
        self.future = 0
        self.future_sample: list[Any] = []

    def _instants(self, array: pa.Array) -> pa.Array:
        """Timestamps whose stored integers are UTC instants (naive ones placed in ``zone``)."""
        if array.type.tz is None:
            return pc.assume_timezone(array, timezone=self.zone, ambiguous="earliest", nonexistent="earliest")
        return array

    def _midnight_ns(self, days: int) -> int:
        day = dt.date(1970, 1, 1) + dt.timedelta(days=days)
        return _ns_since_epoch(dt.datetime.combine(day, dt.time(0), tzinfo=ZoneInfo(self.zone or "UTC")))

    def update(self, batch, offset):
        array = plain(batch.column(self.column))
        newest = pc.max(array)
        if not newest.is_valid:
            return
        if pat.is_date(array.type):
            self._update_dates(array, newest)
            return
        if array.type.tz is None:
            newest = self._instants(pa.array([newest.value], array.type))[0]  # monotone: the max stays the max
        unit = ns_per_unit(array.type.unit)
        newest_ns = newest.value * unit
        self.newest_ns = newest_ns if self.newest_ns is None else max(self.newest_ns, newest_ns)
        if newest_ns > self.not_after_ns:
            instants = self._instants(array)
            future = instants.filter(pc.greater(instants, pa.scalar(self.not_after_ns // unit, instants.type)))
            self.future += len(future)
            _add_distinct(self.future_sample, future)

    def _update_dates(self, array: pa.Array, newest: pa.Scalar) -> None:
        days = newest.value if pat.is_date32(array.type) else newest.value // 86_400_000
        newest_ns = self._midnight_ns(days)
        if self.newest_ns is None or newest_ns > self.newest_ns:
            self.newest_ns, self.newest_date = newest_ns, days
        if newest_ns > self.not_after_ns:
            # the dates whose midnight is later than not_after: those after its local date
            last_allowed = self.not_after.astimezone(ZoneInfo(self.zone or "UTC")).date()
            future = array.filter(pc.greater(array, pa.scalar(last_allowed, array.type)))
            self.future += len(future)
            _add_distinct(self.future_sample, future)

    def _expected(self) -> dict[str, Any]:
        expected = {"max_age": self.max_age, "not_before": self.not_before.isoformat(),
                    "future_skew": self.future_skew, "not_after": self.not_after.isoformat()}
        if self.zone is not None:
            expected["timezone"] = self.zone
        return expected

    def describe(self):
        return [("max_age", self.column, self._expected())]

    mergeable = True

    def fresh(self):
        renewed = copy.copy(self)
        renewed.newest_ns, renewed.newest_date, renewed.future, renewed.future_sample = None, None, 0, []
        return renewed

    def partial(self):
        return Partial(None, self.future, list(self.future_sample),
                       {"newest_ns": self.newest_ns, "newest_date": self.newest_date})

    def absorb(self, partial, offset):
        newest_ns, newest_date = partial.state.get("newest_ns"), partial.state.get("newest_date")
        if newest_ns is not None:
            if newest_date is not None:  # a partition of dates: the same rule as ``_update_dates``
                if self.newest_ns is None or newest_ns > self.newest_ns:
                    self.newest_ns, self.newest_date = int(newest_ns), int(newest_date)
            else:
                self.newest_ns = int(newest_ns) if self.newest_ns is None else max(self.newest_ns, int(newest_ns))
        self.future += partial.failing
        merge_distinct(self.future_sample, partial.examples)

    def in_future(self, partial: Partial) -> bool:
        """Whether a partition's newest value lies after this check's ``not_after`` (its future count must then be
        counted from its data; otherwise it has no value in the future now, whatever was counted before)."""
        newest_ns = partial.state.get("newest_ns")
        return newest_ns is not None and int(newest_ns) > self.not_after_ns

    def finish(self, rescan):
        expected = self._expected()
        if self.newest_ns is None:
            return [RuleResult(rule="max_age", column=self.column, passed=False, expected=expected,
                               observed=None, detail="no non-null values: freshness unknown")]
        age_seconds = (_ns_since_epoch(self.now) - self.newest_ns) / 1e9
        observed = {"newest": iso_from_days(self.newest_date) if self.newest_date is not None
                    else iso_from_ns(self.newest_ns), "age_seconds": age_seconds}
        if self.future:
            return [RuleResult(
                rule="max_age", column=self.column, passed=False, expected=expected, observed=observed,
                failing_count=self.future, failing_sample=self.future_sample,
                detail=f"{self.future} {'value is' if self.future == 1 else 'values are'} in the future beyond "
                       f"the allowed skew of {self.future_skew} (later than {self.not_after.isoformat()})",
            )]
        passed = self.newest_ns >= _ns_since_epoch(self.not_before)
        return [RuleResult(
            rule="max_age", column=self.column, passed=passed, expected=expected, observed=observed,
            failing_count=0 if passed else 1,
            detail=None if passed else f"newest value is {age_seconds:.0f}s old, more than {self.max_age}",
        )]


def _ns_since_epoch(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // dt.timedelta(microseconds=1) * 1_000


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _encode_extreme(value: Any) -> Any:
    """A numeric column's extreme as JSON that reads back exactly (floats as hex, decimals as text)."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, float):
        return {"float": value.hex()}
    if isinstance(value, decimal.Decimal):
        return {"decimal": str(value)}
    raise ValueError(f"an extreme of type {type(value).__name__} cannot be kept as partition evidence")


def _decode_extreme(value: Any) -> Any:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, dict) and set(value) == {"float"}:
        return float.fromhex(value["float"])
    if isinstance(value, dict) and set(value) == {"decimal"}:
        return decimal.Decimal(value["decimal"])
    raise ValueError(f"partition evidence holds an extreme it cannot read: {value!r}")


class Unique(Evaluator):
    def __init__(self, columns: Sequence[str], types: Sequence[pa.DataType], capacity: int) -> None:
        self.columns = tuple(columns)
        self.keys = KeyCollector(columns, types, capacity)
        self.non_null: int | None = None
        # Non-null keys in partitions not fed because none of their keys can repeat (``partitionwise``).
        self.unread_non_null = 0

    def judged(self):
        return self.non_null

    def hint_range(self, low: int, high: int) -> None:
        """A claimed (footer) range of a single integer key: may pick the dense path, never the answer."""
        self.keys.use_range(low, high)

    def update(self, batch, offset):
        self.keys.add([batch.column(name) for name in self.columns])

    def describe(self):
        return [("unique", ",".join(self.columns), 0)]

    def finish(self, rescan):
        report = self.keys.finish(rescan)
        self.non_null = report.non_null + self.unread_non_null
        distinct = self.non_null - report.duplicate_rows
        passed = report.duplicate_rows == 0
        detail = f"{distinct} distinct keys in {self.non_null} rows without nulls"
        if not passed:
            detail += f"; {report.repeated_keys} keys repeat"
        return [RuleResult(
            rule="unique", column=",".join(self.columns), passed=passed, expected=0,
            observed=report.duplicate_rows, failing_count=report.duplicate_rows,
            failing_sample=report.sample, detail=detail,
        )]


class RowCount(Evaluator):
    """The number of rows actually read (never the footer's num_rows)."""

    def __init__(self, low: int | None, high: int | None) -> None:
        self.low, self.high = low, high
        self.rows = 0

    def update(self, batch, offset):
        self.rows += batch.num_rows

    def _expected(self) -> dict[str, int]:
        return {key: value for key, value in (("min", self.low), ("max", self.high)) if value is not None}

    def describe(self):
        return [("row_count", None, self._expected())]

    mergeable = True

    def fresh(self):
        return _renewed(self, RowCount(self.low, self.high))

    def partial(self):
        return Partial(self.rows, 0, [])

    def absorb(self, partial, offset):
        self.rows += partial.judged or 0

    def finish(self, rescan):
        passed = (self.low is None or self.rows >= self.low) and (self.high is None or self.rows <= self.high)
        return [RuleResult(rule="row_count", passed=passed, expected=self._expected(), observed=self.rows,
                           detail=None if passed else f"{self.rows} rows outside {self._expected()}")]


class Expect(Evaluator):
    """A named SQL boolean expression over each row (``expect:``), evaluated by DuckDB over the batch's Arrow
    data (no copy): rows where it is false or null fail. Evidence: their count and the first few failing rows
    (row number and the values of the columns the expression reads)."""

    ROW = "__lane_row"

    def __init__(self, name: str, sql: str, columns: Sequence[str], connection: duckdb.DuckDBPyConnection) -> None:
        self.name, self.sql = name, sql
        self.columns = tuple(columns)
        self.connection = connection
        self.rows = 0
        self.failing = 0
        self.examples: list[dict[str, Any]] = []
        self.error: str | None = None
        self._typed = False

    def judged(self):
        return None if self.error else self.rows

    def update(self, batch, offset):
        if self.error:
            return
        import duckdb

        from batchlane.checking.sqlexpr import first_line, type_problem

        numbers = pa.array(np.arange(offset, offset + batch.num_rows, dtype=np.int64))
        view = pa.Table.from_batches([batch.select(list(self.columns))]).append_column(self.ROW, numbers)
        try:
            self.connection.register("product", view)
            if not self._typed:
                result = self.connection.execute(f"SELECT ({self.sql}) FROM product LIMIT 0")
                problem = type_problem(str(result.description[0][1]))
                result.fetchall()
                if problem:
                    self.error = f"the expression {problem}"
                    return
                self._typed = True
            failing = int(self.connection.execute(
                f"SELECT count(*) FROM product WHERE ({self.sql}) IS NOT TRUE").fetchall()[0][0])
            if failing and len(self.examples) < SAMPLE:
                found = self.connection.execute(
                    f"SELECT * FROM product WHERE ({self.sql}) IS NOT TRUE ORDER BY {self.ROW} "
                    f"LIMIT {SAMPLE - len(self.examples)}")
                names = [column[0] for column in found.description or []]
                for values in found.fetchall():
                    row = dict(zip(names, values, strict=True))
                    self.examples.append({"row": row.pop(self.ROW), **{k: jsonable(v) for k, v in row.items()}})
        except duckdb.Error as exc:
            self.error = f"the expression could not be evaluated: {first_line(exc)}"
            return
        finally:
            self.connection.unregister("product")
        self.rows += batch.num_rows
        self.failing += failing

    def describe(self):
        return [("expect", self.name, self.sql)]

    def finish(self, rescan):
        if self.error:
            return self.failed(self.error)
        return [RuleResult(
            rule="expect", column=self.name, passed=self.failing == 0, expected=self.sql, observed=self.failing,
            failing_count=self.failing, failing_sample=self.examples,
            detail=f"{self.failing} of {self.rows} rows are not true (false or null); sample = rows"
                   if self.failing else None,
        )]


class Fixed(Evaluator):
    """A result known at planning time (missing column, inapplicable rule, unavailable reference)."""

    def __init__(self, result: RuleResult) -> None:
        self.result = result

    def update(self, batch, offset):  # pragma: no cover - never scanned
        pass

    def describe(self):
        return [(self.result.rule, self.result.column, self.result.expected)]

    def finish(self, rescan):
        return [self.result]
