"""The memory budget of one check: sizes as text, the default, and how the check's key sets share it.

A budget bounds what the check itself holds: key sets (uniqueness), the row group being read and
the temporaries of the rules. The interpreter and its libraries come on top (about 140 MB for
``lane check``). Unset means unbounded, except inside an AWS Lambda function, where the default (and
the ceiling of any bound given) is the function's memory (``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``) minus
headroom for the interpreter and the handler, so a check spills to disk instead of dying of OOM.

Light on purpose (no NumPy, no pyarrow): the spec model and the CLI parse sizes with it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

KIB, MIB, GIB, TIB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
UNITS = {
    "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
    "KIB": KIB, "MIB": MIB, "GIB": GIB, "TIB": TIB,
}
FLOOR = 64 * MIB  # below this one row group and a partition of keys cannot be held: refused
LAMBDA_MEMORY_ENV = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"  # MB, set by the Lambda runtime
LAMBDA_HEADROOM = 192 * MIB  # interpreter, libraries and the handler itself
LAMBDA_HEADROOM_SHARE = 0.25  # or a quarter of the function's memory, whichever is more
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$")


class BudgetError(ValueError):
    """A memory size that cannot be used; the message names the value and the reason."""


def parse_size(text: str | int, what: str | None = "max_memory") -> int:
    """Bytes of a size like ``256MB`` or ``2GiB`` (KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB of 1024).

    A bare number is refused (is ``256`` bytes or megabytes?), so is a size below ``FLOOR``. ``what``
    names the setting in the message (None: the caller names it, as argparse does).
    """
    where = f"{what}: " if what else ""
    if isinstance(text, bool):
        raise BudgetError(f"{where}{text!r} is not a size; write a number and a unit, e.g. 256MB or 2GiB")
    if isinstance(text, int):
        raise BudgetError(f"{where}{text} has no unit; write e.g. {text}MB or {text}MiB")
    match = _SIZE.match(text)
    if match is None:
        if re.match(r"^\s*\d+(?:\.\d+)?\s*$", text):
            raise BudgetError(f"{where}{text.strip()!r} has no unit; write e.g. {text.strip()}MB or {text.strip()}MiB")
        raise BudgetError(f"{where}{text!r} is not a size; write a number and a unit, e.g. 256MB or 2GiB "
                          f"(units: {', '.join(_unit_names())})")
    number, unit = match.groups()
    factor = UNITS.get(unit.upper())
    if factor is None:
        raise BudgetError(f"{where}{unit!r} in {text.strip()!r} is not a unit (units: {', '.join(_unit_names())})")
    size = math.floor(float(number) * factor)
    if size < FLOOR:
        raise BudgetError(f"{where}{text.strip()} is below the checker's floor of {describe(FLOOR)}: one row "
                          "group being read and one partition of keys must fit; give at least 64MiB")
    return size


def _unit_names() -> list[str]:
    return ["B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"]


def describe(size: int) -> str:
    """A size for people: 256MiB, 1.5GiB, 300000000B."""
    for factor, unit in ((TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if size >= factor:
            value = size / factor
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{size}B"


def default_limit(environ: Mapping[str, str] | None = None) -> int | None:
    """The budget when none is given: inside AWS Lambda the function's memory minus headroom, else unbounded."""
    environ = os.environ if environ is None else environ
    raw = environ.get(LAMBDA_MEMORY_ENV)
    if not raw:
        return None
    try:
        memory = int(raw) * MIB
    except ValueError:
        return None  # not a number: the runtime did not set it, so nothing to derive from
    headroom = max(LAMBDA_HEADROOM, int(memory * LAMBDA_HEADROOM_SHARE))
    return max(memory - headroom, FLOOR)


class MemoryBudget:
    """Bytes the check may hold, handed out to its key sets by reservation.

    A reader reserve (a quarter, at most 64 MiB) stays with the row group being read and the rules'
    temporaries; key sets reserve from the rest and spill to disk when a reservation is refused.
    """

    def __init__(self, limit: int) -> None:
        if limit < FLOOR:
            raise BudgetError(f"max_memory: {describe(limit)} is below the checker's floor of {describe(FLOOR)}")
        self.limit = limit
        self.reader_reserve = min(limit // 4, 64 * MIB)
        self.held = 0

    @property
    def key_limit(self) -> int:
        """What all key sets together may hold."""
        return self.limit - self.reader_reserve

    @property
    def free(self) -> int:
        return max(self.key_limit - self.held, 0)

    def reserve(self, size: int) -> bool:
        if size > self.free:
            return False
        self.held += size
        return True

    def release(self, size: int) -> None:
        self.held = max(self.held - size, 0)

    def __repr__(self) -> str:
        return f"MemoryBudget({describe(self.limit)}, held {describe(self.held)})"


_ACTIVE: ContextVar[MemoryBudget | None] = ContextVar("batchlane_check_budget", default=None)


def active() -> MemoryBudget | None:
    """The budget of the check running in this thread (None: unbounded)."""
    return _ACTIVE.get()


@contextmanager
def bounded(limit: int | None) -> Iterator[MemoryBudget | None]:
    """Run a check under ``limit`` bytes (None: unbounded)."""
    budget = MemoryBudget(limit) if limit is not None else None
    token = _ACTIVE.set(budget)
    try:
        yield budget
    finally:
        _ACTIVE.reset(token)
