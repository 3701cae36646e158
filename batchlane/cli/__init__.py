"""The `lane` command: parse arguments, call the core, shape output. No business logic here."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each module registers one or more subcommands: register(subparsers) sets args.func(args) -> exit code.
_COMMAND_MODULES = [
    "batchlane.cli.run_cmd",
    "batchlane.cli.inspect_cmd",
    "batchlane.cli.read_cmd",
    "batchlane.cli.check_cmd",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 2 with a hint
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lane",
        description="Run, certify, audit and read data products of a batch lane. "
        "Store: $LANE_HOME (default .lane/ in the working directory).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
