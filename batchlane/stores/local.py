"""Local adapters: a folder for objects, SQLite for the ledger, a JSON Lines event log.

Write-once is enforced by the filesystem: objects are written to a temporary file and
published with ``os.link`` (fails if the key exists), so a reader never sees a partial
object and a second writer never overwrites the first.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from batchlane.hashcache import HashCache
from batchlane.hashcache import enabled as hash_cache_enabled
from batchlane.joblocks import process_running
from batchlane.receipts import FileDigest, LaneEvent
from batchlane.stores.base import (
    AlreadyExists,
    CertPointer,
    ConditionFailed,
    NotFound,
    ReceiptRow,
    RunRecord,
    StoreError,
    pointer_from_json,
    pointer_to_json,
)
from batchlane.stores.sqlite_file import SqliteFile

CHUNK = 8 << 20


def _hash_stream(chunks: Iterator[bytes]) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def _read_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


class LocalObjectStore:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / ".tmp"
        # digests of unchanged files, for planning (inputs, reused partitions); never for checks or recording
        self.hash_cache = HashCache(self.root / "cache" / "hashes.sqlite") if hash_cache_enabled() else None
        self._tmp.mkdir(exist_ok=True)
        self._sweep_tmp()

    def _sweep_tmp(self) -> None:
        """Temporary files are named after the process writing them; a dead process's leftovers go."""
        for leftover in self._tmp.iterdir():
            pid = leftover.name.split("-", 1)[0]
            if pid.isdigit() and not process_running(int(pid)):
                leftover.unlink(missing_ok=True)

    def _mkstemp(self, suffix: str = "") -> tuple[int, str]:
        return tempfile.mkstemp(dir=self._tmp, prefix=f"{os.getpid()}-", suffix=suffix)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise StoreError(f"{key} resolves outside the store {self.root} (a link or '..'): refused")
        return path

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def _publish(self, staged: Path, key: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(staged, 0o444)
        try:
            os.link(staged, target)
        except FileExistsError:
            raise AlreadyExists(f"{key} already exists (write-once)") from None
        finally:
            staged.unlink(missing_ok=True)

    def put_once(self, key: str, data: bytes) -> None:
        if self._path(key).exists():
            raise AlreadyExists(f"{key} already exists (write-once)")
        fd, name = self._mkstemp()
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self._publish(Path(name), key)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{key} not found in {self.root}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, prefix: str) -> list[str]:
        base = self.root
        found = []
        start = self._path(prefix) if prefix else base
        search = start if start.is_dir() else start.parent
        if not search.exists():
            return []
        for path in search.rglob("*"):
            if path.is_file():
                key = path.relative_to(base).as_posix()
                if key.startswith(prefix) and not key.startswith(".tmp/"):
                    found.append(key)
        return sorted(found)

    def staging_file(self, suffix: str = "") -> Path:
        """A temporary file inside the store (same filesystem, so publishing is a link)."""
        fd, name = self._mkstemp(suffix)
        os.close(fd)
        return Path(name)

    def put_file_once(self, source: Path, key: str) -> FileDigest:
        source = Path(source)
        size, sha = _hash_stream(_read_chunks(source))
        if source.parent.resolve() != self._tmp:
            staged = self.staging_file()
            shutil.copyfile(source, staged)
            source = staged
        self._publish(source, key)
        return FileDigest(uri=self.uri(key), size=size, sha256=sha)

    def fetch(self, key: str, destination: Path) -> FileDigest:
        source = self._path(key)
        if not source.is_file():
            raise NotFound(f"{key} not found in {self.root}")
        digest, size = hashlib.sha256(), 0
        with open(source, "rb") as src, open(destination, "wb") as dst:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                dst.write(chunk)
                size += len(chunk)
        return FileDigest(uri=self.uri(key), size=size, sha256=digest.hexdigest())

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def digest(self, key: str) -> FileDigest:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"{key} not found in {self.root}")
        size, sha = _hash_stream(_read_chunks(path))
        return FileDigest(uri=self.uri(key), size=size, sha256=sha)

    def holds(self, key: str, recorded: FileDigest) -> bool:
        """Re-hashed (a local file can be rewritten in place), unless the hash cache knows the file unchanged
        since it was hashed (``batchlane.hashcache``: same inode, size, mtime and ctime)."""
        path = self._path(key)
        if not path.is_file():
            return False
        if self.hash_cache is None:
            actual = self.digest(key)
            return (actual.size, actual.sha256) == (recorded.size, recorded.sha256)
        try:
            return self.hash_cache.sha256(path) == (recorded.size, recorded.sha256)
        except FileNotFoundError:
            return False

    def open_read(self, key: str) -> Iterator[bytes]:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"{key} not found in {self.root}")
        return _read_chunks(path)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, lane TEXT NOT NULL, trigger TEXT NOT NULL, started_at TEXT NOT NULL,
    spec_digest TEXT NOT NULL, outputs TEXT NOT NULL, spec_path TEXT NOT NULL DEFAULT '',
    params TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL, output TEXT NOT NULL, last INTEGER NOT NULL, PRIMARY KEY (run_id, output));
CREATE TABLE IF NOT EXISTS receipts (
    key TEXT PRIMARY KEY, run_id TEXT NOT NULL, output TEXT NOT NULL, attempt INTEGER NOT NULL,
    kind TEXT NOT NULL, digest TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS receipts_by_run ON receipts (run_id, output, attempt);
CREATE TABLE IF NOT EXISTS pointer_states (
    lane TEXT NOT NULL, output TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (lane, output, version));
CREATE TABLE IF NOT EXISTS outbox (
    event_id TEXT PRIMARY KEY, body TEXT NOT NULL, queued_at TEXT NOT NULL, published_at TEXT);
"""

def _pointer(row: sqlite3.Row) -> CertPointer:
    return pointer_from_json(row["body"])


class SqliteLedger:
    """Every write is a short IMMEDIATE transaction: concurrent processes serialize on the file lock."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file = SqliteFile(self.path, _SCHEMA)
        self._connection, self._tx = self._file.connection, self._file.transaction
        columns = {row["name"] for row in self._connection().execute("PRAGMA table_info(runs)")}
        if "params" not in columns:  # a store written by 0.1.0 before run parameters existed
            self._connection().execute("ALTER TABLE runs ADD COLUMN params TEXT NOT NULL DEFAULT '{}'")

    def create_run(self, run: RunRecord) -> RunRecord:
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO runs VALUES (?,?,?,?,?,?,?,?)",
                (run.run_id, run.lane, run.trigger, run.started_at.isoformat(), run.spec_digest,
                 json.dumps(list(run.outputs)), run.spec_path, json.dumps(run.params, sort_keys=True)),
            )
        stored = self.get_run(run.run_id)
        assert stored is not None
        return stored

    @staticmethod
    def _run(row: sqlite3.Row) -> RunRecord:
        return RunRecord(
            run_id=row["run_id"], lane=row["lane"], trigger=row["trigger"],
            started_at=datetime.fromisoformat(row["started_at"]), spec_digest=row["spec_digest"],
            outputs=tuple(json.loads(row["outputs"])), spec_path=row["spec_path"],
            params=json.loads(row["params"]),
        )

    def get_run(self, run_id: str) -> RunRecord | None:
        row = self._connection().execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return self._run(row) if row else None

    def list_runs(self, lane: str | None = None, limit: int = 50) -> list[RunRecord]:
        query, params = "SELECT * FROM runs", []
        if lane:
            query, params = query + " WHERE lane=?", [lane]
        rows = self._connection().execute(query + " ORDER BY started_at DESC LIMIT ?", (*params, limit))
        return [self._run(row) for row in rows]

    def next_attempt(self, run_id: str, output: str) -> int:
        with self._tx() as db:
            db.execute(
                "INSERT INTO attempts VALUES (?,?,1) ON CONFLICT(run_id, output) DO UPDATE SET last=last+1",
                (run_id, output),
            )
            return db.execute("SELECT last FROM attempts WHERE run_id=? AND output=?", (run_id, output)).fetchone()[0]

    def record_receipt(self, row: ReceiptRow) -> None:
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO receipts VALUES (?,?,?,?,?,?,?,?)",
                    (row.key, row.run_id, row.output, row.attempt, row.kind, row.digest, row.status,
                     row.created_at.isoformat()),
                )
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"receipt {row.key} is already indexed") from None

    def receipts(self, run_id: str, output: str | None = None) -> list[ReceiptRow]:
        query, params = "SELECT * FROM receipts WHERE run_id=?", [run_id]
        if output is not None:
            query, params = query + " AND output=?", [run_id, output]
        rows = [
            ReceiptRow(
                run_id=r["run_id"], output=r["output"], attempt=r["attempt"], kind=r["kind"], key=r["key"],
                digest=r["digest"], status=r["status"], created_at=datetime.fromisoformat(r["created_at"]),
            )
            for r in self._connection().execute(query, params)
        ]
        return rows

    # The pointer is the newest row of pointer_states: history and pointer in one table, so a swap is one
    # INSERT whose primary key (lane, output, version) makes a lost race fail instead of overwriting.
    _LATEST = ("SELECT * FROM pointer_states WHERE lane=? AND output=? ORDER BY version DESC LIMIT 1")

    def swap_pointer(self, expected_version: int, pointer: CertPointer, event: LaneEvent) -> CertPointer:
        stored = dataclasses.replace(pointer, version=expected_version + 1)
        with self._tx() as db:
            latest = db.execute(self._LATEST, (pointer.lane, pointer.output)).fetchone()
            if (latest["version"] if latest else 0) != expected_version:
                raise ConditionFailed(
                    f"{pointer.lane}/{pointer.output}: the pointer moved (version {latest['version'] if latest else 0},"
                    f" expected {expected_version})"
                )
            db.execute("INSERT INTO pointer_states VALUES (?,?,?,?)",
                       (stored.lane, stored.output, stored.version, pointer_to_json(stored)))
            self._queue(db, event)
        return stored

    def current(self, lane: str, output: str) -> CertPointer | None:
        row = self._connection().execute(self._LATEST, (lane, output)).fetchone()
        return _pointer(row) if row else None

    def history(self, lane: str, output: str) -> list[CertPointer]:
        rows = self._connection().execute(
            "SELECT * FROM pointer_states WHERE lane=? AND output=? ORDER BY version", (lane, output))
        return [_pointer(row) for row in rows]

    def pointers(self, lane: str | None = None) -> list[CertPointer]:
        query = ("SELECT p.* FROM pointer_states p JOIN (SELECT lane, output, MAX(version) AS v FROM pointer_states"
                 " GROUP BY lane, output) m ON p.lane=m.lane AND p.output=m.output AND p.version=m.v")
        rows = self._connection().execute(query + (" WHERE p.lane=?" if lane else ""), (lane,) if lane else ())
        return sorted((_pointer(row) for row in rows), key=lambda p: (p.lane, p.output))

    @staticmethod
    def _queue(db: sqlite3.Connection, event: LaneEvent) -> None:
        db.execute(
            "INSERT OR IGNORE INTO outbox VALUES (?,?,?,NULL)",
            (event.event_id(), event.model_dump_json(), datetime.now().isoformat()),
        )

    def queue_event(self, event: LaneEvent) -> None:
        with self._tx() as db:
            self._queue(db, event)

    def unpublished_events(self) -> list[LaneEvent]:
        rows = self._connection().execute("SELECT body FROM outbox WHERE published_at IS NULL ORDER BY queued_at")
        return [LaneEvent.model_validate_json(row["body"]) for row in rows]

    def mark_published(self, event_ids: list[str]) -> None:
        with self._tx() as db:
            db.executemany(
                "UPDATE outbox SET published_at=? WHERE event_id=?",
                [(datetime.now().isoformat(), event_id) for event_id in event_ids],
            )


class JsonlEventLog:
    """Append-only event log; local streaming consumers follow it (`lane events --follow`)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)

    def publish(self, events: list[LaneEvent]) -> list[str]:
        if not events:
            return []
        lines = "".join(json.dumps(event.envelope(), sort_keys=True) + "\n" for event in events)
        with open(self.path, "a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
            fcntl.flock(handle, fcntl.LOCK_UN)
        return [event.event_id() for event in events]

    def read(self, offset: int = 0) -> tuple[list[dict], int]:
        """Complete lines from byte offset; returns (events, next offset)."""
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        events = [json.loads(line) for line in data[:end].splitlines() if line.strip()]
        return events, offset + end
