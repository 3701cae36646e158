"""P5/P6: targeted rerun and memoized rerun of a 20-output local lane, via the `lane` CLI.

P5: break one input, `lane run` (1 output fails), restore it, `lane rerun RUN_ID --failed`;
    its time over a full run's. P6: `lane run` again with nothing changed (every output
    memoized); its time over a full run's. Both are whole CLI invocations, startup included.
    For context, each round also times the full run with a fresh interpreter per job
    (``LANE_FORKSERVER=0``): the fork server shrinks the denominator of both ratios.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from benchmarks.memory import lane_command

OUTPUTS = 20
BROKEN = "out_07"


def write_lane(root: Path, rows: int) -> Path:
    """20 pass-through outputs of small CSV inputs, each with a contract."""
    data = root / "data"
    data.mkdir(parents=True)
    rng = np.random.default_rng(7)
    outputs = {}
    for number in range(OUTPUTS):
        name = f"out_{number:02d}"
        values = rng.random(rows) * 100
        lines = ["id,value,kind"] + [f"{i},{v:.4f},{'ab'[i % 2]}" for i, v in enumerate(values)]
        (data / f"{name}.csv").write_text("\n".join(lines) + "\n")
        outputs[name] = {
            "inputs": {"rows": f"data/{name}.csv"},
            "contract": {
                "columns": {
                    "id": {"type": "int64", "not_null": True, "unique": True},
                    "value": {"type": "float64", "not_null": True, "min": 0, "max": 100},
                    "kind": {"type": "string", "accepted_values": ["a", "b"]},
                },
                "row_count": {"min": 1},
            },
        }
    spec = root / "lane.yaml"
    spec.write_text(yaml.safe_dump({"lane": "bench", "outputs": outputs}, sort_keys=False))
    return spec


def _lane(env: dict, *argv: str) -> tuple[int, dict | None, float, str]:
    started = time.perf_counter()
    done = subprocess.run([*lane_command(), *argv], capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    try:
        document = json.loads(done.stdout)
    except json.JSONDecodeError:
        document = None
    return done.returncode, document, elapsed, done.stderr[-2000:]


def available() -> str | None:
    """None when `lane run`/`lane rerun` exist; otherwise why P5/P6 are skipped."""
    for command in ("run", "rerun"):
        done = subprocess.run([*lane_command(), command, "--help"], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return f"`lane {command}` unavailable (exit {done.returncode}): {done.stderr.strip()[-300:]}"
    return None


def _states(document: dict | None) -> dict[str, str]:
    return {name: item.get("state") for name, item in (document or {}).get("outputs", {}).items()}


def one_round(rows: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="lane-bench-") as tmp:
        root = Path(tmp)
        spec = write_lane(root / "lane", rows)
        env = {**os.environ, "LANE_HOME": str(root / "home"), "LANE_BACKEND": "local"}
        code, _, full_s, err = _lane(env, "run", str(spec), "--json")
        if code != 0:
            raise RuntimeError(f"full run exited {code}: {err}")

        broken_input = spec.parent / "data" / f"{BROKEN}.csv"
        original = broken_input.read_bytes()
        broken_input.write_bytes(original.replace(b"\n0,", b"\n0,-5.0000,a\n999999,", 1))  # a negative value
        code, broken_doc, broken_s, err = _lane(env, "run", str(spec), "--json")
        failed = [name for name, state in _states(broken_doc).items() if state not in ("certified", "memoized")]
        if code != 1 or failed != [BROKEN] or broken_doc is None:
            raise RuntimeError(f"broken run: exit {code}, not certified {failed} (expected [{BROKEN}]): {err}")

        broken_input.write_bytes(original)  # the fix
        code, rerun_doc, rerun_s, err = _lane(env, "rerun", broken_doc["run_id"], "--failed", "--json")
        if code != 0:
            raise RuntimeError(f"rerun exited {code}: {err}")

        code, memo_doc, memo_s, err = _lane(env, "run", str(spec), "--json")
        states = set(_states(memo_doc).values())
        if code != 0 or states != {"memoized"}:
            raise RuntimeError(f"memoized run: exit {code}, states {states}: {err}")

        # context: the same full run with a fresh interpreter per job (the denominator before the fork server)
        plain_env = {**env, "LANE_HOME": str(root / "home-plain"), "LANE_FORKSERVER": "0"}
        code, _, full_plain_s, err = _lane(plain_env, "run", str(spec), "--json")
        if code != 0:
            raise RuntimeError(f"full run without the fork server exited {code}: {err}")
        return {"full_s": full_s, "broken_run_s": broken_s, "rerun_failed_s": rerun_s, "memoized_run_s": memo_s,
                "full_plain_s": full_plain_s, "rerun_outputs": (rerun_doc or {}).get("rerun_outputs")}


def measure(rounds: int, rows: int) -> dict:
    reason = available()
    if reason:
        return {"skipped": reason}
    results = [one_round(rows) for _ in range(rounds)]
    median = {key: statistics.median(r[key] for r in results) for key in
              ("full_s", "broken_run_s", "rerun_failed_s", "memoized_run_s", "full_plain_s")}
    return {
        **median,
        "rounds": rounds,
        "rows_per_output": rows,
        "outputs": OUTPUTS,
        "rerun_outputs": results[-1]["rerun_outputs"],
        "P5": median["rerun_failed_s"] / median["full_s"],
        "P6": median["memoized_run_s"] / median["full_s"],
        # the same ratios against a full run that starts a fresh interpreter per job (LANE_FORKSERVER=0)
        "P5_vs_plain_full": median["rerun_failed_s"] / median["full_plain_s"],
        "P6_vs_plain_full": median["memoized_run_s"] / median["full_plain_s"],
    }
