"""`lane read`: export a certified product, fail closed."""

from __future__ import annotations

import argparse
from pathlib import Path

from batchlane.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_backend_options,
    error,
    guarded,
    open_backend,
    out,
)
from batchlane.consume import owning_lane
from batchlane.export import ExportError, export_format, write_table
from batchlane.gate import NotCertified, read_table


def register(subparsers: argparse._SubParsersAction) -> None:
    read = subparsers.add_parser(
        "read", help="export a certified product (refused unless a certification proves its bytes)",
        description="Writes the certified product to FILE (.parquet, .csv or .jsonl; JSON Lines keeps full float "
        "and timestamp precision). No PASS, no read: exits 1 with the reason when the output has no "
        "certification, was revoked, or its bytes changed since. A failed export leaves no file.",
    )
    read.add_argument("output", metavar="OUTPUT")
    read.add_argument("--out", required=True, metavar="FILE", help="destination: .parquet, .csv or .jsonl")
    read.add_argument("--lane", help="lane name (needed only when several lanes have this output)")
    add_backend_options(read)
    read.set_defaults(func=guarded(_read))


def _read(args: argparse.Namespace) -> int:
    destination = Path(args.out)
    try:
        export_format(destination)
    except ExportError:
        error(f"--out {args.out}: use a .parquet, .csv or .jsonl file name")
        return EXIT_USAGE
    backend = open_backend(args)
    try:
        lane = args.lane or owning_lane(backend, args.output)
        table = read_table(backend, lane, args.output)
    except NotCertified as exc:
        error(exc, label="refused:")
        return EXIT_FAILED
    try:
        write_table(table, destination)
    except ExportError as exc:
        error(exc)
        return EXIT_USAGE
    out.print(f"wrote {table.num_rows:,} certified rows of {lane}/{args.output} to {destination}")
    return EXIT_OK
