"""P9's harness runs end to end on a tiny partitioned lane (the figure itself comes from `make bench`)."""

from __future__ import annotations

from batchlane.spec import load_spec
from benchmarks import __main__ as bench
from benchmarks import partitions


def test_the_partitioned_lane_is_a_valid_spec(tmp_path):
    spec = load_spec(partitions.write_lane(tmp_path, partitions=3, rows=10))
    assert spec.outputs["orders"].partition_by == "day"
    assert len(list((tmp_path / "data" / "days").glob("day-*.csv"))) == 3


def test_p9_measures_a_full_build_and_an_added_partition():
    result = partitions.measure(rounds=1, partitions=3, rows=50)  # raises unless exactly one partition was built
    assert result["partitions"] == 3 and len(result["runs"]) == 1
    assert result["P9"] == result["add_one_s"] / result["full_s"]
    assert result["add_one_check_s"] > 0 and result["full_check_s"] > 0
    _, comparison, bound = bench.TARGETS["P9"]
    assert bench._verdict("P9", bound * 0.9)["met"] and not bench._verdict("P9", bound * 1.1)["met"]
