"""P8: no wasted starts. A lane of 200 trivial outputs, `lane run` on this machine's cores, against the cost
of starting 200 cold interpreters that import the data libraries, spread over two cores.

    P8 = wall of `lane run` (200 outputs)  /  (200 x median wall of `python -c "import pandas, pyarrow.parquet"`) / 2

Measured side by side: each round times a few cold imports, then one whole `lane run` (CLI start-up,
planning, the jobs, checks, receipts, closing) on a fresh store. With ``plain=True`` the same lane also runs
once with ``LANE_FORKSERVER=0`` (a fresh interpreter per job), for context.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.memory import lane_command

OUTPUTS = 200
COLD_IMPORT = "import pandas, pyarrow.parquet"
TRANSFORM = '''def double(rows):
    """A trivial transform: the job's cost is start-up and bookkeeping, not work."""
    rows["value"] = rows["value"] * 2
    return rows
'''


def write_lane(root: Path, outputs: int = OUTPUTS) -> Path:
    """``outputs`` outputs, each a three-row CSV through a trivial transform, with a small contract."""
    data = root / "data"
    data.mkdir(parents=True)
    (root / "transforms.py").write_text(TRANSFORM)
    spec: dict = {"lane": "startup", "outputs": {}}
    for number in range(outputs):
        name = f"out_{number:03d}"
        (data / f"{name}.csv").write_text(f"id,value\n{number},1.5\n{number + 1000},2.5\n{number + 2000},3.5\n")
        spec["outputs"][name] = {
            "inputs": {"rows": f"data/{name}.csv"},
            "transform": "transforms:double",
            "contract": {"columns": {"id": {"type": "int64", "not_null": True, "unique": True},
                                     "value": {"type": "float64", "min": 0}},
                         "row_count": {"min": 1}},
        }
    path = root / "lane.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def cold_import_s() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", COLD_IMPORT], check=True)
    return time.perf_counter() - started


def _run_lane(spec: Path, home: Path, fork_server: bool) -> float:
    env = {**os.environ, "LANE_HOME": str(home), "LANE_BACKEND": "local",
           "LANE_FORKSERVER": "1" if fork_server else "0"}
    started = time.perf_counter()
    done = subprocess.run([*lane_command(), "run", str(spec), "--json"], capture_output=True, text=True, env=env,
                          check=False)
    elapsed = time.perf_counter() - started
    try:
        states = {item["state"] for item in json.loads(done.stdout)["outputs"].values()}
    except (json.JSONDecodeError, KeyError, TypeError):
        states = set()
    if done.returncode != 0 or states != {"certified"}:
        raise RuntimeError(f"`lane run` of the {OUTPUTS}-output lane: exit {done.returncode}, states {states}: "
                           f"{done.stderr[-1500:]}")
    return elapsed


def measure(rounds: int, outputs: int = OUTPUTS, cold_samples: int = 5, plain: bool = True) -> dict:
    cores = os.cpu_count() or 1
    colds: list[float] = []
    runs: list[float] = []
    plain_runs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="lane-bench-startup-") as tmp:
        spec = write_lane(Path(tmp) / "lane", outputs)
        for number in range(rounds):
            colds += [cold_import_s() for _ in range(cold_samples)]
            runs.append(_run_lane(spec, Path(tmp) / f"home-{number}", fork_server=True))
        if plain:
            colds += [cold_import_s() for _ in range(cold_samples)]
            plain_runs.append(_run_lane(spec, Path(tmp) / "home-plain", fork_server=False))
    cold = statistics.median(colds)
    budget = outputs * cold / 2
    run = statistics.median(runs)
    result: dict[str, Any] = {
        "outputs": outputs,
        "cores": cores,
        "rounds": rounds,
        "cold_import_s": cold,
        "cold_import_runs_s": [round(value, 4) for value in colds],
        "cold_budget_s": budget,
        "run_s": run,
        "runs_s": [round(value, 3) for value in runs],
        "P8": run / budget,
    }
    if plain_runs:
        result["plain_run_s"] = statistics.median(plain_runs)
        result["plain_ratio"] = result["plain_run_s"] / budget
    return result
