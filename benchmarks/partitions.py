"""P9: a 100-partition product (``partition_by``): adding one partition vs building all of them.

Each round, in a fresh lane home: ``lane run`` builds all 100 partitions and certifies them (the full build);
then one new input file is added and ``lane run`` again builds only that partition, reuses the 100 certified
partition files and checks the product: every file is hashed, but only the new partition is read (plus any old
partition whose ``order_id`` range overlaps it: none here), the other partitions' rule evidence is reused from the
certification's check. Both are whole CLI invocations, startup and check included, measured side by side in the
same round; the add-one check's own seconds and how many partitions it read are reported next to them.

Each partition is a day of order lines (``ROWS`` per file: 8 MB of CSV, a 20M-row product); the transform does
ordinary per-partition work: parse, enrich from a small lookup input read whole, aggregate per customer and rank.
The size matters: a `lane run` has a fixed cost (an interpreter and its imports, hashing the input listing, one
job's start, one check; about 1.3 s here) that adding a partition pays whatever the partition's size, so with
small partitions (``--partition-rows 40000``: 1.6 MB each, 75 ms of build each) that fixed cost, not the
partition, is what the ratio measures.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
import yaml

from benchmarks.reruns import _lane, _states

PARTITIONS = 100
ROWS = 200_000

TRANSFORM = '''
import pandas as pd


def daily(day, customers):
    frame = day.merge(customers, on="customer", how="left")
    frame["amount"] = frame["quantity"] * frame["price"] * (1 - frame["discount"])
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    frame["hour"] = frame["at"].dt.hour
    frame["rank"] = frame.groupby("customer")["amount"].rank(method="first", ascending=False)
    frame["customer_total"] = frame.groupby("customer")["amount"].transform("sum")
    frame = frame.sort_values(["customer", "rank"])
    return frame[["order_id", "customer", "segment", "hour", "amount", "rank", "customer_total"]].reset_index(
        drop=True)
'''


def _write_day(data: Path, number: int, rows: int) -> None:
    rng = np.random.default_rng(number)
    ids = np.arange(number * rows, (number + 1) * rows)
    seconds = rng.integers(0, 86_400, rows)
    lines = ["order_id,customer,quantity,price,at"] + [
        f"{i},{c},{q},{p:.2f},2026-01-{(number % 28) + 1:02d}T{s // 3600:02d}:{(s // 60) % 60:02d}:{s % 60:02d}Z"
        for i, c, q, p, s in zip(ids, rng.integers(0, 2_000, rows), rng.integers(1, 9, rows),
                                 rng.random(rows) * 100, seconds, strict=True)]
    (data / f"day-{number:03d}.csv").write_text("\n".join(lines) + "\n")


def write_lane(root: Path, partitions: int, rows: int) -> Path:
    data = root / "data" / "days"
    data.mkdir(parents=True)
    for number in range(partitions):
        _write_day(data, number, rows)
    rng = np.random.default_rng(1)
    customers = ["customer,segment,discount"] + [f"{c},{'abc'[c % 3]},{rng.random() * 0.2:.3f}"
                                                 for c in range(2_000)]
    (root / "data" / "customers.csv").write_text("\n".join(customers) + "\n")
    (root / "transforms.py").write_text(TRANSFORM)
    spec = {"lane": "bench_partitions", "outputs": {"orders": {
        "inputs": {"day": "data/days/day-*.csv", "customers": "data/customers.csv"},
        "partition_by": "day",
        "transform": "transforms:daily",
        "contract": {
            "columns": {
                "order_id": {"type": "int64", "not_null": True, "unique": True},
                "customer": {"type": "int64", "not_null": True},
                "segment": {"type": "string", "accepted_values": ["a", "b", "c"]},
                "amount": {"type": "float64", "not_null": True, "min": 0},
            },
            "row_count": {"min": 1},
        },
    }}}
    path = root / "lane.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def one_round(partitions: int, rows: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="lane-bench-partitions-") as tmp:
        root = Path(tmp)
        spec = write_lane(root / "lane", partitions, rows)
        env = {**os.environ, "LANE_HOME": str(root / "home"), "LANE_BACKEND": "local"}
        code, full, full_s, err = _lane(env, "run", str(spec), "--json")
        if code != 0 or full is None or _states(full) != {"orders": "certified"}:
            raise RuntimeError(f"full build exited {code}: {err}")
        _write_day(spec.parent / "data" / "days", partitions, rows)
        code, added, added_s, err = _lane(env, "run", str(spec), "--json")
        if code != 0 or added is None or _states(added) != {"orders": "certified"}:
            raise RuntimeError(f"add-one run exited {code}: {err}")
        receipt = root / "home" / "receipts" / added["run_id"] / "orders" / "0001-materialize.json"
        statuses = [part["status"] for part in yaml.safe_load(receipt.read_text())["partitions"]]
        if statuses.count("built") != 1 or statuses.count("reused") != partitions:
            raise RuntimeError(f"add-one run built {statuses.count('built')} partitions, expected 1")
        checked = _check_receipt(root, added["run_id"])
        summary = checked.get("partition_check") or {}
        return {"full_s": full_s, "add_one_s": added_s,
                "full_check_s": float(_check_receipt(root, full["run_id"])["seconds"]),
                "add_one_check_s": float(checked["seconds"]),
                "add_one_check_read": len(summary.get("read", [])),
                "add_one_check_keys_only": len(summary.get("keys_only", [])),
                "add_one_check_reused": len(summary.get("reused", []))}


def _check_receipt(root: Path, run_id: str) -> dict:
    """The check receipt of the run's one output: its own seconds, and which partitions it read or reused."""
    receipt = root / "home" / "receipts" / run_id / "orders" / "0001-check.json"
    return json.loads(receipt.read_text())


def measure(rounds: int, partitions: int = PARTITIONS, rows: int = ROWS) -> dict:
    results = [one_round(partitions, rows) for _ in range(rounds)]
    full = statistics.median(r["full_s"] for r in results)
    added = statistics.median(r["add_one_s"] for r in results)
    return {"partitions": partitions, "rows_per_partition": rows, "rounds": rounds, "full_s": full,
            "add_one_s": added, "add_one_check_s": statistics.median(r["add_one_check_s"] for r in results),
            "full_check_s": statistics.median(r["full_check_s"] for r in results), "runs": results,
            "add_one_check_read": max(r["add_one_check_read"] for r in results),
            "add_one_check_reused": min(r["add_one_check_reused"] for r in results),
            "P9": added / full}
