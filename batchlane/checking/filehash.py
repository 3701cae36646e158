"""SHA-256 of product files, streamed, optionally on a background thread.

hashlib releases the GIL while digesting large buffers, so a hashing thread runs
truly in parallel with the Parquet scan on the main thread.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path


def hash_file(path: Path, chunk: int = 8 << 20) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex) of a file, reading ``chunk`` bytes at a time."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while True:
            read = handle.readinto(buffer)
            if not read:
                break
            digest.update(view[:read])
            size += read
    return size, digest.hexdigest()


class BackgroundHash:
    """Hash files one after another on a daemon thread; ``result()`` waits and re-raises its error."""

    def __init__(self, paths: list[Path], chunk: int = 8 << 20) -> None:
        self._paths = list(paths)
        self._chunk = chunk
        self._values: list[tuple[int, str]] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for path in self._paths:
                self._values.append(hash_file(path, self._chunk))
        except Exception as exc:  # noqa: BLE001 - any failure is handed to the caller in result()
            self._error = exc

    def result(self) -> list[tuple[int, str]]:
        """(size, sha256) per file, in the order given."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._values
