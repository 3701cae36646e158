"""Settling, closing and repairing runs.

Closing is idempotent: a closer that finds the latest manifest already says what the run's outputs say
writes nothing; concurrent closers take the next free sequence (with backoff), chaining each manifest to
the one before it, as read from the store (not the index, which a crash may have left behind).

Repair finishes what a crash interrupted, with the ordinary steps: receipts stored but not indexed are
adopted (chain-checked), attempts whose job died are recorded as failed, recorded attempts are checked
and decided, unapplied certifications are applied (policy permitting), lost events are re-published.
A certification is never invented: every step is the one the run would have taken.
"""

from __future__ import annotations

import os
import random
import time
from typing import TYPE_CHECKING

from batchlane.certification import catalog_follows, order_of, publish_pending
from batchlane.evidence import EvidenceError, adopt_unindexed, index_manifest, output_rows
from batchlane.joblocks import output_busy
from batchlane.receipts import LaneEvent, RunManifest, Verdict, manifest_key, parse_manifest
from batchlane.spec import LaneSpec
from batchlane.state import SETTLED, run_closures
from batchlane.stores.base import AlreadyExists, Backend
from batchlane.writepoints import write_point

if TYPE_CHECKING:
    from batchlane.receipts import OutputClosure

_CLOSE_TRIES = 40


class GateError(RuntimeError):
    pass


def certification_order(backend: Backend, run_id: str, attempt: int) -> str:
    run = backend.ledger.get_run(run_id)
    if run is None:
        raise GateError(f"no run {run_id!r}")
    return order_of(run.started_at, attempt)


def unsettled(backend: Backend, spec: LaneSpec, run_id: str) -> dict[str, str]:
    run = backend.ledger.get_run(run_id)
    if run is None:
        raise GateError(f"no run {run_id!r}")
    result = {}
    for output, closure in run_closures(backend, run_id, run.outputs).items():
        if closure.state not in SETTLED:
            reason = closure.error or (", ".join(closure.failing_rules) and "failing rules: " + ", ".join(closure.failing_rules))
            result[output] = reason if reason and reason.startswith(f"{closure.state}:") else \
                f"{closure.state}" + (f": {reason}" if reason else "")
    return result


def _latest_manifest(backend: Backend, run_id: str) -> RunManifest | None:
    keys = sorted(backend.store.list_keys(f"receipts/{run_id}/manifest-"))
    if not keys:
        return None
    try:
        return parse_manifest(backend.store.get(keys[-1]))
    except ValueError as exc:
        raise EvidenceError(f"{keys[-1]}: not a run manifest ({str(exc).splitlines()[0]})") from None


def _closed_event(manifest: RunManifest, key: str) -> LaneEvent:
    return LaneEvent(type="RunClosed", lane=manifest.lane, run_id=manifest.run_id, receipt=key,
                     receipt_digest=manifest.digest(), verdict=manifest.verdict,
                     outputs={name: c.state for name, c in manifest.outputs.items()}, time=manifest.closed_at)


def close_run(backend: Backend, spec: LaneSpec, run_id: str) -> RunManifest:
    """The run's manifest for its current state (every output's state and the run verdict) + RunClosed.

    Writes a new manifest only when the state differs from the latest one's.
    """
    run = backend.ledger.get_run(run_id)
    if run is None:
        raise GateError(f"no run {run_id!r}")
    for attempt in range(_CLOSE_TRIES):
        closures: dict[str, OutputClosure] = run_closures(backend, run_id, run.outputs)
        verdict: Verdict = "PASS" if all(c.state in SETTLED for c in closures.values()) else "FAIL"
        latest = _latest_manifest(backend, run_id)
        if latest is not None and latest.outputs == closures and latest.verdict == verdict:
            manifest, key = latest, manifest_key(run_id, latest.sequence)
        else:
            manifest = RunManifest(
                lane=run.lane, run_id=run_id, sequence=latest.sequence + 1 if latest else 1, trigger=run.trigger,
                prev=latest.digest() if latest else None, outputs=closures, verdict=verdict,
            )
            key = manifest_key(run_id, manifest.sequence)
            write_point("manifest.store")
            try:
                backend.store.put_once(key, manifest.canonical())
            except AlreadyExists:  # another closer took this sequence: read it and try again
                time.sleep(min(0.5, 0.01 * 2 ** attempt) * (0.5 + random.random()))
                continue
        write_point("manifest.index")
        index_manifest(backend, key)
        write_point("manifest.event")
        backend.ledger.queue_event(_closed_event(manifest, key))
        publish_pending(backend)
        for output in run.outputs:  # repairs a catalog sync that a crash (or a Glue error) skipped
            catalog_follows(backend, run.lane, output)
        if os.environ.get("LANE_OPENLINEAGE"):
            from batchlane.openlineage_emit import emit_run

            emit_run(backend, run_id, quiet=True)
        return manifest
    raise GateError(f"run {run_id}: could not write a manifest after {_CLOSE_TRIES} tries (too many concurrent closers)")


def repair_run(backend: Backend, spec: LaneSpec, run_id: str, *, abandon_running: bool = False) -> list[str]:
    """Finish what a crash interrupted in a run; returns what was done, one line per step.

    An attempt whose job may still be running is left alone (locally: its runner holds the output's
    lease). Where liveness cannot be known (AWS), ``abandon_running`` records such attempts as failed.
    """
    from batchlane.gate import check, decide
    from batchlane.recording import record_crash

    run = backend.ledger.get_run(run_id)
    if run is None:
        raise GateError(f"no run {run_id!r}")
    done = [f"adopted {key} (stored, not indexed)" for key in adopt_unindexed(backend, run_id)]
    for output in run.outputs:
        if output not in spec.outputs:
            continue
        busy = output_busy(backend, run_id, output)
        rows = output_rows(backend, run_id, output)
        if not rows or busy:
            continue
        attempt = max(row.attempt for row in rows)
        kinds = {row.kind: row.status for row in rows if row.attempt == attempt}
        if "materialize" not in kinds and "begin" in kinds:
            if busy is None and not abandon_running:
                continue
            kinds["materialize"] = record_crash(backend, spec, run_id, output, attempt, job_id="unknown",
                                                error="interrupted: the run stopped before its job finished").status
            done.append(f"{output} attempt {attempt}: recorded ({kinds['materialize']}) after its run stopped")
        if kinds.get("materialize") == "memoized":
            continue
        if kinds.get("materialize") == "blocked":  # complete in one receipt; its event may have been lost
            from batchlane.evidence import load_receipt
            from batchlane.plan import blocked_event
            from batchlane.receipts import MaterializeReceipt

            blocked = load_receipt(backend, run_id, output, attempt, "materialize")
            if isinstance(blocked, MaterializeReceipt):
                backend.ledger.queue_event(blocked_event(spec, blocked))
            continue
        if "materialize" in kinds and "check" not in kinds:
            check(backend, spec, run_id, output, attempt)
            done.append(f"{output} attempt {attempt}: checked")
        if "gate" not in kinds or kinds["gate"] == "certified":
            gate = decide(backend, spec, run_id, output, attempt)  # applies an interrupted certification
            if "gate" not in kinds:
                done.append(f"{output} attempt {attempt}: decided ({gate.decision})")
    done += [f"published event {event_id}" for event_id in publish_pending(backend)]
    return done
