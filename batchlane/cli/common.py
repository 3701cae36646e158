"""What every `lane` subcommand shares: backend options, consoles, error-to-exit-code mapping.

Evidence is data, and data is untrusted: both consoles print text literally (no Rich markup, no
highlighting), so a rule `regex: '^[a-z]+$'` or a value `[dim]PAR` prints as written. Styling is
applied with ``rich.text.Text`` objects only (see ``batchlane.cli.render``).
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.text import Text

from batchlane.backends import BackendConfigError, backend_from_env, lane_home, local_backend
from batchlane.inputs import InputError
from batchlane.plan import PlanError
from batchlane.spec import SpecError
from batchlane.stores.base import Backend

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
LEDGER_FILE = "ledger.sqlite"


class StoreMissingError(LookupError):
    """A command that only reads was pointed at a local store that does not exist."""


def _console(stderr: bool = False) -> Console:
    """On a terminal Rich sizes itself; piped output gets a wide page so tables do not wrap ids."""
    probe = Console(stderr=stderr, markup=False, highlight=False)
    return probe if probe.is_terminal else Console(stderr=stderr, width=200, markup=False, highlight=False)


out = _console()
err = _console(stderr=True)


def error(message: object, label: str = "error:") -> None:
    """One literal error line on stderr, with a red label."""
    err.print(Text.assemble((label, "bold red"), " ", str(message)))


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("store")
    group.add_argument("--backend", choices=["local", "aws"], default=None,
                       help="local folder + SQLite (default), or aws (LANE_BUCKET, LANE_TABLE, LANE_EVENT_BUS)")
    group.add_argument("--home", default=None, help="local store folder (default $LANE_HOME or ./.lane)")


def open_backend(args: argparse.Namespace, *, create: bool = False) -> Backend:
    """The store the command works on. Only `lane run` creates a local store (create=True); every other
    command refuses a store that does not exist instead of leaving an empty one behind."""
    import os

    name = getattr(args, "backend", None) or os.environ.get("LANE_BACKEND", "local")
    if name == "local":
        root = lane_home(getattr(args, "home", None))
        if not create and not (root / LEDGER_FILE).is_file():
            raise StoreMissingError(
                f"no lane store at {root} (set LANE_HOME or pass --home; `lane run SPEC` creates one)"
            )
        return local_backend(root)
    return backend_from_env(name)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, the same shape pydantic gives receipt times."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")


def split_outputs(value: str | None) -> list[str] | None:
    """`--outputs` as selector texts (`a,+b,c+`, commas or spaces); the command expands them against the spec
    with ``batchlane.selection.expand_selection``."""
    if value is None:
        return None
    names = [name for name in re.split(r"[,\s]+", value) if name]
    if not names:
        raise argparse.ArgumentTypeError("--outputs needs at least one output name")
    return names


OUTPUTS_HELP = ("comma-separated outputs; +X adds everything X reads or references (upstream), X+ everything "
                "that reads or references X (downstream), +X+ both; a number limits the depth (2+X, X+1)")


def guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn known errors into a one-line message and the documented exit code."""

    @functools.wraps(command)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (SpecError, PlanError, BackendConfigError, InputError, StoreMissingError) as exc:
            error(exc)
            return EXIT_USAGE
        except KeyboardInterrupt:
            err.print("interrupted: nothing was certified by the interrupted step")
            return EXIT_INTERRUPTED

    return wrapper


def recorded_run(backend: Backend, run_id: str, spec_override: str | None) -> tuple[Any, Any] | None:
    """The run and the spec it was started with (or --spec); None after printing why not (exit 2)."""
    from batchlane.spec import load_spec

    run = backend.ledger.get_run(run_id)
    if run is None:
        error(f"no run {run_id!r} in the {backend.name} store")
        return None
    spec_path = spec_override or run.spec_path
    if not spec_path:
        error(f"run {run_id} does not record its spec: pass --spec")
        return None
    return run, load_spec(spec_path)

