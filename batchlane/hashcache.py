"""SHA-256 of local files, remembered by their stat fingerprint, so planning does not re-read unchanged bytes.

A lane's plan hashes every local input file (the memo keys) and re-hashes every certified partition file it
would reuse. With a product of many partitions that is the whole product read twice per run, however small the
change. Like git's index and DVC's state database, the cache keys a file's digest by what the kernel says about
it: device, inode, size, modification time and status-change time (``st_ctime_ns``, which every write, rename or
chmod moves and which no user call can set back). Any change to any of them is a miss, and the file is hashed.

Racy writes: a file changed again within the same clock tick as the hash could keep every stat field. So an
entry is stored only when the file's last change is at least ``SETTLE_SECONDS`` older than the moment hashing
started; a file written just before it is hashed stays uncached until a later run hashes it again.

What it is not used for: the checker (a certification is decided from the bytes it reads and hashes itself),
the recorder (it hashes what a job wrote) and the job (it copies and re-hashes every input it reads, against
the digest planned here: a wrong cached digest would fail that job, never feed it other bytes). The cache lives
in the local store (``$LANE_HOME/cache/hashes.sqlite``, SQLite's rollback journal: nothing is left beside the
file between writes, so a command that hashes nothing leaves it byte for byte as it was); any error reading or
writing it falls back to hashing.
``LANE_HASH_CACHE=0`` turns it off.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

from batchlane.checking.filehash import hash_file

SWITCH = "LANE_HASH_CACHE"
SETTLE_SECONDS = 2.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hashes (
    path TEXT PRIMARY KEY, device INTEGER NOT NULL, inode INTEGER NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL
)
"""


def enabled() -> bool:
    return os.environ.get(SWITCH, "").strip().lower() not in ("0", "false", "no", "off")


def _fingerprint(stat: os.stat_result) -> tuple[int, int, int, int, int]:
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


class HashCache:
    """Thread-safe; one SQLite file shared by every process using the same store."""

    def __init__(self, database: Path, *, settle_seconds: float | None = None) -> None:
        settle = SETTLE_SECONDS if settle_seconds is None else settle_seconds
        self.database, self.settle_ns = Path(database), int(settle * 1e9)
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._broken = False
        self.hits = self.misses = 0

    def _connect(self) -> sqlite3.Connection | None:
        if self._connection is None and not self._broken:
            try:
                self.database.parent.mkdir(parents=True, exist_ok=True)
                connection = sqlite3.connect(self.database, timeout=5, check_same_thread=False,
                                             isolation_level=None)
                connection.execute("PRAGMA journal_mode=DELETE")  # no -wal/-shm files left between writes
                connection.execute(_SCHEMA)
                self._connection = connection
            except (OSError, sqlite3.Error):
                self._broken = True  # no cache: every file is hashed
        return self._connection

    def sha256(self, path: Path) -> tuple[int, str]:
        """(size, SHA-256) of ``path``: remembered when nothing about the file changed, else read and hashed."""
        key = str(Path(path).resolve())
        before = os.stat(key)
        with self._lock:
            connection = self._connect()
            row = None
            if connection is not None:
                try:
                    row = connection.execute("SELECT device, inode, size, mtime_ns, ctime_ns, sha256 FROM hashes "
                                             "WHERE path = ?", (key,)).fetchone()
                except sqlite3.Error:
                    row = None
        if row is not None and tuple(row[:5]) == _fingerprint(before):
            self.hits += 1
            return before.st_size, str(row[5])
        self.misses += 1
        started = time.time_ns()
        size, sha = hash_file(Path(key))
        after = os.stat(key)
        settled = started - max(after.st_mtime_ns, after.st_ctime_ns) >= self.settle_ns
        if settled and _fingerprint(after) == _fingerprint(before) and size == after.st_size:
            with self._lock:
                connection = self._connect()
                if connection is not None:
                    try:
                        connection.execute("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?, ?, ?)",
                                           (key, *_fingerprint(after), sha))
                    except sqlite3.Error:
                        pass  # a busy or read-only cache only costs the next run a hash
        return size, sha

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
