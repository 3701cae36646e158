"""Check Lambda: evaluate an attempt's contract and write its CheckReceipt. Thin: parse, call the core, shape output.

A referencing output whose referenced product of the same run is not decided yet raises
``DependencyPending``; the state machine retries that error with backoff.
"""

from __future__ import annotations

from typing import Any

from batchlane.gate import DependencyPending, check
from batchlane.receipts import receipt_key
from batchlane.warm import lane_backend, lane_spec

__all__ = ["DependencyPending", "handler"]


class BadRequest(ValueError):
    pass


def handler(event: dict, context: Any = None) -> dict:
    spec = lane_spec(BadRequest, "the checker")
    missing = [name for name in ("run_id", "output", "attempt") if (event or {}).get(name) in (None, "")]
    if missing:
        raise BadRequest(f"check needs {', '.join(missing)}")
    run_id, output, attempt = event["run_id"], event["output"], int(event["attempt"])
    receipt = check(lane_backend(), spec, run_id, output, attempt)
    return {
        "verdict": receipt.verdict,
        "receipt": receipt_key(run_id, output, attempt, "check"),
        "digest": receipt.digest(),
        "failing_rules": [rule.label for rule in receipt.failing_rules][:20],
    }
