"""What the numbers were measured on."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

import psutil

PACKAGES = ["pyarrow", "numpy", "polars", "pandas", "pandera"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> dict:
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "load_average_1m": round(os.getloadavg()[0], 2),
        **{name: metadata.version(name) for name in PACKAGES},
    }
