"""Lane specs: the pydantic contract for outputs, inputs, transforms and data contracts.

A spec is validated once at the boundary (``load_spec``); everything inside trusts it.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

NAME_PATTERN = r"^[a-z][a-z0-9_\-]{0,62}$"

ColumnType = Literal[
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64", "string", "bool", "timestamp", "date",
]

_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d|w)$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class SpecError(ValueError):
    """A lane spec or contract that cannot be used; the message names the field and the reason."""


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30d, 12h, 15m, 90s or 2w")
    amount, unit = match.groups()
    return timedelta(**{_DURATION_UNITS[unit]: int(amount)})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnRules(_Model):
    type: ColumnType | None = None
    not_null: bool = False
    unique: bool = False
    accepted_values: list[str | int | float | bool] | None = None
    min: float | int | None = None
    max: float | int | None = None
    max_age: str | None = Field(default=None, description="freshness: newest value no older than this (30d, 12h)")
    regex: str | None = None
    references: str | None = Field(default=None, description="OUTPUT.COLUMN of another product of the lane")

    @field_validator("max_age")
    @classmethod
    def _valid_duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("regex")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from exc
        return value

    @field_validator("references")
    @classmethod
    def _valid_reference(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z_][\w\-]*\.[A-Za-z_]\w*$", value):
            raise ValueError(f"{value!r} must be OUTPUT.COLUMN")
        return value

    @model_validator(mode="after")
    def _bounds_ordered(self) -> ColumnRules:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.accepted_values is not None and not self.accepted_values:
            raise ValueError("accepted_values must list at least one value")
        return self

    @property
    def max_age_delta(self) -> timedelta | None:
        return parse_duration(self.max_age) if self.max_age else None

    @property
    def reference(self) -> tuple[str, str] | None:
        if not self.references:
            return None
        output, column = self.references.split(".", 1)
        return output, column


class RowCount(_Model):
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bounds_ordered(self) -> RowCount:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class Contract(_Model):
    columns: dict[str, ColumnRules] = Field(default_factory=dict)
    unique: list[list[str]] = Field(default_factory=list, description="composite keys")
    row_count: RowCount | None = None

    @field_validator("unique")
    @classmethod
    def _keys_not_empty(cls, value: list[list[str]]) -> list[list[str]]:
        for key in value:
            if not key:
                raise ValueError("a composite key needs at least one column")
            if len(set(key)) != len(key):
                raise ValueError(f"composite key {key} repeats a column")
        return value

    def references(self) -> dict[str, tuple[str, str]]:
        """column -> (output, column) for every reference rule."""
        return {name: rules.reference for name, rules in self.columns.items() if rules.reference}


class OutputSpec(_Model):
    inputs: dict[str, str] = Field(min_length=1)
    transform: str | None = None
    contract: Contract = Field(default_factory=Contract)
    consumers: list[str] = Field(default_factory=list)

    @field_validator("transform")
    @classmethod
    def _module_function(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", value):
            raise ValueError(f"{value!r} must be module:function (e.g. transforms:clean_orders)")
        return value

    @field_validator("consumers")
    @classmethod
    def _consumer_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,62}$", name):
                raise ValueError(f"consumer {name!r} must be letters, digits, '-' or '_' (max 63)")
        return value

    @model_validator(mode="after")
    def _transform_or_single_input(self) -> OutputSpec:
        if self.transform is None and len(self.inputs) != 1:
            raise ValueError("without a transform an output takes exactly one input (it passes through unchanged)")
        return self

    def dependencies(self) -> set[str]:
        return {output for output, _ in self.contract.references().values()}


class LaneSpec(_Model):
    lane: str = Field(pattern=NAME_PATTERN)
    outputs: dict[str, OutputSpec] = Field(min_length=1)
    _base_dir: Path = PrivateAttr(default=Path("."))
    _source_path: Path | None = PrivateAttr(default=None)

    @field_validator("outputs")
    @classmethod
    def _output_names(cls, value: dict[str, OutputSpec]) -> dict[str, OutputSpec]:
        for name in value:
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"output name {name!r} must match {NAME_PATTERN}")
        return value

    @model_validator(mode="after")
    def _references_resolve(self) -> LaneSpec:
        for name, output in self.outputs.items():
            for column, (target, target_column) in output.contract.references().items():
                if target not in self.outputs:
                    raise ValueError(f"outputs.{name}.contract.columns.{column}.references: no output named {target!r}")
                if target == name:
                    raise ValueError(f"outputs.{name}.contract.columns.{column}.references: an output cannot reference itself")
                target_columns = self.outputs[target].contract.columns
                if target_columns and target_column not in target_columns:
                    raise ValueError(
                        f"outputs.{name}.contract.columns.{column}.references: "
                        f"{target!r} declares no column {target_column!r}"
                    )
        self.topological_order()  # raises on cycles
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

    def topological_order(self) -> list[str]:
        """Outputs ordered so every referenced product comes before its referrers."""
        order: list[str] = []
        state: dict[str, str] = {}

        def visit(name: str, trail: tuple[str, ...]) -> None:
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                raise ValueError(f"reference cycle between outputs: {' -> '.join(trail + (name,))}")
            state[name] = "visiting"
            for dependency in sorted(self.outputs[name].dependencies()):
                visit(dependency, trail + (name,))
            state[name] = "done"
            order.append(name)

        for name in self.outputs:
            visit(name, ())
        return order


def _format_errors(source: str, error: ValidationError) -> str:
    lines = [f"invalid lane spec {source}:"]
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"  {path}: {message}")
    return "\n".join(lines)


def parse_spec(document: Any, *, source: str = "<spec>", base_dir: Path | None = None) -> LaneSpec:
    try:
        spec = LaneSpec.model_validate(document)
    except ValidationError as exc:
        raise SpecError(_format_errors(source, exc)) from None
    spec._base_dir = (base_dir or Path(".")).resolve()
    return spec


def _read_yaml(path: Path, what: str) -> Any:
    if not path.is_file():
        raise SpecError(f"{what} {path}: file not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(f"{what} {path}: not valid YAML: {exc}") from None


def load_spec(path: str | Path) -> LaneSpec:
    path = Path(path)
    spec = parse_spec(_read_yaml(path, "lane spec"), source=str(path), base_dir=path.parent)
    spec._source_path = path.resolve()
    return spec


def load_contract(path: str | Path) -> Contract:
    """A contract file holds the ``contract:`` block of a lane spec (with or without that key)."""
    path = Path(path)
    document = _read_yaml(path, "contract")
    if isinstance(document, dict) and set(document) == {"contract"}:
        document = document["contract"]
    try:
        return Contract.model_validate(document or {})
    except ValidationError as exc:
        raise SpecError(_format_errors(str(path), exc).replace("lane spec", "contract")) from None
