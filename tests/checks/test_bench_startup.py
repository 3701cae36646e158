"""P8's harness runs end to end on a tiny lane (the 200-output figure itself is `make bench`'s)."""

from __future__ import annotations

from batchlane.spec import load_spec
from benchmarks import startup


def test_the_startup_lane_is_a_valid_spec_of_trivial_transforms(tmp_path):
    spec = load_spec(startup.write_lane(tmp_path, outputs=5))
    assert len(spec.outputs) == 5
    assert {output.transform for output in spec.outputs.values()} == {"transforms:double"}


def test_the_startup_benchmark_certifies_every_output_and_computes_p8(tmp_path):
    result = startup.measure(rounds=1, outputs=3, cold_samples=1, plain=True)
    assert result["outputs"] == 3 and len(result["runs_s"]) == 1
    assert result["cold_budget_s"] == 3 * result["cold_import_s"] / 2
    assert result["P8"] == result["run_s"] / result["cold_budget_s"]
    assert result["plain_ratio"] == result["plain_run_s"] / result["cold_budget_s"]
