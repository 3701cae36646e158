"""Check Lambda: evaluate an attempt's contract and write its CheckReceipt. Thin: parse, call the core, shape output.

A referencing output whose referenced product of the same run is not decided yet raises
``DependencyPending``; the state machine retries that error with backoff.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from batchlane.backends import backend_from_env
from batchlane.gate import DependencyPending, check
from batchlane.receipts import receipt_key
from batchlane.spec import LaneSpec, load_spec

__all__ = ["DependencyPending", "handler"]


class BadRequest(ValueError):
    pass


@lru_cache(maxsize=4)
def _spec(path: str) -> LaneSpec:
    return load_spec(path)


@lru_cache(maxsize=4)
def _backend_for(_key: tuple[str | None, ...]) -> Any:
    return backend_from_env()


def _backend() -> Any:
    """One backend (and its boto3 clients) per warm container and configuration."""
    names = ("LANE_BACKEND", "LANE_BUCKET", "LANE_TABLE", "LANE_EVENT_BUS", "AWS_ENDPOINT_URL")
    return _backend_for(tuple(os.environ.get(name) for name in names))


def handler(event: dict, context: Any = None) -> dict:
    path = os.environ.get("LANE_SPEC")
    if not path:
        raise BadRequest("LANE_SPEC is not set: the checker needs the lane spec path")
    missing = [name for name in ("run_id", "output", "attempt") if (event or {}).get(name) in (None, "")]
    if missing:
        raise BadRequest(f"check needs {', '.join(missing)}")
    run_id, output, attempt = event["run_id"], event["output"], int(event["attempt"])
    receipt = check(_backend(), _spec(path), run_id, output, attempt)
    return {
        "verdict": receipt.verdict,
        "receipt": receipt_key(run_id, output, attempt, "check"),
        "digest": receipt.digest(),
        "failing_rules": [rule.label for rule in receipt.failing_rules][:20],
    }
