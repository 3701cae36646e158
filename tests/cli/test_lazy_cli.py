"""`lane COMMAND` imports only the module that registers COMMAND, and parses exactly as the full parser does."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys

import pytest

from batchlane import cli


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _registered_by(module: str) -> tuple[str, ...]:
    parser = argparse.ArgumentParser()
    importlib.import_module(module).register(parser.add_subparsers())
    return tuple(_subparsers(parser))


@pytest.mark.parametrize("module", cli._COMMAND_MODULES)
def test_the_command_table_lists_what_each_module_registers(module):
    assert cli._COMMANDS_OF.get(module) == _registered_by(module), (
        f"update batchlane.cli._COMMANDS_OF for {module} (else `lane` imports every command module)")


ALL_COMMANDS = sorted(_subparsers(cli.build_parser()))


@pytest.mark.parametrize("command", ALL_COMMANDS)
def test_a_command_parser_built_alone_is_the_same_as_in_the_full_parser(command, capsys):
    alone, full = cli.build_parser(command), cli.build_parser()
    assert _subparsers(alone)[command].format_help() == _subparsers(full)[command].format_help()
    outcomes = []
    for parser in (alone, full):  # a usage error prints the same text and exits 2 either way
        with pytest.raises(SystemExit) as stopped:
            parser.parse_args([command, "--no-such-option"])
        outcomes.append((stopped.value.code, capsys.readouterr().err))
    assert outcomes[0] == outcomes[1] and outcomes[0][0] == 2


@pytest.mark.parametrize("argv", [["--help"], ["no-such-command"], [], ["--version"]])
def test_without_a_known_command_the_full_parser_answers(argv):
    assert cli._command_in(argv) in (None, "no-such-command")
    assert set(_subparsers(cli.build_parser(cli._command_in(argv)))) == set(ALL_COMMANDS)


def test_lane_run_does_not_import_the_other_commands():
    code = ("import json, sys\nfrom batchlane.cli import main\ntry:\n    main(['run', '--help'])\n"
            "except SystemExit:\n    pass\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith('batchlane'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "batchlane.cli.run_cmd" in loaded
    others = {name for name in cli._COMMAND_MODULES if name != "batchlane.cli.run_cmd"}
    assert not loaded & others
    assert "batchlane.consume" not in loaded
