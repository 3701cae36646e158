"""`python -m benchmarks` (what `make bench` runs): P1-P6 side by side, table + results.json.

P1 ours / floor            <= 1.3   (hash + all rules vs. reading the checked columns + SHA-256)
P2 pandera / ours          >= 3
P3 polars / ours           >= 1.0   (polars does not even hash the file)
P4 peak RSS of `lane check` / file size <= 1.0
P5 `lane rerun --failed` / full `lane run`   <= 0.1
P6 memoized `lane run` / full `lane run`     <= 0.05
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks import contenders, machine, memory, reruns
from benchmarks.data import DATA_DIR, ensure_dataset
from benchmarks.timing import interleaved

FULL_ROWS, QUICK_ROWS = 8_000_000, 50_000
RESULTS = Path(__file__).resolve().parent / "results.json"

TARGETS = {  # id: (what, comparison, bound)
    "P1": ("ours / floor (time)", "<=", 1.3),
    "P2": ("pandera / ours (time)", ">=", 3.0),
    "P3": ("polars / ours (time)", ">=", 1.0),
    "P4": ("peak RSS of lane check / file size", "<=", 1.0),
    "P5": ("lane rerun --failed / full lane run (time)", "<=", 0.1),
    "P6": ("memoized lane run / full lane run (time)", "<=", 0.05),
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"tiny file ({QUICK_ROWS:,} rows), fewer rounds")
    parser.add_argument("--rows", type=int, help=f"rows of the checked file (default {FULL_ROWS:,})")
    parser.add_argument("--rounds", type=int, help="interleaved timing rounds (default 7, quick 3)")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR, help="where generated data is kept")
    parser.add_argument("--skip-reruns", action="store_true", help="skip P5/P6 (the lane runner)")
    parser.add_argument("--skip-memory", action="store_true", help="skip P4 (subprocess RSS)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results JSON (default benchmarks/results.json)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, console: Console) -> dict:
    rows = args.rows or (QUICK_ROWS if args.quick else FULL_ROWS)
    rounds = args.rounds or (3 if args.quick else 7)
    row_group = 1_000_000 if rows >= 1_000_000 else max(1_000, rows // 5)
    console.print(f"data: {rows:,} rows in {args.data_dir} (generated once, seed fixed)")
    dataset = ensure_dataset(rows, args.data_dir, row_group_size=row_group)
    results: dict = {"machine": machine.describe(), "rows": rows, "file_bytes": dataset.path.stat().st_size,
                     "rounds": rounds, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    console.print(f"timing {' / '.join(contenders.CONTENDERS)}, {rounds} interleaved rounds ...")
    timings = interleaved({name: (lambda f=f: f(dataset)) for name, f in contenders.CONTENDERS.items()}, rounds)
    results["timings"] = timings
    ours = timings["ours"]["median_s"]
    figures = {
        "P1": ours / timings["floor"]["median_s"],
        "P2": timings["pandera"]["median_s"] / ours,
        "P3": timings["polars"]["median_s"] / ours,
    }
    if not args.skip_memory:
        console.print("peak RSS of `lane check` ...")
        results["memory"] = memory.measure(dataset, rounds=1 if args.quick else 3)
        figures["P4"] = results["memory"]["ratio"]
    if not args.skip_reruns:
        console.print("20-output lane: full run, broken run, rerun --failed, memoized run ...")
        results["reruns"] = reruns.measure(rounds=1 if args.quick else 3, rows=200 if args.quick else 1_000)
        if "skipped" in results["reruns"]:
            console.print(f"[yellow]P5/P6 skipped: {results['reruns']['skipped']}[/]")
        else:
            figures["P5"], figures["P6"] = results["reruns"]["P5"], results["reruns"]["P6"]
    results["figures"] = {key: _verdict(key, value) for key, value in figures.items()}
    return results


def _verdict(key: str, value: float) -> dict:
    _, comparison, bound = TARGETS[key]
    met = value <= bound if comparison == "<=" else value >= bound
    return {"value": round(value, 4), "target": f"{comparison} {bound}", "met": met}


def render(results: dict, console: Console) -> None:
    about = results["machine"]
    console.print(
        f"\nmachine: {about['cpu']}, {about['logical_cores']} logical / {about['physical_cores']} physical cores, "
        f"{about['ram_gb']} GiB RAM, {about['os']}, load {about['load_average_1m']}\n"
        f"versions: Python {about['python']}, "
        + ", ".join(f"{name} {about[name]}" for name in machine.PACKAGES)
        + f"\nfile: {results['rows']:,} rows, {results['file_bytes'] / 1e6:.1f} MB; "
        f"medians of {results['rounds']} rounds"
    )
    timing = Table(title="seconds per certification", title_justify="left")
    for column in ("contender", "median s", "min s", "verdict PASS", "runs s"):
        timing.add_column(column)
    for name, row in results["timings"].items():
        timing.add_row(name, f"{row['median_s']:.3f}", f"{row['min_s']:.3f}", str(row["passed"]),
                       " ".join(f"{t:.3f}" for t in row["runs_s"]))
    console.print(timing)
    figures = Table(title="targets", title_justify="left")
    for column in ("id", "measure", "value", "target", "met"):
        figures.add_column(column)
    for key, (what, _, _) in TARGETS.items():
        figure = results["figures"].get(key)
        if figure is None:
            figures.add_row(key, what, "skipped", "", "")
        else:
            figures.add_row(key, what, f"{figure['value']:.3f}", figure["target"],
                            "[green]yes[/]" if figure["met"] else "[red]NO[/]")
    console.print(figures)
    if results["rows"] < FULL_ROWS:
        console.print(f"[yellow]note: the targets are defined for the {FULL_ROWS:,}-row file; on "
                      f"{results['rows']:,} rows fixed costs dominate, so this run only exercises the harness.[/]")
    if "memory" in results:
        m = results["memory"]
        console.print(f"P4: peak RSS {m['peak_rss_bytes'] / 1e6:.0f} MB (interpreter + imports alone "
                      f"{m['baseline_rss_bytes'] / 1e6:.0f} MB) for a {m['file_bytes'] / 1e6:.0f} MB file")
    if "reruns" in results and "skipped" not in results["reruns"]:
        r = results["reruns"]
        console.print(f"P5/P6: full run {r['full_s']:.2f}s, rerun --failed {r['rerun_failed_s']:.2f}s "
                      f"({r['rerun_outputs']}), memoized run {r['memoized_run_s']:.2f}s")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    results = run(args, console)
    render(results, console)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"written: {args.output}")
    disagree = [name for name, row in results["timings"].items() if not row["passed"]]
    if disagree:  # a contender that failed the product did not check the same thing
        console.print(f"[red]contenders disagree: {disagree} did not PASS the product[/]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
