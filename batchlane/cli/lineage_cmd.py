"""`lane lineage`: where an output's data comes from and where it goes, with the certified versions in force."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from rich.text import Text

from batchlane.cli.common import EXIT_OK, EXIT_USAGE, add_backend_options, error, guarded, out, print_json

if TYPE_CHECKING:
    from batchlane.lineage import Certified, PinnedInput, ProductLineage
    from batchlane.spec import LaneSpec
    from batchlane.stores.base import Backend

MAX_RUNS = 1_000_000


def register(subparsers: argparse._SubParsersAction) -> None:
    lineage = subparsers.add_parser(
        "lineage", help="an output's upstream products and files, downstream products and consumers, with the "
        "certified versions in force",
        description="Upstream: every product OUTPUT reads (product inputs) or checks against (references), "
        "transitively, each with its certification in force (run, attempt, certified time, files with SHA-256, "
        "revoked or not). OUTPUT's own inputs with their patterns, and the files and product versions its "
        "certification in force pinned. Downstream: every output that reads or references OUTPUT, transitively. "
        "Each product's declared consumers. Read-only: bytes are not re-hashed (`lane verify` does that) and no "
        "store is created (without one, nothing is certified). The spec is --spec, else the one the latest run "
        "of a lane with OUTPUT was started with. Exit 0, 2 unknown output/spec/store.",
    )
    lineage.add_argument("output", metavar="OUTPUT")
    lineage.add_argument("--spec", metavar="SPEC", help="lane spec (default: the spec of the latest run with OUTPUT)")
    lineage.add_argument("--lane", help="lane name (needed only when several lanes have this output)")
    lineage.add_argument("--json", action="store_true", help="print the lineage as JSON")
    add_backend_options(lineage)
    lineage.set_defaults(func=guarded(_lineage))


def _lineage(args: argparse.Namespace) -> int:
    from batchlane.cli.common import StoreMissingError, open_backend
    from batchlane.lineage import lineage
    from batchlane.spec import load_spec

    try:
        backend: Backend | None = open_backend(args)
    except StoreMissingError as exc:
        if not args.spec:
            error(f"{exc}; or pass --spec SPEC for the graph alone")
            return EXIT_USAGE
        backend = None  # no store yet: the graph, with nothing certified
    if args.spec:
        spec = load_spec(args.spec)
        if args.lane and args.lane != spec.lane:
            error(f"--lane {args.lane}: {args.spec} is the spec of lane {spec.lane!r}")
            return EXIT_USAGE
    else:
        assert backend is not None
        found = _recorded_spec(backend, args.output, args.lane)
        if found is None:
            return EXIT_USAGE
        spec = found
    result = lineage(spec, args.output, backend)
    if args.json:
        print_json(result.to_json())
        return EXIT_OK
    title = f"lineage of {result.lane}/{result.output}" + (f" · spec {result.spec}" if result.spec else "")
    out.print(Text(title + ("" if result.store else " · no store yet: nothing is certified"), style="bold"))
    out.print(Text("\nupstream", style="bold") + Text(" (read or referenced, in build order)" if result.upstream
                                                       else ": none (reads only files)"))
    for product in result.upstream:
        _print_product(product, result.lane)
    out.print(Text("\nthis output", style="bold"))
    _print_product(result.product, result.lane, detail=True)
    out.print(Text("\ndownstream", style="bold") + Text(" (reads or references it, in build order)"
                                                         if result.downstream else ": none in this lane"))
    for product in result.downstream:
        _print_product(product, result.lane)
    return EXIT_OK


def _recorded_spec(backend: Backend, output: str, lane: str | None) -> LaneSpec | None:
    """The spec the latest run of a lane with ``output`` was started with; None after saying why not."""
    from batchlane.spec import SpecError, load_spec

    latest: dict[str, str] = {}   # lane -> spec path of its latest run with the output
    for run in backend.ledger.list_runs(lane, limit=MAX_RUNS):
        if output in run.outputs and run.lane not in latest and run.spec_path:
            latest[run.lane] = run.spec_path
    if not latest:
        where = f"lane {lane!r}" if lane else f"the {backend.name} store"
        error(f"no run of {where} has an output {output!r}: pass --spec SPEC")
        return None
    if len(latest) > 1:
        error(f"output {output!r} exists in lanes {', '.join(sorted(latest))}: pass --lane LANE or --spec SPEC")
        return None
    ((found_lane, path),) = latest.items()
    try:
        return load_spec(path)
    except SpecError as exc:
        error(f"{exc}\n(the spec the latest run of lane {found_lane!r} was started with: pass --spec SPEC)")
        return None


def _label(product: ProductLineage, home_lane: str) -> str:
    return product.output if product.lane == home_lane else f"{product.lane}/{product.output}"


def _print_product(product: ProductLineage, home_lane: str, *, detail: bool = False) -> None:
    """One product: its edges, its certification in force with the SHA-256 of each certified file, its
    consumers and inputs. ``detail``: every input with the files (and product version) its certification pinned."""
    edges = []
    if product.reads:
        edges.append("reads " + ", ".join(product.reads))
    if product.references:
        edges.append("references " + ", ".join(product.references))
    out.print(Text.assemble("  ", (_label(product, home_lane), "bold"), f"  ({'; '.join(edges)})" if edges else ""))
    out.print(Text.assemble("    ", _certification_text(product.certification)))
    for file in product.certification.files if product.certification else []:
        out.print(f"    product sha256 {file.sha256}" + (f"  {file.uri}" if detail else ""))
    if product.consumers is not None:
        out.print(f"    consumers: {', '.join(product.consumers) if product.consumers else 'none declared'}")
    if product.inputs is not None and not detail:
        out.print("    inputs: " + ", ".join(f"{item.name} ({_source(item)})" for item in product.inputs))
    for item in product.inputs or [] if detail else []:
        out.print(f"    input {item.name}: {_source(item)}")
        for file in item.files or []:
            out.print(f"      {file.uri}  {file.size:,} B  sha256 {file.sha256}")
    if product.checked_against:
        out.print("    references checked against: " + ", ".join(
            f"{ref.output} (run {ref.pinned.run_id} attempt {ref.pinned.attempt}{_currency(ref.pinned_is_in_force)})"
            for ref in product.checked_against))
    if product.note and (product.certification is not None or product.inputs is None):
        out.print(Text(f"    note: {product.note}", style="dim"))


def _certification_text(certification: Certified | None) -> Text:
    if certification is None:
        return Text("no certification", style="yellow")
    style = "green" if certification.status == "in force" else "red"
    rows = [file.rows for file in certification.files]
    counted = "" if not rows or None in rows else f" · {sum(r for r in rows if r is not None):,} rows"
    return Text.assemble((certification.status, style), f" · run {certification.run_id} attempt "
                         f"{certification.attempt} · certified {certification.certified_at}{counted}")


def _source(item: PinnedInput) -> str:
    """The input as written, and for a product input the certified version its certification read."""
    if item.pinned is None:
        return item.pattern
    return f"{item.pattern} pinned run {item.pinned.run_id} attempt {item.pinned.attempt}" \
           f"{_currency(item.pinned_is_in_force)}"


def _currency(in_force: bool | None) -> str:
    return {True: ", still in force", False: ", no longer in force", None: ""}[in_force]
