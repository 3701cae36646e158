"""The README's command table is generated from the parser: it cannot drift from the real options."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from batchlane.cli import build_parser
from batchlane.cli.doc import EXIT_CODES, current_block, generated_block, main, subcommands, synopsis

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_block_is_the_generated_one():
    block = current_block(README.read_text(encoding="utf-8"))
    assert block is not None, "README lacks the generated command table markers"
    assert block == generated_block(), "run: python -m batchlane.cli.doc --write README.md"


def test_readme_table_lists_every_subcommand_and_option():
    """Parse the README table back and compare it with the parser (independent of the generator)."""
    rows = re.findall(r"^\| `lane (\w+)([^`]*)` \|", README.read_text(encoding="utf-8"), flags=re.MULTILINE)
    documented = {name: rest for name, rest in rows}
    parsers = subcommands(build_parser())
    assert set(documented) == set(parsers)
    for name, parser in parsers.items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            if action.dest in ("backend", "home"):
                continue
            if action.option_strings:
                assert max(action.option_strings, key=len) in documented[name], (name, action.option_strings)
            else:
                assert (action.metavar or action.dest.upper()) in documented[name], (name, action.dest)


def test_every_subcommand_documents_its_exit_codes():
    assert set(EXIT_CODES) >= set(subcommands(build_parser()))


def test_synopsis_shapes():
    parser = argparse.ArgumentParser()
    parser.add_argument("spec", metavar="SPEC")
    parser.add_argument("extra", nargs="?", metavar="X")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--a", action="store_true")
    group.add_argument("--b", metavar="B")
    parser.add_argument("--must", required=True, metavar="M")
    parser.add_argument("--hidden", help=argparse.SUPPRESS)
    assert synopsis("x", parser) == "lane x SPEC [X] (--a | --b B) --must M"


def test_doc_tool_check_and_write(tmp_path):
    stale = tmp_path / "README.md"
    stale.write_text("intro\n" + generated_block().replace("`lane run", "`lane ran") + "\nrest\n")
    assert main([str(stale), "--check"]) == 1
    assert main([str(stale), "--write"]) == 0
    assert main([str(stale), "--check"]) == 0
    assert stale.read_text().startswith("intro\n") and stale.read_text().endswith("\nrest\n")
    (tmp_path / "plain.md").write_text("no markers\n")
    assert main([str(tmp_path / "plain.md"), "--check"]) == 2
