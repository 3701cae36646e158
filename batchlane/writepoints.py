"""Named points just before each store write, so a test can crash a process exactly there.

Every write the core makes (object store, ledger, bus) is preceded by ``write_point(NAME)``. In normal
operation this is one dictionary lookup. With ``LANE_CRASH_AT=NAME`` (or ``NAME@N`` for its N-th
occurrence in the process) the process ends at once with exit code 86, skipping ``finally`` blocks and
buffered writes, as a power cut or ``kill -9`` would. The crash-point tests walk every name in
``WRITE_POINTS`` and check that status, reads, rerun and verify stay truthful and repair the state.
With ``LANE_CRASH_MODE=raise`` the point raises ``InjectedCrash`` instead: how a Lambda function that
fails mid-way looks to Step Functions (the AWS crash tests run the handlers in process).
"""

from __future__ import annotations

import os
import sys
import threading

CRASH_EXIT_CODE = 86

WRITE_POINTS = (
    "run.create",          # ledger: the run record
    "attempt.allocate",    # ledger: the next attempt number of an output
    "begin.store", "begin.index",                   # trusted: the inputs an attempt pins
    "job.product", "job.report",                    # untrusted job: its staging files and report
    "materialize.store", "materialize.index",       # trusted: the recorded (or memoized) materialization
    "check.store", "check.index",
    "gate.store", "gate.index",
    "pointer.swap",        # ledger: certification pointer + history + outbox event, one transaction
    "event.publish", "event.mark",                  # bus, then the outbox row marked published
    "manifest.store", "manifest.index", "manifest.event",
    "revoke.store", "revoke.swap",
)

class InjectedCrash(Exception):  # noqa: N818 - named for what it simulates
    """A crash injected at a write point (LANE_CRASH_MODE=raise)."""


_counts: dict[str, int] = {}
_lock = threading.Lock()


def write_point(name: str) -> None:
    target = os.environ.get("LANE_CRASH_AT")
    if not target:
        return
    wanted, _, nth = target.partition("@")
    if wanted != name:
        return
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        hit = _counts[name] == int(nth or 1)
    if hit and os.environ.get("LANE_CRASH_MODE") == "raise":
        raise InjectedCrash(f"injected crash at write point {name}")
    if hit:
        sys.stderr.write(f"lane: injected crash at write point {name}\n")
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)
