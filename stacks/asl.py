"""Read the lane's ASL at synth: which ${Substitutions} it uses and which service integrations it calls.

The stack grants IAM for exactly what the definition calls; an integration this module does
not know fails synth (fail closed) instead of deploying a state machine that cannot run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUBSTITUTION = re.compile(r"\$\{(\w+)\}")

# Task resources we know how to grant for (optimized integrations; ".sync"/".waitForTaskToken" suffixes parsed out).
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
BATCH_SUBMIT = "arn:aws:states:::batch:submitJob"
EVENTS_PUT = "arn:aws:states:::events:putEvents"
KNOWN_RESOURCES = {LAMBDA_INVOKE, BATCH_SUBMIT, EVENTS_PUT}


class AslError(ValueError):
    """The ASL cannot be deployed as is; the message names the file and the state."""


@dataclass
class AslUsage:
    """What a definition needs from the stack."""

    text: str
    substitutions: set[str] = field(default_factory=set)
    integrations: set[str] = field(default_factory=set)      # e.g. "batch:submitJob.sync"
    lambda_function_substitutions: set[str] = field(default_factory=set)
    direct_lambda: bool = False
    distributed_map: bool = False
    batch_tags: bool = False          # a submitJob passes Tags: the role then needs batch:TagResource

    @property
    def batch_sync(self) -> bool:
        return "batch:submitJob.sync" in self.integrations

    @property
    def batch_submit(self) -> bool:
        return any(name.startswith("batch:submitJob") for name in self.integrations)

    @property
    def put_events(self) -> bool:
        return "events:putEvents" in self.integrations


def _states(container: dict[str, Any]) -> dict[str, Any]:
    states = container.get("States")
    if not isinstance(states, dict) or not states:
        raise AslError("a state list ('States') is missing or empty")
    return states


def _walk(container: dict[str, Any], usage: AslUsage, where: str) -> None:
    for name, state in _states(container).items():
        here = f"{where}{name}"
        kind = state.get("Type")
        if kind == "Task":
            _task(state, usage, here)
        elif kind == "Map":
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if not isinstance(processor, dict):
                raise AslError(f"state {here}: a Map needs an ItemProcessor")
            mode = (processor.get("ProcessorConfig") or {}).get("Mode", "INLINE")
            if mode == "DISTRIBUTED":
                usage.distributed_map = True
            _walk(processor, usage, f"{here}/")
        elif kind == "Parallel":
            for index, branch in enumerate(state.get("Branches") or []):
                _walk(branch, usage, f"{here}[{index}]/")


def _task(state: dict[str, Any], usage: AslUsage, here: str) -> None:
    resource = state.get("Resource", "")
    if not isinstance(resource, str):
        raise AslError(f"state {here}: Resource must be a string")
    match = SUBSTITUTION.fullmatch(resource)
    if match:  # a Lambda ARN used directly as the Task resource
        usage.direct_lambda = True
        usage.lambda_function_substitutions.add(match.group(1))
        return
    base, _, suffix = resource.partition(".")
    if base not in KNOWN_RESOURCES:
        raise AslError(
            f"state {here}: the stack grants no IAM for {resource!r}; add the integration to stacks/asl.py "
            "and its grant to stacks/orchestration.py (known: "
            + ", ".join(sorted(r.rsplit(":::", 1)[1] for r in KNOWN_RESOURCES)) + ")"
        )
    name = base.rsplit(":::", 1)[1] + (f".{suffix}" if suffix else "")
    usage.integrations.add(name)
    parameters = state.get("Parameters") or state.get("Arguments") or {}
    if base == BATCH_SUBMIT and isinstance(parameters, dict) and ("Tags" in parameters or "Tags.$" in parameters):
        usage.batch_tags = True
    if base == LAMBDA_INVOKE:
        function = (state.get("Parameters") or state.get("Arguments") or {}).get("FunctionName")
        found = SUBSTITUTION.fullmatch(function) if isinstance(function, str) else None
        if not found:
            raise AslError(f"state {here}: lambda:invoke must name its function with a ${{...FunctionArn}} substitution")
        usage.lambda_function_substitutions.add(found.group(1))


def read_asl(path: Path) -> AslUsage:
    if not path.is_file():
        raise AslError(f"state machine definition {path}: file not found")
    text = path.read_text()
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AslError(f"state machine definition {path}: not valid JSON: {exc}") from None
    if document.get("QueryLanguage") == "JSONata":
        raise AslError(f"state machine definition {path}: JSONata cannot be executed locally; use JSONPath")
    usage = AslUsage(text=text, substitutions=set(SUBSTITUTION.findall(text)))
    try:
        _walk(document, usage, "")
    except AslError as exc:
        raise AslError(f"state machine definition {path}: {exc}") from None
    return usage


def check_substitutions(usage: AslUsage, available: set[str], source: Path | str) -> None:
    """Every ${Name} in the definition must have a value; a missing one would deploy a broken definition."""
    unknown = sorted(usage.substitutions - available)
    if unknown:
        raise AslError(
            f"state machine definition {source}: no value for substitution(s) {', '.join(unknown)}; "
            f"the stack provides {', '.join(sorted(available))} (see statemachines/SUBSTITUTIONS.md)")
    functions = {name for name in usage.lambda_function_substitutions if not name.endswith("FunctionArn")}
    if functions:
        raise AslError(f"state machine definition {source}: ${{{min(functions)}}} is used as a Lambda function")
