"""`lane status`, `lane show`, `lane verify`, `lane events`, `lane revoke`: audit without reading code."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from rich.table import Table
from rich.text import Text

from batchlane.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    add_backend_options,
    error,
    guarded,
    iso,
    open_backend,
    out,
    print_json,
)
from batchlane.cli.render import closure_table, evidence_text, output_facts, outputs_json, styled
from batchlane.evidence import load_receipt
from batchlane.gate import RevokeError, revoke
from batchlane.receipts import (
    BeginReceipt,
    CheckReceipt,
    GateReceipt,
    MaterializeReceipt,
    PartitionCheck,
    PinnedProduct,
    RunManifest,
    parse_manifest,
)
from batchlane.state import SETTLED, run_closures
from batchlane.stores.base import Backend, NotFound, RunRecord
from batchlane.verify import verify_run


def register(subparsers: argparse._SubParsersAction) -> None:
    status = subparsers.add_parser("status", help="recent runs, or one run's outputs and their states",
                                   description="Without RUN_ID: the latest runs and their verdicts. With RUN_ID: "
                                   "each output's state, attempts, rows, seconds and the certification in force. "
                                   "Exit 2 when the run or the store is unknown.")
    status.add_argument("run_id", nargs="?", metavar="RUN_ID")
    status.add_argument("--limit", type=int, metavar="N", default=20, help="runs to list (default %(default)s)")
    status.add_argument("--json", action="store_true", help="print the result as JSON")
    add_backend_options(status)
    status.set_defaults(func=guarded(_status))

    show = subparsers.add_parser("show", help="a run's receipts in human form",
                                 description="Inputs with checksums, outputs, every rule's expected, observed, "
                                 "failing sample and detail, verdicts, timings. Exit 2 when the run or output "
                                 "is unknown.")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("output", nargs="?", metavar="OUTPUT")
    show.add_argument("--json", action="store_true", help="print the receipts as JSON")
    add_backend_options(show)
    show.set_defaults(func=guarded(_show))

    verify = subparsers.add_parser("verify", help="recompute a run's receipt chain and data checksums",
                                   description="Checks every receipt against the ledger digest, the prev-chain, "
                                   "the links check->materialize and gate->check, and the SHA-256 of every "
                                   "certified file. Exit 0 when all hold, 1 on any mismatch, 2 for an unknown run.")
    verify.add_argument("run_id", metavar="RUN_ID")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    add_backend_options(verify)
    verify.set_defaults(func=guarded(_verify))

    events = subparsers.add_parser("events", help="the local event log streaming consumers follow",
                                   description="DataProductCertified, DataProductRejected and RunClosed events, "
                                   "oldest first. --follow keeps printing new events (Ctrl-C to stop, exit 130).")
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    events.add_argument("--type", dest="types", action="append", metavar="TYPE",
                        choices=["DataProductCertified", "DataProductRejected", "DataProductRevoked",
                                 "DataProductBlocked", "RunClosed"],
                        help="only events of this type (repeatable): DataProductCertified, DataProductRejected, "
                        "DataProductRevoked, DataProductBlocked, RunClosed")
    events.add_argument("--json", action="store_true", help="one JSON object per line")
    events.add_argument("--consumer", metavar="NAME", default=None,
                        help="be consumer NAME: its certified versions and revocations, each acked once printed "
                        "(aws: LANE_CONSUMER_QUEUE_URL)")
    events.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    events.add_argument("--max-seconds", type=float, default=None, help=argparse.SUPPRESS)
    add_backend_options(events)
    events.set_defaults(func=guarded(_events))

    revoke = subparsers.add_parser("revoke", help="withdraw an output's certification (reads are then refused)",
                                   description="Marks the certification in force for LANE/OUTPUT revoked: reads are "
                                   "refused until a new certification. Exit 1 when there is none.")
    revoke.add_argument("lane", metavar="LANE")
    revoke.add_argument("output", metavar="OUTPUT")
    revoke.add_argument("--reason", required=True, help="why (kept with the certification)")
    add_backend_options(revoke)
    revoke.set_defaults(func=guarded(_revoke))


def latest_manifest(backend: Backend, run_id: str) -> RunManifest | None:
    rows = [row for row in backend.ledger.receipts(run_id) if row.kind == "manifest"]
    return parse_manifest(backend.store.get(rows[-1].key)) if rows else None


def known_run(backend: Backend, run_id: str) -> RunRecord | None:
    """The run, or None after printing the one error every command gives for an unknown run."""
    run = backend.ledger.get_run(run_id)
    if run is None:
        error(f"no run {run_id!r} in the {backend.name} store")
    return run


def _status(args: argparse.Namespace) -> int:
    backend = open_backend(args)
    if args.run_id is None:
        return _status_list(backend, args)
    run = known_run(backend, args.run_id)
    if run is None:
        return EXIT_USAGE
    closures = run_closures(backend, run.run_id, run.outputs)
    facts = output_facts(backend, run.run_id, closures)
    pointers = {name: backend.ledger.current(run.lane, name) for name in run.outputs}
    manifest = latest_manifest(backend, run.run_id)
    if args.json:
        print_json({
            "run_id": run.run_id, "lane": run.lane, "trigger": run.trigger, "started_at": iso(run.started_at),
            "verdict": "PASS" if all(c.state in SETTLED for c in closures.values()) else "FAIL",
            "manifest_sequence": manifest.sequence if manifest else 0,
            "outputs": outputs_json(closures, facts),
            "certifications_in_force": {
                name: None if p is None else {
                    "run_id": p.run_id, "attempt": p.attempt, "key": p.key, "revoked": p.revoked,
                    "certified_at": iso(p.certified_at),
                }
                for name, p in pointers.items()
            },
        })
        return EXIT_OK
    out.print(f"run {run.run_id} · lane {run.lane} · trigger {run.trigger} · started {iso(run.started_at)}")
    out.print(closure_table("", closures, facts))
    for name, pointer in pointers.items():
        if pointer is None:
            out.print(f"  {name}: no certification in force")
        else:
            state = Text(f"revoked: {pointer.revoked}", style="red") if pointer.revoked else Text("in force", "green")
            out.print(Text.assemble(f"  {name}: certification of run {pointer.run_id} attempt {pointer.attempt} ",
                                    state))
    return EXIT_OK


def _status_list(backend: Backend, args: argparse.Namespace) -> int:
    listing: list[dict[str, Any]] = []
    for run in backend.ledger.list_runs(limit=args.limit):
        manifest = latest_manifest(backend, run.run_id)
        listing.append({"run_id": run.run_id, "lane": run.lane, "trigger": run.trigger,
                        "started_at": iso(run.started_at), "outputs": len(run.outputs),
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
        table.add_row(item["run_id"], item["lane"], item["trigger"], item["started_at"],
                      str(item["outputs"]), styled(item["verdict"]))
    out.print(table)
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    backend = open_backend(args)
    run = known_run(backend, args.run_id)
    if run is None:
        return EXIT_USAGE
    if args.output is not None and args.output not in run.outputs:
        error(f"run {run.run_id} has no output {args.output!r}; outputs: {', '.join(run.outputs)}")
        return EXIT_USAGE
    rows = backend.ledger.receipts(run.run_id, args.output)
    if args.json:
        print_json({"run_id": run.run_id, "lane": run.lane,
                    "receipts": [{"key": row.key, "digest": row.digest, "receipt": json.loads(backend.store.get(row.key))}
                                 for row in rows]})
        return EXIT_OK
    out.print(Text.assemble((f"run {run.run_id}", "bold"),
                            f" · lane {run.lane} · trigger {run.trigger} · started {iso(run.started_at)}"))
    for row in rows:
        if row.kind == "manifest":
            continue
        receipt = load_receipt(backend, run.run_id, row.output, row.attempt, row.kind)
        if receipt is not None:
            print_receipt(row.key, receipt, backend)
    if args.output is None:
        manifest = latest_manifest(backend, run.run_id)
        if manifest:
            out.print(Text.assemble("\n", (f"manifest #{manifest.sequence}", "bold"), " verdict ",
                                    styled(manifest.verdict), f" closed {iso(manifest.closed_at)}"))
    return EXIT_OK


def _rows(rows: int | None) -> str:
    return "rows unknown" if rows is None else f"{rows:,} rows"


def print_receipt(key: str, receipt: BeginReceipt | MaterializeReceipt | CheckReceipt | GateReceipt,
                  backend: Backend | None = None) -> None:
    out.print(Text.assemble("\n", (receipt.output, "bold"), f" attempt {receipt.attempt} · {receipt.kind} · ",
                            (key, "dim")))
    if isinstance(receipt, BeginReceipt):
        out.print(Text.assemble(f"  begun · code {receipt.code_fingerprint[:12]} · spec {receipt.spec_digest[:12]}"
                                f" · memo key {receipt.memo_key[:12]}"))
        if receipt.memo_note:
            out.print(Text.assemble("  not memoized: ", receipt.memo_note))
        for item in receipt.inputs:
            if item.product is not None:
                out.print(Text.assemble(f"  pinned {item.name}: ", pinned_product_text(item.product, item.pattern)))
            for file in item.files:
                out.print(Text.assemble(f"  pinned {item.name}: ", file.uri, f"  {file.size:,} B  sha256 {file.sha256}"))
        return
    if isinstance(receipt, MaterializeReceipt):
        seconds = (receipt.finished_at - receipt.started_at).total_seconds()
        out.print(Text.assemble("  status ", styled(receipt.status),
                                f" · job {receipt.job_id} · {seconds:.2f}s · code {receipt.code_fingerprint[:12]}"
                                f" · spec {receipt.spec_digest[:12]}"))
        if receipt.memoized_from:
            out.print(f"  memoized: reuses {receipt.memoized_from}")
        if receipt.diagnostics and backend is not None:
            from batchlane.report_html import diagnostics_of

            out.print(Text(f"  diagnostics {receipt.diagnostics} (sha256 {receipt.diagnostics_sha256}):"))
            for line in (diagnostics_of(backend, receipt) or "").splitlines():
                out.print(Text(f"    {line}"))
        for item in receipt.inputs:
            if item.product is not None:
                out.print(Text.assemble(f"  input  {item.name}: ", pinned_product_text(item.product, item.pattern)))
            for file in item.files:
                out.print(f"  input  {item.name}: {file.uri}  {file.size:,} B  sha256 {file.sha256}")
        for file in receipt.outputs:
            out.print(f"  output {file.uri}  {file.size:,} B  {_rows(file.rows)}  sha256 {file.sha256}")
            out.print(f"         schema {', '.join(f'{k}:{v}' for k, v in (file.schema_ or {}).items())}")
        if receipt.partitions:
            out.print(f"  partitions {len(receipt.partitions)}"
                      + (f" · merkle root {receipt.partitions_root}" if receipt.partitions_root else ""))
        for part in receipt.partitions:
            facts = f"  {_rows(part.file.rows)}  sha256 {part.file.sha256}" if part.file else ""
            origin = f"  from {part.reused_from}" if part.reused_from else ""
            out.print(Text.assemble(f"  partition {part.name} #{part.index} ", styled(part.status), facts, origin,
                                    (f"  {part.error}", "red") if part.error else ""))
        if receipt.error:
            out.print(Text.assemble(("  error: ", "red"), receipt.error))
    elif isinstance(receipt, CheckReceipt):
        from batchlane.cli.ruletext import verdict_word

        warnings = [rule.label for rule in receipt.warnings]
        out.print(Text.assemble("  verdict ", verdict_word(receipt.verdict, warnings),
                                f" · {_rows(receipt.rows)} · {receipt.seconds:.3f}s"))
        if warnings:
            out.print(Text.assemble(("  warnings", "yellow"), " (severity warn, not blocking): ", ", ".join(warnings)))
        if receipt.partition_check is not None:
            out.print(partition_check_text(receipt.partition_check))
        if receipt.rules:
            out.print(rules_table(receipt))
        if receipt.error:
            out.print(Text.assemble(("  error: ", "red"), receipt.error))
    else:
        out.print(Text.assemble("  decision ", styled(receipt.decision),
                                f" · {receipt.reason}" if receipt.reason else ""))
        for file in receipt.proof:
            out.print(f"  proof  {file.uri}  {_rows(file.rows)}  sha256 {file.sha256}")


def partition_check_text(how: PartitionCheck) -> Text:
    """Which partitions a check read and whose evidence it reused (a partitioned product)."""
    read = f"read {len(how.read)} partition(s)" + (f" ({len(how.keys_only)} for keys only)" if how.keys_only else "")
    reused = (f", reused the evidence of {len(how.reused)} from {how.reused_from}" if how.reused else "")
    why = f"; read in full: {'; '.join(how.full_read)}" if how.full_read else ""
    return Text(f"  partitions: {read}{reused}{why}")


def pinned_product_text(pinned: PinnedProduct, pattern: str) -> Text:
    """A product input as pinned: the certification (run, attempt, receipt digest) the attempt read."""
    return Text(f"{pattern} certified run {pinned.run_id} attempt {pinned.attempt} "
                f"(certification digest {pinned.certification_digest[:12]})")


def rules_table(receipt: CheckReceipt) -> Table:
    """Every rule with its expected, observed, failing count, failing sample and detail; nothing cut off."""
    table = Table(show_edge=False, pad_edge=False)
    for column in ("rule", "column", "result", "expected", "observed", "failing", "failing sample", "detail"):
        table.add_column(column, overflow="fold")
    from batchlane.cli.ruletext import result_word

    for rule in receipt.rules:
        table.add_row(
            rule.rule, rule.column or "", result_word(rule),
            evidence_text(rule.expected), evidence_text(rule.observed),
            str(rule.failing_count) if rule.failing_count else "",
            ", ".join(evidence_text(value) for value in rule.failing_sample), rule.detail or "",
        )
    return table


def _verify(args: argparse.Namespace) -> int:
    backend = open_backend(args)
    if known_run(backend, args.run_id) is None:
        return EXIT_USAGE
    report = verify_run(backend, args.run_id)
    if args.json:
        print_json({"run_id": report.run_id, "ok": report.ok, "receipts": report.receipts, "files": report.files,
                    "problems": report.problems})
    elif report.ok:
        out.print(Text.assemble(("verified", "green"), f" run {report.run_id}: {report.receipts} receipts, chain "
                                f"intact, {report.files} certified file(s) match their SHA-256"))
    else:
        out.print(Text.assemble(("verification failed", "red"), f" for run {report.run_id}:"))
        for problem in report.problems:
            out.print(f"  - {problem}")
    return EXIT_OK if report.ok else EXIT_FAILED


def _event_line(event: dict[str, Any]) -> str:
    subject = event.get("output") or f"run verdict {event.get('verdict')}"
    attempt = f" attempt {event['attempt']}" if event.get("attempt") else ""
    warnings = event.get("warnings") or []
    warned = f"  with {len(warnings)} warning(s): {', '.join(warnings)}" if warnings else ""
    return f"{str(event.get('time', ''))[:19]}  {event.get('type', '?'):<22} {event.get('lane')}/{subject}  " \
           f"run {event.get('run_id')}{attempt}{warned}"


def _events(args: argparse.Namespace) -> int:
    backend = open_backend(args)
    if args.consumer:
        from batchlane.consume.cli_events import consumer_events

        return consumer_events(args, backend)
    reader = getattr(backend.bus, "read", None)
    if reader is None:
        error("the aws backend publishes to EventBridge: subscribe a queue to the lane's bus (see docs/aws.md)")
        return EXIT_USAGE
    offset, deadline = 0, None if args.max_seconds is None else time.monotonic() + args.max_seconds
    try:
        while True:
            events, offset = reader(offset)
            for event in events:
                if args.types and event["type"] not in args.types:
                    continue
                if args.json:
                    print(json.dumps(event, sort_keys=True), flush=True)
                else:
                    out.print(_event_line(event))
            if not args.follow or (deadline is not None and time.monotonic() > deadline):
                return EXIT_OK
            time.sleep(args.interval)
    except KeyboardInterrupt:  # the way to stop --follow: quiet, nothing was being certified
        return EXIT_INTERRUPTED


def _revoke(args: argparse.Namespace) -> int:
    backend = open_backend(args)
    try:
        pointer = revoke(backend, args.lane, args.output, args.reason)
    except (NotFound, RevokeError) as exc:
        error(exc)
        return EXIT_FAILED
    out.print(f"revoked {args.lane}/{args.output} (run {pointer.run_id} attempt {pointer.attempt}): reads now refused")
    return EXIT_OK
