"""Which outputs a run touches (all, selected, failed) and whether each must run or is memoized."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from batchlane.evidence import chain_head, write_once_or_existing
from batchlane.inputs import InputError, fingerprint, resolve_inputs
from batchlane.receipts import InputDigest, MaterializeReceipt, Trigger, utcnow
from batchlane.spec import LaneSpec
from batchlane.state import SETTLED, run_closures
from batchlane.stores.base import Backend, RunRecord
from batchlane.transforms import TransformError, code_fingerprint


class PlanError(ValueError):
    """A run request that cannot be planned (unknown run, output or lane)."""


class RunPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    run_id: str
    lane: str
    outputs: list[str]
    trigger: Trigger


class OutputStart(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    output: str
    attempt: int
    action: Literal["materialize", "memoized"]
    memo_key: str
    memoized_from: str | None = None


def new_run_id() -> str:
    """Sortable and valid as a Step Functions execution name."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}"


def _check_outputs(spec: LaneSpec, outputs: list[str]) -> None:
    unknown = [name for name in outputs if name not in spec.outputs]
    if unknown:
        raise PlanError(f"lane {spec.lane!r} has no output {', '.join(map(repr, unknown))}; outputs: {', '.join(spec.outputs)}")


def _ordered(spec: LaneSpec, outputs: list[str]) -> list[str]:
    chosen = set(outputs)
    return [name for name in spec.topological_order() if name in chosen]


def plan_run(
    backend: Backend,
    spec: LaneSpec,
    *,
    run_id: str | None = None,
    trigger: Trigger = "cli",
    outputs: list[str] | None = None,
    rerun_of: str | None = None,
) -> RunPlan:
    if outputs:
        _check_outputs(spec, outputs)
    if rerun_of:
        run = backend.ledger.get_run(rerun_of)
        if run is None:
            raise PlanError(f"no run {rerun_of!r} in the {backend.name} store")
        if run.lane != spec.lane:
            raise PlanError(f"run {rerun_of!r} belongs to lane {run.lane!r}, not {spec.lane!r}")
        if outputs:
            outside = [name for name in outputs if name not in run.outputs]
            if outside:
                raise PlanError(f"run {rerun_of!r} did not include {', '.join(outside)}; start a new run for them")
            selected = outputs
        else:
            closures = run_closures(backend, rerun_of, run.outputs)
            selected = [name for name, closure in closures.items() if closure.state not in SETTLED]
        return RunPlan(run_id=rerun_of, lane=spec.lane, outputs=_ordered(spec, selected), trigger=trigger)
    selected = _ordered(spec, outputs or list(spec.outputs))
    record = backend.ledger.create_run(
        RunRecord(
            run_id=run_id or new_run_id(), lane=spec.lane, trigger=trigger, started_at=utcnow(),
            spec_digest=spec.digest(), outputs=tuple(selected),
            spec_path=str(spec.source_path) if spec.source_path else "",
        )
    )
    if record.lane != spec.lane:
        raise PlanError(f"run id {record.run_id!r} is already used by lane {record.lane!r}")
    return RunPlan(run_id=record.run_id, lane=spec.lane, outputs=list(record.outputs), trigger=trigger)


def memo_key(spec: LaneSpec, output: str, input_digests: list[InputDigest]) -> str:
    """Same inputs (by content), same output spec, same code: same product."""
    body = {
        "spec": spec.output_digest(output),
        "code": code_fingerprint(spec, output),
        "inputs": sorted(
            [digest.name, [[item.size, item.sha256, item.version] for item in digest.files]] for digest in input_digests
        ),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def begin_output(
    backend: Backend, spec: LaneSpec, run_id: str, output: str, *, force: bool = False, trigger: Trigger = "cli"
) -> OutputStart:
    """Allocate a new attempt; skip it (memoized) when a live certification has the same memo key."""
    _check_outputs(spec, [output])
    run = backend.ledger.get_run(run_id)
    if run is None:
        raise PlanError(f"no run {run_id!r}: plan it first")
    if output not in run.outputs:
        raise PlanError(f"run {run_id!r} does not include {output!r}; start a new run for it")
    attempt = backend.ledger.next_attempt(run_id, output)
    started = utcnow()
    try:
        digests = fingerprint(resolve_inputs(spec, output))
        key = memo_key(spec, output, digests)
    except (InputError, TransformError) as exc:
        # The job will fail with the same clear error and leave its receipt; nothing to memoize.
        return OutputStart(output=output, attempt=attempt, action="materialize", memo_key=f"unavailable: {exc}")
    pointer = None if force else backend.ledger.find_memo(spec.lane, output, key)
    if pointer is None:
        return OutputStart(output=output, attempt=attempt, action="materialize", memo_key=key)
    receipt = MaterializeReceipt(
        lane=spec.lane, run_id=run_id, output=output, attempt=attempt, prev=chain_head(backend, run_id, output),
        job_id="memoized", trigger=trigger, status="memoized", inputs=digests, outputs=[],
        code_fingerprint=code_fingerprint(spec, output), spec_digest=spec.output_digest(output), memo_key=key,
        memoized_from=pointer.key, started_at=started, finished_at=utcnow(),
    )
    write_once_or_existing(backend, receipt)
    return OutputStart(output=output, attempt=attempt, action="memoized", memo_key=key, memoized_from=pointer.key)
