"""`lane repair RUN`: finish what a crash interrupted in a run, then close it as it stands."""

from __future__ import annotations

import argparse

from rich.text import Text

from batchlane.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_backend_options,
    error,
    guarded,
    open_backend,
    out,
    print_json,
    recorded_run,
)
from batchlane.closing import close_run, repair_run
from batchlane.evidence import EvidenceError


def register(subparsers: argparse._SubParsersAction) -> None:
    repair = subparsers.add_parser(
        "repair", help="finish what a crash interrupted in a run (the ordinary steps only), then close it",
        description="Adopt receipts a crash left stored but not indexed (only where they fit their chain), record "
        "attempts whose job died as failed, check and decide recorded attempts, apply certifications whose pointer "
        "did not move, re-send lost events, and close the run as it stands. Never certifies anything the run would "
        "not have certified; `lane rerun RUN --failed` and the next `lane run` do the same before they start.",
    )
    repair.add_argument("run_id", metavar="RUN_ID")
    repair.add_argument("--spec", help="lane spec (default: the one the run was started with)")
    repair.add_argument("--abandon-running", action="store_true",
                        help="AWS: record unfinished attempts as failed (locally a dead job is detected by itself)")
    repair.add_argument("--json", action="store_true", help="machine-readable output")
    add_backend_options(repair)
    repair.set_defaults(func=guarded(_repair))


def _repair(args: argparse.Namespace) -> int:
    backend = open_backend(args)
    found = recorded_run(backend, args.run_id, args.spec)
    if found is None:
        return EXIT_USAGE
    _, spec = found
    try:
        done = repair_run(backend, spec, args.run_id, abandon_running=args.abandon_running)
    except EvidenceError as exc:  # evidence that does not fit its chain is refused, never adopted
        error(exc)
        return EXIT_FAILED
    manifest = close_run(backend, spec, args.run_id)
    if args.json:
        print_json({"run_id": args.run_id, "repaired": done, "manifest_sequence": manifest.sequence,
                    "verdict": manifest.verdict})
    else:
        for line in done or ["nothing to repair"]:
            out.print(Text(f"  {line}"))
        out.print(Text.assemble(f"run {args.run_id}: ", ("PASS" if manifest.verdict == "PASS" else "FAIL",
                                "green" if manifest.verdict == "PASS" else "red"), f" (manifest {manifest.sequence})"))
    return EXIT_OK
