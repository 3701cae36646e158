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


MAP_MODES = ("auto", "inline", "distributed")
# `auto` picks DISTRIBUTED above this many outputs. Inline, one execution holds every iteration's history:
# ~27 events per built output (tests/aws/test_graph_state_machine.py), so 400 outputs are ~11,000 events of the
# 25,000 limit, leaving room for retries and a redrive pass. (Limits: "Quotas related to state machine
# executions", https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html: 25,000 history events
# per execution; 256 KiB payload per state.)
INLINE_OUTPUT_LIMIT = 400
DISTRIBUTED_PROCESSOR = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}

# History budget of statemachines/lane.asl.json, in events (measured under moto and asserted there by
# tests/aws/test_graph_state_machine.py; used by the P10 limits test, tests/aws/test_scale_limits.py).
HISTORY_LIMIT = 25_000                 # events per execution, redrives included (Step Functions quota)
PAYLOAD_LIMIT = 256 * 1024             # bytes per state input/output or task result (Step Functions quota)
# one iteration: Begin ... Decide; "checked_in_batch": a product above the check function's budget (CheckJob).
# "built" is the same for a plain job (Materialize) and a partitioned output's array job (MaterializeArray, one
# Task however many children: tests/aws/test_partitions_aws.py); ToRun? routes between them, no extra state.
EVENTS_PER_OUTPUT = {"built": 27, "checked_in_batch": 33, "blocked": 11, "memoized": 11}
EVENTS_PER_WAVE = {"inline": 10, "distributed": 12}                  # Waves?, SelectWave, the Map (+ Map Run), NextWave
EVENTS_PER_RUN = 23                    # ExecutionStarted, Plan, the last Waves?, CloseRun, Settle, Settled?, Done, end
EVENTS_PER_CHILD = 2                   # a child execution's ExecutionStarted + ExecutionSucceeded
EVENTS_PER_LAMBDA_RETRY = 3            # LambdaFunctionScheduled, LambdaFunctionStarted, LambdaFunctionFailed
EVENTS_PER_BATCH_RETRY = 4             # TaskScheduled, TaskStarted, TaskSubmitted, TaskFailed


def resolve_map_mode(mode: str, outputs: int) -> str:
    """The processor mode for the lane's output maps: `inline`, `distributed`, or `auto` (by the lane's size)."""
    if mode not in MAP_MODES:
        raise AslError(f"map mode {mode!r} must be one of {', '.join(MAP_MODES)}")
    if mode == "auto":
        return "distributed" if outputs > INLINE_OUTPUT_LIMIT else "inline"
    return mode


def with_map_mode(usage: AslUsage, mode: str, source: Path | str) -> AslUsage:
    """The definition with its top-level Map states (one per wave) in ``mode``: ``inline`` leaves the file as is;
    ``distributed`` runs each iteration as a child execution (its own history of ~27 events and its own 256 KiB
    state) by setting ``ProcessorConfig`` to DISTRIBUTED/STANDARD. The iteration states are the same in both
    modes, so what moto executes inline is what a child execution runs."""
    if mode == "inline":
        return usage
    if mode != "distributed":
        raise AslError(f"state machine definition {source}: map mode {mode!r} must be inline or distributed")
    document = json.loads(usage.text)
    maps = [state for state in _states(document).values() if state.get("Type") == "Map"]
    if not maps:
        raise AslError(f"state machine definition {source}: map mode distributed, but it has no top-level Map state")
    for state in maps:
        processor = state.get("ItemProcessor")
        if not isinstance(processor, dict):
            raise AslError(f"state machine definition {source}: a Map needs an ItemProcessor")
        processor["ProcessorConfig"] = dict(DISTRIBUTED_PROCESSOR)
    text = json.dumps(document, indent=2) + "\n"
    distributed = AslUsage(text=text, substitutions=set(SUBSTITUTION.findall(text)))
    _walk(document, distributed, "")
    return distributed


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
