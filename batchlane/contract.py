"""Data contracts: the pydantic models of a product's rules (columns, composite keys, row count, row
expressions, strict schema).

Shared by lane specs (``outputs.OUTPUT.contract``) and ``lane check --contract``. Validation helpers here
raise ``_WrongKind`` / ``_FieldError`` that ``batchlane.spec`` turns into ``FIELD.PATH: reason (line N)``.
``contract_problems`` holds the checks that need more than the model (the checker's regex engine, the SQL
engine that evaluates ``expect:`` row expressions).

Every rule has a short form (``min: 0``) and a structured form (``min: {value: 0, severity: warn,
max_failing: 10}``). The structured form is split when a model is validated: the rule's field keeps the
plain value (so ``rules.min`` is always the bound, whatever form the spec used) and the severity and
tolerances are kept beside it (``rules.options("min")``). Serialization puts the structured form back, so a
spec's digest (and memoization) sees every severity and tolerance, and a short-form spec digests as before.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
import typing
import zoneinfo
from collections.abc import Sequence
from datetime import timedelta
from fractions import Fraction
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    StrictBool,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from batchlane.strict_yaml import PathPart

ColumnType = Literal[
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64", "string", "bool", "timestamp", "date",
]
COLUMN_TYPES: tuple[str, ...] = typing.get_args(ColumnType)
INTEGER_RANGES = {
    "int8": (-(2**7), 2**7 - 1), "int16": (-(2**15), 2**15 - 1), "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1), "uint8": (0, 2**8 - 1), "uint16": (0, 2**16 - 1), "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}
FLOAT_LIMITS = {"float32": 3.4028234663852886e38, "float64": 1.7976931348623157e308}
TEMPORAL_TYPES = ("timestamp", "date")

_DURATION = re.compile(r"^([0-9]+)\s*(s|m|h|d|w)$")
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_DURATION = timedelta(days=36525)   # 100 years: longer is a typo, and would overflow date arithmetic

DEFAULT_FUTURE_SKEW = timedelta(minutes=5)

_CONTRACT_SHAPE = ("a contract is a mapping like\n"
                   "  columns: {COLUMN: {type: int64, not_null: true}}\n"
                   "  unique: [[COLUMN, COLUMN]]\n"
                   "  row_count: {min: 1}")


class _WrongKind(ValueError):
    """A value of the wrong YAML kind (text for a number, ...). A ValueError, not a TypeError: pydantic turns
    only ValueError (and AssertionError) into validation errors."""


class _FieldError(ValueError):
    """A validator's problem at a path below the field (or model) being validated."""

    def __init__(self, path: Sequence[PathPart], message: str) -> None:
        self.path = tuple(path)
        super().__init__(message)


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``15m``, ``90s``, ``2w``: at most 100 years."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30d, 12h, 15m, 90s or 2w")
    digits, unit = match.groups()
    if len(digits) > 12 or int(digits) * _DURATION_SECONDS[unit] > MAX_DURATION.total_seconds():
        raise ValueError(f"{text!r} is longer than 100 years ({MAX_DURATION.days}d), the longest duration allowed")
    return timedelta(seconds=int(digits) * _DURATION_SECONDS[unit])


def _describe(value: Any) -> str:
    """A value as the user wrote it, with its YAML kind: 'yes' (text), 1000 (a number), a list."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return f"{_number(value)} (a number)"
    if isinstance(value, str):
        return f"{value!r} (text)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dt.date):
        return f"{value.isoformat()} (a date; quote it to make it text)"
    return f"a {type(value).__name__}"


def _number(value: float) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    return repr(value)


def _a(word: str) -> str:
    """'an int64', 'a uint8', 'a float32'."""
    return f"an {word}" if word[:1] in "aeio" else f"a {word}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _declared_type(info: ValidationInfo) -> str | None:
    return info.data.get("type")


def _numeric_hint(rule: str, column_type: str) -> str:
    hint = "; for freshness use max_age" if column_type in TEMPORAL_TYPES else ""
    return f"{rule} applies to numeric columns (int*, uint*, float*), not {column_type}{hint}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------------------------
# Severity and tolerances: the structured form of a rule
# ---------------------------------------------------------------------------------------------------------------

Severity = Literal["error", "warn"]
SEVERITIES: tuple[str, ...] = typing.get_args(Severity)
TOLERANCES = ("max_failing", "max_failing_fraction")


class RuleOptions(_Model):
    """How a rule's failures count. ``severity: warn`` records the evidence without blocking certification;
    ``max_failing`` / ``max_failing_fraction`` let the rule pass while its failing count stays within them
    (both, when both are set). ``max_fraction_change`` (not_null only) bounds how far the column's null fraction
    may move from the certification in force."""

    severity: Severity = "error"
    max_failing: int | None = None
    max_failing_fraction: float | None = None
    max_fraction_change: float | None = None

    @property
    def has_tolerance(self) -> bool:
        return self.max_failing is not None or self.max_failing_fraction is not None

    def tolerance(self) -> dict[str, int | float] | None:
        """The tolerance as evidence ({max_failing: 10, max_failing_fraction: 0.001}), None without one."""
        found = {key: getattr(self, key) for key in TOLERANCES if getattr(self, key) is not None}
        return found or None

    def tolerates(self, failing: int, judged: int) -> bool:
        """Whether ``failing`` of ``judged`` rows (or values) is within the tolerance. Exact: the fraction is
        compared as the decimal written in the spec (1 failing of 1,000 is within 0.001), never as a float."""
        if not self.has_tolerance:
            return failing == 0
        if self.max_failing is not None and failing > self.max_failing:
            return False
        if self.max_failing_fraction is not None:
            fraction = Fraction(failing, judged) if judged else Fraction(0)
            if fraction > exact(self.max_failing_fraction):
                return False
        return True

    def written(self) -> dict[str, Any]:
        """The keys that differ from the defaults, as the spec wrote them."""
        return self.model_dump(exclude_defaults=True)


DEFAULT_OPTIONS = RuleOptions()


def exact(number: float) -> Fraction:
    """A spec's number as the decimal it was written as (0.1 is 1/10, not the nearest binary float)."""
    return Fraction(repr(number)) if isinstance(number, float) else Fraction(number)


def failing_fraction(failing: int, judged: int) -> float:
    return failing / judged if judged else 0.0


# What each rule's structured form may hold besides `value` (and `severity`, which every rule takes).
_OPTION_KEYS: dict[str, tuple[str, ...]] = {
    "type": (), "max_age": (), "extra_columns": (), "max_change": (),
    "not_null": (*TOLERANCES, "max_fraction_change"), "unique": TOLERANCES, "accepted_values": TOLERANCES,
    "min": TOLERANCES, "max": TOLERANCES, "regex": TOLERANCES, "references": TOLERANCES,
}
# Rules whose value is true or false: `value` may be left out of the structured form (it is then true).
_SWITCHES = ("not_null", "unique")
_VALUE_EXAMPLES = {
    "type": "{value: int64, severity: warn}", "accepted_values": "{value: [NEW, PAID], severity: warn}",
    "min": "{value: 0, severity: warn}", "max": "{value: 100, max_failing: 10}",
    "regex": "{value: '^[A-Z]+$', max_failing_fraction: 0.01}", "references": "{value: OUTPUT.COLUMN, severity: warn}",
    "max_age": "{value: 1d, severity: warn}", "extra_columns": "{value: forbid, severity: warn}",
    "max_change": "{value: 0.5, severity: warn}",
}
_NO_TOLERANCE = {
    "type": "a column has one type", "max_age": "it is decided by the newest value",
    "extra_columns": "it is about the schema, not rows", "max_change": "it compares two row counts",
}


def _option_problem(key: str, value: Any) -> str | None:
    """Why one option's value is unusable (None if it is fine)."""
    if key == "severity":
        if not isinstance(value, str) or value not in SEVERITIES:
            close = difflib.get_close_matches(str(value), SEVERITIES, n=1, cutoff=0.5) if isinstance(value, str) else []
            return (f"must be error (blocks certification) or warn (recorded, does not block), got {_describe(value)}"
                    + (f"; did you mean {close[0]!r}?" if close else ""))
        return None
    if key == "max_failing":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"must be a whole number of failing rows, 0 or more, got {_describe(value)}"
        return None
    if not _is_number(value) or not math.isfinite(value):
        return f"must be a finite number, got {_describe(value)}"
    if key in ("max_failing_fraction", "max_fraction_change") and not 0 <= value <= 1:
        what = "a fraction of the rows" if key == "max_failing_fraction" else "a change of the null fraction"
        return f"must be {what} from 0 to 1 (0.01 is 1%), got {_number(value)}"
    if key == "max_change" and value < 0:
        return f"must be 0 or more (0.5 allows a 50% change up or down), got {_number(value)}"
    return None


def split_structured(rule: str, mapping: dict[Any, Any]) -> tuple[Any, RuleOptions]:
    """(value, options) of a rule's structured form; _FieldError((rule, KEY), reason) for a problem in it."""
    allowed = ("value", "severity", *_OPTION_KEYS[rule])
    for key in mapping:
        if key in allowed:
            continue
        if key in TOLERANCES or key == "max_fraction_change":
            why = _NO_TOLERANCE.get(rule, "it applies to not_null only")
            raise _FieldError((rule, key), f"{key} does not apply to {rule}: {why}; use severity: warn to record "
                              "failures without blocking")
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        raise _FieldError((rule, key), "unknown key" + (f"; did you mean {close[0]!r}?" if close
                                                        else f"; expected one of: {', '.join(allowed)}"))
    for key in allowed[1:]:
        if key in mapping:
            problem = _option_problem(key, mapping[key])
            if problem:
                raise _FieldError((rule, key), problem)
    if "value" in mapping:
        value = mapping["value"]
    elif rule in _SWITCHES:
        value = True
    else:
        raise _FieldError((rule,), f"the structured form needs value: the {rule} itself, e.g. "
                          f"{rule}: {_VALUE_EXAMPLES.get(rule, '{value: ..., severity: warn}')}")
    options = RuleOptions(**{key: mapping[key] for key in allowed[1:] if key in mapping and key != "max_change"})
    if rule in _SWITCHES and value is False and options != DEFAULT_OPTIONS:
        raise _FieldError((rule, "value"), f"{rule} is off (value: false): its severity and tolerances have no effect; "
                          "remove them or the rule")
    return value, options


def _with_value_in_path(exc: ValidationError, structured: set[str]) -> ValidationError:
    """The model's errors, with ``value`` added to the path of every rule written in the structured form."""
    relocated = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        if loc and loc[0] in structured:
            loc = (loc[0], "value", *loc[1:])
        item: dict[str, Any] = {"type": error["type"], "loc": loc, "input": error.get("input")}
        if "ctx" in error:
            item["ctx"] = error["ctx"]
        relocated.append(item)
    return ValidationError.from_exception_data(exc.title, relocated)  # type: ignore[arg-type]


def _validate_split(data: Any, rules: Sequence[str], handler: ValidatorFunctionWrapHandler, *,
                    keep_defaults: bool = False, severity_here: bool = False) -> tuple[Any, dict[str, RuleOptions]]:
    """Validate ``data`` with the structured forms of ``rules`` replaced by their plain values.

    Returns (model, {rule: options}) with only the options that differ from the defaults (all of them with
    ``keep_defaults``: where an explicit severity: error overrides an enclosing one). A severity or tolerance
    written beside the rules (not inside one) is refused, naming where it belongs (``severity_here``: the
    mapping itself takes a severity, as row_count does).
    """
    if not isinstance(data, dict):
        return handler(data), {}
    misplaced = next((key for key in (*TOLERANCES, "max_fraction_change") if key in data), None)
    if misplaced is None and "severity" in data and not severity_here:
        misplaced = "severity"
    if misplaced is not None and severity_here:
        raise _FieldError((misplaced,), f"{misplaced} does not apply to row_count: it compares a count with bounds; "
                          "use severity: warn to record a violation without blocking")
    if misplaced is not None:
        example = "not_null: {max_failing: 10}" if misplaced != "severity" else "min: {value: 0, severity: warn}"
        raise _FieldError((misplaced,), f"{misplaced} belongs to one rule: write that rule in its structured form, "
                          f"e.g. {example}")
    plain = dict(data)
    options: dict[str, RuleOptions] = {}
    structured: set[str] = set()
    for rule in rules:
        if isinstance(data.get(rule), dict):
            plain[rule], found = split_structured(rule, data[rule])
            structured.add(rule)
            if found != DEFAULT_OPTIONS or keep_defaults:
                options[rule] = found
    try:
        model = handler(plain)
    except ValidationError as exc:
        if not structured:
            raise
        raise _with_value_in_path(exc, structured) from None
    return model, options


def _structured_dump(plain: dict[str, Any], options: dict[str, RuleOptions]) -> dict[str, Any]:
    for rule, found in options.items():
        plain[rule] = {"value": plain.get(rule), **found.written()}
    return plain


class ColumnRules(_Model):
    """The rules of one column. Checks that depend on the declared ``type`` run only when it is declared
    (``type`` is validated first, so later fields see it)."""

    type: ColumnType | None = None
    not_null: StrictBool = False
    unique: StrictBool = False
    accepted_values: list[str | int | float | bool] | None = None
    min: float | int | None = None
    max: float | int | None = None
    max_age: str | None = Field(default=None, description="freshness: newest value no older than this (30d, 12h)")
    future_skew: str | None = Field(
        default=None, description="freshness: how far in the future a value may lie (clock skew); default 5m"
    )
    timezone: str | None = Field(
        default=None, description="IANA zone naive timestamps are in (e.g. UTC, Europe/Berlin); required by max_age"
                                  " on naive timestamp columns"
    )
    regex: str | None = None
    references: str | None = Field(default=None, description="OUTPUT.COLUMN of another product of the lane")
    _options: dict[str, RuleOptions] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _structured_forms(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> ColumnRules:
        """``RULE: {value: ..., severity: ..., max_failing: ...}``: the field keeps the value, the options
        are kept beside it (``options(RULE)``)."""
        model, options = _validate_split(data, COLUMN_RULES, handler)
        if options:
            model._options = options
        return model

    @model_serializer(mode="wrap")
    def _dump_structured(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _structured_dump(handler(self), self._options)

    def options(self, rule: str) -> RuleOptions:
        """Severity and tolerances of one of this column's rules (the defaults for the short form)."""
        return self._options.get(rule, DEFAULT_OPTIONS)

    def strictest_severity(self) -> Severity:
        """``warn`` only when every rule the column declares is warn-only (a missing column then warns)."""
        declared = [rule for rule in COLUMN_RULES if getattr(self, rule) is not None and getattr(self, rule) is not False]
        return "warn" if declared and all(self.options(rule).severity == "warn" for rule in declared) else "error"

    @field_validator("accepted_values", mode="before")
    @classmethod
    def _accepted_values_fit_type(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return value
        if not isinstance(value, list):
            raise _WrongKind(f"must be a list of values, e.g. [NEW, PAID], got {_describe(value)}")
        if not value:
            raise ValueError("must list at least one value")
        column_type = _declared_type(info)
        if column_type in TEMPORAL_TYPES:
            raise ValueError(f"accepted_values applies to string, integer, float and bool columns, not {column_type}")
        for index, item in enumerate(value):
            problem = _accepted_value_problem(item, column_type)
            if problem:
                raise _FieldError((index,), problem)
        if column_type is None and len({isinstance(item, bool) for item in value}) > 1:
            raise ValueError("mixes booleans (true/false) with other values; quote the ones meant as text")
        return value

    @field_validator("min", "max", mode="before")
    @classmethod
    def _bound_fits_type(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return value
        if not _is_number(value):
            raise _WrongKind(f"must be a number, got {_describe(value)}")
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {_number(value)}")
        column_type = _declared_type(info)
        if column_type is None:
            return value
        if column_type in INTEGER_RANGES:
            low, high = INTEGER_RANGES[column_type]
            if not isinstance(value, int):
                raise ValueError(f"must be a whole number for {_a(column_type)} column, got {_number(value)}")
            if not low <= value <= high:
                raise ValueError(f"{value} is outside the {column_type} range {low}..{high}")
        elif column_type in FLOAT_LIMITS:
            if abs(value) > FLOAT_LIMITS[column_type]:
                raise ValueError(f"{_number(value)} is outside the {column_type} range")
        else:
            raise ValueError(_numeric_hint(str(info.field_name), column_type))
        return value

    @field_validator("max_age", "future_skew", mode="before")
    @classmethod
    def _valid_duration(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return value
        if not isinstance(value, str):
            raise _WrongKind(f"must be a duration like 30d, 12h, 15m, 90s or 2w, got {_describe(value)}")
        delta = parse_duration(value)
        if info.field_name == "max_age" and not delta:
            raise ValueError("must be longer than 0 (0s would fail every product)")
        column_type = _declared_type(info)
        if column_type is not None and column_type not in TEMPORAL_TYPES:
            raise ValueError(f"{info.field_name} applies to timestamp or date columns, not {column_type}")
        return value

    @field_validator("timezone", mode="before")
    @classmethod
    def _valid_timezone(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return value
        if not isinstance(value, str):
            raise _WrongKind(f"must be an IANA time zone name like UTC or Europe/Berlin, got {_describe(value)}")
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            names = sorted(zoneinfo.available_timezones() | {"UTC"})
            by_case = {name.lower(): name for name in names}
            close = [by_case[value.lower()]] if value.lower() in by_case else \
                difflib.get_close_matches(value, names, n=1, cutoff=0.6)
            raise ValueError(f"{value!r} is not an IANA time zone name (like UTC or Europe/Berlin)"
                             + (f"; did you mean {close[0]!r}?" if close else "")) from None
        column_type = _declared_type(info)
        if column_type is not None and column_type != "timestamp":
            raise ValueError(f"timezone applies to timestamp columns, not {column_type}")
        return value

    @field_validator("regex", mode="before")
    @classmethod
    def _valid_regex(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return value
        if not isinstance(value, str):
            raise _WrongKind(f"must be a regular expression (text), got {_describe(value)}")
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
        column_type = _declared_type(info)
        if column_type is not None and column_type != "string":
            raise ValueError(f"regex applies to string columns, not {column_type}")
        return value

    @field_validator("references")
    @classmethod
    def _valid_reference(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z_][\w\-]*\.[A-Za-z_]\w*$", value):
            raise ValueError(f"{value!r} must be OUTPUT.COLUMN, e.g. customers_clean.customer_id")
        return value

    @model_validator(mode="after")
    def _rules_agree(self) -> ColumnRules:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise _FieldError(("min",), f"min ({_number(self.min)}) is greater than max ({_number(self.max)})")
        if self.future_skew is not None and self.max_age is None:
            raise _FieldError(("future_skew",), "future_skew only affects max_age: set max_age too, or remove it")
        return self

    @property
    def max_age_delta(self) -> timedelta | None:
        return parse_duration(self.max_age) if self.max_age else None

    @property
    def future_skew_delta(self) -> timedelta:
        return parse_duration(self.future_skew) if self.future_skew else DEFAULT_FUTURE_SKEW

    @property
    def reference(self) -> tuple[str, str] | None:
        if not self.references:
            return None
        output, column = self.references.split(".", 1)
        return output, column


def _accepted_value_problem(item: Any, column_type: str | None) -> str | None:
    """Why one accepted value cannot match the declared column type (None if it can)."""
    if item is None:
        return "null is not a value to accept: nulls are ruled by not_null"
    if not isinstance(item, str | int | float):
        return f"{_describe(item)} is not a plain value (text, a number or a boolean)"
    if isinstance(item, float) and not math.isfinite(item):
        return f"{_number(item)} is not a finite number"
    if column_type == "string" and not isinstance(item, str):
        text = str(item).lower() if isinstance(item, bool) else _number(item)
        return f"{_describe(item)} is not text, and a string column holds text: quote it ('{text}')"
    if column_type == "bool" and not isinstance(item, bool):
        return f"{_describe(item)} is not a boolean (true or false)"
    if column_type in INTEGER_RANGES:
        if not isinstance(item, int) or isinstance(item, bool):
            return f"{_describe(item)} is not a whole number, and {_a(column_type)} column holds whole numbers"
        low, high = INTEGER_RANGES[column_type]
        if not low <= item <= high:
            return f"{item} is outside the {column_type} range {low}..{high}"
    if column_type in FLOAT_LIMITS and not _is_number(item):
        return f"{_describe(item)} is not a number, and {_a(column_type)} column holds numbers"
    return None


COLUMN_RULES = ("type", "not_null", "unique", "accepted_values", "min", "max", "max_age", "regex", "references")


class RowCount(_Model):
    """Bounds on the number of rows, and ``max_change``: how far it may move (as a fraction: 0.5 is 50%, up or
    down) from the certification in force. ``severity`` applies to both unless ``max_change`` has its own."""

    min: int | None = None
    max: int | None = None
    max_change: float | None = None
    severity: Severity = "error"
    _options: dict[str, RuleOptions] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _structured_change(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> RowCount:
        if isinstance(data, dict) and "severity" in data and _option_problem("severity", data["severity"]):
            raise _FieldError(("severity",), _option_problem("severity", data["severity"]) or "")
        # an explicit severity on max_change overrides row_count's, even severity: error
        model, options = _validate_split(data, ("max_change",), handler, keep_defaults=True, severity_here=True)
        if options:
            model._options = options
        return model

    @model_serializer(mode="wrap")
    def _dump_structured(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        plain = handler(self)
        for key, default in (("max_change", None), ("severity", "error")):
            if plain.get(key) == default:
                plain.pop(key, None)  # a spec without them digests as before
        if "max_change" in self._options:
            plain["max_change"] = {"value": plain.get("max_change"), "severity": self._options["max_change"].severity}
        return plain

    @field_validator("max_change", mode="before")
    @classmethod
    def _change_fraction(cls, value: Any) -> Any:
        problem = None if value is None else _option_problem("max_change", value)
        if problem:
            raise ValueError(problem)
        return value

    def options(self, rule: Literal["row_count", "max_change"]) -> RuleOptions:
        if rule == "max_change" and "max_change" in self._options:
            return self._options["max_change"]
        return DEFAULT_OPTIONS if self.severity == "error" else RuleOptions(severity=self.severity)

    @field_validator("min", "max", mode="before")
    @classmethod
    def _whole_count(cls, value: Any) -> Any:
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ValueError(f"must be a whole number of rows, 0 or more, got {_describe(value)}")
        return value

    @model_validator(mode="after")
    def _bounds_ordered(self) -> RowCount:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise _FieldError(("min",), f"min ({self.min}) is greater than max ({self.max})")
        return self


EXPECTATION_NAME = r"^[A-Za-z_][A-Za-z0-9_\-]{0,62}$"


class Expectation(_Model):
    """A named SQL boolean expression over one row (dbt-utils' ``expression_is_true``): rows where it is false
    or null fail. Evaluated by the checker's embedded SQL engine (DuckDB), never as user Python."""

    name: str = Field(description="names the rule in the evidence: expect(NAME)")
    sql: str = Field(description="a boolean SQL expression over the row's columns, e.g. amount >= 0 OR status = 'REFUND'")
    severity: Severity = "error"
    max_failing: int | None = None
    max_failing_fraction: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _options_valid(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("severity", *TOLERANCES):
                problem = _option_problem(key, data[key]) if key in data else None
                if problem:
                    raise _FieldError((key,), problem)
        return data

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not re.match(EXPECTATION_NAME, value):
            raise ValueError(f"{value!r} must start with a letter or '_', then letters, digits, '_' or '-' (at most 63)")
        return value

    @field_validator("sql")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a boolean SQL expression over the row, e.g. amount >= 0, got empty text")
        return value

    @property
    def options(self) -> RuleOptions:
        return RuleOptions(severity=self.severity, max_failing=self.max_failing,
                           max_failing_fraction=self.max_failing_fraction)


class Contract(_Model):
    columns: dict[str, ColumnRules] = Field(default_factory=dict)
    unique: list[list[str]] = Field(default_factory=list, description="composite keys")
    row_count: RowCount | None = None
    expect: list[Expectation] = Field(default_factory=list, description="named SQL boolean expressions over a row")
    extra_columns: Literal["allow", "forbid"] = Field(
        default="allow", description="forbid: a product with a column not listed under columns fails")
    _options: dict[str, RuleOptions] = PrivateAttr(default_factory=dict)
    _key_options: dict[int, RuleOptions] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _structured_forms(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Contract:
        """Composite keys as ``{columns: [a, b], severity: ..., max_failing: ...}`` beside ``[a, b]``; and
        ``extra_columns: {value: forbid, severity: warn}``."""
        key_options: dict[int, RuleOptions] = {}
        if isinstance(data, dict) and isinstance(data.get("unique"), list):
            keys = []
            for index, item in enumerate(data["unique"]):
                if isinstance(item, dict):
                    item, found = _structured_key(index, item)
                    if found != DEFAULT_OPTIONS:
                        key_options[index] = found
                keys.append(item)
            data = {**data, "unique": keys}
        if isinstance(data, dict) and data.get("extra_columns") not in (None, "allow", "forbid") \
                and not isinstance(data.get("extra_columns"), dict):
            raise _FieldError(("extra_columns",), "must be allow (the default) or forbid (a product with a column "
                              f"not listed under columns fails), got {_describe(data['extra_columns'])}")
        model, options = _validate_split(data, ("extra_columns",), handler)
        if options:
            model._options = options
        if key_options:
            model._key_options = key_options
        return model

    @model_serializer(mode="wrap")
    def _dump_structured(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        plain = handler(self)
        if not plain.get("expect"):
            plain.pop("expect", None)  # a contract without the newer rules digests as before
        if plain.get("extra_columns") == "allow" and "extra_columns" not in self._options:
            plain.pop("extra_columns", None)
        for index, found in self._key_options.items():
            plain["unique"][index] = {"columns": plain["unique"][index], **found.written()}
        return _structured_dump(plain, self._options)

    @field_validator("unique")
    @classmethod
    def _keys_not_empty(cls, value: list[list[str]]) -> list[list[str]]:
        for index, key in enumerate(value):
            if not key:
                raise _FieldError((index,), "a composite key needs at least one column")
            if len(set(key)) != len(key):
                raise _FieldError((index,), f"composite key {key} repeats a column")
        return value

    @field_validator("expect")
    @classmethod
    def _expectation_names_unique(cls, value: list[Expectation]) -> list[Expectation]:
        seen: dict[str, int] = {}
        for index, expectation in enumerate(value):
            if expectation.name in seen:
                raise _FieldError((index, "name"), f"{expectation.name!r} is already the name of expect[{seen[expectation.name]}]"
                                  "; each expectation needs its own name (it names the rule in the evidence)")
            seen[expectation.name] = index
        return value

    def options(self, rule: Literal["extra_columns"]) -> RuleOptions:
        return self._options.get(rule, DEFAULT_OPTIONS)

    def key_options(self, index: int) -> RuleOptions:
        """Severity and tolerances of composite key ``unique[index]``."""
        return self._key_options.get(index, DEFAULT_OPTIONS)

    def references(self) -> dict[str, tuple[str, str]]:
        """column -> (output, column) for every reference rule."""
        return {name: rules.reference for name, rules in self.columns.items() if rules.reference}

    def change_rules(self) -> bool:
        """Whether a rule compares with the certification in force (row_count.max_change,
        not_null.max_fraction_change): only then is a baseline needed."""
        return (self.row_count is not None and self.row_count.max_change is not None) or any(
            rules.options("not_null").max_fraction_change is not None for rules in self.columns.values())


def _structured_key(index: int, item: dict[Any, Any]) -> tuple[Any, RuleOptions]:
    """(columns, options) of ``unique[index]`` written as ``{columns: [a, b], severity: warn, max_failing: 3}``."""
    allowed = ("columns", "severity", *TOLERANCES)
    for key in item:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            raise _FieldError(("unique", index, key), "unknown key" + (f"; did you mean {close[0]!r}?" if close
                                                             else f"; expected one of: {', '.join(allowed)}"))
        problem = _option_problem(key, item[key]) if key != "columns" else None
        if problem:
            raise _FieldError(("unique", index, key), problem)
    if "columns" not in item:
        raise _FieldError(("unique", index), "a composite key's structured form needs columns: e.g. "
                          "{columns: [customer_id, ts], severity: warn}")
    columns = item["columns"]
    if not isinstance(columns, list) or not all(isinstance(name, str) for name in columns):
        raise _FieldError(("unique", index, "columns"), f"must be a list of column names, got {_describe(columns)}")
    return columns, RuleOptions(**{key: item[key] for key in allowed[1:] if key in item})


def contract_problems(contract: Contract) -> list[tuple[tuple[PathPart, ...], str]]:
    """Problems the model cannot see, each as (path, reason):

    - ``regex``: the checker matches with RE2 (pyarrow): Python-only syntax (look-around, backreferences) is
      refused here. A file-boundary check: the model itself accepts any Python pattern, so the checker's own
      refusal of a pattern it cannot run stays reachable and tested.
    - ``expect``: each expression must parse (DuckDB's parser) as one boolean expression over a row, and bind
      over the declared column types when every column it reads has one (``batchlane.checking.sqlexpr``).
    """
    problems: list[tuple[tuple[PathPart, ...], str]] = []
    patterns = [(column, rules.regex) for column, rules in contract.columns.items() if rules.regex is not None]
    if patterns:
        import pyarrow as pa
        import pyarrow.compute as pc

        probe = pa.array([""], pa.string())
        for column, pattern in patterns:
            try:
                pc.match_substring_regex(probe, pattern)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                reason = str(exc).removeprefix("Invalid regular expression: ")
                path: tuple[PathPart, ...] = ("columns", column, "regex")
                if "regex" in contract.columns[column]._options:
                    path = (*path, "value")
                problems.append((path, f"{pattern!r} is not usable by the checker's RE2 engine ({reason}); "
                                 + "look-around and backreferences are not supported"))
    if contract.expect:
        from batchlane.checking.sqlexpr import expectation_problems

        declared = {name: rules.type for name, rules in contract.columns.items() if rules.type is not None}
        found = expectation_problems([expectation.sql for expectation in contract.expect], declared)
        for index, (expectation, problem) in enumerate(zip(contract.expect, found, strict=True)):
            if problem:
                problems.append((("expect", index, "sql"), f"{expectation.sql!r}: {problem}"))
    return problems
