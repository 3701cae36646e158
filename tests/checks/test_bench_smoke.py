"""The benchmark harness runs end to end on a tiny file (P1-P4; P5/P6 need a full lane run)."""

from __future__ import annotations

import json

import pytest

from batchlane.spec import load_spec
from benchmarks import __main__ as bench
from benchmarks import reruns


def test_quick_benchmark_measures_p1_to_p4(tmp_path, capsys):
    output = tmp_path / "results.json"
    code = bench.main(["--quick", "--rows", "20000", "--rounds", "1", "--skip-reruns", "--skip-startup", "--skip-bounded",
                       "--skip-partitions",
                       "--data-dir", str(tmp_path / "data"), "--output", str(output)])
    assert code == 0  # every contender passed the same product
    results = json.loads(output.read_text())
    assert set(results["figures"]) == {"P1", "P2", "P3", "P4"}
    assert all(row["passed"] for row in results["timings"].values())
    assert results["memory"]["exit_codes"] == [0]  # `lane check` itself passed the product
    assert results["machine"]["logical_cores"] >= 1
    printed = capsys.readouterr().out
    assert "ours / floor" in printed and "pyarrow" in printed


def test_the_rerun_lane_is_a_valid_spec(tmp_path):
    spec = load_spec(reruns.write_lane(tmp_path, rows=10))
    assert len(spec.outputs) == reruns.OUTPUTS and reruns.BROKEN in spec.outputs


def test_the_benchmark_dataset_is_deterministic(tmp_path):
    from benchmarks.data import ensure_dataset

    first = ensure_dataset(3_000, tmp_path / "a", row_group_size=1_000)
    second = ensure_dataset(3_000, tmp_path / "b", row_group_size=1_000)
    assert first.path.read_bytes() == second.path.read_bytes()


def test_ours_reads_every_checked_column_and_decides_from_data(tmp_path, monkeypatch):
    """The timed contender is a full data check: every contract column is read, no footer shortcut."""
    from batchlane.checking import engine
    from benchmarks import contenders
    from benchmarks.data import CHECKED_COLUMNS, ensure_dataset

    read: list[tuple[str, ...]] = []
    original = engine._row_groups

    def spy(product, file, names, counting_leaf=None):
        read.append(tuple(names))
        return original(product, file, names, counting_leaf)

    monkeypatch.setattr(engine, "_row_groups", spy)
    dataset = ensure_dataset(5_000, tmp_path, row_group_size=1_000)
    assert contenders.ours(dataset)
    assert [set(names) for names in read] == [set(CHECKED_COLUMNS)]


@pytest.mark.parametrize("key", ["P1", "P2", "P4"])
def test_targets_are_judged_in_the_right_direction(key):
    _, comparison, bound = bench.TARGETS[key]
    inside = bound * (0.9 if comparison == "<=" else 1.1)
    outside = bound * (1.1 if comparison == "<=" else 0.9)
    assert bench._verdict(key, inside)["met"] and not bench._verdict(key, outside)["met"]
