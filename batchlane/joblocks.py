"""Output leases: who is working on an output of a run right now (local store only).

The local runner holds an exclusive ``flock`` on ``<store>/.locks/<run>/<output>.lock`` from before an
attempt begins until it is decided, and hands the descriptor to the job subprocess. The kernel releases
the lock when every holder has exited, however it exited (``kill -9`` included), so "not locked" proves
nobody is still working on the output: repair may then record its unfinished attempt as failed.
On AWS, Step Functions owns that question; liveness is unknown here (``None``).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from batchlane.stores.base import Backend


class OutputBusy(RuntimeError):
    """Another process is working on this output of this run."""


def _lock_path(backend: Backend, run_id: str, output: str) -> Path | None:
    home = backend.settings.get("home") if backend.name == "local" else None
    if not home:
        return None
    return Path(home) / ".locks" / run_id / f"{output}.lock"


@contextmanager
def output_lease(backend: Backend, run_id: str, output: str) -> Iterator[int | None]:
    """Hold the output's lease; yields the descriptor to pass to a job subprocess (None: no leases here)."""
    path = _lock_path(backend, run_id, output)
    if path is None:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputBusy(f"output {output} of run {run_id} is being worked on by another process") from None
        yield fd
    finally:
        os.close(fd)


def output_busy(backend: Backend, run_id: str, output: str) -> bool | None:
    """True while some process holds the output's lease; None when the backend cannot tell."""
    path = _lock_path(backend, run_id, output)
    if path is None:
        return None
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
