"""Lane specs: the pydantic contract for outputs, inputs, transforms and data contracts.

A spec is validated once at the boundary (``load_spec`` / ``load_contract``); everything inside trusts it.
Loading is strict (YAML 1.2 via ``batchlane.strict_yaml``; duplicate keys, non-finite bounds, bounds and values
the declared column type cannot hold, unbounded durations, and unknown keys are refused). Every problem is
reported as ``FIELD.PATH: reason (line N)`` under a header naming the file, and raised as ``SpecError``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from batchlane.contract import (  # noqa: F401  (re-exported: the spec's public names)
    _CONTRACT_SHAPE,
    COLUMN_TYPES,
    DEFAULT_FUTURE_SKEW,
    FLOAT_LIMITS,
    INTEGER_RANGES,
    TEMPORAL_TYPES,
    ColumnRules,
    ColumnType,
    Contract,
    RowCount,
    _describe,
    _FieldError,
    _Model,
    _WrongKind,
    contract_problems,
    parse_duration,
)
from batchlane.strict_yaml import PathPart, YamlDocument, YamlProblem, load_yaml

NAME_PATTERN = r"^[a-z][a-z0-9_\-]{0,62}$"
NAME_RULE = "a lowercase letter, then lowercase letters, digits, '_' or '-' (at most 63 characters)"

_SPEC_SHAPE = ("a lane spec is a mapping like\n"
               "  lane: NAME\n"
               "  outputs:\n"
               "    OUTPUT: {inputs: {INPUT: data/file.csv}, transform: module:function, contract: {columns: ...}}")


class SpecError(ValueError):
    """A lane spec or contract that cannot be used; the message names the file, the field and the reason."""


_IDENTIFIER = r"[A-Za-z_]\w*"


class ProductInput(_Model):
    """An input that reads another certified product: ``{product: OUTPUT}`` of this lane, or
    ``{product: OUTPUT, lane: LANE}`` of another lane in the same store. It is read only through the gate: the
    certification in force when the attempt begins is pinned, and its bytes are verified as they are read."""

    product: str = Field(description="an output of this lane (or of `lane`)")
    lane: str | None = Field(default=None, description="another lane in the same store; default: this lane")

    @field_validator("product")
    @classmethod
    def _product_name(cls, value: str) -> str:
        if not re.match(NAME_PATTERN, value):
            raise ValueError(f"{value!r} is not an output name: {NAME_RULE}")
        return value

    @field_validator("lane")
    @classmethod
    def _lane_name(cls, value: str | None) -> str | None:
        if value is not None and not re.match(NAME_PATTERN, value):
            raise ValueError(f"{value!r} is not a lane name: {NAME_RULE}")
        return value

    def describe(self, lane: str) -> str:
        """``product:OUTPUT`` (this lane) or ``product:LANE/OUTPUT``: the pattern recorded in receipts."""
        return f"product:{self.output_of(lane)[0]}/{self.product}" if self.lane and self.lane != lane \
            else f"product:{self.product}"

    def output_of(self, lane: str) -> tuple[str, str]:
        """(lane, output) this input reads."""
        return (self.lane or lane, self.product)


InputSource = str | ProductInput
_INPUT_SHAPE = "a path, glob or s3:// URI (text), or {product: OUTPUT} for a product of the lane"


def _input_source(name: str, value: Any) -> InputSource:
    """One input as written: text stays a location; a mapping must be a product input."""
    if isinstance(value, str):
        if not value.strip():
            raise _FieldError((name,), "must be a path, glob or s3:// URI, got empty text")
        return value
    if isinstance(value, dict):
        try:
            return ProductInput.model_validate(value)
        except ValidationError as exc:
            path, reason = _reason(exc.errors()[0], ProductInput, tuple(exc.errors()[0]["loc"]))
            raise _FieldError((name, *path), reason) from None
    raise _FieldError((name,), f"must be {_INPUT_SHAPE}, got {_describe(value)}")


class OutputSpec(_Model):
    inputs: dict[str, InputSource] = Field(min_length=1)
    transform: str | None = None
    # Written only when set, so the digest (and every memo key) of an unpartitioned output is unchanged.
    partition_by: str | None = Field(default=None, exclude_if=lambda value: value is None,
                                     description="a file input: each file it matches is one partition "
                                     "(batchlane.partitions)")
    contract: Contract = Field(default_factory=Contract)
    consumers: list[str] = Field(default_factory=list)

    @field_validator("inputs", mode="before")
    @classmethod
    def _input_names_and_sources(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value  # pydantic says "must be a mapping"
        checked: dict[Any, Any] = {}
        for name, source in value.items():
            if not isinstance(name, str):
                checked[name] = source  # pydantic says "names must be text"
                continue
            if not re.fullmatch(_IDENTIFIER, name):
                raise _FieldError((name,), f"input name {name!r} must be a Python identifier (letters, digits, '_'):"
                                  " the transform receives each input as a keyword argument")
            checked[name] = _input_source(name, source)
        return checked

    def file_inputs(self) -> dict[str, str]:
        """Inputs read from files (paths, globs, s3:// URIs)."""
        return {name: source for name, source in self.inputs.items() if isinstance(source, str)}

    def product_inputs(self) -> dict[str, ProductInput]:
        """Inputs read from certified products (through the gate)."""
        return {name: source for name, source in self.inputs.items() if isinstance(source, ProductInput)}

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
        if self.partition_by is not None:
            self._partition_input_is_a_file_input()
        return self

    def _partition_input_is_a_file_input(self) -> None:
        name = self.partition_by
        if name in self.product_inputs():
            raise _FieldError(("partition_by",), f"{name!r} is a product input; partition_by names a file input "
                              f"(one partition per file it matches): {', '.join(self.file_inputs()) or 'none'}")
        if name not in self.inputs:
            raise _FieldError(("partition_by",), f"no input named {name!r}; file inputs: "
                              f"{', '.join(self.file_inputs()) or 'none'}")
        if self.transform is None:
            raise _FieldError(("partition_by",), "a partitioned output needs a transform (it runs once per "
                              "partition)")

    def products_read(self, lane: str | None = None) -> set[str]:
        """Outputs of this lane (``lane``) this output reads as product inputs."""
        return {source.product for source in self.product_inputs().values() if source.lane in (None, lane)}

    def dependencies(self, lane: str | None = None) -> set[str]:
        """Outputs of this lane this output reads (product inputs) or checks against (references)."""
        return self.products_read(lane) | {output for output, _ in self.contract.references().values()}


VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class CheckSettings(_Model):
    """Lane-level checker settings (``check:`` in the spec)."""

    max_memory: str | None = Field(
        default=None, description="bound on the checker's working memory, e.g. 512MB or 2GiB (at least 64MiB): "
        "uniqueness spills to disk beyond it, with the same evidence; unset: unbounded (on AWS derived from the "
        "check function's memory)")

    @field_validator("max_memory", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        from batchlane.checking.budget import parse_size

        if value is not None:
            parse_size(value, None)  # BudgetError is a ValueError: reported at check.max_memory
        return value

    @property
    def max_memory_bytes(self) -> int | None:
        from batchlane.checking.budget import parse_size

        return None if self.max_memory is None else parse_size(self.max_memory)


class LaneSpec(_Model):
    lane: str = Field(pattern=NAME_PATTERN)
    vars: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="run parameters and their defaults; `lane run --var NAME=VALUE` overrides")
    outputs: dict[str, OutputSpec] = Field(min_length=1)
    # Operational, never part of a verdict: kept out of the spec digest (a changed bound is not a changed spec).
    check: CheckSettings = Field(default_factory=CheckSettings, exclude=True,
                                 description="checker settings for every output of the lane: {max_memory: 512MB}")
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
    def _graph_resolves(self) -> LaneSpec:
        """Product inputs and references name outputs of the lane, never the output itself, and form no cycle."""
        for name, output in self.outputs.items():
            for input_name, source in output.product_inputs().items():
                if source.lane is not None and source.lane != self.lane:
                    continue  # another lane's product: resolved (and refused if uncertified) when an attempt begins
                self._check_target(name, ("outputs", name, "inputs", input_name, "product"), source.product,
                                   "read itself")
            for column, (target, target_column) in output.contract.references().items():
                path = ("outputs", name, "contract", "columns", column, "references")
                self._check_target(name, path, target, "reference itself")
                target_columns = self.outputs[target].contract.columns
                if target_columns and target_column not in target_columns:
                    raise _FieldError(path, f"{target!r} declares no column {target_column!r}")
        cycle = self._cycle()
        if cycle:
            raise _FieldError(self._edge_path(cycle[0], cycle[1]), f"cycle between outputs: {' -> '.join(cycle)}")
        return self

    def _check_target(self, name: str, path: tuple[PathPart, ...], target: str, itself: str) -> None:
        if target == name:
            raise _FieldError(path, f"an output cannot {itself}")
        if target not in self.outputs:
            close = difflib.get_close_matches(target, list(self.outputs), n=1)
            raise _FieldError(path, f"no output named {target!r}"
                              + (f"; did you mean {close[0]!r}?" if close else f" (outputs: {', '.join(self.outputs)})"))

    def _edge_path(self, source: str, target: str) -> tuple[PathPart, ...]:
        """Where the spec says ``source`` depends on ``target`` (a product input first, else a reference)."""
        output = self.outputs[source]
        for input_name, item in output.product_inputs().items():
            if item.product == target and item.lane in (None, self.lane):
                return ("outputs", source, "inputs", input_name, "product")
        column = next(c for c, (t, _) in output.contract.references().items() if t == target)
        return ("outputs", source, "contract", "columns", column, "references")

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

    def upstream(self, output: str) -> set[str]:
        """Outputs of this lane that ``output`` reads or references (its direct upstream)."""
        return self.outputs[output].dependencies(self.lane)

    def downstream(self, output: str) -> set[str]:
        """Outputs of this lane that read or reference ``output`` directly."""
        return {name for name in self.outputs if output in self.upstream(name)}

    def upstream_closure(self, output: str) -> set[str]:
        """Everything ``output`` depends on, transitively (not ``output`` itself)."""
        return self._closure(output, self.upstream)

    def downstream_closure(self, output: str) -> set[str]:
        """Everything that depends on ``output``, transitively (not ``output`` itself)."""
        return self._closure(output, self.downstream)

    @staticmethod
    def _closure(start: str, step: Any) -> set[str]:
        found: set[str] = set()
        todo = [start]
        while todo:
            for name in step(todo.pop()):
                if name not in found:
                    found.add(name)
                    todo.append(name)
        found.discard(start)
        return found

    def _cycle(self) -> list[str] | None:
        """One cycle of product inputs / references (a -> b -> a), or None."""
        state: dict[str, str] = {}

        def visit(name: str, trail: tuple[str, ...]) -> list[str] | None:
            if state.get(name) == "done":
                return None
            if state.get(name) == "visiting":
                return [*trail[trail.index(name):], name]
            state[name] = "visiting"
            for dependency in sorted(self.upstream(name)):
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
        """Outputs ordered so every product an output reads or references comes before it."""
        cycle = self._cycle()
        if cycle:
            raise ValueError(f"cycle between outputs: {' -> '.join(cycle)}")
        order: list[str] = []
        done: set[str] = set()

        def visit(name: str) -> None:
            if name in done:
                return
            done.add(name)
            for dependency in sorted(self.upstream(name)):
                visit(dependency)
            order.append(name)

        for name in self.outputs:
            visit(name)
        return order

    def waves(self, outputs: list[str] | tuple[str, ...]) -> list[list[str]]:
        """``outputs`` in topological waves: each output comes in a wave after every selected output it reads
        or references (outputs outside the selection are already decided or certified). One pass, linear in
        the graph's size."""
        selected = set(outputs)
        level: dict[str, int] = {}
        for name in self.topological_order():
            if name in selected:
                level[name] = 1 + max((level[up] for up in self.upstream(name) if up in level), default=-1)
        waves: list[list[str]] = [[] for _ in range(1 + max(level.values(), default=-1))]
        for name, wave in level.items():
            waves[wave].append(name)
        return waves

# ---------------------------------------------------------------------------------------------------------------
# Problems as messages: FIELD.PATH: reason (line N)
# ---------------------------------------------------------------------------------------------------------------

_WHERE_KEYS_BELONG: dict[type[BaseModel], str] = {
    LaneSpec: "the top level of the spec", OutputSpec: "an output (outputs.OUTPUT)",
    Contract: "a contract (outputs.OUTPUT.contract)", ColumnRules: "a column (contract.columns.COLUMN)",
    RowCount: "row_count", ProductInput: "a product input (outputs.OUTPUT.inputs.INPUT: {product: OUTPUT})",
}
_REQUIRED_HINTS = {
    "lane": f"the lane's name, {NAME_RULE}",
    "outputs": "a mapping of output names to outputs: {OUTPUT: {inputs: {INPUT: data/file.csv}}}",
    "inputs": "a mapping of input names to paths, globs or s3:// URIs, or products of the lane: "
              "{orders: data/orders.csv, clean: {product: orders_clean}}",
    "product": "the output to read: {product: OUTPUT} (of another lane: {product: OUTPUT, lane: LANE})",
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
                      for path, reason in contract_problems(output.contract)]
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
    regex_problems = [(prefix + problem_path, reason) for problem_path, reason in contract_problems(contract)]
    if regex_problems:
        raise _report("contract", str(path), regex_problems, document)
    return contract
