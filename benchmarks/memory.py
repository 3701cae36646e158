"""P4: peak RSS of `lane check` as a subprocess, relative to the file it checks.

A tiny wrapper process runs the command and reports getrusage(RUSAGE_CHILDREN):
that figure covers exactly one child, unpolluted by anything else this process ran.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.data import NOW, Dataset

_WRAPPER = (
    "import json, resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(json.dumps({'exit': code, 'peak_rss_bytes': peak_kib * 1024}))\n"
)


def lane_command() -> list[str]:
    """The installed `lane` script next to this interpreter, else the same entry point via -c."""
    script = Path(sys.executable).parent / "lane"
    if script.exists():
        return [str(script)]
    found = shutil.which("lane")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from batchlane.cli import main; sys.exit(main())"]


def peak_rss(command: list[str]) -> dict:
    result = subprocess.run([sys.executable, "-c", _WRAPPER, *command], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def measure(dataset: Dataset, rounds: int = 3) -> dict:
    check = [*lane_command(), "check", str(dataset.path), "--contract", str(dataset.contract_path),
             "--now", NOW.isoformat()]
    runs = [peak_rss(check) for _ in range(rounds)]
    baseline = peak_rss([*lane_command(), "--help"])  # interpreter + imports, for context
    peak = max(run["peak_rss_bytes"] for run in runs)
    size = dataset.path.stat().st_size
    return {
        "command": " ".join(check),
        "exit_codes": [run["exit"] for run in runs],
        "peak_rss_bytes": peak,
        "file_bytes": size,
        "baseline_rss_bytes": baseline["peak_rss_bytes"],
        "ratio": peak / size,
    }
