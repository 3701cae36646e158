"""Which outputs a run touches (all, selected, failed) and whether each must run or is memoized."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from batchlane.certification import memo_hit, publish_pending
from batchlane.closing import close_run, repair_run
from batchlane.evidence import write_once_or_existing
from batchlane.hashcache import HashCache
from batchlane.inputs import InputError, fingerprint, resolve_inputs
from batchlane.joblocks import tracks_liveness
from batchlane.partitions import (
    TooManyPartitions,
    check_build_limit,
    partition_input_digests,
    plan_partitions,
    product_memo_key,
)
from batchlane.products import pin_product_inputs, run_blockers
from batchlane.receipts import (
    BeginReceipt,
    InputDigest,
    LaneEvent,
    MaterializeReceipt,
    PartitionPlan,
    Trigger,
    receipt_key,
    utcnow,
)
from batchlane.spec import LaneSpec
from batchlane.state import SETTLED, run_closures
from batchlane.stores.base import Backend, RunRecord
from batchlane.transforms import TransformError, code_fingerprint
from batchlane.writepoints import write_point

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,79}$")


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
    action: Literal["materialize", "memoized", "failed", "blocked"]
    memo_key: str
    memoized_from: str | None = None
    error: str | None = None
    partitions_to_build: int | None = None     # a partitioned output's attempt: how many partitions its job builds


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
    variables: dict[str, str] | None = None,
) -> RunPlan:
    if outputs:
        _check_outputs(spec, outputs)
    params = spec.run_params(variables)  # SpecError for an undeclared --var
    if rerun_of:
        run = backend.ledger.get_run(rerun_of)
        if run is None:
            raise PlanError(f"no run {rerun_of!r} in the {backend.name} store")
        if variables:
            raise PlanError(f"a rerun keeps the parameters of run {rerun_of!r} ({run.params or 'none'}): "
                            "start a new run to change them")
        if run.lane != spec.lane:
            raise PlanError(f"run {rerun_of!r} belongs to lane {run.lane!r}, not {spec.lane!r}")
        repair_run(backend, spec, rerun_of)  # finish what a crash interrupted before choosing what to rerun
        if outputs:
            outside = [name for name in outputs if name not in run.outputs]
            if outside:
                raise PlanError(f"run {rerun_of!r} did not include {', '.join(outside)}; start a new run for them")
            selected = outputs
            _upstreams_available(backend, spec, selected, run_id=rerun_of, run_outputs=run.outputs)
        else:
            closures = run_closures(backend, rerun_of, run.outputs)
            selected = [name for name, closure in closures.items() if closure.state not in SETTLED]
        return RunPlan(run_id=rerun_of, lane=spec.lane, outputs=_ordered(spec, selected), trigger=trigger)
    selected = _ordered(spec, outputs or list(spec.outputs))
    _upstreams_available(backend, spec, selected)
    if run_id is not None and not RUN_ID_PATTERN.match(run_id):
        raise PlanError(f"run id {run_id!r} must be 1-80 letters, digits, '-' or '_' (starting with a letter or digit)")
    write_point("run.create")
    record = backend.ledger.create_run(
        RunRecord(
            run_id=run_id or new_run_id(), lane=spec.lane, trigger=trigger, started_at=utcnow(),
            spec_digest=spec.digest(), outputs=tuple(selected),
            spec_path=str(spec.source_path) if spec.source_path else "", params=params,
        )
    )
    if record.lane != spec.lane:
        raise PlanError(f"run id {record.run_id!r} is already used by lane {record.lane!r}")
    repair_interrupted_runs(backend, spec, exclude=record.run_id)
    return RunPlan(run_id=record.run_id, lane=spec.lane, outputs=list(record.outputs), trigger=trigger)


def _upstreams_available(backend: Backend, spec: LaneSpec, selected: list[str], *, run_id: str | None = None,
                         run_outputs: tuple[str, ...] = ()) -> None:
    """Refuse a selection that would read (or check against) an upstream that is neither selected nor certified:
    its outputs could only fail or be blocked. PlanError names the upstream and suggests ``+OUTPUT``."""
    chosen = set(selected)
    for name in selected:
        reads = spec.outputs[name].products_read(spec.lane)
        for upstream in sorted(spec.upstream(name) - chosen):
            verb = "reads" if upstream in reads else "references"
            if run_id is not None and upstream in run_outputs:
                closure = run_closures(backend, run_id, [upstream])[upstream]
                if closure.state not in SETTLED:
                    raise PlanError(f"{name} {verb} {upstream}, which is {closure.state} in run {run_id} and not "
                                    f"selected: select +{name} (or add {upstream}) to rerun it first")
                continue
            pointer = backend.ledger.current(spec.lane, upstream)
            if pointer is None or pointer.revoked:
                state = "has no certification" if pointer is None else "had its certification revoked"
                raise PlanError(f"{name} {verb} {upstream}, which {state} and is not selected: "
                                f"select +{name} to build {upstream} first (or add {upstream})")


def repair_interrupted_runs(backend: Backend, spec: LaneSpec, *, exclude: str, recent: int = 3) -> None:
    """Before a new run: finish and close the lane's recent runs that a crash left unclosed, and re-send
    events an earlier publish lost, so status and the outbox tell the truth without any --force.

    Only where liveness is known (local leases): on AWS each execution's CloseRun repairs its own run, and a
    planning function must not run another execution's checks."""
    runs = backend.ledger.list_runs(spec.lane, limit=recent + 1) if tracks_liveness(backend) else []
    for run in runs:
        if run.run_id != exclude and run_has_pending(backend, run.run_id) and repair_run(backend, spec, run.run_id):
            close_run(backend, spec, run.run_id)
    publish_pending(backend)


def run_has_pending(backend: Backend, run_id: str) -> bool:
    """A run whose evidence may need repair: never closed, or closed with a FAIL."""
    rows = backend.ledger.receipts(run_id)
    manifests = sorted((row for row in rows if row.kind == "manifest"), key=lambda row: row.attempt)
    if not manifests:
        return True
    return manifests[-1].status != "PASS"


def memo_key(spec: LaneSpec, output: str, input_digests: list[InputDigest], code: str | None = None,
             params: dict[str, str] | None = None) -> str:
    """Same inputs (by content), same output spec, same code, same run parameters: same product.

    Parameters count for outputs with a transform (a pass-through output ignores them); ``None`` means the
    spec's defaults."""
    if params is None:
        params = spec.run_params()
    body: dict = {
        "spec": spec.output_digest(output),
        "code": code if code is not None else code_fingerprint(spec, output),
        # a product input counts by its certified bytes (early cutoff: an upstream rebuilt to the same bytes leaves
        # this output memoized), not by the certification or the storage version that holds them
        "inputs": sorted(
            [digest.name, [[item.size, item.sha256, item.version if digest.product is None else None]
                           for item in digest.files]] for digest in input_digests
        ),
    }
    if params and spec.outputs[output].transform:
        body["params"] = params
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _in_spec_order(spec: LaneSpec, output: str, digests: list[InputDigest]) -> list[InputDigest]:
    order = {name: index for index, name in enumerate(spec.outputs[output].inputs)}
    return sorted(digests, key=lambda digest: order.get(digest.name, len(order)))


def blocked_event(spec: LaneSpec, receipt: MaterializeReceipt) -> LaneEvent:
    return LaneEvent(
        type="DataProductBlocked", lane=receipt.lane, run_id=receipt.run_id, output=receipt.output,
        attempt=receipt.attempt, receipt=receipt_key(receipt.run_id, receipt.output, receipt.attempt, "materialize"),
        receipt_digest=receipt.digest(), verdict="FAIL", time=receipt.finished_at, reason=receipt.error,
        consumers=list(spec.outputs[receipt.output].consumers) if receipt.output in spec.outputs else [],
    )


def block_attempt(backend: Backend, spec: LaneSpec, run_id: str, output: str, attempt: int,
                  blockers: dict[str, str], *, trigger: Trigger, started: datetime) -> MaterializeReceipt:
    """Record that the attempt materializes nothing because an upstream of the run was not certified; its
    certification in force (if any) stays in force. One receipt, then the DataProductBlocked event."""
    receipt = MaterializeReceipt(
        lane=spec.lane, run_id=run_id, output=output, attempt=attempt, job_id="none", trigger=trigger,
        status="blocked", code_fingerprint="unknown", spec_digest=spec.output_digest(output),
        memo_key="unavailable", blocked_by=sorted(blockers), started_at=started, finished_at=utcnow(),
        error=f"blocked: {'; '.join(blockers.values())}; nothing was materialized",
    )
    stored = write_once_or_existing(backend, receipt)
    assert isinstance(stored, MaterializeReceipt)
    backend.ledger.queue_event(blocked_event(spec, stored))
    publish_pending(backend)
    return stored


def _hash_cache(backend: Backend) -> HashCache | None:
    """The local store's digest cache for unchanged input files (``batchlane.hashcache``); None elsewhere."""
    cache = getattr(backend.store, "hash_cache", None)
    return cache if isinstance(cache, HashCache) else None


def begin_output(
    backend: Backend, spec: LaneSpec, run_id: str, output: str, *, force: bool = False, trigger: Trigger = "cli",
    max_partitions_to_build: int | None = None,
) -> OutputStart:
    """Allocate a new attempt and pin what it reads (trusted); skip it when a live certification with the
    same memo key still proves its bytes (memoized). ``max_partitions_to_build`` (AWS: an array job's size limit)
    fails an attempt that would build more partitions, before any job starts."""
    _check_outputs(spec, [output])
    run = backend.ledger.get_run(run_id)
    if run is None:
        raise PlanError(f"no run {run_id!r}: plan it first")
    if output not in run.outputs:
        raise PlanError(f"run {run_id!r} does not include {output!r}; start a new run for it")
    write_point("attempt.allocate")
    attempt = backend.ledger.next_attempt(run_id, output)
    started = utcnow()
    blockers = run_blockers(backend, spec, run_id, run.outputs, output)
    if blockers:
        blocked = block_attempt(backend, spec, run_id, output, attempt, blockers, trigger=trigger, started=started)
        return OutputStart(output=output, attempt=attempt, action="blocked", memo_key="unavailable",
                           error=blocked.error)
    try:
        fingerprint_ = code_fingerprint(spec, output)
        digests = _in_spec_order(spec, output, fingerprint(resolve_inputs(spec, output), _hash_cache(backend))
                                 + pin_product_inputs(backend, spec, output))
        key = memo_key(spec, output, digests, fingerprint_, run.params)
        partitions: list[PartitionPlan] = []
        if spec.outputs[output].partition_by:  # one memo key per partition; the product's key is their set
            base = memo_key(spec, output, partition_input_digests(spec, output, digests), fingerprint_, run.params)
            partitions = plan_partitions(backend, spec, run_id, output, attempt, digests, base, reuse=not force)
            key = product_memo_key(partitions)
            check_build_limit(partitions, max_partitions_to_build)
    except (InputError, TransformError, TooManyPartitions) as exc:
        # Nothing can run: the attempt fails here, with the reason, before any job starts.
        receipt = MaterializeReceipt(
            lane=spec.lane, run_id=run_id, output=output, attempt=attempt, job_id="none", trigger=trigger,
            status="failed", code_fingerprint="unknown", spec_digest=spec.output_digest(output),
            memo_key="unavailable", started_at=started, finished_at=utcnow(),
            error=f"output {output}, run {run_id}, attempt {attempt}: {exc}",
        )
        write_once_or_existing(backend, receipt)
        return OutputStart(output=output, attempt=attempt, action="failed", memo_key="unavailable",
                           error=receipt.error)
    pointer, note = (None, None) if force else memo_hit(backend, spec.lane, output, key)
    if pointer is None:
        begun = BeginReceipt(lane=spec.lane, run_id=run_id, output=output, attempt=attempt, trigger=trigger,
                             inputs=digests, code_fingerprint=fingerprint_, spec_digest=spec.output_digest(output),
                             memo_key=key, memo_note=note, params=run.params, partitions=partitions)
        write_once_or_existing(backend, begun)
        to_build = sum(1 for plan in partitions if plan.reuse is None) if spec.outputs[output].partition_by else None
        return OutputStart(output=output, attempt=attempt, action="materialize", memo_key=key,
                           partitions_to_build=to_build)
    receipt = MaterializeReceipt(
        lane=spec.lane, run_id=run_id, output=output, attempt=attempt, job_id="memoized", trigger=trigger,
        status="memoized", inputs=digests, outputs=[], code_fingerprint=fingerprint_,
        spec_digest=spec.output_digest(output), memo_key=key, memoized_from=pointer.key,
        memoized_digest=pointer.digest, started_at=started, finished_at=utcnow(),
    )
    write_once_or_existing(backend, receipt)
    return OutputStart(output=output, attempt=attempt, action="memoized", memo_key=key, memoized_from=pointer.key)
