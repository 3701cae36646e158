"""Lane specs: the pydantic contract for outputs, inputs, transforms and data contracts.

A spec is validated once at the boundary (``load_spec`` / ``load_contract``); everything inside trusts it.
Loading is strict (YAML 1.2 via ``batchlane.strict_yaml``; duplicate keys, non-finite bounds, bounds and values
the declared column type cannot hold, unbounded durations, and unknown keys are refused). Every problem is
reported as ``FIELD.PATH: reason (line N)`` under a header naming the file, and raised as ``SpecError``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import math
import re
import types
import typing
import zoneinfo
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from batchlane.strict_yaml import PathPart, YamlDocument, YamlProblem, load_yaml

NAME_PATTERN = r"^[a-z][a-z0-9_\-]{0,62}$"
NAME_RULE = "a lowercase letter, then lowercase letters, digits, '_' or '-' (at most 63 characters)"

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

_SPEC_SHAPE = ("a lane spec is a mapping like\n"
               "  lane: NAME\n"
               "  outputs:\n"
               "    OUTPUT: {inputs: {INPUT: data/file.csv}, transform: module:function, contract: {columns: ...}}")
_CONTRACT_SHAPE = ("a contract is a mapping like\n"
                   "  columns: {COLUMN: {type: int64, not_null: true}}\n"
                   "  unique: [[COLUMN, COLUMN]]\n"
                   "  row_count: {min: 1}")


class SpecError(ValueError):
    """A lane spec or contract that cannot be used; the message names the file, the field and the reason."""


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


class RowCount(_Model):
    min: int | None = None
    max: int | None = None

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


class Contract(_Model):
    columns: dict[str, ColumnRules] = Field(default_factory=dict)
    unique: list[list[str]] = Field(default_factory=list, description="composite keys")
    row_count: RowCount | None = None

    @field_validator("unique")
    @classmethod
    def _keys_not_empty(cls, value: list[list[str]]) -> list[list[str]]:
        for index, key in enumerate(value):
            if not key:
                raise _FieldError((index,), "a composite key needs at least one column")
            if len(set(key)) != len(key):
                raise _FieldError((index,), f"composite key {key} repeats a column")
        return value

    def references(self) -> dict[str, tuple[str, str]]:
        """column -> (output, column) for every reference rule."""
        return {name: rules.reference for name, rules in self.columns.items() if rules.reference}


_IDENTIFIER = r"[A-Za-z_]\w*"


class OutputSpec(_Model):
    inputs: dict[str, str] = Field(min_length=1)
    transform: str | None = None
    contract: Contract = Field(default_factory=Contract)
    consumers: list[str] = Field(default_factory=list)

    @field_validator("inputs")
    @classmethod
    def _input_names_and_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for name, location in value.items():
            if not re.fullmatch(_IDENTIFIER, name):
                raise _FieldError((name,), f"input name {name!r} must be a Python identifier (letters, digits, '_'):"
                                  " the transform receives each input as a keyword argument")
            if not location.strip():
                raise _FieldError((name,), "must be a path, glob or s3:// URI, got empty text")
        return value

    @field_validator("transform")
    @classmethod
    def _module_function(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*:{_IDENTIFIER}", value):
            raise ValueError(f"{value!r} must be module:function (e.g. transforms:clean_orders), "
                             "a Python module next to the spec")
        return value

    @field_validator("consumers")
    @classmethod
    def _consumer_names(cls, value: list[str]) -> list[str]:
        for index, name in enumerate(value):
            if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,62}$", name):
                raise _FieldError((index,), f"consumer {name!r} must be letters, digits, '-' or '_' (max 63)")
        return value

    @model_validator(mode="after")
    def _transform_or_single_input(self) -> OutputSpec:
        if self.transform is None and len(self.inputs) != 1:
            raise _FieldError(("transform",), "without a transform an output takes exactly one input "
                              "(it passes through unchanged)")
        return self

    def dependencies(self) -> set[str]:
        return {output for output, _ in self.contract.references().values()}


VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class LaneSpec(_Model):
    lane: str = Field(pattern=NAME_PATTERN)
    vars: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="run parameters and their defaults; `lane run --var NAME=VALUE` overrides")
    outputs: dict[str, OutputSpec] = Field(min_length=1)
    _base_dir: Path = PrivateAttr(default=Path("."))
    _source_path: Path | None = PrivateAttr(default=None)

    @field_validator("vars")
    @classmethod
    def _var_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not VAR_NAME.match(name):
                raise _FieldError((name,), f"variable name {name!r} must be a Python identifier (letters, digits, _)")
        return value

    def run_params(self, overrides: dict[str, str] | None = None) -> dict[str, str]:
        """The spec's variables with ``--var`` overrides applied, as text (a transform parses what it needs).

        An override of a variable the spec does not declare is refused (SpecError), with a suggestion.
        """
        params = {name: str(value).lower() if isinstance(value, bool) else str(value) for name, value in self.vars.items()}
        for name, value in (overrides or {}).items():
            if name not in params:
                close = difflib.get_close_matches(name, list(params), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else (
                    f" (declared: {', '.join(params)})" if params else "; declare it under `vars:` in the spec")
                raise SpecError(f"--var {name}: lane {self.lane!r} has no variable {name!r}{hint}")
            params[name] = value
        return params

    @field_validator("outputs")
    @classmethod
    def _output_names(cls, value: dict[str, OutputSpec]) -> dict[str, OutputSpec]:
        for name in value:
            if not re.match(NAME_PATTERN, name):
                raise _FieldError((name,), f"output name {name!r} is not a valid name: {NAME_RULE}")
        return value

    @model_validator(mode="after")
    def _references_resolve(self) -> LaneSpec:
        for name, output in self.outputs.items():
            for column, (target, target_column) in output.contract.references().items():
                path = ("outputs", name, "contract", "columns", column, "references")
                if target not in self.outputs:
                    close = difflib.get_close_matches(target, list(self.outputs), n=1)
                    raise _FieldError(path, f"no output named {target!r}"
                                      + (f"; did you mean {close[0]!r}?" if close else
                                         f" (outputs: {', '.join(self.outputs)})"))
                if target == name:
                    raise _FieldError(path, "an output cannot reference itself")
                target_columns = self.outputs[target].contract.columns
                if target_columns and target_column not in target_columns:
                    raise _FieldError(path, f"{target!r} declares no column {target_column!r}")
        cycle = self._reference_cycle()
        if cycle:
            first, second = cycle[0], cycle[1]
            column = next(c for c, (target, _) in self.outputs[first].contract.references().items() if target == second)
            raise _FieldError(("outputs", first, "contract", "columns", column, "references"),
                              f"reference cycle between outputs: {' -> '.join(cycle)}")
        return self

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    @property
    def source_path(self) -> Path | None:
        return self._source_path

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()

    def output_digest(self, output: str) -> str:
        """Digest of one output's spec: memoization ignores edits to siblings."""
        body = {"lane": self.lane, "output": output, "spec": self.outputs[output].model_dump(mode="json")}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def _reference_cycle(self) -> list[str] | None:
        """One cycle of references (a -> b -> a), or None."""
        state: dict[str, str] = {}

        def visit(name: str, trail: tuple[str, ...]) -> list[str] | None:
            if state.get(name) == "done":
                return None
            if state.get(name) == "visiting":
                return [*trail[trail.index(name):], name]
            state[name] = "visiting"
            for dependency in sorted(self.outputs[name].dependencies()):
                found = visit(dependency, (*trail, name))
                if found:
                    return found
            state[name] = "done"
            return None

        for name in self.outputs:
            found = visit(name, ())
            if found:
                return found
        return None

    def topological_order(self) -> list[str]:
        """Outputs ordered so every referenced product comes before its referrers."""
        cycle = self._reference_cycle()
        if cycle:
            raise ValueError(f"reference cycle between outputs: {' -> '.join(cycle)}")
        order: list[str] = []
        done: set[str] = set()

        def visit(name: str) -> None:
            if name in done:
                return
            done.add(name)
            for dependency in sorted(self.outputs[name].dependencies()):
                visit(dependency)
            order.append(name)

        for name in self.outputs:
            visit(name)
        return order


# ---------------------------------------------------------------------------------------------------------------
# Problems as messages: FIELD.PATH: reason (line N)
# ---------------------------------------------------------------------------------------------------------------

_WHERE_KEYS_BELONG: dict[type[BaseModel], str] = {
    LaneSpec: "the top level of the spec", OutputSpec: "an output (outputs.OUTPUT)",
    Contract: "a contract (outputs.OUTPUT.contract)", ColumnRules: "a column (contract.columns.COLUMN)",
    RowCount: "row_count",
}
_REQUIRED_HINTS = {
    "lane": f"the lane's name, {NAME_RULE}",
    "outputs": "a mapping of output names to outputs: {OUTPUT: {inputs: {INPUT: data/file.csv}}}",
    "inputs": "a mapping of input names to paths, globs or s3:// URIs: {orders: data/orders.csv}",
}


def render_path(path: Sequence[PathPart]) -> str:
    """outputs.a.contract.columns.id.min; list items as [i]; keys that are not plain words quoted."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[\w\-]+", str(part)):
            text += f".{part}" if text else str(part)
        else:
            text += f"[{str(part)!r}]"
    return text


def _unwrap(annotation: Any) -> Any:
    """X | None -> X (one level)."""
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def _model_at(root: type[BaseModel], path: Sequence[PathPart]) -> type[BaseModel] | None:
    """The model class that holds the keys at ``path`` (following fields, dict values and list items)."""
    current: Any = root
    for part in path:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) in (dict, list):
            current = typing.get_args(current)[-1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unknown_key(root: type[BaseModel], parent: Sequence[PathPart], key: PathPart) -> str:
    model = _model_at(root, parent)
    if model is None:
        return "unknown key"
    known = list(model.model_fields)
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    elsewhere = [where for other, where in _WHERE_KEYS_BELONG.items()
                 if other is not model and key in other.model_fields]
    if elsewhere:
        return f"unknown key here; {key!r} belongs in {elsewhere[0]}"
    return f"unknown key; expected one of: {', '.join(known)}"


def _reason(item: Any, root: type[BaseModel], loc: tuple[PathPart, ...]) -> tuple[tuple[PathPart, ...], str]:
    """(path, reason) for one pydantic error, in the spec's words."""
    kind, value, ctx = item["type"], item.get("input"), item.get("ctx") or {}
    if loc and loc[-1] == "[key]":
        return loc[:-1], f"names must be text, got {_describe(loc[-2] if len(loc) > 1 else value)}"
    if kind == "extra_forbidden":
        return loc, _unknown_key(root, loc[:-1], loc[-1])
    if kind == "value_error":
        error = ctx.get("error")
        if isinstance(error, _FieldError):
            return loc + error.path, str(error)
        return loc, str(error) if error is not None else item["msg"].removeprefix("Value error, ")
    if kind == "missing":
        hint = _REQUIRED_HINTS.get(str(loc[-1]) if loc else "")
        return loc, "required" + (f": {hint}" if hint else "")
    if kind == "bool_type":
        return loc, f"must be true or false, got {_describe(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return loc, f"must be a whole number, got {_describe(value)}"
    if kind == "string_type":
        return loc, f"must be text, got {_describe(value)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return loc, f"must be a mapping (key: value), got {_describe(value)}"
    if kind == "list_type":
        return loc, f"must be a list, got {_describe(value)}"
    if kind == "literal_error" and loc and loc[-1] == "type":
        close = difflib.get_close_matches(str(value).lower(), COLUMN_TYPES, n=1, cutoff=0.6)
        suggestion = f"; did you mean {close[0]!r}?" if close else ""
        return loc, f"unknown type {value!r}{suggestion} (types: {', '.join(COLUMN_TYPES)})"
    if kind == "string_pattern_mismatch":
        return loc, f"{value!r} is not a valid name: {NAME_RULE}"
    if kind == "too_short":
        return loc, "must not be empty"
    return loc, item["msg"]


def _problems(error: ValidationError, root: type[BaseModel], prefix: tuple[PathPart, ...]
              ) -> list[tuple[tuple[PathPart, ...], str]]:
    found = []
    for item in error.errors():
        path, reason = _reason(item, root, tuple(item["loc"]))
        found.append((prefix + path, reason))
    return found


def _report(what: str, source: str, problems: list[tuple[tuple[PathPart, ...], str]],
            document: YamlDocument | None) -> SpecError:
    lines = []
    for path, reason in problems:
        line = document.line_of(path) if document is not None and path else None
        where = f" (line {line})" if line else ""
        lines.append(f"{render_path(path)}: {reason}{where}" if path else f"{reason}{where}")
    if len(lines) == 1:
        return SpecError(f"invalid {what} {source}: {lines[0]}")
    return SpecError(f"invalid {what} {source} ({len(lines)} problems):\n" + "\n".join(f"  {line}" for line in lines))


def _regexes_usable_by_checker(contract: Contract) -> list[tuple[tuple[PathPart, ...], str]]:
    """The checker matches with RE2 (pyarrow): Python-only syntax (look-around, backreferences) is refused here.

    A file-boundary check (the model itself accepts any Python pattern, so the checker's own refusal of a
    pattern it cannot run stays reachable and tested)."""
    patterns = [(column, rules.regex) for column, rules in contract.columns.items() if rules.regex is not None]
    if not patterns:
        return []
    import pyarrow as pa
    import pyarrow.compute as pc

    probe = pa.array([""], pa.string())
    problems: list[tuple[tuple[PathPart, ...], str]] = []
    for column, pattern in patterns:
        try:
            pc.match_substring_regex(probe, pattern)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            reason = str(exc).removeprefix("Invalid regular expression: ")
            problems.append((("columns", column, "regex"),
                             f"{pattern!r} is not usable by the checker's RE2 engine ({reason}); "
                             + "look-around and backreferences are not supported"))
    return problems


def _shape_problem(document: Any, shape: str, *, nested: bool = False) -> str | None:
    if document is None:
        return f"{'is' if nested else 'the file is'} empty; {shape}"
    if not isinstance(document, dict):
        return f"must be a mapping, got {_describe(document)}; {shape}"
    return None


def parse_spec(document: Any, *, source: str = "<spec>", base_dir: Path | None = None,
               lines: YamlDocument | None = None) -> LaneSpec:
    """Validate a loaded document as a lane spec; SpecError lists every problem with its field path."""
    shape = _shape_problem(document, _SPEC_SHAPE)
    if shape:
        raise SpecError(f"invalid lane spec {source}: {shape}")
    try:
        spec = LaneSpec.model_validate(document)
    except ValidationError as exc:
        raise _report("lane spec", source, _problems(exc, LaneSpec, ()), lines) from None
    regex_problems = [(("outputs", name, "contract", *path), reason)
                      for name, output in spec.outputs.items()
                      for path, reason in _regexes_usable_by_checker(output.contract)]
    if regex_problems:
        raise _report("lane spec", source, regex_problems, lines)
    spec._base_dir = (base_dir or Path(".")).resolve()
    return spec


def _read_yaml(path: Path, what: str) -> YamlDocument:
    if not path.exists():
        raise SpecError(f"{what} {path}: file not found")
    if not path.is_file():
        raise SpecError(f"{what} {path}: not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"invalid {what} {path}: not UTF-8 text (byte {exc.start}); a spec is a YAML text file") \
            from None
    except OSError as exc:
        raise SpecError(f"{what} {path}: cannot be read: {exc.strerror or exc}") from None
    try:
        return load_yaml(text)
    except YamlProblem as exc:
        prefix = f"{render_path(exc.path)}: " if exc.path else ""
        raise SpecError(f"invalid {what} {path}: {prefix}{exc}") from None


def load_spec(path: str | Path) -> LaneSpec:
    path = Path(path)
    document = _read_yaml(path, "lane spec")
    spec = parse_spec(document.data, source=str(path), base_dir=path.parent, lines=document)
    spec._source_path = path.resolve()
    return spec


def load_contract(path: str | Path) -> Contract:
    """A contract file holds the ``contract:`` block of a lane spec (with or without that key)."""
    path = Path(path)
    document = _read_yaml(path, "contract")
    data, prefix = document.data, cast(tuple[PathPart, ...], ())
    if isinstance(data, dict) and set(data) == {"contract"}:
        data, prefix = data["contract"], ("contract",)
    shape = _shape_problem(data, _CONTRACT_SHAPE, nested=bool(prefix))
    if shape:
        raise SpecError(f"invalid contract {path}: {render_path(prefix) + ': ' if prefix else ''}{shape}")
    try:
        contract = Contract.model_validate(data)
    except ValidationError as exc:
        raise _report("contract", str(path), _problems(exc, Contract, prefix), document) from None
    regex_problems = [(prefix + problem_path, reason) for problem_path, reason in _regexes_usable_by_checker(contract)]
    if regex_problems:
        raise _report("contract", str(path), regex_problems, document)
    return contract
