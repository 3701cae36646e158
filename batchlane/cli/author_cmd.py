"""`lane init`, `lane validate`, `lane plan`: start a lane, check it and preview a run, without running it.

None of them writes to a store or creates one."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.text import Text

from batchlane.cli.common import EXIT_OK, EXIT_USAGE, err, error, out, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    init = subparsers.add_parser(
        "init", help="create a small working lane (spec, transform, sample data, a test) in a new folder",
        description="Writes lane.yaml, transforms.py, data/*.csv, tests/test_transforms.py and README.md into DIR "
        "(created if missing). `lane validate` accepts the result and `lane run` certifies it as written. "
        "Exit 2 when DIR is not empty (nothing is overwritten).",
    )
    init.add_argument("dir", metavar="DIR", type=Path)
    init.add_argument("--lane", help="lane name (default: from DIR's name)")
    init.set_defaults(func=_init)

    validate = subparsers.add_parser(
        "validate", help="check a spec, its inputs, transforms and rules without running anything",
        description="Loads the spec, resolves every input (local paths and globs must name files in a supported "
        "format; s3:// objects are listed when AWS credentials are configured, otherwise reported as not "
        "checked), imports every transform and checks that its parameters take the input names, and checks each "
        "rule against its column's declared type. Lists every problem. Writes nothing. Exit 0 valid, 2 not.",
    )
    validate.add_argument("spec", metavar="SPEC", help="lane spec YAML")
    validate.add_argument("--json", action="store_true", help="print the report as JSON")
    validate.set_defaults(func=_validate)

    register_plan(subparsers)


def _init(args: argparse.Namespace) -> int:
    from batchlane.scaffold import ScaffoldError, scaffold

    try:
        written = scaffold(args.dir, args.lane)
    except ScaffoldError as exc:
        error(exc)
        return EXIT_USAGE
    out.print(f"created a lane in {args.dir}:")
    for path in written:
        out.print(f"  {path}")
    spec = Path(args.dir) / "lane.yaml"
    out.print(f"next: lane validate {spec} && lane plan {spec} && lane run {spec}")
    return EXIT_OK


def _validate(args: argparse.Namespace) -> int:
    from batchlane.validate import validate_spec

    report = validate_spec(args.spec)
    if args.json:
        print_json(report.to_json())
        return EXIT_OK if report.ok else EXIT_USAGE
    if report.ok:
        out.print(Text.assemble(("valid", "green"), f": {report.spec}: lane {report.lane}, {report.outputs} "
                                f"output(s), {report.inputs} input(s) ({report.files} file(s)), "
                                f"{report.transforms} transform(s)"))
    else:
        count = len(report.problems)
        err.print(Text.assemble(("invalid", "bold red"), f": {report.spec}: {count} problem{'s' if count != 1 else ''}"))
        for problem in report.problems:
            first, *rest = problem.message.splitlines() or [""]
            err.print(f"  - {problem.where}: {first}")
            for line in rest:
                err.print(f"    {line}")
    for note in report.notes:
        out.print(f"  note: {note.where}: {note.message}")
    return EXIT_OK if report.ok else EXIT_USAGE


def register_plan(subparsers: argparse._SubParsersAction) -> None:
    from batchlane.cli.common import OUTPUTS_HELP, add_backend_options, guarded, split_outputs

    plan = subparsers.add_parser(
        "plan", help="preview a run: which outputs would run, be memoized or be blocked, and why",
        description="For each output: resolve and hash its inputs, fingerprint its code and compare with the "
        "certification in force. Says `run` (and which input, spec part or code changed), `memoized` (same "
        "inputs, spec and code as a certified product whose bytes still match) or `blocked` (an input or the "
        "transform cannot be resolved). Writes nothing and creates no store. Exit 0, 2 for spec/usage errors.",
    )
    plan.add_argument("spec", metavar="SPEC", help="lane spec YAML")
    plan.add_argument("--outputs", type=split_outputs, metavar="A,B", help=f"outputs (default: all): {OUTPUTS_HELP}")
    plan.add_argument("--json", action="store_true", help="print the preview as JSON")
    add_backend_options(plan)
    plan.set_defaults(func=guarded(_plan))


def _plan(args: argparse.Namespace) -> int:
    from rich.table import Table

    from batchlane.cli.common import StoreMissingError, open_backend
    from batchlane.preview import preview
    from batchlane.selection import expand_selection
    from batchlane.spec import load_spec

    spec = load_spec(args.spec)
    outputs = expand_selection(spec, args.outputs) if args.outputs else None  # unknown names: exit 2
    try:
        backend = open_backend(args)
    except StoreMissingError:
        backend = None  # no store yet: nothing is certified, every output would run
    items = preview(spec, backend, outputs)
    if args.json:
        print_json({"lane": spec.lane, "spec": str(args.spec), "store": backend is not None,
                    "outputs": {item.output: item.to_json() for item in items}})
        return EXIT_OK
    table = Table(title=f"plan · lane {spec.lane}" + ("" if backend else " · no store yet"), title_justify="left")
    for column in ("output", "would", "why"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(item.output, _action(item.action), "; ".join(item.reasons))
    out.print(table)
    return EXIT_OK


def _action(action: str) -> Text:
    return Text(action, style={"run": "yellow", "memoized": "cyan", "blocked": "red"}.get(action, ""))
