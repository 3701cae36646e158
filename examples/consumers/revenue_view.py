"""An example streaming consumer: a revenue-per-day view that only ever reflects certified data.

It follows consumer ``fraud-stream`` (declared for ``orders_clean`` in examples/orders/lane.yaml) and keeps
``daily_revenue(day, revenue, orders)`` in a SQLite file, rebuilt from each certified version it receives:

- a certified version: read through the SDK (the pinned version, every byte verified against its proof),
  aggregate, and replace the view with that version's totals in one transaction, then ack;
- a revocation of the version the view shows: empty the view (the data it came from was withdrawn), ack;
- replays are harmless: the view is replaced, never added to, so an event delivered twice (a crash
  between the view's commit and the ack) leaves the same view.

Run it next to a lane (local store, or AWS with LANE_BACKEND=aws and LANE_CONSUMER_QUEUE_URL):

    python examples/consumers/revenue_view.py --view revenue.sqlite            # what is pending, then exit
    python examples/consumers/revenue_view.py --view revenue.sqlite --follow   # keep following
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from batchlane.consume import CertifiedVersion, Delivery, Revocation, consumer
from batchlane.gate import NotCertified

OUTPUT = "orders_clean"
COUNTED = ("PAID", "SHIPPED")   # revenue: orders that were paid


def open_view(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript("""
        CREATE TABLE IF NOT EXISTS daily_revenue (day TEXT PRIMARY KEY, revenue REAL NOT NULL, orders INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS source (
            id INTEGER PRIMARY KEY CHECK (id = 1), lane TEXT, output TEXT, run_id TEXT, attempt INTEGER,
            version_order TEXT, event_id TEXT, state TEXT NOT NULL, note TEXT, updated_at TEXT NOT NULL);
    """)
    return db


def daily_totals(item: CertifiedVersion) -> list[tuple[str, float, int]]:
    frame = item.read(columns=["amount", "status", "ts"])
    paid = frame[frame["status"].isin(COUNTED)]
    grouped = paid.groupby(paid["ts"].dt.strftime("%Y-%m-%d"))["amount"].agg(["sum", "count"])
    return [(str(day), round(float(row["sum"]), 2), int(row["count"])) for day, row in grouped.iterrows()]


def apply(db: sqlite3.Connection, item: Delivery) -> str:
    """Bring the view in line with one delivered item; returns what happened (for the log)."""
    now = datetime.now(UTC).isoformat()
    if isinstance(item, CertifiedVersion):
        try:
            totals = daily_totals(item)
        except NotCertified as exc:   # revoked or superseded between delivery and read: nothing to show from it
            return f"skipped {item.run_id}: {exc}"
        db.execute("BEGIN IMMEDIATE")
        db.execute("DELETE FROM daily_revenue")
        db.executemany("INSERT INTO daily_revenue VALUES (?,?,?)", totals)
        db.execute("INSERT OR REPLACE INTO source VALUES (1,?,?,?,?,?,?,'certified',NULL,?)",
                   (item.lane, item.output, item.run_id, item.attempt, item.order, item.event_id, now))
        db.execute("COMMIT")
        return f"view rebuilt from run {item.run_id} attempt {item.attempt}: {len(totals)} days"
    assert isinstance(item, Revocation)
    shown = db.execute("SELECT run_id, attempt FROM source WHERE id = 1").fetchone()
    if shown != (item.run_id, item.attempt):
        return f"revocation of run {item.run_id} does not concern the view (it shows {shown})"
    db.execute("BEGIN IMMEDIATE")
    db.execute("DELETE FROM daily_revenue")
    db.execute("UPDATE source SET state='revoked', note=?, updated_at=? WHERE id = 1", (item.reason, now))
    db.execute("COMMIT")
    return f"view emptied: run {item.run_id} was revoked ({item.reason})"


def process(items: Iterable[Delivery], view: Path, log=print) -> int:
    """Apply each delivered item for the view's output to the view, then ack it. Returns how many were handled."""
    db = open_view(view)
    handled = 0
    for item in items:
        if item.output == OUTPUT:
            log(apply(db, item))
        item.ack()   # after the view committed: a crash before this line replays the item (harmless)
        handled += 1
    return handled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--view", type=Path, required=True, help="SQLite file holding the daily_revenue view")
    parser.add_argument("--consumer", default="fraud-stream", help="consumer name declared for orders_clean")
    parser.add_argument("--follow", action="store_true", help="keep following (Ctrl-C to stop)")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between polls when following")
    args = parser.parse_args(argv)
    follower = consumer(args.consumer)
    try:
        process(follower.follow(poll=args.poll if args.follow else None), args.view)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
