"""Interleaved rounds, median per contender: slow drift (page cache, other tenants) hits all alike."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable


def interleaved(contenders: dict[str, Callable[[], bool]], rounds: int, warmup: int = 1) -> dict[str, dict]:
    """Run each contender once per round, rotating the order; return median/min/all seconds."""
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    verdicts: dict[str, set[bool]] = {name: set() for name in names}
    for round_number in range(warmup + rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            started = time.perf_counter()
            verdict = contenders[name]()
            elapsed = time.perf_counter() - started
            verdicts[name].add(verdict)
            if round_number >= warmup:
                times[name].append(elapsed)
    return {
        name: {
            "median_s": statistics.median(times[name]),
            "min_s": min(times[name]),
            "runs_s": [round(t, 4) for t in times[name]],
            "passed": verdicts[name] == {True},
        }
        for name in names
    }
