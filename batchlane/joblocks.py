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
import time
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


def tracks_liveness(backend: Backend) -> bool:
    """Can this backend tell a running attempt from a dead one (local leases), or is that the orchestrator's?"""
    return backend.name == "local" and bool(backend.settings.get("home"))


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
        for _ in range(100):  # a dead holder's lock is released by the kernel a moment after it exits
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if _holders_running(path):
                    raise OutputBusy(f"output {output} of run {run_id} is being worked on by another process") from None
                time.sleep(0.02)
        else:
            raise OutputBusy(f"output {output} of run {run_id}: its lease is still held by an exited process")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield fd
    finally:
        os.close(fd)


def note_job(lease: int | None, pid: int) -> None:
    """Record a job's pid in the lease it shares, next to its runner's."""
    if lease is not None:
        os.write(lease, f"{pid}\n".encode())


def process_running(pid: int) -> bool:
    """Is this process still running (a zombie has exited, even before it is reaped)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited; the kernel may release its locks a moment later
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _holders_running(path: Path) -> bool:
    holders = [int(word) for word in path.read_text().split() if word.isdigit()]
    return not holders or any(process_running(pid) for pid in holders)


def output_busy(backend: Backend, run_id: str, output: str) -> bool | None:
    """True while some process holds the output's lease; None when the backend cannot tell.

    A held lock whose recorded holders (the runner and its job) have all exited is not busy: the kernel
    releases a dead process's locks asynchronously, a moment after it exits."""
    path = _lock_path(backend, run_id, output)
    if path is None:
        return None
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holders_running(path)
    finally:
        os.close(fd)
    return False
