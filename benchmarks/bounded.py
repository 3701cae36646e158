"""P7: `lane check --max-memory 256MB` of 48M unique int64 keys, side by side with the unbounded check.

The keys are unique and spread over the whole int64 range (``i * an odd constant``, a bijection
modulo 2**64), so neither a dense byte map nor a narrow footer range helps: the unbounded check
sorts all 48M keys in memory (384 MB of keys), the bounded one spills them to disk in hash
partitions and sorts one partition at a time. Each command runs in its own subprocess whose peak
RSS (getrusage of exactly that child) and wall time a small wrapper reports; the two commands
alternate, so machine load hits both alike.

Targets: peak RSS of the bounded check <= 320 MB; its time <= 3x the unbounded check's.

Also measured (an extra figure, not a P-number): `lane check --max-memory 128MB` of a file whose one row
group holds 20M rows (an int64 key and a string column): the row group is read in bounded parts, so the
checker's own memory (its peak RSS less that of `lane check` on a tiny file: the interpreter and its
imports) stays under the budget; the unbounded check of the same file is shown beside it.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from batchlane.checking.budget import parse_size
from benchmarks.memory import lane_command

ROWS = 48_000_000
QUICK_ROWS = 2_000_000
BUDGET = "256MB"
ROW_GROUP = 1_000_000
_SPREAD = np.uint64(0x9E3779B97F4A7C15)  # odd: i -> i * _SPREAD is a bijection modulo 2**64
CONTRACT = "contract:\n  columns:\n    id: {type: int64, not_null: true, unique: true}\n"
HUGE_ROWS = 20_000_000
HUGE_BUDGET = "128MB"
HUGE_CONTRACT = ("contract:\n  columns:\n    id: {type: int64, not_null: true, unique: true}\n"
                 "    name: {type: string, not_null: true, regex: '^customer-[0-9]+$'}\n")

_WRAPPER = (
    "import json, resource, subprocess, sys, time\n"
    "started = time.perf_counter()\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "seconds = time.perf_counter() - started\n"
    "peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(json.dumps({'exit': code, 'peak_rss_bytes': peak_kib * 1024, 'seconds': seconds}))\n"
)


def ensure_keys(directory: Path, rows: int = ROWS) -> tuple[Path, Path]:
    """(the Parquet file of ``rows`` unique int64 keys, its contract), generated once, chunk by chunk."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"keys-{rows}.parquet"
    contract = directory / "keys-contract.yaml"
    contract.write_text(CONTRACT)
    if not path.exists():
        partial = path.with_suffix(".partial")
        schema = pa.schema([("id", pa.int64())])
        with pq.ParquetWriter(partial, schema, compression="snappy") as writer:
            for start in range(0, rows, ROW_GROUP):
                index = np.arange(start, min(start + ROW_GROUP, rows), dtype=np.uint64)
                keys = (index * _SPREAD).view(np.int64)
                writer.write_table(pa.table({"id": keys}, schema=schema), row_group_size=ROW_GROUP)
        partial.rename(path)
    return path, contract


def ensure_huge_row_group(directory: Path, rows: int = HUGE_ROWS) -> tuple[Path, Path]:
    """(a Parquet file of ONE row group of ``rows`` rows: spread unique int64 ids and strings, its contract)."""
    import pyarrow.compute as pc

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"one-row-group-{rows}.parquet"
    contract = directory / "one-row-group-contract.yaml"
    contract.write_text(HUGE_CONTRACT)
    if not path.exists():
        index = np.arange(rows, dtype=np.uint64)
        ids = (index * _SPREAD).view(np.int64)
        names = pc.binary_join_element_wise("customer-", pa.array(index % np.uint64(1_000_003)).cast(pa.string()), "")
        partial = path.with_suffix(".partial")
        pq.write_table(pa.table({"id": ids, "name": names}), partial, row_group_size=rows, compression="snappy")
        partial.rename(path)
    return path, contract


def measure_huge_row_group(directory: Path, rows: int = HUGE_ROWS) -> dict:
    """Peak RSS of `lane check --max-memory 128MB` of one huge row group, beside the unbounded check and the
    interpreter baseline (`lane check` of a 10-row file)."""
    path, contract = ensure_huge_row_group(directory, rows)
    tiny, _ = ensure_huge_row_group(directory, 10)
    check = [*lane_command(), "check", str(path), "--contract", str(contract)]
    bounded = _measure([*check, "--max-memory", HUGE_BUDGET])
    unbounded = _measure(check)
    baseline = _measure([*lane_command(), "check", str(tiny), "--contract", str(contract)])
    own = bounded["peak_rss_bytes"] - baseline["peak_rss_bytes"]
    return {
        "command": " ".join([*check, "--max-memory", HUGE_BUDGET]),
        "rows": rows,
        "row_groups": pq.ParquetFile(path).metadata.num_row_groups,
        "file_bytes": path.stat().st_size,
        "budget": HUGE_BUDGET,
        "bounded": bounded,
        "unbounded": unbounded,
        "baseline": baseline,
        "peak_rss_mb": bounded["peak_rss_bytes"] / 1e6,
        "checker_own_mb": own / 1e6,
        "within_budget": own <= parse_size(HUGE_BUDGET),
        "passed": bounded["exit"] == 0 and unbounded["exit"] == 0 and baseline["exit"] == 0,
    }


def _measure(command: list[str]) -> dict:
    result = subprocess.run([sys.executable, "-c", _WRAPPER, *command], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def measure(directory: Path, rounds: int = 3, rows: int = ROWS, huge_rows: int | None = None) -> dict:
    """P7, and the one-huge-row-group figure (``huge_rows`` rows: 20M beside the full P7, else ``rows``)."""
    path, contract = ensure_keys(directory, rows)
    unbounded = [*lane_command(), "check", str(path), "--contract", str(contract)]
    bounded = [*unbounded, "--max-memory", BUDGET]
    runs: dict[str, list[dict]] = {"unbounded": [], "bounded": []}
    for _ in range(rounds):  # interleaved: one of each per round
        runs["unbounded"].append(_measure(unbounded))
        runs["bounded"].append(_measure(bounded))
    summary = {
        name: {
            "exit_codes": [run["exit"] for run in found],
            "median_s": statistics.median(run["seconds"] for run in found),
            "runs_s": [round(run["seconds"], 3) for run in found],
            "peak_rss_bytes": max(run["peak_rss_bytes"] for run in found),
        }
        for name, found in runs.items()
    }
    return {
        "command": " ".join(bounded),
        "rows": rows,
        "file_bytes": path.stat().st_size,
        "budget": BUDGET,
        **summary,
        "peak_rss_mb": summary["bounded"]["peak_rss_bytes"] / 1e6,
        "time_ratio": summary["bounded"]["median_s"] / summary["unbounded"]["median_s"],
        "passed": all(code == 0 for found in summary.values() for code in found["exit_codes"]),
        "huge_row_group": measure_huge_row_group(directory, huge_rows or (HUGE_ROWS if rows == ROWS else rows)),
    }


if __name__ == "__main__":
    from benchmarks.data import DATA_DIR

    quick = "--quick" in sys.argv
    print(json.dumps(measure(DATA_DIR, rounds=1 if quick else 3, rows=QUICK_ROWS if quick else ROWS), indent=2))
