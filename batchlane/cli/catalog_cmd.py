"""`lane catalog` and `lane report`: what is certified across lanes, and a run's evidence as one HTML file."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from rich.table import Table
from rich.text import Text

from batchlane.cli.common import EXIT_OK, EXIT_USAGE, add_backend_options, error, guarded, open_backend, out, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    catalog = subparsers.add_parser(
        "catalog", help="every certification in force across lanes",
        description="One line per lane and output with a certification: the run and attempt it comes from, rows, "
        "size, when it was certified, the consumers its spec declares, and whether it was revoked. Exit 0.",
    )
    catalog.add_argument("--lane", help="only this lane")
    catalog.add_argument("--json", action="store_true", help="print the catalog as JSON")
    add_backend_options(catalog)
    catalog.set_defaults(func=guarded(_catalog))

    report = subparsers.add_parser(
        "report", help="write a run's evidence as one self-contained HTML file",
        description="Outputs, verdicts, every rule's expected/observed/failing sample/detail, inputs with SHA-256, "
        "timings, the certification in force and the result of verifying the run. No scripts or external assets; "
        "printable. Exit 0 when written (whatever the run's verdict), 2 for an unknown run or an unwritable FILE.",
    )
    report.add_argument("run_id", metavar="RUN_ID")
    report.add_argument("--out", required=True, metavar="FILE.html", help="where to write the report")
    add_backend_options(report)
    report.set_defaults(func=guarded(_report))


def _catalog(args: argparse.Namespace) -> int:
    from batchlane.catalog import certifications

    backend = open_backend(args)
    entries = certifications(backend, args.lane)
    if args.json:
        print_json([entry.to_json() for entry in entries])
        return EXIT_OK
    if not entries:
        out.print("no certifications" + (f" in lane {args.lane}" if args.lane else "") + f" in the {backend.name} store")
        return EXIT_OK
    table = Table(title="certifications in force", title_justify="left")
    for column in ("lane", "output", "run", "attempt", "rows", "size", "certified at", "consumers", "status"):
        table.add_column(column, justify="right" if column in ("attempt", "rows", "size") else "left",
                         overflow="fold")
    for entry in entries:
        status = Text(entry.status, style="green" if entry.status == "in force" else "red")
        table.add_row(entry.lane, entry.output, entry.run_id, str(entry.attempt),
                      "" if entry.rows is None else f"{entry.rows:,}", "" if entry.size is None else _size(entry.size),
                      entry.certified_at, "?" if entry.consumers is None else ", ".join(entry.consumers), status)
    out.print(table)
    return EXIT_OK


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{size:,} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size:,} B"


def _report(args: argparse.Namespace) -> int:
    from batchlane.report_html import build_report

    destination = Path(args.out)
    if destination.suffix.lower() not in (".html", ".htm"):
        error(f"--out {args.out}: use a .html file name")
        return EXIT_USAGE
    backend = open_backend(args)
    try:
        document = build_report(backend, args.run_id)
    except LookupError as exc:
        error(exc)
        return EXIT_USAGE
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        fd, staged = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".partial")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(document)
        os.replace(staged, destination)
    except OSError as exc:
        error(f"cannot write {destination}: {exc}")
        return EXIT_USAGE
    out.print(f"wrote the evidence report of run {args.run_id} to {destination}")
    return EXIT_OK
