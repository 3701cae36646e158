"""Strict YAML for lane specs and contracts: YAML 1.2, no duplicate keys, bounded nesting and aliases.

ruamel.yaml (pure Python, safe loader) does the parsing. This module adds what a contract needs on top:

- YAML 1.2 core schema only: ``NO``, ``yes`` and ``on`` are strings. A ``%YAML 1.1`` directive (which would
  turn them back into booleans) is refused.
- Duplicate keys are refused (ruamel raises), reported with the key's path and both lines.
- Nesting deeper than ``MAX_NESTING`` is refused from the event stream, before anything recursive runs.
- Anchors and aliases are fine, but a document that expands to more than ``MAX_VALUES`` values once aliases are
  expanded (an "alias bomb") or that contains itself through an alias is refused.
- Every problem carries a 1-based line and column; ``YamlDocument.line_of`` finds the line of a field path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
)
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_NESTING = 50          # a lane spec needs about 8 levels
MAX_VALUES = 500_000      # values after alias expansion; a large real spec has a few thousand

PathPart = str | int


class YamlProblem(ValueError):
    """YAML that cannot be used. ``str()`` is the reason with its position; ``path`` is the field, if known."""

    def __init__(self, reason: str, line: int | None = None, column: int | None = None,
                 path: Sequence[PathPart] = ()) -> None:
        self.reason, self.line, self.column, self.path = reason, line, column, tuple(path)
        where = f" (line {line}" + (f", column {column})" if column is not None else ")") if line else ""
        super().__init__(f"{reason}{where}")


@dataclass
class YamlDocument:
    """Loaded data plus what is needed to point at a line later."""

    data: Any
    text: str
    _root: Node | None = field(default=None, init=False, repr=False)

    def line_of(self, path: Sequence[PathPart]) -> int | None:
        """1-based line of the key (mappings) or item (lists) at ``path``; the nearest known ancestor otherwise."""
        try:
            node: Node | None = self._root or _yaml().compose(self.text)
        except YAMLError:
            return None
        self._root = node
        line = node.start_mark.line + 1 if node is not None else None
        for part in path:
            if isinstance(node, MappingNode):
                match = next(((k, v) for k, v in node.value if isinstance(k, ScalarNode) and k.value == str(part)),
                             None)
                if match is None:
                    return line
                line, node = match[0].start_mark.line + 1, match[1]
            elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line


def _yaml() -> YAML:
    # A fresh instance per use: ruamel's loader objects keep state between calls.
    return YAML(typ="safe", pure=True)


def load_yaml(text: str) -> YamlDocument:
    """Parse one YAML 1.2 document strictly; raises YamlProblem naming the line and the reason."""
    if not _surely_shallow(text):  # the exact (but second) pass, only for documents that may nest deeply
        _check_events(text)
    elif _VERSION_DIRECTIVE.search(text):
        _check_events(text)
    try:
        data = _yaml().load(text)
    except DuplicateKeyError as exc:
        raise _duplicate_key(text, exc) from None
    except MarkedYAMLError as exc:
        raise _marked(exc) from None
    except YAMLError as exc:  # reader errors (control characters) carry no mark
        raise YamlProblem(str(exc).splitlines()[0]) from None
    except RecursionError:  # not reachable after _check_events, kept so no traceback can escape
        raise YamlProblem(f"nested too deeply (more than {MAX_NESTING} levels)") from None
    _check_expansion(data)
    return YamlDocument(data, text)


_VERSION_DIRECTIVE = re.compile(r"^%YAML", re.MULTILINE)


def _surely_shallow(text: str) -> bool:
    """A cheap upper bound on nesting: indentation, block sequence dashes and the running flow depth.

    Over-estimating only costs the exact event pass; an under-estimate (brackets inside quotes) still
    cannot produce a traceback: composing catches RecursionError and the loaded data is depth-checked."""
    worst, flow = 0, 0
    for line in text.splitlines():
        stripped = line.lstrip(" -")
        indent = len(line) - len(stripped)
        flow += stripped.count("[") + stripped.count("{")
        worst = max(worst, 2 * indent + flow + stripped.count(": ") + 2)
        flow = max(0, flow - stripped.count("]") - stripped.count("}"))
    return worst <= MAX_NESTING


def _check_events(text: str) -> None:
    """YAML version and nesting depth, from the parser's event stream (which is not recursive)."""
    depth = 0
    try:
        for event in _yaml().parse(text):
            if isinstance(event, DocumentStartEvent) and event.version and tuple(event.version) != (1, 2):
                version = ".".join(str(part) for part in event.version)
                raise YamlProblem(
                    f"the document declares %YAML {version}; specs are read as YAML 1.2 only (in YAML 1.1, "
                    "NO, yes and on turn into booleans): remove the %YAML line", *_position(event.start_mark))
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_NESTING:
                    raise YamlProblem(f"nested more than {MAX_NESTING} levels deep (a lane spec needs about 8)",
                                      *_position(event.start_mark))
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except MarkedYAMLError as exc:
        raise _marked(exc) from None
    except YAMLError as exc:
        raise YamlProblem(str(exc).splitlines()[0]) from None


def _check_expansion(data: Any) -> None:
    """Count values as if every alias were written out; refuse bombs, self-containing aliases, deep expansions.

    The safe loader shares one object per anchor, so sizes are memoized per object: the walk costs the size
    of the document as written, not as expanded.
    """
    sizes: dict[int, tuple[int, int]] = {}   # id -> (values, height)
    visiting: set[int] = set()

    def measure(value: Any, depth: int) -> tuple[int, int]:
        if not isinstance(value, dict | list):
            return 1, 0
        key = id(value)
        if key in sizes:
            count, height = sizes[key]
        else:
            if key in visiting:
                raise YamlProblem("an alias (*name) refers to a collection that contains it (a recursive alias)")
            if depth > MAX_NESTING:
                raise YamlProblem(f"nested more than {MAX_NESTING} levels deep once aliases are expanded")
            visiting.add(key)
            children = list(value.values()) if isinstance(value, dict) else value
            count, height = 1 + (len(value) if isinstance(value, dict) else 0), 0
            for child in children:
                child_count, child_height = measure(child, depth + 1)
                count, height = count + child_count, max(height, child_height + 1)
                if count > MAX_VALUES:
                    raise YamlProblem(
                        f"the document expands to more than {MAX_VALUES:,} values once its aliases (*name) are "
                        "written out (an alias bomb?); use fewer aliases")
            visiting.discard(key)
            sizes[key] = count, height
        if depth + height > MAX_NESTING:
            raise YamlProblem(f"nested more than {MAX_NESTING} levels deep once aliases are expanded")
        return count, height

    measure(data, 0)


def _position(mark: Any) -> tuple[int | None, int | None]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (None, None)


_TAB_HINT = "tabs cannot indent YAML: use spaces"


def _marked(exc: MarkedYAMLError) -> YamlProblem:
    reason = exc.problem or exc.context or "unreadable"
    if "'\\t'" in reason:
        reason = f"{reason}; {_TAB_HINT}"
    elif exc.context and "single document" in exc.context:
        reason = "the file holds more than one YAML document (---); a spec is a single document"
    elif exc.problem and exc.context:
        context_line = f" from line {exc.context_mark.line + 1}" if exc.context_mark is not None else ""
        reason = f"{reason}, {exc.context}{context_line}"
    mark = exc.problem_mark or exc.context_mark
    return YamlProblem(f"not valid YAML: {reason}", *_position(mark))


def _duplicate_key(text: str, exc: DuplicateKeyError) -> YamlProblem:
    """The repeated key, its path, and the line of its first occurrence (from the node tree)."""
    line, column = _position(exc.problem_mark)
    found = re.search(r'found duplicate key "(.*?)" with value', exc.problem or "")
    key = found.group(1) if found else "?"
    try:
        root = _yaml().compose(text)
    except YAMLError:
        root = None
    for path, mapping in _mappings(root, ()):
        if exc.context_mark is not None and mapping.start_mark.line == exc.context_mark.line and \
                mapping.start_mark.column == exc.context_mark.column:
            lines = [k.start_mark.line + 1 for k, _ in mapping.value if isinstance(k, ScalarNode) and k.value == key]
            first = f" (first at line {lines[0]})" if len(lines) > 1 else ""
            return YamlProblem(f"duplicate key {key!r}{first}: a repeated key would silently replace the first",
                               line, column, path=(*path, key))
    return YamlProblem(f"duplicate key {key!r}: a repeated key would silently replace the first", line, column)


def _mappings(node: Node | None, path: tuple[PathPart, ...]):
    """Every mapping node with its path (bounded: nesting was checked; each node visited once)."""
    seen: set[int] = set()
    stack: list[tuple[Node | None, tuple[PathPart, ...]]] = [(node, path)]
    while stack:
        current, where = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, MappingNode):
            yield where, current
            stack.extend((value, (*where, key.value if isinstance(key, ScalarNode) else "?"))
                         for key, value in current.value)
        elif isinstance(current, SequenceNode):
            stack.extend((item, (*where, index)) for index, item in enumerate(current.value))
