"""SHA-256 of product files, streamed, optionally on a background thread.

hashlib releases the GIL while digesting large buffers, so a hashing thread runs
truly in parallel with the Parquet scan on the main thread.

A product file is a local path or an :class:`ObjectSource`: a file read in place (one S3 object version read by
ranged GETs, ``batchlane.stores.s3_ranged``), whose ``sha256`` streams the object's exact bytes once.
"""

from __future__ import annotations

import hashlib
import io
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BackgroundHash", "FileSource", "ObjectSource", "SourceReadError", "hash_file", "hash_source"]


class SourceReadError(OSError):
    """An ObjectSource could not deliver its pinned bytes (changed, deleted, unreachable)."""


class ObjectSource(ABC):
    """A product file not on local disk, pinned to one immutable version of its bytes.

    ``open`` gives a seekable read-only binary file over exactly those bytes (pyarrow reads it at random);
    ``sha256`` streams all of them once. Both raise SourceReadError, never return bytes of another version.
    """

    uri: str

    @property
    @abstractmethod
    def size(self) -> int:
        """Bytes in the pinned version."""

    @abstractmethod
    def open(self) -> io.RawIOBase | io.BufferedIOBase:
        """A new seekable, read-only file over the pinned bytes."""

    @abstractmethod
    def sha256(self, chunk: int = 8 << 20) -> tuple[int, str]:
        """(size in bytes, SHA-256 hex) of the pinned bytes, read in full."""


FileSource = Path | ObjectSource


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


def hash_source(source: FileSource, chunk: int = 8 << 20) -> tuple[int, str]:
    """(size, SHA-256 hex) of a local file or of an ObjectSource's pinned bytes."""
    if isinstance(source, ObjectSource):
        return source.sha256(chunk)
    return hash_file(source, chunk)


class BackgroundHash:
    """Hash files one after another on a daemon thread; ``result()`` waits and re-raises its error."""

    def __init__(self, paths: Sequence[FileSource], chunk: int = 8 << 20) -> None:
        self._paths = list(paths)
        self._chunk = chunk
        self._values: list[tuple[int, str]] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for path in self._paths:
                self._values.append(hash_source(path, self._chunk))
        except Exception as exc:  # noqa: BLE001 - any failure is handed to the caller in result()
            self._error = exc

    def result(self) -> list[tuple[int, str]]:
        """(size, sha256) per file, in the order given."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._values
