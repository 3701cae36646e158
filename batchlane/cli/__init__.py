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
    "batchlane.cli.lineage_cmd",    # lineage
    "batchlane.cli.read_cmd",       # read
    "batchlane.cli.check_cmd",      # check
]

# The subcommands each module registers, so `lane COMMAND ...` imports only the module it needs (start-up time:
# a memoized `lane run` is mostly imports). A module missing here, or a command it does not list, still works:
# the parser is then built from every module (tests/cli/test_lazy_cli.py checks this table is complete).
_COMMANDS_OF = {
    "batchlane.cli.author_cmd": ("init", "validate", "plan"),
    "batchlane.cli.run_cmd": ("run", "rerun"),
    "batchlane.cli.inspect_cmd": ("status", "show", "verify", "events", "revoke"),
    "batchlane.cli.repair_cmd": ("repair",),
    "batchlane.cli.catalog_cmd": ("catalog", "report"),
    "batchlane.cli.lineage_cmd": ("lineage",),
    "batchlane.cli.read_cmd": ("read",),
    "batchlane.cli.check_cmd": ("check",),
}

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # usage errors exit 2 with a hint
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _command_in(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not an option), if any."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `lane` parser; with ``command``, only the module that registers it is imported (same parse, faster)."""
    modules = _COMMAND_MODULES
    if command is not None:
        owners = [name for name in _COMMAND_MODULES if command in _COMMANDS_OF.get(name, ())]
        modules = owners[:1] or _COMMAND_MODULES
    parser = _Parser(
        prog="lane",
        description="Run, certify, audit and read data products of a batch lane. "
        "Store: $LANE_HOME (default .lane/ in the working directory).",
    )
    parser.add_argument("--version", action="version", version=f"lane (batchlane) {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


# Commands that start jobs: their fork server (batchlane.forkserver) is launched before anything else is imported.
_JOB_COMMANDS = ("run", "rerun")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_in(argv)
    server = None
    if command in _JOB_COMMANDS and not {"-h", "--help"} & set(argv):
        from batchlane.forkserver import prelaunch

        server = prelaunch()
    try:
        parser = build_parser(command)
        args = parser.parse_args(argv)
        if server is not None:
            args.fork_server = server  # handed to the command, which may use it; closed here in any case
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `lane events --json | head -1`: the reader left; stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    finally:
        if server is not None:
            server.close()


if __name__ == "__main__":
    sys.exit(main())
