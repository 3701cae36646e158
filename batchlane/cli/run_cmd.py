"""`lane run` and `lane rerun`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Literal, Self

from rich.live import Live
from rich.table import Table
from rich.text import Text

from batchlane.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    OUTPUTS_HELP,
    add_backend_options,
    err,
    guarded,
    open_backend,
    out,
    print_json,
    recorded_run,
    split_outputs,
)
from batchlane.cli.render import closure_table, manifest_json, output_facts, styled
from batchlane.forkserver import ForkServer, wanted
from batchlane.plan import RunPlan, plan_run
from batchlane.receipts import RunManifest, parse_manifest
from batchlane.runner import LocalRunner, OutputProgress, RunResult
from batchlane.spec import LaneSpec, load_spec
from batchlane.state import run_closures
from batchlane.stores.base import Backend

HEARTBEAT_SECONDS = 10.0


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run", help="run a lane: materialize, check and certify its outputs",
        description="Plan the lane, then for each output run the materializer as a subprocess, the checker and "
        "the gate (certify on PASS, reject on FAIL), and close the run with a RunManifest. Outputs whose inputs, "
        "spec and code match a certified product are skipped (memoized). Progress goes to stderr: a live table "
        "on a terminal, otherwise a line when each output starts and ends and a heartbeat every 10 s while one "
        "runs. Exit 0 when every output is certified, 1 otherwise, 2 for usage or spec errors.",
    )
    run.add_argument("spec", help="lane spec YAML, e.g. examples/orders/lane.yaml")
    run.add_argument("--outputs", type=split_outputs, metavar="A,B",
                     help=f"outputs to run (default: all): {OUTPUTS_HELP}")
    run.add_argument("--var", type=_variable, action="append", default=[], metavar="NAME=VALUE",
                     help="set a run parameter declared under `vars:` in the spec (repeatable); a transform with a "
                     "`params` argument receives them as a dict; they are part of the memo key and the receipts")
    _common(run)
    run.set_defaults(func=guarded(_run))

    rerun = subparsers.add_parser(
        "rerun", help="rerun the failed (or chosen) outputs of a run, under the same run id",
        description="New attempts for just the failed outputs (--failed) or the named ones (--outputs); certified "
        "outputs and their receipts are not touched. The run is then re-closed with a new RunManifest. With "
        "--failed and nothing to rerun (and the run already closed as it stands), nothing is written.",
    )
    rerun.add_argument("run_id", metavar="RUN_ID")
    which = rerun.add_mutually_exclusive_group(required=True)
    which.add_argument("--failed", action="store_true", help="every output of the run that is not certified")
    which.add_argument("--outputs", type=split_outputs, metavar="A,B",
                       help=f"outputs of the run to rerun, in graph order: {OUTPUTS_HELP}")
    rerun.add_argument("--spec", help="lane spec (default: the one the run was started with)")
    _common(rerun)
    rerun.set_defaults(func=guarded(_rerun))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=positive_int, metavar="N", default=os.cpu_count() or 1,
                        help="outputs processed in parallel (default: number of cores, %(default)s here)")
    parser.add_argument("--force", action="store_true", help="rerun even when memoized")
    parser.add_argument("--timeout", type=positive_float, metavar="SECONDS", default=None,
                        help="seconds before a materialize job is killed")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (no progress lines)")
    add_backend_options(parser)


def _variable(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not separator or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name.strip(), value


@contextmanager
def _warm_fork_server(args: argparse.Namespace) -> Iterator[ForkServer | Literal[False]]:
    """The run's fork server, launched before loading and planning so that its imports overlap them (on another
    core): a run's first job then forks from a warm zygote instead of paying a cold interpreter. `lane` launches
    it before its own imports (``args.fork_server``); otherwise it is launched here. Closed on the way out,
    whatever happens (a run with nothing to materialize only spent the start of an import)."""
    server = getattr(args, "fork_server", None)
    if server is None and not wanted():
        yield False
        return
    server = server or ForkServer()
    server.start(wait=False)
    try:
        yield server
    finally:
        server.close()


def _run(args: argparse.Namespace) -> int:
    with _warm_fork_server(args) as server:
        spec = load_spec(args.spec)
        variables = dict(args.var)
        spec.run_params(variables)  # an undeclared variable is a usage error before any store is created
        outputs = _selected(spec, args.outputs)  # so is an unknown output
        backend = open_backend(args, create=True)
        plan = plan_run(backend, spec, outputs=outputs, trigger="cli", variables=variables)
        return _execute(args, backend, spec, plan, rerun=False, fork_server=server)


def _rerun(args: argparse.Namespace) -> int:
    with _warm_fork_server(args) as server:
        return _rerun_with(args, server)


def _rerun_with(args: argparse.Namespace, server: ForkServer | Literal[False]) -> int:
    backend = open_backend(args)
    found = recorded_run(backend, args.run_id, args.spec)
    if found is None:
        return EXIT_USAGE
    run, spec = found
    if spec.digest() != run.spec_digest and not args.json:
        err.print(f"note: the spec changed since run {run.run_id} started; new attempts use the current spec")
    outputs = _selected(spec, args.outputs)
    plan = plan_run(backend, spec, rerun_of=args.run_id, outputs=outputs, trigger="rerun")
    if not plan.outputs:
        closed = _closed_as_it_stands(backend, run.run_id, run.outputs)
        if closed is not None:
            facts = output_facts(backend, run.run_id, closed.outputs)
            if args.json:
                print_json(manifest_json(closed, facts) | {"rerun_outputs": []})
            else:
                out.print(f"nothing to rerun: every output of run {run.run_id} is certified; the run is closed "
                          f"{closed.verdict} (manifest #{closed.sequence}), no new manifest written")
            return EXIT_OK if closed.verdict == "PASS" else EXIT_FAILED
        if not args.json:  # settled but never closed (or closed before a repair): closing is the repair
            out.print(f"nothing to rerun in run {run.run_id}; closing it as it stands")
    return _execute(args, backend, spec, plan, rerun=True, fork_server=server)


def _selected(spec: LaneSpec, selectors: list[str] | None) -> list[str] | None:
    """`--outputs` expanded over the lane's graph (+X, X+, +X+), in graph order; None for every output."""
    if not selectors:
        return None
    from batchlane.selection import expand_selection

    return expand_selection(spec, selectors)


def _closed_as_it_stands(backend: Backend, run_id: str, outputs: tuple[str, ...]) -> RunManifest | None:
    """The latest manifest, if it already records every output's current state; else None."""
    rows = [row for row in backend.ledger.receipts(run_id) if row.kind == "manifest"]
    if not rows:
        return None
    manifest = parse_manifest(backend.store.get(rows[-1].key))
    current = run_closures(backend, run_id, outputs)
    recorded = {name: (c.state, c.attempts) for name, c in manifest.outputs.items()}
    return manifest if recorded == {name: (c.state, c.attempts) for name, c in current.items()} else None


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {value}")
    return number


class Progress:
    """A live table on a terminal; otherwise one line when an output starts, one when it ends, and a
    heartbeat line every ``heartbeat`` seconds while it runs (CI logs are never silent for long)."""

    FINAL = frozenset({"certified", "rejected", "failed", "memoized", "blocked"})

    def __init__(self, plan: RunPlan, *, quiet: bool, terminal: bool | None = None,
                 heartbeat: float = HEARTBEAT_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.plan, self.quiet, self.heartbeat, self.clock = plan, quiet, heartbeat, clock
        self.items: dict[str, OutputProgress] = {}
        self.started: dict[str, float] = {}
        self.last_line: dict[str, float] = {}
        self.lock = threading.Lock()
        self.live: Live | None = None
        self._stop = threading.Event()
        self._beater: threading.Thread | None = None
        if not quiet and (err.is_terminal if terminal is None else terminal):
            self.live = Live(self, console=err, refresh_per_second=4, transient=True)

    def _table(self) -> Table:
        table = Table(title=f"run {self.plan.run_id}", title_justify="left")
        for column in ("output", "phase", "attempt", "elapsed"):
            table.add_column(column)
        now = self.clock()
        for item in list(self.items.values()):
            started = self.started.get(item.output)
            elapsed = item.seconds if item.seconds is not None else (now - started if started else None)
            table.add_row(item.output, styled(item.phase), str(item.attempt or ""),
                          "" if elapsed is None else f"{elapsed:.1f}s")
        return table

    def __rich__(self) -> Table:  # re-rendered on every refresh, so elapsed times tick
        return self._table()

    def _line(self, output: str, *parts: str | Text) -> None:
        err.print(Text.assemble("  ", output, ": ", *parts))

    def update(self, item: OutputProgress) -> None:
        with self.lock:
            self.items[item.output] = item
            now = self.clock()
            if item.phase != "queued" and item.output not in self.started:
                self.started[item.output] = now
                self.last_line[item.output] = now
                if self.live is None and not self.quiet:
                    self._line(item.output, "started")
            if self.live is not None:
                self.live.refresh()
            elif not self.quiet and item.phase in self.FINAL:
                self.last_line[item.output] = float("inf")  # no heartbeat after the end
                seconds = item.seconds if item.seconds is not None else now - self.started.get(item.output, now)
                details = [f"attempt {item.attempt}"] if item.attempt else []
                if item.rows is not None:
                    details.append(f"{item.rows:,} rows")
                details.append(f"{seconds:.1f}s")
                if item.failing_rules:
                    details.append("failing " + ", ".join(item.failing_rules))
                elif item.error:
                    details.append(item.error)
                self._line(item.output, styled(item.phase), " (" + "; ".join(details) + ")")

    def beat(self) -> None:
        """Print a heartbeat for every output that has run ``heartbeat`` seconds since its last line."""
        if self.live is not None or self.quiet:
            return
        with self.lock:
            now = self.clock()
            for name, item in self.items.items():
                if item.phase in self.FINAL or name not in self.started:
                    continue
                if now - self.last_line.get(name, now) >= self.heartbeat:
                    self.last_line[name] = now
                    attempt = f", attempt {item.attempt}" if item.attempt else ""
                    self._line(name, f"still {item.phase} after {now - self.started[name]:.0f}s{attempt}")

    def _beat_loop(self) -> None:
        while not self._stop.wait(min(1.0, self.heartbeat)):
            self.beat()

    def __enter__(self) -> Self:
        if self.live is not None:
            self.live.__enter__()
        elif not self.quiet:
            err.print(f"run {self.plan.run_id}: {len(self.plan.outputs)} output(s) of lane {self.plan.lane}")
            self._beater = threading.Thread(target=self._beat_loop, name="lane-heartbeat", daemon=True)
            self._beater.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        if self._beater is not None:
            self._beater.join()
        if self.live is not None:
            self.live.__exit__(kind, exc, trace)


def _execute(args: argparse.Namespace, backend: Backend, spec: LaneSpec, plan: RunPlan, *, rerun: bool,
             fork_server: ForkServer | Literal[False]) -> int:
    progress = Progress(plan, quiet=args.json)
    runner = LocalRunner(backend, spec, jobs=args.jobs, force=args.force, job_timeout=args.timeout,
                         on_update=progress.update, fork_server=fork_server)
    with progress:
        result = runner.execute(plan)
    _report(args, backend, result, rerun=rerun)
    if result.interrupted:  # 128 + the signal, as shells report it: 130 for Ctrl-C, 143 for SIGTERM
        err.print(f"run {plan.run_id} interrupted by {result.interrupted}: running jobs were stopped and recorded "
                  f"as failed; `lane rerun {plan.run_id} --failed` continues it", markup=False)
        return 128 + int(getattr(signal.Signals, result.interrupted, signal.SIGINT))
    return EXIT_OK if result.ok else EXIT_FAILED


def _report(args: argparse.Namespace, backend: Backend, result: RunResult, *, rerun: bool) -> None:
    manifest = result.manifest
    facts = output_facts(backend, manifest.run_id, manifest.outputs)
    if args.json:
        document = manifest_json(manifest, facts)
        if rerun:
            document["rerun_outputs"] = result.plan.outputs
        print_json(document)
        return
    out.print(closure_table(f"run {manifest.run_id} · lane {manifest.lane}", manifest.outputs, facts))
    warned = {name: closure.warnings for name, closure in manifest.outputs.items() if closure.warnings}
    if manifest.verdict == "PASS" and warned:
        count = sum(len(rules) for rules in warned.values())
        out.print(Text.assemble((f"PASS with {count} warning{'s' if count != 1 else ''}: every output certified",
                                 "yellow"), " (severity warn, not blocking: "
                                + "; ".join(f"{name}: {', '.join(rules)}" for name, rules in warned.items()) + ")"))
    elif manifest.verdict == "PASS":
        out.print(Text("PASS: every output certified", style="green"))
    else:
        out.print(Text.assemble(("FAIL: not every output is certified", "red"),
                                f" (see `lane show {manifest.run_id} OUTPUT`; fix, then "
                                f"`lane rerun {manifest.run_id} --failed`)"))
    out.print(f"manifest: receipts/{manifest.run_id}/manifest-{manifest.sequence:04d}.json")
    if not sys.stdout.isatty():
        out.print(f"run_id: {manifest.run_id}")
