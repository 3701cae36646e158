"""`lane events --consumer NAME [--follow]`: be that consumer — print each delivered item, then ack it."""

from __future__ import annotations

import argparse
import json
import time

from batchlane.consume.items import Delivery, Revocation
from batchlane.consume.sdk import consumer
from batchlane.consume.sources import ConsumerConfigError
from batchlane.stores.base import Backend

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130


def _line(item: Delivery) -> str:
    when = item.event.time.strftime("%Y-%m-%d %H:%M:%S")
    subject = f"{item.lane}/{item.output}  run {item.run_id} attempt {item.attempt}"
    if isinstance(item, Revocation):
        return f"{when}  revoked    {subject}  reason: {item.reason}"
    rows = getattr(item, "rows", None)
    return f"{when}  certified  {subject}" + (f"  {rows} rows" if rows is not None else "")


def consumer_events(args: argparse.Namespace, backend: Backend) -> int:
    """Deliver this consumer's items (what the SDK delivers), print each, ack it after printing.

    Without --follow: what is pending now, then exit. Acking moves the consumer's cursor: this command
    *is* the consumer named (pipe ``--json`` into a process to consume at least once from the shell).
    """
    from batchlane.cli.common import error, out

    if getattr(args, "types", None):
        error("--type cannot be combined with --consumer: a consumer receives its certified versions and revocations")
        return EXIT_USAGE
    try:
        follower = consumer(args.consumer, backend=backend)
    except ConsumerConfigError as exc:
        error(exc)
        return EXIT_USAGE
    deadline = None if args.max_seconds is None else time.monotonic() + args.max_seconds

    def stop() -> bool:
        return deadline is not None and time.monotonic() > deadline

    try:
        for item in follower.follow(poll=args.interval if args.follow else None, stop=stop):
            if args.json:
                print(json.dumps(item.summary(), sort_keys=True), flush=True)
            else:
                out.print(_line(item), highlight=False)
            item.ack()
    except KeyboardInterrupt:   # stop --follow; the item being printed (if any) was not acked and comes again
        return EXIT_INTERRUPTED
    return EXIT_OK
