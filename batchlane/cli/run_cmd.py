"""`lane run` and `lane rerun`."""

from __future__ import annotations

import argparse
import os
import sys
import time

from rich.live import Live
from rich.table import Table

from batchlane.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_backend_options,
    err,
    guarded,
    open_backend,
    out,
    print_json,
    split_outputs,
)
from batchlane.cli.render import closure_table, manifest_json, styled
from batchlane.plan import RunPlan, plan_run
from batchlane.runner import LocalRunner, OutputProgress, RunResult
from batchlane.spec import LaneSpec, load_spec


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run", help="run a lane: materialize, check and certify its outputs",
        description="Plan the lane, then for each output run the materializer as a subprocess, the checker and "
        "the gate (certify on PASS, reject on FAIL), and close the run with a RunManifest. Outputs whose inputs, "
        "spec and code match a certified product are skipped (memoized). Exit 0 when every output is certified, "
        "1 otherwise, 2 for usage or spec errors.",
    )
    run.add_argument("spec", help="lane spec YAML, e.g. examples/orders/lane.yaml")
    run.add_argument("--outputs", type=split_outputs, help="comma-separated outputs to run (default: all)")
    _common(run)
    run.set_defaults(func=guarded(_run))

    rerun = subparsers.add_parser(
        "rerun", help="rerun the failed (or chosen) outputs of a run, under the same run id",
        description="New attempts for just the failed outputs (--failed) or the named ones (--outputs); certified "
        "outputs and their receipts are not touched. The run is then re-closed with a new RunManifest.",
    )
    rerun.add_argument("run_id", metavar="RUN_ID")
    which = rerun.add_mutually_exclusive_group(required=True)
    which.add_argument("--failed", action="store_true", help="every output of the run that is not certified")
    which.add_argument("--outputs", type=split_outputs, help="comma-separated outputs of the run")
    rerun.add_argument("--spec", help="lane spec (default: the one the run was started with)")
    _common(rerun)
    rerun.set_defaults(func=guarded(_rerun))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=positive_int, default=os.cpu_count() or 1,
                        help="outputs processed in parallel (default: number of cores, %(default)s here)")
    parser.add_argument("--force", action="store_true", help="rerun even when memoized")
    parser.add_argument("--timeout", type=float, default=None, help="seconds before a materialize job is killed")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_backend_options(parser)


def _run(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    backend = open_backend(args)
    plan = plan_run(backend, spec, outputs=args.outputs, trigger="cli")
    return _execute(args, backend, spec, plan)


def _rerun(args: argparse.Namespace) -> int:
    backend = open_backend(args)
    run = backend.ledger.get_run(args.run_id)
    if run is None:
        err.print(f"[bold red]error:[/] no run {args.run_id!r} in the {backend.name} store")
        return EXIT_USAGE
    spec_path = args.spec or run.spec_path
    if not spec_path:
        err.print(f"[bold red]error:[/] run {args.run_id} does not record its spec: pass --spec")
        return EXIT_USAGE
    spec = load_spec(spec_path)
    if spec.digest() != run.spec_digest and not args.json:
        err.print(f"note: the spec changed since run {run.run_id} started; new attempts use the current spec")
    plan = plan_run(backend, spec, rerun_of=args.run_id, outputs=args.outputs, trigger="rerun")
    if not plan.outputs and not args.json:
        out.print(f"nothing to rerun: every output of run {plan.run_id} is certified")
    return _execute(args, backend, spec, plan)


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


class _Progress:
    """A live table on a terminal; one line per finished output otherwise."""

    FINAL = {"certified", "rejected", "failed", "memoized"}

    def __init__(self, plan: RunPlan, quiet: bool):
        self.plan, self.quiet = plan, quiet
        self.items: dict[str, OutputProgress] = {}
        self.live = None
        if not quiet and err.is_terminal:
            self.live = Live(self, console=err, refresh_per_second=4, transient=True)

    def _table(self) -> Table:
        table = Table(title=f"run {self.plan.run_id}", title_justify="left")
        for column in ("output", "phase", "attempt", "elapsed"):
            table.add_column(column)
        now = time.perf_counter()
        for item in self.items.values():
            elapsed = item.seconds if item.seconds is not None else (now - item.started if item.started else None)
            table.add_row(item.output, styled(item.phase), str(item.attempt or ""),
                          "" if elapsed is None else f"{elapsed:.1f}s")
        return table

    def __rich__(self) -> Table:  # re-rendered on every refresh, so elapsed times tick
        return self._table()

    def update(self, item: OutputProgress) -> None:
        self.items[item.output] = item
        if self.live is not None:
            self.live.refresh()
        elif not self.quiet and item.phase in self.FINAL:
            err.print(f"  {item.output}: {styled(item.phase)} (attempt {item.attempt})", highlight=False)

    def __enter__(self):
        if self.live is not None:
            self.live.__enter__()
        elif not self.quiet:
            err.print(f"run {self.plan.run_id}: {len(self.plan.outputs)} output(s) of lane {self.plan.lane}")
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)


def _execute(args: argparse.Namespace, backend, spec: LaneSpec, plan: RunPlan) -> int:
    progress = _Progress(plan, quiet=args.json)
    runner = LocalRunner(backend, spec, jobs=args.jobs, force=args.force, job_timeout=args.timeout,
                         on_update=progress.update)
    with progress:
        result = runner.execute(plan)
    _report(args, result)
    return EXIT_OK if result.ok else EXIT_FAILED


def _report(args: argparse.Namespace, result: RunResult) -> None:
    touched = {
        name: {"rows": p.rows, "seconds": None if p.seconds is None else round(p.seconds, 3)}
        for name, p in result.progress.items()
    }
    if args.json:
        print_json(manifest_json(result.manifest, touched) | {"rerun_outputs": result.plan.outputs})
        return
    manifest = result.manifest
    out.print(closure_table(f"run {manifest.run_id} · lane {manifest.lane}", manifest.outputs, touched))
    verdict = "[green]PASS: every output certified[/]" if manifest.verdict == "PASS" else \
        "[red]FAIL: not every output is certified[/] (see `lane show RUN_ID OUTPUT`; fix, then " \
        f"`lane rerun {manifest.run_id} --failed`)"
    out.print(f"{verdict}\nmanifest: receipts/{manifest.run_id}/manifest-{manifest.sequence:04d}.json")
    if not sys.stdout.isatty():
        out.print(f"run_id: {manifest.run_id}")
