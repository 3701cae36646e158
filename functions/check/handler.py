"""Check Lambda: evaluate an attempt's contract and write its CheckReceipt. Thin: parse, call the core, shape output.

The state machine runs outputs in topological waves, so every product an output references is decided before
its check starts; the check never waits. (Should the core still find a referenced product of the run undecided,
its error fails the check and the gate rejects the attempt naming it: fail closed, never a retry loop.)

Size-aware: a product bigger than ``LANE_CHECK_LAMBDA_MAX_BYTES`` (sum of its staged files) is not checked here:
the handler returns ``route: "batch"`` without writing anything, and the state machine runs the same check as a
Batch job (functions/check/job.py) with the check job's memory, disk and time. Smaller products are checked here
(``route: "lambda"``).
"""

from __future__ import annotations

import os
from typing import Any

from batchlane.evidence import load_receipt
from batchlane.gate import check
from batchlane.receipts import MaterializeReceipt, receipt_key, staging_prefix
from batchlane.stores.base import Backend
from batchlane.warm import lane_backend, lane_spec

__all__ = ["DEFAULT_LAMBDA_MAX_BYTES", "handler", "lambda_max_bytes", "staged_bytes"]

# Above this many bytes of product files the check runs as a Batch job: the function has 3,008 MB of memory,
# 10 GiB of /tmp (the core fetches product files there) and 15 minutes.
DEFAULT_LAMBDA_MAX_BYTES = 2 * 1024**3
MAX_BYTES_SETTING = "LANE_CHECK_LAMBDA_MAX_BYTES"


class BadRequest(ValueError):
    pass


def lambda_max_bytes() -> int:
    """``$LANE_CHECK_LAMBDA_MAX_BYTES`` (a whole number of bytes, 0 sends every check to Batch), default 2 GiB."""
    raw = os.environ.get(MAX_BYTES_SETTING, "").strip()
    if not raw:
        return DEFAULT_LAMBDA_MAX_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{MAX_BYTES_SETTING}={raw!r} is not a whole number of bytes") from None
    if value < 0:
        raise BadRequest(f"{MAX_BYTES_SETTING}={value} must be 0 or more bytes")
    return value


def staged_bytes(backend: Backend, run_id: str, output: str, attempt: int) -> int:
    """Bytes the check would read: the product files of the recorded materialize receipt (trusted sizes) when it
    exists, else what the store lists under the attempt's staging prefix (S3's sizes, not the job's claim;
    report and diagnostics included: a few KB). Nothing is downloaded or hashed."""
    recorded = load_receipt(backend, run_id, output, attempt, "materialize")
    if isinstance(recorded, MaterializeReceipt):
        return sum(product.size for product in recorded.outputs)
    prefix = staging_prefix(run_id, output, attempt)
    store: Any = backend.store
    s3 = getattr(store, "s3", None)
    if s3 is None:  # a local store: files on disk
        total = 0
        for key in store.list_keys(prefix):
            local = store.local_path(key)
            total += local.stat().st_size if local is not None and local.is_file() else 0
        return total
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=store.prefix + prefix):
        total += sum(int(item["Size"]) for item in page.get("Contents", []))
    return total


def handler(event: dict, context: Any = None) -> dict:
    spec = lane_spec(BadRequest, "the checker")
    missing = [name for name in ("run_id", "output", "attempt") if (event or {}).get(name) in (None, "")]
    if missing:
        raise BadRequest(f"check needs {', '.join(missing)}")
    run_id, output, attempt = event["run_id"], event["output"], int(event["attempt"])
    backend = lane_backend()
    limit = lambda_max_bytes()
    if load_receipt(backend, run_id, output, attempt, "check") is None:
        size = staged_bytes(backend, run_id, output, attempt)
        if size > limit:
            return {"route": "batch", "bytes": size, "limit": limit, "verdict": None, "receipt": None}
    receipt = check(backend, spec, run_id, output, attempt)
    return {
        "route": "lambda",
        "verdict": receipt.verdict,
        "receipt": receipt_key(run_id, output, attempt, "check"),
        "digest": receipt.digest(),
        "failing_rules": [rule.label for rule in receipt.failing_rules][:20],
    }
