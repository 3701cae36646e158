"""`python -m benchmarks` (what `make bench` runs): P1-P6 side by side, table + results.json.

P1 ours / floor            <= 1.3   (hash + all rules vs. reading the checked columns + SHA-256)
P2 pandera / ours          >= 3
P3 polars / ours           >= 1.0   (polars does not even hash the file)
P4 peak RSS of `lane check` / file size <= 1.0
P5 `lane rerun --failed` / full `lane run`   <= 0.1
P6 memoized `lane run` / full `lane run`     <= 0.05
P7 `lane check --max-memory 256MB` of 48M unique int64 keys: peak RSS <= 320 MB (P7), time / unbounded <= 3 (P7t)
P8 `lane run` of 200 trivial outputs / (200 x a cold `python -c "import pandas, pyarrow.parquet"`) / 2  <= 0.3
P9 100-partition product: `lane run` after adding one input file / `lane run` building all partitions  <= 0.1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks import bounded, contenders, machine, memory, reruns, startup
from benchmarks import partitions as partitioned
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
    "P7": ("peak RSS (MB) of lane check --max-memory 256MB, 48M unique int64 keys", "<=", 320.0),
    "P7t": ("lane check --max-memory 256MB / unbounded lane check (time)", "<=", 3.0),
    "P8": ("lane run of 200 trivial outputs / (200 cold imports / 2)", "<=", 0.3),
    "P9": ("100-partition product: add one partition / full build (time)", "<=", 0.1),
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
    parser.add_argument("--skip-bounded", action="store_true", help="skip P7 (memory-bounded check, 48M keys)")
    parser.add_argument("--skip-startup", action="store_true", help="skip P8 (200-output lane vs cold starts)")
    parser.add_argument("--no-plain", action="store_true",
                        help="P8 without its context run (the same lane with LANE_FORKSERVER=0: minutes)")
    parser.add_argument("--skip-partitions", action="store_true", help="skip P9 (100-partition product)")
    parser.add_argument("--partition-rows", type=int, default=None, metavar="N",
                        help="P9: rows per partition (default 200,000; quick 2,000)")
    parser.add_argument("--only", choices=["startup", "reruns", "bounded", "partitions"], default=None,
                        help="run only P8 (startup), P5/P6 (reruns) or P7 (bounded), without the checked file")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results JSON (default benchmarks/results.json)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, console: Console) -> dict:
    rows = args.rows or (QUICK_ROWS if args.quick else FULL_ROWS)
    rounds = args.rounds or (3 if args.quick else 7)
    row_group = 1_000_000 if rows >= 1_000_000 else max(1_000, rows // 5)
    results: dict = {"machine": machine.describe(), "rows": rows, "rounds": rounds,
                     "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "timings": {}}
    figures: dict[str, float] = {}
    if args.only is None:
        _checks(args, console, results, figures, rows, rounds, row_group)
    if args.only in (None, "reruns") and not args.skip_reruns:
        _reruns(args, console, results, figures)
    if args.only in (None, "bounded") and not args.skip_bounded:
        console.print("P7: `lane check --max-memory 256MB` vs unbounded, 48M unique int64 keys ...")
        results["bounded"] = bounded.measure(args.data_dir, rounds=1 if args.quick else 3,
                                             rows=bounded.QUICK_ROWS if args.quick else bounded.ROWS)
        figures["P7"], figures["P7t"] = results["bounded"]["peak_rss_mb"], results["bounded"]["time_ratio"]
    if args.only in (None, "startup") and not args.skip_startup:
        console.print(f"{startup.OUTPUTS}-output lane: `lane run` vs cold interpreter starts ...")
        results["startup"] = startup.measure(rounds=1 if args.quick else 3, plain=not (args.quick or args.no_plain),
                                             outputs=20 if args.quick else startup.OUTPUTS)
        figures["P8"] = results["startup"]["P8"]
    if args.only in (None, "partitions") and not args.skip_partitions:
        console.print(f"P9: {partitioned.PARTITIONS}-partition product: full build vs adding one partition ...")
        results["partitions"] = partitioned.measure(rounds=1 if args.quick else 3,
                                                    partitions=20 if args.quick else partitioned.PARTITIONS,
                                                    rows=args.partition_rows or (
                                                        2_000 if args.quick else partitioned.ROWS))
        figures["P9"] = results["partitions"]["P9"]
    results["figures"] = {key: _verdict(key, value) for key, value in figures.items()}
    return results


def _checks(args: argparse.Namespace, console: Console, results: dict, figures: dict[str, float], rows: int,
            rounds: int, row_group: int) -> None:
    console.print(f"data: {rows:,} rows in {args.data_dir} (generated once, seed fixed)")
    dataset = ensure_dataset(rows, args.data_dir, row_group_size=row_group)
    results["file_bytes"] = dataset.path.stat().st_size
    console.print(f"timing {' / '.join(contenders.CONTENDERS)}, {rounds} interleaved rounds ...")
    timings = interleaved({name: (lambda f=f: f(dataset)) for name, f in contenders.CONTENDERS.items()}, rounds)
    results["timings"] = timings
    ours = timings["ours"]["median_s"]
    figures["P1"] = ours / timings["floor"]["median_s"]
    figures["P2"] = timings["pandera"]["median_s"] / ours
    figures["P3"] = timings["polars"]["median_s"] / ours
    if not args.skip_memory:
        console.print("peak RSS of `lane check` ...")
        results["memory"] = memory.measure(dataset, rounds=1 if args.quick else 3)
        figures["P4"] = results["memory"]["ratio"]


def _reruns(args: argparse.Namespace, console: Console, results: dict, figures: dict[str, float]) -> None:
    console.print("20-output lane: full run, broken run, rerun --failed, memoized run ...")
    results["reruns"] = reruns.measure(rounds=1 if args.quick else 3, rows=200 if args.quick else 1_000)
    if "skipped" in results["reruns"]:
        console.print(f"[yellow]P5/P6 skipped: {results['reruns']['skipped']}[/]")
    else:
        figures["P5"], figures["P6"] = results["reruns"]["P5"], results["reruns"]["P6"]


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
        + (f"\nfile: {results['rows']:,} rows, {results['file_bytes'] / 1e6:.1f} MB; "
           f"medians of {results['rounds']} rounds" if "file_bytes" in results else "")
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
    if results["rows"] < FULL_ROWS and results["timings"]:
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
        if "full_plain_s" in r:
            console.print(f"P5/P6 against a full run with a fresh interpreter per job (LANE_FORKSERVER=0, "
                          f"{r['full_plain_s']:.2f}s): {r['P5_vs_plain_full']:.3f} / {r['P6_vs_plain_full']:.3f}")
    if "bounded" in results:
        b = results["bounded"]
        console.print(f"P7: {b['rows']:,} unique int64 keys ({b['file_bytes'] / 1e6:.0f} MB): --max-memory {b['budget']} "
                      f"{b['bounded']['median_s']:.2f}s, peak RSS {b['bounded']['peak_rss_bytes'] / 1e6:.0f} MB; "
                      f"unbounded {b['unbounded']['median_s']:.2f}s, peak RSS "
                      f"{b['unbounded']['peak_rss_bytes'] / 1e6:.0f} MB; PASS both: {b['passed']}")
        if "huge_row_group" in b:
            h = b["huge_row_group"]
            console.print(f"    one row group of {h['rows']:,} rows ({h['file_bytes'] / 1e6:.0f} MB): --max-memory "
                          f"{h['budget']} peak RSS {h['peak_rss_mb']:.0f} MB, the checker's own "
                          f"{h['checker_own_mb']:.0f} MB (beyond `lane check` of a tiny file, "
                          f"{h['baseline']['peak_rss_bytes'] / 1e6:.0f} MB), within the budget: {h['within_budget']}; "
                          f"unbounded peak RSS {h['unbounded']['peak_rss_bytes'] / 1e6:.0f} MB")
    if "startup" in results:
        s = results["startup"]
        plain = (f"; with a fresh interpreter per job (LANE_FORKSERVER=0) {s['plain_run_s']:.2f}s "
                 f"({s['plain_ratio']:.2f})" if "plain_run_s" in s else "")
        console.print(f"P8: `lane run` of {s['outputs']} outputs {s['run_s']:.2f}s (rounds {s['runs_s']}); "
                      f"cold `python -c \"{startup.COLD_IMPORT}\"` {s['cold_import_s']:.3f}s, "
                      f"x {s['outputs']} / 2 = {s['cold_budget_s']:.1f}s{plain}")

    if "partitions" in results:
        q = results["partitions"]
        console.print(f"P9: {q['partitions']} partitions x {q['rows_per_partition']:,} rows: full build "
                      f"{q['full_s']:.2f}s (check {q['full_check_s']:.2f}s), adding one partition {q['add_one_s']:.2f}s "
                      f"(check {q['add_one_check_s']:.2f}s: read {q['add_one_check_read']} partition(s), reused "
                      f"{q['add_one_check_reused']}); medians of {q['rounds']} rounds")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    results = run(args, console)
    render(results, console)
    if args.only and args.output.exists():  # a partial run updates its part of the last full results
        merged = json.loads(args.output.read_text())
        merged.setdefault("partial_runs", []).append({"only": args.only, "started": results["started"],
                                                      "machine": results["machine"]})
        merged.setdefault("figures", {}).update(results["figures"])
        merged.update({key: results[key] for key in ("startup", "reruns", "bounded", "partitions") if key in results})
        results = merged
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"written: {args.output}")
    disagree = [name for name, row in results["timings"].items() if not row["passed"]]
    if disagree:  # a contender that failed the product did not check the same thing
        console.print(f"[red]contenders disagree: {disagree} did not PASS the product[/]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
