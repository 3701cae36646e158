"""Gate Lambda: plan, begin, record_crash, decide, settle, close, resolve. Thin: parse, call the core, shape output.

The read-only resolve twin runs this handler with LANE_GATE_ACTIONS=resolve: it can answer nothing else.

Environment: LANE_BACKEND=aws, LANE_BUCKET, LANE_TABLE, LANE_EVENT_BUS, LANE_SPEC (path in the bundle).
State carries only small references (run id, output, attempt, receipt keys), never receipts.
"""

from __future__ import annotations

import json
import os
from typing import Any

from batchlane.gate import NotCertified, close_run, decide, repair_run, resolve, unsettled, verify_files
from batchlane.partitions import BATCH_ARRAY_MAX, array_timeout_seconds, batch_array_size
from batchlane.plan import PlanError, begin_output, plan_run
from batchlane.receipts import manifest_key, receipt_key
from batchlane.recording import record_crash
from batchlane.selection import expand_selection
from batchlane.spec import LaneSpec, SpecError
from batchlane.warm import lane_backend, lane_spec

TRIGGERS = ("cli", "console", "eventbridge", "rerun", "api")


class OutputsUncertified(RuntimeError):
    """Settle: some outputs of the run are not certified. The execution fails naming exactly those."""


class BadRequest(ValueError):
    """The gate was called with an event it cannot use (fails closed, never retried)."""


def _context() -> tuple[Any, LaneSpec]:
    return lane_backend(), lane_spec(BadRequest, "the gate")


def _require(event: dict, *names: str) -> list[Any]:
    missing = [name for name in names if event.get(name) in (None, "")]
    if missing:
        raise BadRequest(f"action {event.get('action')!r} needs {', '.join(missing)}")
    return [event[name] for name in names]


def _selection(raw: Any) -> dict[str, Any]:
    """Execution input -> plan arguments: {}, {"outputs": [...]}, {"rerun_of": RUN}, or an EventBridge envelope."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise BadRequest(f"execution input must be a JSON object, got {type(raw).__name__}")
    if "detail-type" in raw and "detail" in raw:  # started by an EventBridge rule
        detail = raw.get("detail") or {}
        outputs = detail.get("outputs") if isinstance(detail, dict) else None
        if isinstance(outputs, dict):  # a RunClosed event of an upstream lane carries {output: state}
            outputs = None
        variables = detail.get("vars") if isinstance(detail, dict) else None
        return {"outputs": list(outputs) if outputs else None, "rerun_of": None, "trigger": "eventbridge",
                "variables": _variables(variables)}
    unknown = sorted(set(raw) - {"outputs", "rerun_of", "trigger", "vars"})
    if unknown:
        raise BadRequest(f"unknown execution input field(s) {', '.join(unknown)}: use outputs, rerun_of or vars")
    outputs = raw.get("outputs")
    if outputs is not None and (not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs)):
        raise BadRequest("outputs must be a list of output names")
    trigger = raw.get("trigger") or ("rerun" if raw.get("rerun_of") else "console")
    if trigger not in TRIGGERS:
        raise BadRequest(f"trigger {trigger!r} is not one of {', '.join(TRIGGERS)}")
    return {"outputs": outputs or None, "rerun_of": raw.get("rerun_of"), "trigger": trigger,
            "variables": _variables(raw.get("vars"))}


def _variables(raw: Any) -> dict[str, str] | None:
    """Run parameters from the execution input: {"vars": {"run_date": "2026-11-29"}} (values as text)."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise BadRequest("vars must be an object of NAME: VALUE")
    return {name: str(value).lower() if isinstance(value, bool) else str(value) for name, value in raw.items()}


def plan(event: dict) -> dict:
    backend, spec = _context()
    (execution,) = _require(event, "execution")
    selection = _selection(event.get("input"))
    try:
        outputs = expand_selection(spec, selection["outputs"]) if selection["outputs"] else None  # +X, X+ as on the CLI
        planned = plan_run(backend, spec, run_id=None if selection["rerun_of"] else execution,
                           trigger=selection["trigger"], outputs=outputs, rerun_of=selection["rerun_of"],
                           variables=selection["variables"])
    except (PlanError, SpecError) as exc:
        raise BadRequest(str(exc)) from None
    return {
        "run": {"run_id": planned.run_id, "lane": planned.lane, "trigger": planned.trigger},
        "work": _work(spec, planned.outputs, redrives=int(event.get("redrive_count") or 0)),
    }


def _work(spec: LaneSpec, outputs: list[str] | tuple[str, ...], *, redrives: int, settled: bool = False) -> dict:
    """What the state machine runs next: the outputs in topological waves of the product graph, wave 0 first.

    An output is in a later wave than every selected output it reads or references, so each wave's Map runs only
    outputs whose upstream products are decided (no iteration waits for a sibling)."""
    waves = spec.waves(list(outputs)) if outputs else []
    return {"waves": waves, "wave": 0, "wave_count": len(waves), "redrives": redrives, "settled": settled}


def begin(event: dict) -> dict:
    """A new attempt. ``array_size`` >= 2: submit the job as an array job of that size (a partitioned output,
    one child per partition to build); 0: a plain job. More partitions to build than an array job holds fail the
    attempt here (action ``failed``, the receipt says why)."""
    backend, spec = _context()
    run_id, output = _require(event, "run_id", "output")
    start = begin_output(backend, spec, run_id, output, trigger=event.get("trigger") or "console",
                         max_partitions_to_build=BATCH_ARRAY_MAX)
    array_size = batch_array_size(start.partitions_to_build)
    result = {"output": output, "attempt": start.attempt, "action": start.action,
              "attempt_str": str(start.attempt), "array_size": array_size}
    if "materialize_timeout_seconds" in event:  # the array's children run in rounds of the job slots
        result["timeout_seconds"] = array_timeout_seconds(
            array_size, int(event["materialize_timeout_seconds"]), _env_int("LANE_JOB_TIMEOUT_SECONDS", 0),
            _env_int("LANE_JOB_SLOTS", 1))
    return result


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ValueError(f"environment {name}={raw!r} is not a whole number (set by the stack)") from None


def crash(event: dict) -> dict:
    backend, spec = _context()
    run_id, output, attempt = _require(event, "run_id", "output", "attempt")
    error, job_id = _describe_failure(event.get("error"), event.get("cause"))
    receipt = record_crash(backend, spec, run_id, output, int(attempt), job_id=job_id, error=error,
                           trigger=event.get("trigger") or "console")
    return {"status": receipt.status, "receipt": receipt_key(run_id, output, int(attempt), "materialize")}


def _describe_failure(error: Any, cause: Any) -> tuple[str, str]:
    """The Step Functions error/cause of a failed Batch task -> (readable error, job id)."""
    text, job_id = str(error or "States.TaskFailed"), "unknown"
    try:
        detail = json.loads(cause) if isinstance(cause, str) else (cause or {})
    except ValueError:
        detail = {"message": str(cause)[:500]}
    if isinstance(detail, dict):
        job_id = str(detail.get("JobId") or detail.get("jobId") or job_id)
        container = detail.get("Container") or detail.get("container") or {}
        if not isinstance(container, dict):
            container = {}
        reason = detail.get("StatusReason") or detail.get("statusReason") or container.get("Reason")
        exit_code = container.get("ExitCode", container.get("exitCode"))
        parts = [text]
        if exit_code is not None:
            parts.append(f"exit code {exit_code}")
        array = detail.get("ArrayProperties") or detail.get("arrayProperties")
        if isinstance(array, dict) and array.get("Size", array.get("size")):  # an array job: how its children ended
            summary = array.get("StatusSummary") or array.get("statusSummary") or {}
            failed = summary.get("FAILED", 0) if isinstance(summary, dict) else "?"
            parts.append(f"array job: {failed} of {array.get('Size', array.get('size'))} child jobs failed")
        if reason:
            parts.append(str(reason))
        if detail.get("message"):
            parts.append(str(detail["message"]))
        text = ", ".join(parts)
    return text, job_id


def decide_output(event: dict) -> dict:
    backend, spec = _context()
    run_id, output, attempt = _require(event, "run_id", "output", "attempt")
    failure = None
    if event.get("check_error"):  # the Check task itself failed (timeout, out of memory, crash)
        failure, _ = _describe_failure(event.get("check_error"), event.get("check_cause"))
    receipt = decide(backend, spec, run_id, output, int(attempt), check_failure=failure)
    return {"decision": receipt.decision, "receipt": receipt_key(run_id, output, int(attempt), "gate"),
            "digest": receipt.digest()}


def settle(event: dict) -> dict:
    """Settled -> continue; a redriven execution -> reprocess the uncertified outputs; else fail naming them."""
    backend, spec = _context()
    (run_id,) = _require(event, "run_id")
    redrive_count = int(event.get("redrive_count") or 0)
    handled = int(event.get("handled_redrives") or 0)
    open_outputs = unsettled(backend, spec, run_id)
    if not open_outputs:
        return _work(spec, [], redrives=max(redrive_count, handled), settled=True)
    if redrive_count > handled:  # a console redrive restarted this state: rerun exactly the uncertified outputs
        return _work(spec, list(open_outputs), redrives=redrive_count)  # blocked ones after what blocked them
    raise OutputsUncertified(uncertified_message(spec.lane, run_id, open_outputs))


# The execution's failure cause (Settle's error message) is cut by Step Functions at 32,768 characters
# (DescribeExecution `cause`, "Length Constraints: Maximum length of 32768"); stay well inside it so the
# redrive hint at the end is never the part that is lost, however many outputs fail with however long causes
# (the cause is the Lambda error document: the message plus the error type and the stack frames).
MESSAGE_BUDGET = 20_000
REASON_LIMIT = 300


def uncertified_message(lane: str, run_id: str, open_outputs: dict[str, str], budget: int = MESSAGE_BUDGET) -> str:
    """Names exactly the uncertified outputs with their reasons, whole while they fit in ``budget`` characters;
    past it, each reason is cut to REASON_LIMIT characters and the names and reasons that still do not fit are
    counted (`... and N more`)."""
    hint = (f"Redrive this execution, or start one with {{\"rerun_of\": \"{run_id}\"}}, to rerun only these outputs"
            f" (all of them: lane status {run_id}).")
    head = f"run {run_id} of lane {lane}: {len(open_outputs)} output(s) not certified: "
    room = budget - len(head) - len(hint)
    names = _within(sorted(open_outputs), ", ", room // 2)
    room -= len(names)
    details = "; ".join(f"{name}: {reason}" for name, reason in sorted(open_outputs.items()))
    if len(details) > room:  # too long whole: each reason cut, then as many as fit
        details = _within([f"{name}: {_cut(reason)}" for name, reason in sorted(open_outputs.items())], "; ", room)
    return f"{head}{names}. {details}. {hint}"


def _cut(reason: str) -> str:
    return reason if len(reason) <= REASON_LIMIT else reason[:REASON_LIMIT - 15] + " ... (cut)"


def _within(items: list[str], separator: str, room: int) -> str:
    """Items joined while they fit in ``room`` characters, then `... and N more`."""
    taken: list[str] = []
    used = 0
    for index, item in enumerate(items):
        more = len(items) - index - 1
        tail = f"{separator}... and {more} more" if more else ""
        if used + len(separator) * bool(taken) + len(item) + len(tail) > room:
            return separator.join(taken) + f"{separator if taken else ''}... and {len(items) - index} more"
        taken.append(item)
        used += len(separator) * (len(taken) > 1) + len(item)
    return separator.join(taken)


def close(event: dict) -> dict:
    backend, spec = _context()
    (run_id,) = _require(event, "run_id")
    repair_run(backend, spec, run_id)  # finish what a failed Check or Decide left (idempotent steps only)
    manifest = close_run(backend, spec, run_id)
    return {"manifest": manifest_key(run_id, manifest.sequence), "sequence": manifest.sequence,
            "verdict": manifest.verdict, "digest": manifest.digest()}


def resolve_output(event: dict) -> dict:
    """Presigned GET URLs for the certified files of an output, pinned to their S3 versions.

    The pointer and the certification's digest are checked here; on a versioned bucket the bytes behind a
    version id cannot change, and the consumer checks each file's SHA-256 while downloading. Without
    version ids, the bytes are re-hashed here before any URL is handed out.
    """
    backend, spec = _context()
    (output,) = _require(event, "output")
    if output not in spec.outputs:
        raise BadRequest(f"lane {spec.lane!r} has no output {output!r}")
    ttl = _env_int("LANE_RESOLVE_URL_TTL", 900)
    try:
        resolved = resolve(backend, spec.lane, output, verify_bytes=False)
        proofs = resolved.certification.proof
        if not all(proof.version for proof in proofs):
            verify_files(backend, resolved)
    except NotCertified as exc:
        raise NotCertifiedError(str(exc)) from None
    files = []
    for key, proof in zip(resolved.keys, proofs, strict=True):
        url = backend.store.presigned_get(key, version=proof.version, expires_in=ttl)
        files.append({"key": key, "sha256": proof.sha256, "size": proof.size, "version": proof.version, "url": url})
    pointer = resolved.pointer
    return {"lane": spec.lane, "output": output, "run_id": pointer.run_id, "attempt": pointer.attempt,
            "certification": pointer.key, "certification_digest": pointer.digest, "files": files, "expires_in": ttl}


class NotCertifiedError(LookupError):
    """resolve: no live certification proves this output's bytes (no PASS, no read)."""


ACTIONS = {
    "plan": plan,
    "begin": begin,
    "record_crash": crash,
    "decide": decide_output,
    "settle": settle,
    "close": close,
    "resolve": resolve_output,
}


def _allowed_actions() -> list[str]:
    configured = os.environ.get("LANE_GATE_ACTIONS")
    return [name.strip() for name in configured.split(",") if name.strip()] if configured else list(ACTIONS)


def handler(event: dict, context: Any = None) -> dict:
    action = (event or {}).get("action")
    allowed = _allowed_actions()
    if action not in ACTIONS or action not in allowed:
        raise BadRequest(f"unknown gate action {action!r}; this function answers {', '.join(allowed)}")
    return ACTIONS[action](event)
