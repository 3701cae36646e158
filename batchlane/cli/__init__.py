"""The `lane` command: parse arguments, call the core, shape output. No business logic here."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from batchlane import __version__

# Each module registers one or more subcommands: register(subparsers) sets args.func(args) -> exit code.
# The order here is the order of `lane --help` and of the README's command table.
_COMMAND_MODULES = [
    "batchlane.cli.author_cmd",     # init, validate, plan
    "batchlane.cli.run_cmd",        # run, rerun
    "batchlane.cli.inspect_cmd",    # status, show, verify, events, revoke
    "batchlane.cli.repair_cmd",     # repair
    "batchlane.cli.catalog_cmd",    # catalog, report
    "batchlane.cli.read_cmd",       # read
    "batchlane.cli.check_cmd",      # check
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # usage errors exit 2 with a hint
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lane",
        description="Run, certify, audit and read data products of a batch lane. "
        "Store: $LANE_HOME (default .lane/ in the working directory).",
    )
    parser.add_argument("--version", action="version", version=f"lane (batchlane) {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `lane events --json | head -1`: the reader left; stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
