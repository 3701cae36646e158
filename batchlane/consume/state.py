"""A consumer's durable memory: processed event ids, the newest version processed per output, the log offset.

One SQLite file (its own file, never the lane ledger): locally ``<store>/consumers.sqlite``; on AWS
wherever the consumer keeps state (the SQS queue is the cursor there; this file only remembers which
event ids and versions were processed, for duplicates and out-of-order versions). Every ack is one
transaction, so a crash leaves either the whole ack or none of it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from batchlane.stores.sqlite_file import SqliteFile

STATE_FILE = "consumers.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS consumer_offsets (
    consumer TEXT PRIMARY KEY, log_offset INTEGER NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS consumer_processed (
    consumer TEXT NOT NULL, event_id TEXT NOT NULL, kind TEXT NOT NULL, lane TEXT NOT NULL, output TEXT NOT NULL,
    ord TEXT, outcome TEXT NOT NULL, processed_at TEXT NOT NULL, PRIMARY KEY (consumer, event_id));
CREATE TABLE IF NOT EXISTS consumer_versions (
    consumer TEXT NOT NULL, lane TEXT NOT NULL, output TEXT NOT NULL, ord TEXT NOT NULL, event_id TEXT NOT NULL,
    revoked TEXT, PRIMARY KEY (consumer, lane, output));
"""


@dataclass(frozen=True)
class ProcessedVersion:
    """The newest certified version of an output this consumer acknowledged (and whether it was revoked since)."""

    lane: str
    output: str
    order: str
    event_id: str
    revoked: str | None


class ConsumerState:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._file = SqliteFile(self.path, _SCHEMA)
        self._connection, self._tx = self._file.connection, self._file.transaction

    # -- reads

    def offset(self, consumer: str) -> int:
        row = self._connection().execute(
            "SELECT log_offset FROM consumer_offsets WHERE consumer=?", (consumer,)).fetchone()
        return int(row["log_offset"]) if row else 0

    def processed(self, consumer: str, event_id: str) -> bool:
        return self._connection().execute(
            "SELECT 1 FROM consumer_processed WHERE consumer=? AND event_id=?", (consumer, event_id)
        ).fetchone() is not None

    def version(self, consumer: str, lane: str, output: str) -> ProcessedVersion | None:
        row = self._connection().execute(
            "SELECT * FROM consumer_versions WHERE consumer=? AND lane=? AND output=?", (consumer, lane, output)
        ).fetchone()
        return ProcessedVersion(row["lane"], row["output"], row["ord"], row["event_id"], row["revoked"]) if row else None

    def history(self, consumer: str) -> list[dict]:
        """Every event this consumer acknowledged or skipped, oldest first (for audits and tests)."""
        rows = self._connection().execute(
            "SELECT * FROM consumer_processed WHERE consumer=? ORDER BY processed_at, rowid", (consumer,))
        return [dict(row) for row in rows]

    # -- writes (one transaction each)

    def record(self, consumer: str, *, event_id: str, kind: str, lane: str, output: str, order: str | None,
               outcome: str, offset: int | None = None, revoked_reason: str | None = None) -> None:
        """Remember one event as handled (acked or skipped), move the version memory and the log offset together.

        ``kind`` is certified | revoked | other; ``outcome`` is acked | duplicate | out_of_order | superseded | ...
        """
        now = datetime.now(UTC).isoformat()
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO consumer_processed VALUES (?,?,?,?,?,?,?,?)",
                       (consumer, event_id, kind, lane, output, order, outcome, now))
            if outcome == "acked" and kind == "certified" and order is not None:
                db.execute(
                    "INSERT INTO consumer_versions VALUES (?,?,?,?,?,NULL) ON CONFLICT(consumer, lane, output) "
                    "DO UPDATE SET ord=excluded.ord, event_id=excluded.event_id, revoked=NULL "
                    "WHERE excluded.ord > consumer_versions.ord OR consumer_versions.revoked IS NOT NULL",
                    (consumer, lane, output, order, event_id),
                )
            if outcome == "acked" and kind == "revoked" and order is not None:
                db.execute(
                    "UPDATE consumer_versions SET revoked=? WHERE consumer=? AND lane=? AND output=? AND ord<=?",
                    (revoked_reason or "revoked", consumer, lane, output, order),
                )
            if offset is not None:
                self._set_offset(db, consumer, offset, now)

    def commit_offset(self, consumer: str, offset: int) -> None:
        with self._tx() as db:
            self._set_offset(db, consumer, offset, datetime.now(UTC).isoformat())

    @staticmethod
    def _set_offset(db: sqlite3.Connection, consumer: str, offset: int, now: str) -> None:
        db.execute(
            "INSERT INTO consumer_offsets VALUES (?,?,?) ON CONFLICT(consumer) DO UPDATE SET "
            "log_offset=excluded.log_offset, updated_at=excluded.updated_at",
            (consumer, offset, now),
        )
