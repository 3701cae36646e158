"""`lane check`: certify one product's Parquet file(s) against a contract, outside any run.

Also runnable alone (``python -m batchlane.cli.check_cmd``): it imports only the
checker, the contract model and Rich, and the checker only when a check runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from batchlane.checks import CheckOutcome

EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
Check Parquet file(s) of one data product against a contract and print the
verdict with every rule's expected and observed values (and up to 5 failing
values or keys). The contract file holds the `contract:` block of a lane spec
(columns, unique, row_count), with or without the `contract:` key. References
to other products cannot be resolved outside a run, so a `references` rule
fails here with the reason. Rules of severity warn that fail are shown as WARN
and leave the verdict PASS ("PASS with N warnings", exit 0). Change rules
(row_count.max_change, not_null.max_fraction_change) compare with --baseline."""
EPILOG = """\
examples:
  lane check out/orders.parquet --contract contract.yaml
  lane check part-0.parquet part-1.parquet --contract contract.yaml --json
  lane check orders.parquet --contract contract.yaml --now 2026-11-02T00:00:00Z
  lane check big.parquet --contract contract.yaml --max-memory 256MB
  lane check new.parquet --contract contract.yaml --baseline old.parquet
  lane check new.parquet --contract contract.yaml --baseline last-check.json

exit status: 0 PASS, 1 FAIL, 2 usage error, missing/unreadable file or baseline, or invalid contract
(a PASS with warnings exits 0)"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check", help="check Parquet file(s) against a contract (PASS/FAIL with evidence)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _arguments(parser)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE.parquet",
                        help="the product's Parquet file(s); several files are checked as one product")
    parser.add_argument("--contract", required=True, type=Path, metavar="CONTRACT.yaml",
                        help="YAML contract: columns (type, not_null, unique, accepted_values, min, max, "
                        "max_age, regex, references), unique (composite keys), row_count, expect (SQL row "
                        "expressions), extra_columns; every rule also takes {value, severity, tolerances}")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON instead of a table")
    parser.add_argument("--now", type=_instant, metavar="ISO-8601",
                        help="judge max_age (freshness) as of this instant, e.g. 2026-11-02T00:00:00Z "
                        "(default: the current time; naive values are UTC)")
    parser.add_argument("--baseline", action="append", type=Path, metavar="FILE",
                        help="what change rules (row_count.max_change, not_null.max_fraction_change) compare with: "
                        "the previous version's Parquet file(s) (repeat --baseline for several), or the JSON of an "
                        "earlier `lane check --json`; without it they pass and say there was nothing to compare")
    parser.add_argument("--max-memory", type=_memory_size, metavar="SIZE",
                        help="keep the checker's working memory under SIZE (e.g. 256MB, 2GiB; at least 64MiB): "
                        "uniqueness and `references` spill to disk beyond it and a big row group is read in parts, "
                        "with the same evidence (default: unbounded; "
                        "inside AWS Lambda derived from the function's memory)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: every `lane` command builds this parser, only `lane check` needs the checker.
    from batchlane.baseline import BaselineError, file_baseline
    from batchlane.checks import CheckError, check_files
    from batchlane.spec import SpecError, load_contract

    # never split a path across lines; print messages literally (no markup: paths and values are data)
    errors = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
    try:
        contract = load_contract(args.contract)
        baseline = file_baseline(args.baseline, contract) if getattr(args, "baseline", None) else None
        outcome = check_files(args.files, contract, now=args.now, max_memory=getattr(args, "max_memory", None),
                              baseline=baseline)
    except (SpecError, CheckError, BaselineError) as exc:
        errors.print(Text.assemble(("error:", "bold red"), f" {exc}"))
        return EXIT_USAGE
    if args.json:
        sys.stdout.write(json.dumps(outcome.to_json(), indent=2) + "\n")
    else:
        _print_table(outcome)
    return EXIT_PASS if outcome.verdict == "PASS" else EXIT_FAIL


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)  # Python 3.11 reads a trailing Z as UTC
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 date/time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _memory_size(text: str) -> int:
    from batchlane.checking.budget import BudgetError, parse_size

    try:
        return parse_size(text, None)
    except BudgetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return ", ".join(f"{key}={_cell(item)}" for key, item in value.items())
    if isinstance(value, float):
        return repr(value)  # full precision: rounding could hide a bound violation
    return json.dumps(value, default=str)


def _print_table(outcome: CheckOutcome) -> None:
    # On a terminal Rich fits the window; piped output gets room for the evidence columns.
    # literal output: rules and values are data (a regex '^[a-z]+$' or a value '[dim]PAR' prints as written)
    console = Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 160)
    from batchlane.cli.ruletext import result_word, verdict_word

    warnings = [rule.label for rule in outcome.warnings]
    files = ", ".join(f"{f.uri} ({f.size:,} B, sha256 {f.sha256[:12]}…)" for f in outcome.files)
    console.print(Text.assemble(verdict_word(outcome.verdict, warnings, bold=True),
                                f"  {outcome.rows:,} rows  {outcome.seconds:.2f}s  {files}"))
    if warnings:
        console.print(Text.assemble(("warnings", "yellow"), " (severity warn, not blocking): ", ", ".join(warnings)))
    table = Table(title_justify="left")
    for name in ("rule", "column", "result", "expected", "observed", "failing", "sample / detail"):
        table.add_column(name, overflow="fold")
    for rule in outcome.rules:
        evidence = ", ".join(_cell(v) for v in rule.failing_sample)
        if rule.detail:
            evidence = f"{evidence}  ({rule.detail})" if evidence else rule.detail
        table.add_row(
            rule.rule, rule.column or "", result_word(rule),
            _cell(rule.expected), _cell(rule.observed), str(rule.failing_count) if rule.failing_count else "",
            evidence,
        )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lane check", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(parser)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
