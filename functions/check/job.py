"""AWS Batch entrypoint of the checker, for products too large for the check Lambda (trusted code, own role).

    python /app/functions/check/job.py --run-id R --output O --attempt N

The same call as functions/check/handler.py: ``batchlane.gate.check`` records the attempt's materialize receipt
(hashing the staged files itself) and checks the product against its contract, writing the check receipt. The
product files are read in place, never copied to the job's disk (``read_in_place``, batchlane/stores/s3_ranged.py):
each file is pinned at the S3 version the materialize receipt recorded, pyarrow fetches its footer and the column
chunks the rules need by ranged GETs, and a background thread streams the whole version once for its SHA-256 (the
receipt proves exact bytes). A file replaced or deleted meanwhile FAILs the check naming it; bytes of two versions
are never mixed. Network cost: each file's size plus the chunks the rules read. Memory stays bounded by the
lane's ``check.max_memory`` where the spec sets one.

Exit 0 when a check receipt exists (PASS or FAIL: the verdict is in the receipt, Decide reads it). When the check
runs out of memory, or Batch stops the job (SIGTERM at its time limit or a cancellation), the job writes an
explicit FAIL receipt naming that ("too large for the checker's budget") and exits 0: never a silent retry. Bad
arguments exit 2; anything else exits 1 and the state machine records the failure (RecordCheckJobFailure).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # running as a script from the bundle root (as functions/materialize/main.py does)
    sys.path.insert(0, str(ROOT))

__all__ = ["main"]


class CheckStopped(BaseException):
    """Batch sent SIGTERM (the job's time limit, or the job was terminated). BaseException: nothing swallows it."""


class BadSetup(ValueError):
    pass


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="functions/check/job.py",
                                     description="Check one materialized attempt and write its check receipt.")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--attempt", required=True, type=int)
    arguments = parser.parse_args(argv)
    if arguments.attempt < 1:
        parser.error(f"--attempt must be 1 or more, got {arguments.attempt}")
    return arguments


def _budget() -> str:
    memory = os.environ.get("LANE_CHECK_JOB_MEMORY_MIB")
    timeout = os.environ.get("LANE_CHECK_JOB_TIMEOUT_SECONDS")
    parts = [f"{memory} MiB" if memory else None, f"{timeout} s" if timeout else None]
    return ", ".join(part for part in parts if part) or "the job definition's limits"


def _stop(signum: int, frame: Any) -> None:
    raise CheckStopped(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    from batchlane.gate import check, record_check_failure
    from batchlane.spec import SpecError
    from batchlane.warm import lane_backend, lane_spec

    try:
        spec = lane_spec(BadSetup, "the check job")
    except (BadSetup, SpecError) as exc:
        print(f"check job: {exc}", file=sys.stderr)
        return 2
    run_id, output, attempt = arguments.run_id, arguments.output, arguments.attempt
    if output not in spec.outputs:
        print(f"check job: lane {spec.lane!r} has no output {output!r}", file=sys.stderr)
        return 2
    backend = lane_backend()
    signal.signal(signal.SIGTERM, _stop)
    try:
        receipt = check(backend, spec, run_id, output, attempt, read_in_place=True)
    except MemoryError:
        receipt = record_check_failure(
            backend, spec, run_id, output, attempt,
            f"too large for the checker's budget: the check job ran out of memory ({_budget()})")
    except CheckStopped:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        receipt = record_check_failure(
            backend, spec, run_id, output, attempt,
            f"too large for the checker's budget: the check job was stopped before a verdict ({_budget()}; "
            "its time limit, or the job was terminated)")
    print(f"check {output} run {run_id} attempt {attempt}: {receipt.verdict}"
          + (f" ({receipt.error})" if receipt.error else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
