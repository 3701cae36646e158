"""What every `lane` subcommand shares: backend options, consoles, error-to-exit-code mapping."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console

from batchlane.backends import BackendConfigError, backend_from_env, local_backend
from batchlane.inputs import InputError
from batchlane.plan import PlanError
from batchlane.spec import SpecError
from batchlane.stores.base import Backend

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

def _console(stderr: bool = False) -> Console:
    """On a terminal Rich sizes itself; piped output gets a wide page so tables do not wrap ids."""
    probe = Console(stderr=stderr)
    return probe if probe.is_terminal else Console(stderr=stderr, width=200)


out = _console()
err = _console(stderr=True)


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("store")
    group.add_argument("--backend", choices=["local", "aws"], default=None,
                       help="local folder + SQLite (default), or aws (LANE_BUCKET, LANE_TABLE, LANE_EVENT_BUS)")
    group.add_argument("--home", default=None, help="local store folder (default $LANE_HOME or ./.lane)")


def open_backend(args: argparse.Namespace) -> Backend:
    if getattr(args, "home", None) and (args.backend or "local") == "local":
        return local_backend(args.home)
    return backend_from_env(args.backend)


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")


def split_outputs(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("--outputs needs at least one output name")
    return names


def guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn known errors into a one-line message and the documented exit code."""

    @functools.wraps(command)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (SpecError, PlanError, BackendConfigError, InputError) as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
            return EXIT_USAGE
        except KeyboardInterrupt:
            err.print("interrupted: nothing was certified by the interrupted step")
            return 130

    return wrapper
