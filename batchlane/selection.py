"""Graph selection of outputs, as dbt users write it: ``X``, ``+X`` (X and everything upstream), ``X+`` (X and
everything downstream), ``+X+`` (both), with an optional depth (``2+X``, ``X+1``: at most that many edges away).
Selectors are separated by commas (or spaces); the selection is their union, in topological order (every
selected product an output reads or references comes before it). Edges are the lane's product inputs and
``references`` rules (``LaneSpec.upstream``/``downstream``).

Pure logic over the spec: no store is read, so ``+X`` works on an empty store. Whether a selection may run
(an unselected upstream without a certification in force) is the planner's decision, not this module's.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from batchlane.plan import PlanError
from batchlane.spec import LaneSpec

SELECTOR_SYNTAX = "OUTPUT, +OUTPUT (with its upstream), OUTPUT+ (with its downstream) or +OUTPUT+"
_SELECTOR = re.compile(r"^(?:(?P<up_depth>[0-9]*)(?P<up>\+))?(?P<name>[A-Za-z][A-Za-z0-9_\-]*)"
                       r"(?:(?P<down>\+)(?P<down_depth>[0-9]*))?$")


class SelectionError(PlanError):
    """A selector that names no output of the lane or is not written as a selector (exit 2)."""


@dataclass(frozen=True)
class Selector:
    """One parsed selector: the output, and how far up and down the graph it reaches (None: not at all;
    -1: all the way)."""

    text: str
    name: str
    upstream: int | None = None
    downstream: int | None = None


def split_selectors(text_or_items: str | Iterable[str]) -> list[str]:
    """Selector texts from ``"a,+b c+"`` or from items that may themselves hold commas; empty parts dropped."""
    items = [text_or_items] if isinstance(text_or_items, str) else list(text_or_items)
    return [part for item in items for part in re.split(r"[,\s]+", item) if part]


def parse_selector(text: str) -> Selector:
    match = _SELECTOR.match(text)
    if not match:
        raise SelectionError(f"--outputs: {text!r} is not a selector: write {SELECTOR_SYNTAX}, "
                             "comma-separated (a number before or after + limits the depth: 2+X, X+1)")

    def reach(sign: str | None, depth: str | None) -> int | None:
        if not sign:
            return None
        return int(depth) if depth else -1

    return Selector(text=text, name=match["name"], upstream=reach(match["up"], match["up_depth"]),
                    downstream=reach(match["down"], match["down_depth"]))


def unknown_output_message(spec: LaneSpec, name: str, written: str | None = None) -> str:
    """``lane 'orders' has no output 'ordrs' (in '+ordrs'); did you mean 'orders_clean'?`` (or the outputs)."""
    where = f" (in {written!r})" if written and written != name else ""
    close = difflib.get_close_matches(name, list(spec.outputs), n=1, cutoff=0.6)
    hint = (f"; did you mean {close[0]!r}?" if close
            else f"; outputs: {', '.join(spec.outputs)}")
    return f"lane {spec.lane!r} has no output {name!r}{where}{hint}"


def _reach(start: str, step: Callable[[str], set[str]], depth: int) -> set[str]:
    """Outputs at most ``depth`` edges from ``start`` (all of them for -1), following ``step``."""
    found: set[str] = set()
    frontier = {start}
    level = 0
    while frontier and (depth < 0 or level < depth):
        frontier = {name for current in frontier for name in step(current)} - found - {start}
        found |= frontier
        level += 1
    return found


def expand_selection(spec: LaneSpec, text_or_items: str | Iterable[str]) -> list[str]:
    """The outputs the selectors name, with their upstream/downstream, once each, in topological order.

    Raises SelectionError (a PlanError: exit 2) for a selector that is malformed or names no output of the
    lane (with close matches), and for an empty selection.
    """
    texts = split_selectors(text_or_items)
    if not texts:
        raise SelectionError(f"--outputs needs at least one output ({SELECTOR_SYNTAX})")
    selectors = [parse_selector(text) for text in texts]
    unknown = [selector for selector in selectors if selector.name not in spec.outputs]
    if unknown:
        raise SelectionError("--outputs: " + "; ".join(unknown_output_message(spec, s.name, s.text) for s in unknown))
    chosen: set[str] = set()
    for selector in selectors:
        chosen.add(selector.name)
        if selector.upstream is not None:
            chosen |= _reach(selector.name, spec.upstream, selector.upstream)
        if selector.downstream is not None:
            chosen |= _reach(selector.name, spec.downstream, selector.downstream)
    return [name for name in spec.topological_order() if name in chosen]
