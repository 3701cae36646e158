"""What a transform said while it ran: its traceback (user frames first) and the tail of its output.

The materializer captures the transform's stdout, stderr and logging records into a bounded buffer (the
last ``LIMIT`` bytes are kept) and, on failure, the traceback with the frames of the lane's own files
listed first. The job writes it next to its report (untrusted text); the recorder copies it into the
attempt's receipts, write-once, and the materialize receipt names it with its SHA-256.
"""

from __future__ import annotations

import contextlib
import io
import logging
import traceback
from collections.abc import Iterator
from pathlib import Path

LIMIT = 64 * 1024
FILE = "diagnostics.txt"


class _Tail(io.TextIOBase):
    """A text sink keeping the last LIMIT characters written to it."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._parts.append(text)
        self._size += len(text)
        while self._size > LIMIT and len(self._parts) > 1:
            dropped = self._parts.pop(0)
            self._size -= len(dropped)
            self.dropped += len(dropped)
        return len(text)

    def text(self) -> str:
        joined = "".join(self._parts)
        if len(joined) > LIMIT:
            self.dropped += len(joined) - LIMIT
            joined = joined[-LIMIT:]
        return (f"[... {self.dropped:,} earlier characters dropped ...]\n" if self.dropped else "") + joined


@contextlib.contextmanager
def captured() -> Iterator[_Tail]:
    """Capture print() to stdout/stderr and logging records while the transform runs."""
    tail = _Tail()
    handler = logging.StreamHandler(tail)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with contextlib.redirect_stdout(tail), contextlib.redirect_stderr(tail):
            yield tail
    finally:
        root.removeHandler(handler)


def user_first_traceback(error: BaseException, base_dir: Path) -> str:
    """The traceback with the frames of the lane's own files first, then the whole of it."""
    frames = traceback.extract_tb(error.__traceback__)
    base = str(base_dir.resolve())
    mine = [frame for frame in frames if frame.filename.startswith(base)]
    lines = [f"{type(error).__name__}: {error}"]
    if mine:
        lines.append("in the lane's code:")
        lines += [f"  {Path(f.filename).name}:{f.lineno} in {f.name}: {(f.line or '').strip()}" for f in mine]
    lines.append("full traceback:")
    lines.append("".join(traceback.format_exception(error)).rstrip())
    return "\n".join(lines)


def document(output: str, error_trace: str | None) -> str:
    parts = []
    if error_trace:
        parts += ["== traceback", error_trace]
    parts += ["== output (stdout, stderr, logging; the last 64 KB)", output or "(nothing)"]
    return "\n".join(parts) + "\n"


__all__ = ["FILE", "LIMIT", "captured", "document", "user_first_traceback"]
