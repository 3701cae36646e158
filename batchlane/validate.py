"""`lane validate`: everything that can be checked about a lane spec without running it.

The spec itself (through ``load_spec``), every input (local paths and globs resolve to files in a
supported format; ``s3://`` objects are listed when AWS credentials are configured), every transform
(the module imports, the function exists, its parameters take the input names), and whether each rule
fits its column's declared type. Every problem is collected, not just the first. Nothing is written:
no store is opened and no bytecode is cached for the imported transform modules.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import inspect
import io
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchlane.inputs import READERS
from batchlane.spec import ColumnRules, LaneSpec, OutputSpec, SpecError, load_spec, parse_spec
from batchlane.transforms import TransformError, load_transform

NUMERIC = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64"}
INTEGER_RANGES = {
    "int8": (-(2**7), 2**7 - 1), "int16": (-(2**15), 2**15 - 1), "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1), "uint8": (0, 2**8 - 1), "uint16": (0, 2**16 - 1), "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}
TEMPORAL = {"timestamp", "date"}
RESERVED_PARAMETERS = ("params",)  # run parameters, passed by the materializer when the spec declares vars


@dataclass(frozen=True)
class Finding:
    where: str     # dotted path in the spec, e.g. outputs.orders_clean.inputs.orders
    message: str

    def to_json(self) -> dict[str, str]:
        return {"where": self.where, "message": self.message}


@dataclass
class ValidationReport:
    spec: str
    lane: str | None = None
    problems: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)   # what could not be checked, and why
    outputs: int = 0
    inputs: int = 0
    files: int = 0
    transforms: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, where: str, message: str) -> None:
        self.problems.append(Finding(where, message))

    def note(self, where: str, message: str) -> None:
        self.notes.append(Finding(where, message))

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec, "lane": self.lane, "ok": self.ok,
            "problems": [item.to_json() for item in self.problems],
            "notes": [item.to_json() for item in self.notes],
            "checked": {"outputs": self.outputs, "inputs": self.inputs, "files": self.files,
                        "transforms": self.transforms},
        }


def s3_credentials_configured() -> bool:
    """True when boto3 finds credentials without asking the network (instance metadata is not consulted)."""
    try:
        import botocore.session
    except ImportError:
        return False
    previous = os.environ.get("AWS_EC2_METADATA_DISABLED")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    try:
        return botocore.session.get_session().get_credentials() is not None
    except Exception:  # noqa: BLE001  # a broken profile counts as "no usable credentials"
        return False
    finally:
        if previous is None:
            os.environ.pop("AWS_EC2_METADATA_DISABLED", None)
        else:
            os.environ["AWS_EC2_METADATA_DISABLED"] = previous


def validate_spec(path: str | Path, *, credentials: Callable[[], bool] = s3_credentials_configured,
                  s3_client: Callable[[], Any] | None = None) -> ValidationReport:
    report = ValidationReport(spec=str(path))
    try:
        spec = load_spec(path)
    except SpecError as exc:
        problems = spec_problems(str(exc), str(path))
        for where, message in problems:
            report.problem(where, message)
        broken = sorted({where.split(".")[1] for where, _ in problems
                         if where.startswith("outputs.") and ".contract" in where})
        partial = _without_contracts(Path(path), broken)  # inputs and transforms can still be checked
        if partial is None:
            return report
        spec = partial
        if broken:
            report.note("spec", f"the contracts of {', '.join(broken)} have problems: their inputs and transforms "
                                "were checked without them")
    report.lane, report.outputs = spec.lane, len(spec.outputs)
    has_s3 = any(isinstance(p, str) and p.startswith("s3://") for o in spec.outputs.values() for p in o.inputs.values())
    s3 = None
    if has_s3 and credentials():
        s3 = (s3_client or _default_s3_client)()
    for name, output in spec.outputs.items():
        _check_inputs(spec, name, output, report, s3)
        _check_transform(spec, name, output, report)
        _check_rules(spec, name, output, report)
    return report


def spec_problems(message: str, source: str) -> list[tuple[str, str]]:
    """Split the loader's SpecError (one problem, or a header and one indented line per problem) into
    (where, message) pairs."""
    lines = message.splitlines()
    if len(lines) > 1:
        items = [line.strip() for line in lines[1:] if line.strip()]
    else:
        items = [message.removeprefix(f"invalid lane spec {source}: ")]
        if items[0] == message:  # not a field problem (file missing, not YAML, ...): keep it whole
            return [("spec", message)]
    found = []
    for item in items:
        where, sep, rest = item.partition(": ")
        if sep and " " not in where:
            found.append((where, rest))
        else:
            found.append(("spec", item))
    return found


def _without_contracts(path: Path, outputs_to_strip: list[str]) -> LaneSpec | None:
    """The spec with the named outputs' contracts left out, when the rest is valid (else None)."""
    try:
        from ruamel.yaml import YAML

        document = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
        outputs = document.get("outputs") if isinstance(document, dict) else None
        if not isinstance(outputs, dict):
            return None
        for name in outputs_to_strip:
            if isinstance(outputs.get(name), dict):
                outputs[name].pop("contract", None)
        spec = parse_spec(document, source=str(path), base_dir=path.parent)
    except Exception:  # noqa: BLE001  # anything else wrong with it was reported by the loader
        return None
    return spec


def _default_s3_client() -> Any:
    import boto3

    return boto3.client("s3")


# ----------------------------------------------------------------------------- inputs


def _supported(uri: str) -> bool:
    return Path(uri.split("?")[0]).suffix.lower() in READERS


def _unsupported_message(uris: list[str]) -> str:
    shown = ", ".join(uris[:3]) + (f" and {len(uris) - 3} more" if len(uris) > 3 else "")
    return f"unsupported format: {shown}; inputs must be one of {', '.join(sorted(READERS))}"


def _check_inputs(spec: LaneSpec, name: str, output: OutputSpec, report: ValidationReport, s3: Any) -> None:
    for input_name, pattern in output.inputs.items():
        where = f"outputs.{name}.inputs.{input_name}"
        report.inputs += 1
        if not isinstance(pattern, str):  # a product input: resolved through the gate at run time
            report.note(where, f"{pattern.describe(spec.lane)}: read through the gate (its certification in force "
                               "when an attempt begins)")
            continue
        if pattern.startswith("s3://"):
            _check_s3_input(where, pattern, report, s3)
            continue
        base = Path(pattern) if Path(pattern).is_absolute() else spec.base_dir / pattern
        matches = sorted(Path(found) for found in glob.glob(str(base)) if Path(found).is_file())
        if not matches:
            what = "no file matches" if glob.has_magic(pattern) else "file not found:"
            report.problem(where, f"{pattern}: {what} {base}")
            continue
        report.files += len(matches)
        unsupported = [str(path) for path in matches if not _supported(str(path))]
        if unsupported:
            report.problem(where, f"{pattern}: {_unsupported_message(unsupported)}")
        empty = [str(path) for path in matches if path.stat().st_size == 0 and _supported(str(path))]
        if empty:
            report.problem(where, f"{pattern}: empty file {', '.join(empty[:3])}")


def _check_s3_input(where: str, pattern: str, report: ValidationReport, s3: Any) -> None:
    if s3 is None:
        report.note(where, f"{pattern}: not checked: no AWS credentials configured")
        return
    bucket, _, key = pattern.removeprefix("s3://").partition("/")
    try:
        if glob.has_magic(key):
            prefix = key.split("*")[0].split("?")[0].split("[")[0]
            found = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                found += [item["Key"] for item in page.get("Contents", [])]
            uris = [f"s3://{bucket}/{k}" for k in sorted(found) if fnmatch.fnmatchcase(k, key)]
        else:
            s3.head_object(Bucket=bucket, Key=key)
            uris = [pattern]
    except Exception as exc:  # noqa: BLE001  # botocore raises many kinds: each means "cannot be read"
        report.problem(where, f"{pattern}: cannot be listed: {type(exc).__name__}: {exc}")
        return
    if not uris:
        report.problem(where, f"{pattern}: no object matches")
        return
    report.files += len(uris)
    unsupported = [uri for uri in uris if not _supported(uri)]
    if unsupported:
        report.problem(where, f"{pattern}: {_unsupported_message(unsupported)}")


# ----------------------------------------------------------------------------- transforms


@contextlib.contextmanager
def _quiet_import() -> Iterator[None]:
    """Import user code without writing __pycache__ and without its prints reaching our output."""
    previous = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        sys.dont_write_bytecode = previous


def _check_transform(spec: LaneSpec, name: str, output: OutputSpec, report: ValidationReport) -> None:
    if output.transform is None:
        return
    where = f"outputs.{name}.transform"
    report.transforms += 1
    try:
        with _quiet_import():
            function = load_transform(spec, name)
    except TransformError as exc:
        report.problem(where, str(exc))
        return
    except BaseException as exc:  # user code at import time may do anything, even sys.exit()
        if isinstance(exc, KeyboardInterrupt):
            raise
        report.problem(where, f"transform {output.transform!r}: importing failed: {type(exc).__name__}: {exc}")
        return
    try:
        signature = inspect.signature(function)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        report.note(where, f"{output.transform}: parameters cannot be inspected; checked at run time")
        return
    for message in parameter_problems(signature, list(output.inputs), reserved=_reserved(spec)):
        report.problem(where, f"{output.transform}: {message}")


def _reserved(spec: LaneSpec) -> tuple[str, ...]:
    return RESERVED_PARAMETERS if getattr(spec, "vars", None) is not None else ()


def parameter_problems(signature: inspect.Signature, inputs: list[str], reserved: tuple[str, ...] = ()) -> list[str]:
    """Inputs are passed as keyword arguments named after the inputs: does the signature take them?"""
    parameters = signature.parameters.values()
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    by_keyword = {p.name for p in parameters
                  if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    listed = ", ".join(p.name for p in parameters) or "none"
    problems = []
    for input_name in inputs:
        if input_name not in by_keyword and not takes_any:
            problems.append(f"takes no parameter {input_name!r} for input {input_name!r} (its parameters: {listed}); "
                            f"rename the parameter or accept **inputs")
    for parameter in parameters:
        required = parameter.default is inspect.Parameter.empty
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY and required:
            problems.append(f"parameter {parameter.name!r} is positional-only; inputs are passed by keyword")
        elif (required and parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
              and parameter.name not in inputs and parameter.name not in reserved):
            problems.append(f"parameter {parameter.name!r} has no input of that name (inputs: {', '.join(inputs)}) "
                            f"and no default")
    return problems


# ----------------------------------------------------------------------------- rules versus types


def _check_rules(spec: LaneSpec, name: str, output: OutputSpec, report: ValidationReport) -> None:
    for column, rules in output.contract.columns.items():
        where = f"outputs.{name}.contract.columns.{column}"
        if rules.type is None:
            typed = [rule for rule in ("min", "max", "max_age", "regex", "timezone") if getattr(rules, rule, None) is not None]
            if typed:
                report.note(where, f"no type declared: whether {', '.join(typed)} fit(s) the column is checked "
                                   "when the product is")
            continue
        for message in rule_type_problems(rules):
            report.problem(where, message)
        if rules.reference is not None:
            target, target_column = rules.reference
            target_rules = spec.outputs[target].contract.columns.get(target_column) if target in spec.outputs else None
            if target_rules is not None and target_rules.type is not None and target_rules.type != rules.type:
                report.problem(where + ".references",
                               f"{column} is {rules.type} but {target}.{target_column} is {target_rules.type}: "
                               "values of different types never match")


def rule_type_problems(rules: ColumnRules) -> list[str]:
    kind = rules.type
    assert kind is not None
    problems = []
    for rule in ("min", "max"):
        bound = getattr(rules, rule)
        if bound is None:
            continue
        if kind not in NUMERIC:
            problems.append(f"{rule} applies to numeric columns, and the column is {kind}")
        elif kind in INTEGER_RANGES:
            low, high = INTEGER_RANGES[kind]
            if not low <= bound <= high:
                problems.append(f"{rule} {bound} is outside what {kind} can hold ({low} to {high})")
    if rules.max_age is not None and kind not in TEMPORAL:
        problems.append(f"max_age applies to timestamp or date columns, and the column is {kind}")
    if getattr(rules, "timezone", None) is not None and kind != "timestamp":
        problems.append(f"timezone applies to timestamp columns, and the column is {kind}")
    if rules.regex is not None and kind != "string":
        problems.append(f"regex applies to string columns, and the column is {kind}")
    if rules.accepted_values is not None:
        impossible = [value for value in rules.accepted_values if not _value_fits(value, kind)]
        if impossible:
            problems.append(f"accepted_values {impossible!r} can never occur in a column of type {kind}")
    return problems


def _value_fits(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind in INTEGER_RANGES:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if isinstance(value, float) and not value.is_integer():
            return False
        low, high = INTEGER_RANGES[kind]
        return low <= value <= high
    if kind in ("float32", "float64"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True  # strings compare as text; temporal values are parsed by the checker
