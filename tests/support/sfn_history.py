"""Step Functions execution history, summarized per output (and per wave) of the lane's state machine.

``get_execution_history`` interleaves the events of concurrent Map iterations. Each event names the event it
follows (``previousEventId``), so following that chain back reaches either a ``MapIterationStarted`` (the event
belongs to that iteration: the Map state's input names the wave's outputs, the iteration's index picks one) or
the execution itself (Plan, the wave loop, CloseRun, Settle, and the Map state's own events).

The summary is what the issue 9 closing note quotes; tests print it and write it under
``/tmp/batchlane-sfn-history/`` (see ``write_summary``).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXECUTION = "(execution)"
SUMMARY_DIR = Path("/tmp/batchlane-sfn-history")
_MAP_STATE_EVENTS = {"MapStateEntered", "MapStateStarted", "MapStateSucceeded", "MapStateFailed", "MapStateAborted",
                     "MapStateExited"}


@dataclass
class OutputHistory:
    """The events of one output's iteration(s) in one execution."""

    events: int = 0
    waves: list[int] = field(default_factory=list)          # the wave (0-based) of each iteration
    states: list[str] = field(default_factory=list)          # states entered, in order
    types: Counter = field(default_factory=Counter)          # history event type -> count


@dataclass
class HistorySummary:
    total: int
    execution: OutputHistory                                  # events outside any iteration
    outputs: dict[str, OutputHistory]
    waves: list[list[str]]                                    # the outputs of each Map state run, in order

    def render(self, title: str) -> str:
        lines = [f"== {title}: {self.total} history events, {len(self.waves)} wave(s): "
                 + " -> ".join("[" + ", ".join(wave) + "]" for wave in self.waves)]
        lines.append(f"  {EXECUTION:<22} {self.execution.events:>4} events  states: "
                     + " ".join(self.execution.states))
        for name, history in self.outputs.items():
            lines.append(f"  {name:<22} {history.events:>4} events  wave {','.join(map(str, history.waves))}  "
                         f"states: {' > '.join(history.states)}")
        return "\n".join(lines)


def _items(map_entered: dict[str, Any], items_path: tuple[str, ...]) -> list[str]:
    document = json.loads(map_entered["stateEnteredEventDetails"]["input"])
    for key in items_path:
        document = document[key]
    return [item if isinstance(item, str) else json.dumps(item, sort_keys=True) for item in document]


def summarize(events: list[dict[str, Any]], items_path: tuple[str, ...] = ("wave", "outputs")) -> HistorySummary:
    """Per output: how many history events its iterations wrote and which states they entered.

    ``items_path``: where the Map state's input holds the items (the ASL's ``ItemsPath``, ``$.wave.outputs``)."""
    by_id = {event["id"]: event for event in events}
    map_items: dict[int, list[str]] = {}     # MapStateStarted id -> the items of that Map run
    waves: list[list[str]] = []
    for event in events:
        if event["type"] == "MapStateStarted":
            entered = by_id[event["previousEventId"]]
            map_items[event["id"]] = _items(entered, items_path)
            waves.append(map_items[event["id"]])
    wave_of = {started: index for index, started in enumerate(sorted(map_items))}
    owner: dict[int, tuple[str, int] | None] = {}   # event id -> (output, wave) or None for the execution

    def find_owner(event_id: int) -> tuple[str, int] | None:
        trail = []
        found: tuple[str, int] | None = None
        while event_id in by_id:
            if event_id in owner:
                found = owner[event_id]
                break
            event = by_id[event_id]
            trail.append(event_id)
            if event["type"] == "MapIterationStarted":
                started = event["previousEventId"]
                index = event["mapIterationStartedEventDetails"]["index"]
                found = (map_items[started][index], wave_of[started])
                break
            if event["type"] in _MAP_STATE_EVENTS:
                break
            event_id = event.get("previousEventId") or 0
        for visited in trail:
            owner[visited] = found
        return found

    execution = OutputHistory()
    outputs: dict[str, OutputHistory] = {}
    for event in events:
        found = find_owner(event["id"])
        if found is None:
            history = execution
        else:
            history = outputs.setdefault(found[0], OutputHistory())
            if event["type"] == "MapIterationStarted":
                history.waves.append(found[1])
        history.events += 1
        history.types[event["type"]] += 1
        state_entered = event.get("stateEnteredEventDetails")
        if state_entered:
            history.states.append(state_entered["name"])
    return HistorySummary(total=len(events), execution=execution, outputs=outputs, waves=waves)


def reset_summary(name: str) -> Path:
    """Start /tmp/batchlane-sfn-history/NAME.txt afresh (once per test module)."""
    path = SUMMARY_DIR / f"{name}.txt"
    path.unlink(missing_ok=True)
    return path


def write_summary(name: str, text: str) -> Path:
    """Append ``text`` to /tmp/batchlane-sfn-history/NAME.txt (the lead quotes it) and print it (pytest -s)."""
    SUMMARY_DIR.mkdir(parents=True, exist_ok=True)
    path = SUMMARY_DIR / f"{name}.txt"
    with path.open("a") as handle:
        handle.write(text + "\n\n")
    print(text)
    return path
