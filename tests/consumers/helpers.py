"""Produce real certifications, rejections and revocations in-process, on either backend."""

from __future__ import annotations

import json
from pathlib import Path

from batchlane.gate import close_run, decide
from batchlane.materialize import materialize
from batchlane.plan import begin_output, plan_run
from batchlane.receipts import GateReceipt, LaneEvent
from batchlane.recording import record_materialized
from batchlane.spec import LaneSpec
from batchlane.stores.base import Backend


def attempt_output(backend: Backend, spec: LaneSpec, output: str, *, close: bool = True) -> tuple[str, GateReceipt]:
    """One new run of one output, materialized, recorded and decided in this process; returns (run id, gate)."""
    plan = plan_run(backend, spec, outputs=[output])
    start = begin_output(backend, spec, plan.run_id, output, force=True)
    materialize(backend.store, spec, plan.run_id, output, start.attempt, job_id="test")
    record_materialized(backend, spec, plan.run_id, output, start.attempt, job_id="test")
    gate = decide(backend, spec, plan.run_id, output, start.attempt)
    if close:
        close_run(backend, spec, plan.run_id)
    return plan.run_id, gate


def break_payments(lane_dir: Path) -> None:
    """A payment larger than its order: order_payments fails min(outstanding)."""
    with open(lane_dir / "data" / "payments.jsonl", "a") as handle:
        handle.write(json.dumps({"payment_id": 99999, "order_id": 1, "amount": 10000.0,
                                 "paid_at": "2026-02-01T00:00:00"}) + "\n")


def log_events(home: Path) -> list[dict]:
    return [json.loads(line) for line in (home / "events.jsonl").read_text().splitlines() if line.strip()]


def event_of(document: dict) -> LaneEvent:
    body = {key: value for key, value in document.items() if key != "id"}
    return LaneEvent.model_validate(body)
