"""`lane status`, `lane show`, `lane verify`, `lane events`, `lane revoke`: audit without reading code."""

from __future__ import annotations

import argparse
import json
import time

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
)
from batchlane.cli.render import closure_table, short, styled
from batchlane.evidence import load_receipt
from batchlane.receipts import CheckReceipt, GateReceipt, MaterializeReceipt, RunManifest, parse_manifest
from batchlane.state import run_closures
from batchlane.stores.base import NotFound
from batchlane.verify import verify_run


def register(subparsers: argparse._SubParsersAction) -> None:
    status = subparsers.add_parser("status", help="recent runs, or one run's outputs and their states",
                                   description="Without RUN_ID: the latest runs and their verdicts. With RUN_ID: "
                                   "each output's state, attempts and the certification in force.")
    status.add_argument("run_id", nargs="?", metavar="RUN_ID")
    status.add_argument("--limit", type=int, default=20, help="runs to list (default %(default)s)")
    status.add_argument("--json", action="store_true")
    add_backend_options(status)
    status.set_defaults(func=guarded(_status))

    show = subparsers.add_parser("show", help="a run's receipts in human form",
                                 description="Inputs with checksums, outputs, every rule's expected/observed, "
                                 "verdicts, timings. Exit 2 when the run or output is unknown.")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("output", nargs="?", metavar="OUTPUT")
    show.add_argument("--json", action="store_true")
    add_backend_options(show)
    show.set_defaults(func=guarded(_show))

    verify = subparsers.add_parser("verify", help="recompute a run's receipt chain and data checksums",
                                   description="Checks every receipt against the ledger digest, the prev-chain, "
                                   "the links check->materialize and gate->check, and the SHA-256 of every "
                                   "certified file. Exit 0 when all hold, 1 on any mismatch.")
    verify.add_argument("run_id", metavar="RUN_ID")
    verify.add_argument("--json", action="store_true")
    add_backend_options(verify)
    verify.set_defaults(func=guarded(_verify))

    events = subparsers.add_parser("events", help="the local event log streaming consumers follow",
                                   description="DataProductCertified, DataProductRejected and RunClosed events, "
                                   "oldest first. --follow keeps printing new events (Ctrl-C to stop).")
    events.add_argument("--follow", "-f", action="store_true")
    events.add_argument("--type", dest="types", action="append",
                        choices=["DataProductCertified", "DataProductRejected", "RunClosed"],
                        help="only these event types (repeatable)")
    events.add_argument("--json", action="store_true", help="one JSON object per line")
    events.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    events.add_argument("--max-seconds", type=float, default=None, help=argparse.SUPPRESS)
    add_backend_options(events)
    events.set_defaults(func=guarded(_events))

    revoke = subparsers.add_parser("revoke", help="withdraw an output's certification (reads are then refused)")
    revoke.add_argument("lane")
    revoke.add_argument("output")
    revoke.add_argument("--reason", required=True)
    add_backend_options(revoke)
    revoke.set_defaults(func=guarded(_revoke))


def _latest_manifest(backend, run_id: str) -> RunManifest | None:
    rows = [row for row in backend.ledger.receipts(run_id) if row.kind == "manifest"]
    return parse_manifest(backend.store.get(rows[-1].key)) if rows else None


def _status(args: argparse.Namespace) -> int:
    backend = open_backend(args)
    if args.run_id is None:
        runs = backend.ledger.list_runs(limit=args.limit)
        listing = []
        for run in runs:
            manifest = _latest_manifest(backend, run.run_id)
            listing.append({"run_id": run.run_id, "lane": run.lane, "trigger": run.trigger,
                            "started_at": run.started_at.isoformat(), "outputs": len(run.outputs),
                            "verdict": manifest.verdict if manifest else "OPEN",
                            "closures": manifest.sequence if manifest else 0})
        if args.json:
            print_json(listing)
            return EXIT_OK
        if not listing:
            out.print(f"no runs yet in the {backend.name} store; start one with `lane run SPEC`")
            return EXIT_OK
        table = Table(title="runs (newest first)", title_justify="left")
        for column in ("run id", "lane", "trigger", "started", "outputs", "verdict"):
            table.add_column(column)
        for item in listing:
            verdict = {"PASS": "[green]PASS[/]", "FAIL": "[red]FAIL[/]"}.get(item["verdict"], "[yellow]OPEN[/]")
            table.add_row(item["run_id"], item["lane"], item["trigger"], item["started_at"][:19],
                          str(item["outputs"]), verdict)
        out.print(table)
        return EXIT_OK
    run = backend.ledger.get_run(args.run_id)
    if run is None:
        err.print(f"[bold red]error:[/] no run {args.run_id!r} in the {backend.name} store")
        return EXIT_USAGE
    closures = run_closures(backend, run.run_id, run.outputs)
    pointers = {name: backend.ledger.current(run.lane, name) for name in run.outputs}
    if args.json:
        print_json({
            "run_id": run.run_id, "lane": run.lane, "trigger": run.trigger, "started_at": run.started_at,
            "verdict": "PASS" if all(c.state in ("certified", "memoized") for c in closures.values()) else "FAIL",
            "outputs": {n: c.model_dump(mode="json") for n, c in closures.items()},
            "certifications_in_force": {
                n: None if p is None else {"run_id": p.run_id, "attempt": p.attempt, "key": p.key, "revoked": p.revoked}
                for n, p in pointers.items()
            },
        })
        return EXIT_OK
    out.print(closure_table(f"run {run.run_id} · lane {run.lane} · trigger {run.trigger}", closures))
    for name, pointer in pointers.items():
        if pointer is None:
            out.print(f"  {name}: no certification in force")
        else:
            state = f"[red]revoked: {pointer.revoked}[/]" if pointer.revoked else "[green]in force[/]"
            out.print(f"  {name}: certification of run {pointer.run_id} attempt {pointer.attempt} {state}")
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    backend = open_backend(args)
    run = backend.ledger.get_run(args.run_id)
    if run is None:
        err.print(f"[bold red]error:[/] no run {args.run_id!r} in the {backend.name} store")
        return EXIT_USAGE
    if args.output is not None and args.output not in run.outputs:
        err.print(f"[bold red]error:[/] run {run.run_id} has no output {args.output!r}; outputs: {', '.join(run.outputs)}")
        return EXIT_USAGE
    rows = backend.ledger.receipts(run.run_id, args.output)
    if args.json:
        print_json({"run_id": run.run_id, "lane": run.lane,
                    "receipts": [{"key": row.key, "digest": row.digest, "receipt": json.loads(backend.store.get(row.key))}
                                 for row in rows]})
        return EXIT_OK
    out.print(f"[bold]run {run.run_id}[/] · lane {run.lane} · trigger {run.trigger} · started {run.started_at:%Y-%m-%d %H:%M:%S}Z")
    for row in rows:
        if row.kind == "manifest":
            continue
        receipt = load_receipt(backend, run.run_id, row.output, row.attempt, row.kind)
        _print_receipt(row.key, receipt)
    if args.output is None:
        manifest = _latest_manifest(backend, run.run_id)
        if manifest:
            out.print(f"\n[bold]manifest #{manifest.sequence}[/] verdict {manifest.verdict} closed {manifest.closed_at:%H:%M:%S}")
    return EXIT_OK


def _print_receipt(key: str, receipt) -> None:
    out.print(f"\n[bold]{receipt.output}[/] attempt {receipt.attempt} · {receipt.kind} · [dim]{key}[/]")
    if isinstance(receipt, MaterializeReceipt):
        seconds = (receipt.finished_at - receipt.started_at).total_seconds()
        out.print(f"  status {styled(receipt.status)} · job {receipt.job_id} · {seconds:.2f}s · code {receipt.code_fingerprint[:12]} · spec {receipt.spec_digest[:12]}")
        if receipt.memoized_from:
            out.print(f"  memoized: reuses {receipt.memoized_from}")
        for item in receipt.inputs:
            for file in item.files:
                out.print(f"  input  {item.name}: {file.uri}  {file.size:,} B  sha256 {file.sha256}")
        for file in receipt.outputs:
            out.print(f"  output {file.uri}  {file.size:,} B  {file.rows:,} rows  sha256 {file.sha256}")
            out.print(f"         schema {', '.join(f'{k}:{v}' for k, v in (file.schema_ or {}).items())}", highlight=False)
        if receipt.error:
            out.print(f"  [red]error:[/] {receipt.error}", highlight=False)
    elif isinstance(receipt, CheckReceipt):
        out.print(f"  verdict {'[green]PASS[/]' if receipt.verdict == 'PASS' else '[red]FAIL[/]'} · {receipt.rows} rows · {receipt.seconds:.3f}s")
        if receipt.rules:
            table = Table(show_edge=False, pad_edge=False)
            for column in ("rule", "column", "result", "expected", "observed", "failing sample"):
                table.add_column(column)
            for rule in receipt.rules:
                table.add_row(rule.rule, rule.column or "", "[green]pass[/]" if rule.passed else "[red]FAIL[/]",
                              short(json.dumps(rule.expected, default=str), 40),
                              short(json.dumps(rule.observed, default=str), 50),
                              short(json.dumps(rule.failing_sample, default=str), 40) if not rule.passed else "")
            out.print(table)
        if receipt.error:
            out.print(f"  [red]error:[/] {receipt.error}", highlight=False)
    elif isinstance(receipt, GateReceipt):
        style = "[green]certified[/]" if receipt.decision == "certified" else "[red]rejected[/]"
        out.print(f"  decision {style}" + (f" · {receipt.reason}" if receipt.reason else ""), highlight=False)
        for file in receipt.proof:
            out.print(f"  proof  {file.uri}  sha256 {file.sha256}")


def _verify(args: argparse.Namespace) -> int:
    backend = open_backend(args)
    report = verify_run(backend, args.run_id)
    if args.json:
        print_json({"run_id": report.run_id, "ok": report.ok, "receipts": report.receipts, "files": report.files,
                    "problems": report.problems})
    elif report.ok:
        out.print(f"[green]verified[/] run {report.run_id}: {report.receipts} receipts, chain intact, "
                  f"{report.files} certified file(s) match their SHA-256")
    else:
        out.print(f"[red]verification failed[/] for run {report.run_id}:")
        for problem in report.problems:
            out.print(f"  - {problem}", highlight=False)
    return EXIT_OK if report.ok else EXIT_FAILED


def _events(args: argparse.Namespace) -> int:
    backend = open_backend(args)
    reader = getattr(backend.bus, "read", None)
    if reader is None:
        err.print("the aws backend publishes to EventBridge: subscribe a queue to the lane's bus (see docs/aws.md)")
        return EXIT_USAGE
    offset, deadline = 0, None if args.max_seconds is None else time.monotonic() + args.max_seconds
    while True:
        events, offset = reader(offset)
        for event in events:
            if args.types and event["type"] not in args.types:
                continue
            if args.json:
                print(json.dumps(event, sort_keys=True), flush=True)
            else:
                subject = event.get("output") or f"run verdict {event.get('verdict')}"
                out.print(f"{event['time'][:19]}  {event['type']:<22} {event['lane']}/{subject}  run {event['run_id']}"
                          + (f" attempt {event['attempt']}" if event.get("attempt") else ""), highlight=False)
        if not args.follow or (deadline is not None and time.monotonic() > deadline):
            return EXIT_OK
        time.sleep(args.interval)


def _revoke(args: argparse.Namespace) -> int:
    backend = open_backend(args)
    try:
        pointer = backend.ledger.revoke(args.lane, args.output, args.reason)
    except NotFound as exc:
        err.print(f"[bold red]error:[/] {exc}")
        return EXIT_FAILED
    out.print(f"revoked {args.lane}/{args.output} (run {pointer.run_id} attempt {pointer.attempt}): reads now refused")
    return EXIT_OK
