"""Memory-bounded checks: `--max-memory`, the lane's `check: {max_memory}`, and uniqueness spilling to disk.

The spill path must give exactly the evidence of the in-memory path: every test checks the same data
both ways and compares whole rule results. Small budgets are reached by lowering the floor (and the
smallest partition) for the test, so a few thousand rows are "too many keys"; which path ran is read
from ``spill.STATS``, never from timing.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pytest

from batchlane.checking import budget, keys, spill
from batchlane.checks import CheckError
from batchlane.spec import SpecError, load_spec
from tests.checks.helpers import check, contract, rule, write

TINY = 16 * 1024  # bytes: a key budget of 12 KiB, about a thousand keys in memory


@pytest.fixture
def small_floor(monkeypatch):
    """Budgets of a few KiB become legal (the real floor is 64 MiB), and partitions may be that small."""
    monkeypatch.setattr(budget, "FLOOR", 1024)
    monkeypatch.setattr(spill, "_MIN_PARTITION", 512)
    spill.STATS.reset()
    yield
    spill.STATS.reset()


def unique_results(outcome):
    return {r.column: r for r in outcome.rules if r.rule == "unique"}


def both_ways(paths, rules, **options):
    """(unbounded outcome, bounded outcome, spill stats of the bounded one)."""
    spill.STATS.reset()
    unbounded = check(paths, rules, **options)
    assert spill.STATS.key_sets == 0, "the unbounded check spilled"
    bounded = check(paths, rules, max_memory=TINY, **options)
    stats = spill.SpillStats(**vars(spill.STATS))
    return unbounded, bounded, stats


# ----------------------------------------------------------------------------- sizes and refusals


@pytest.mark.parametrize(("text", "size"), [
    ("256MB", 256_000_000), ("2GiB", 2 << 30), ("64MiB", 64 << 20), ("1.5GB", 1_500_000_000), ("512 mb", 512_000_000),
])
def test_sizes_are_read_with_their_unit(text, size):
    assert budget.parse_size(text) == size


@pytest.mark.parametrize(("text", "message"), [
    ("256", "'256' has no unit; write e.g. 256MB or 256MiB"),
    ("12XB", "'XB' in '12XB' is not a unit"),
    ("lots", "'lots' is not a size"),
    ("-5MB", "'-5MB' is not a size"),
    ("16MB", "16MB is below the checker's floor of 64MiB"),
])
def test_bad_sizes_are_refused_with_the_reason(text, message):
    with pytest.raises(budget.BudgetError, match="max_memory: ") as caught:
        budget.parse_size(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(("value", "message"), [
    ("12XB", "'XB' in '12XB' is not a unit"),
    ("abc", "'abc' is not a size"),
    ("256", "'256' has no unit"),
    ("1MB", "1MB is below the checker's floor of 64MiB"),
])
def test_lane_check_refuses_a_bad_max_memory_with_exit_2(tmp_path, lane, value, message):
    path = write(tmp_path, {"id": [1, 2, 3]})
    (tmp_path / "c.yaml").write_text("columns: {id: {unique: true}}\n")
    code, out, err = lane("check", path, "--contract", tmp_path / "c.yaml", "--max-memory", value)
    assert code == 2 and out == ""
    assert "argument --max-memory" in err and message in err and "Traceback" not in err


def test_check_files_refuses_a_budget_below_the_floor(tmp_path):
    path = write(tmp_path, {"id": [1, 2, 3]})
    with pytest.raises(CheckError, match=r"max_memory 1MiB is below the checker's floor of 64MiB"):
        check(path, contract({"id": {"unique": True}}), max_memory=1 << 20)


def test_lane_check_with_a_budget_gives_the_same_json_as_without(tmp_path, lane):
    ids = np.arange(20_000, dtype=np.int64) % 15_000
    path = write(tmp_path, {"id": ids, "s": [f"k{v}" for v in ids]}, row_group_size=4_000)
    (tmp_path / "c.yaml").write_text("columns: {id: {unique: true}, s: {unique: true}}\n")
    outputs = []
    for extra in ([], ["--max-memory", "64MiB"]):
        code, out, err = lane("check", path, "--contract", tmp_path / "c.yaml", "--json", *extra)
        assert code == 1, err
        document = json.loads(out)
        document.pop("seconds", None)
        outputs.append(document)
    assert outputs[0] == outputs[1]
    assert rule_json(outputs[1], "id")["failing_count"] == 5_000


def rule_json(document, column):
    return next(r for r in document["rules"] if r["rule"] == "unique" and r["column"] == column)


# ----------------------------------------------------------------------------- same evidence both ways


def test_exact_keys_spill_with_identical_evidence_including_a_pair_split_across_row_groups(tmp_path, small_floor):
    rng = np.random.default_rng(11)
    values = rng.permutation(6_000).astype(np.int64) * 1_000_003  # spread out: no dense byte map
    values[2_999], values[3_000] = 7, 7  # a duplicate pair on both sides of a row-group boundary
    values[10] = values[5_990]  # and one far apart
    ids = pa.array(values, mask=rng.random(6_000) < 0.02)  # nulls are not keys
    path = write(tmp_path, {"id": ids}, row_group_size=3_000)
    rules = contract({"id": {"unique": True}})
    unbounded, bounded, stats = both_ways(path, rules)
    assert stats.key_sets == 1 and stats.partitions >= 2 and stats.bytes_written > 0
    assert unique_results(bounded) == unique_results(unbounded)
    found = rule(bounded, "unique", "id")
    assert not found.passed and found.failing_count >= 1 and 7 in found.failing_sample


def test_hashed_and_composite_keys_spill_with_identical_evidence(tmp_path, small_floor):
    rng = np.random.default_rng(5)
    size = 5_000
    numbers = [None if rng.random() < 0.03 else int(v) for v in rng.integers(0, 300, size)]
    words = [None if rng.random() < 0.03 else f"word-{int(v)}" for v in rng.integers(0, 250, size)]
    when = pa.array(rng.integers(0, 40, size) * 1_000_000, pa.timestamp("us", tz="UTC"))
    path = write(tmp_path, {"n": pa.array(numbers, pa.int64()), "w": words, "t": when}, row_group_size=777)
    rules = contract({"n": {"unique": True}, "w": {"unique": True}}, unique=[["n", "w"], ["w", "t"]])
    unbounded, bounded, stats = both_ways(path, rules)
    assert stats.key_sets == 4  # every key set went to disk
    assert unique_results(bounded) == unique_results(unbounded)
    assert all(not r.passed for r in unique_results(bounded).values())
    assert all(len(r.failing_sample) == 5 for r in unique_results(bounded).values())


def test_composite_duplicate_pair_split_across_files_and_row_groups(tmp_path, small_floor):
    first = write(tmp_path, {"a": list(range(2_000)), "b": [f"x{v}" for v in range(2_000)]}, "one.parquet",
                  row_group_size=500)
    second = write(tmp_path, {"a": [1_999, *range(5_000, 7_000)], "b": ["x1999", *(f"y{v}" for v in range(2_000))]},
                   "two.parquet", row_group_size=500)
    rules = contract(unique=[["a", "b"]])
    unbounded, bounded, stats = both_ways([first, second], rules)
    assert stats.key_sets == 1
    assert unique_results(bounded) == unique_results(unbounded)
    result = rule(bounded, "unique", "a,b")
    assert (result.failing_count, result.failing_sample) == (1, [[1999, "x1999"]])


def test_floats_nan_and_negative_zero_are_the_same_key_both_ways(tmp_path, small_floor):
    values = np.arange(1, 4_001, dtype=np.float64) / 7
    values[[5, 3_000]] = np.nan
    values[100], values[3_500] = 0.0, -0.0
    path = write(tmp_path, {"f": values, "g": [f"s{v % 1_500}" for v in range(4_000)]}, row_group_size=1_000)
    rules = contract({"f": {"unique": True}}, unique=[["f", "g"]])
    unbounded, bounded, stats = both_ways(path, rules)
    assert stats.key_sets == 2
    assert unique_results(bounded) == unique_results(unbounded)
    assert rule(bounded, "unique", "f").failing_count == 2


def test_unique_keys_pass_under_a_small_budget(tmp_path, small_floor):
    path = write(tmp_path, {"id": np.arange(8_000, dtype=np.int64) * 977, "s": [f"v{i}" for i in range(8_000)]},
                 row_group_size=2_000)
    unbounded, bounded, stats = both_ways(path, contract({"id": {"unique": True}, "s": {"unique": True}}))
    assert stats.key_sets == 2
    assert unique_results(bounded) == unique_results(unbounded)
    assert all(r.passed for r in bounded.rules)


def test_hash_collisions_under_spill_are_decided_by_the_values(tmp_path, small_floor, monkeypatch):
    """Every key hashing alike puts every row in one partition: it is split by the values' own hash."""
    monkeypatch.setattr(keys, "hash_values", lambda array: np.zeros(len(array), dtype=np.uint64))
    words = [f"w{v % 1_800}" for v in range(3_000)]
    path = write(tmp_path, {"w": words}, row_group_size=700)
    unbounded, bounded, stats = both_ways(path, contract({"w": {"unique": True}}))
    assert stats.repartitions >= 1
    assert unique_results(bounded) == unique_results(unbounded)
    result = rule(bounded, "unique", "w")
    assert result.failing_count == 1_200 and result.failing_sample == ["w0", "w1", "w2", "w3", "w4"]


def test_one_key_repeated_everywhere_is_counted_in_chunks(tmp_path, small_floor):
    """A partition that no hash can split (one key) is counted chunk by chunk: memory per distinct key."""
    for values in (np.full(6_000, 42, dtype=np.int64), ["same"] * 6_000):
        path = write(tmp_path, {"k": values}, row_group_size=1_500)
        spill.STATS.reset()
        unbounded, bounded, stats = both_ways(path, contract({"k": {"unique": True}}))
        assert stats.chunked >= 1
        assert unique_results(bounded) == unique_results(unbounded)
        assert rule(bounded, "unique", "k").failing_count == 5_999


def test_dense_integer_keys_stay_in_memory_when_the_byte_map_fits(tmp_path, small_floor):
    path = write(tmp_path, {"id": np.arange(3_000, dtype=np.int64)}, row_group_size=1_000)
    spill.STATS.reset()
    outcome = check(path, contract({"id": {"unique": True}}), max_memory=TINY)
    assert spill.STATS.key_sets == 0 and rule(outcome, "unique", "id").passed  # a 3 KB byte map fits in 12 KiB


# ----------------------------------------------------------------------------- the collector on its own


def _batches(values, size=512):
    return [pa.array(values[i : i + size]) for i in range(0, len(values), size)]


def _collect(batches, columns, types, capacity):
    def rescan(wanted):
        assert wanted == tuple(columns)
        return (pa.record_batch({name: batch for name in columns}) for batch in batches)

    collector = keys.KeyCollector(columns, types, capacity=capacity)
    for batch in batches:
        collector.add([batch] * len(columns))
    return collector.finish(rescan)


@pytest.mark.parametrize("kind", ["int", "string"])
def test_a_footer_claiming_too_few_rows_still_ends_in_the_same_report(small_floor, kind):
    """The key set outgrows its reservation mid-scan: exact keys move to disk, hashed ones are rescanned."""
    rng = np.random.default_rng(3)
    raw = rng.integers(0, 4_000, 6_000)
    values = [f"s{v}" for v in raw] if kind == "string" else [int(v) * 7_919 for v in raw]
    batches = _batches(values)
    arrow_type = pa.string() if kind == "string" else pa.int64()
    expected = _collect(batches, ["k"], [arrow_type], capacity=len(values))
    with budget.bounded(TINY):
        spill.STATS.reset()
        found = _collect(batches, ["k"], [arrow_type], capacity=10)  # the claim: 10 rows
        assert spill.STATS.key_sets == 1
        assert budget.active().held == 0  # everything reserved was given back
    assert found == expected and found.duplicate_rows > 0


def test_many_repeated_hashes_are_confirmed_on_disk_rather_than_in_memory(small_floor):
    """Few enough keys to sort in memory, but too many repeats to confirm there: decided by spilling."""
    values = [f"pair-{v // 2}" for v in range(800)]
    batches = _batches(values, 100)
    expected = _collect(batches, ["k"], [pa.string()], capacity=len(values))
    with budget.bounded(TINY):
        spill.STATS.reset()
        found = _collect(batches, ["k"], [pa.string()], capacity=len(values))
        assert spill.STATS.key_sets == 1
    assert found == expected and (found.duplicate_rows, found.repeated_keys) == (400, 400)


def test_spill_files_are_removed(tmp_path, small_floor, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    path = write(tmp_path, {"id": np.arange(5_000, dtype=np.int64) * 31 % 4_000 * 1_000_003}, row_group_size=1_000)
    outcome = check(path, contract({"id": {"unique": True}}), max_memory=TINY)
    assert spill.STATS.key_sets == 1 and not rule(outcome, "unique", "id").passed
    assert list((tmp_path / "tmp").iterdir()) == []
    shutil.rmtree(tmp_path / "tmp")


@pytest.mark.parametrize("kind", ["int", "string"])
def test_a_spill_that_cannot_write_fails_the_rule_with_the_reason(tmp_path, small_floor, monkeypatch, kind):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-dir"))
    values = np.arange(5_000, dtype=np.int64) * 1_000_003
    path = write(tmp_path, {"k": [f"v{v}" for v in values] if kind == "string" else values, "n": values})
    outcome = check(path, contract({"k": {"unique": True}, "n": {"not_null": True}}), max_memory=TINY)
    result = rule(outcome, "unique", "k")
    assert outcome.verdict == "FAIL" and not result.passed
    assert "spilling keys beyond the memory budget to" in result.detail and "no-such-dir" in result.detail
    assert rule(outcome, "not_null", "n").passed  # the other rules are still decided


# ----------------------------------------------------------------------------- defaults and the lane setting


@pytest.mark.parametrize(("memory_mb", "expected"), [
    ("1024", (1024 - 256) << 20),  # a quarter is more than 192 MiB
    ("512", (512 - 192) << 20),
    ("128", budget.FLOOR),  # never below the floor
    ("", None), ("lots", None),
])
def test_the_default_budget_inside_lambda_comes_from_the_function_memory(memory_mb, expected):
    environ = {budget.LAMBDA_MEMORY_ENV: memory_mb} if memory_mb else {}
    assert budget.default_limit(environ) == expected
    assert budget.default_limit({}) is None


def test_inside_lambda_the_function_memory_is_the_default_and_the_ceiling(tmp_path, monkeypatch):
    seen = []
    real = budget.bounded

    def spy(limit):
        seen.append(limit)
        return real(limit)

    monkeypatch.setattr(budget, "bounded", spy)
    path = write(tmp_path, {"id": [1, 2]})
    monkeypatch.setenv(budget.LAMBDA_MEMORY_ENV, "2048")
    check(path, contract({"id": {"unique": True}}))
    check(path, contract({"id": {"unique": True}}), max_memory=100 << 20)  # a smaller explicit bound wins
    check(path, contract({"id": {"unique": True}}), max_memory=8 << 30)  # a larger one would not fit the function
    monkeypatch.delenv(budget.LAMBDA_MEMORY_ENV)
    check(path, contract({"id": {"unique": True}}))
    check(path, contract({"id": {"unique": True}}), max_memory=8 << 30)
    assert seen == [(2048 - 512) << 20, 100 << 20, (2048 - 512) << 20, None, 8 << 30]


def _spec(tmp_path, check_block: str) -> str:
    (tmp_path / "ids.csv").write_text("id\n" + "\n".join(str(v % 2_500) for v in range(3_000)) + "\n")
    text = ("lane: bounded\n" + check_block + "outputs:\n  ids:\n    inputs: {ids: ids.csv}\n"
            "    contract:\n      columns:\n        id: {type: int64, unique: true}\n")
    (tmp_path / "lane.yaml").write_text(text)
    return str(tmp_path / "lane.yaml")


def test_the_lane_setting_is_validated_with_its_path_and_line(tmp_path):
    with pytest.raises(SpecError, match=r"check\.max_memory: 'XB' in '12XB' is not a unit .*\(line 2\)"):
        load_spec(_spec(tmp_path, "check: {max_memory: 12XB}\n"))
    with pytest.raises(SpecError, match=r"check\.max_memory: 512 has no unit"):
        load_spec(_spec(tmp_path, "check: {max_memory: 512}\n"))
    with pytest.raises(SpecError, match=r"check\.max_mem: unknown key"):
        load_spec(_spec(tmp_path, "check: {max_mem: 1GB}\n"))
    spec = load_spec(_spec(tmp_path, "check: {max_memory: 1.5GiB}\n"))
    assert spec.check.max_memory_bytes == 3 << 29
    assert load_spec(_spec(tmp_path, "")).check.max_memory_bytes is None


def test_the_lane_setting_does_not_change_the_spec_digest(tmp_path):
    bounded = load_spec(_spec(tmp_path, "check: {max_memory: 512MB}\n"))
    plain = load_spec(_spec(tmp_path, ""))
    assert bounded.digest() == plain.digest()
    assert bounded.output_digest("ids") == plain.output_digest("ids")


def test_checks_inside_a_run_use_the_lanes_budget(tmp_path, lane_home, lane_json, monkeypatch):
    """A run whose lane says check: {max_memory: 64MiB}: keys made to look 100 KB each do not fit, so the
    run's check spills, and the verdict and evidence are those of an unbounded run."""
    monkeypatch.setattr(keys, "_BYTES_PER_KEY", 100_000)
    results = {}
    for name, block in (("bounded", "check: {max_memory: 64MiB}\n"), ("unbounded", "")):
        folder = tmp_path / name
        folder.mkdir()
        spill.STATS.reset()
        code, result = lane_json("run", _spec(folder, block))
        assert code == 1 and result["outputs"]["ids"]["state"] == "rejected"
        assert result["outputs"]["ids"]["failing_rules"] == ["unique(id)"]
        results[name] = spill.STATS.key_sets
        code, shown = lane_json("show", result["run_id"], "ids")
        assert code == 0
        results[name + "-evidence"] = _unique_evidence(shown)
    assert results["bounded"] == 1 and results["unbounded"] == 0
    assert results["bounded-evidence"] == results["unbounded-evidence"]
    assert results["bounded-evidence"]["failing_count"] == 500


def _unique_evidence(shown) -> dict:
    """The unique rule's result in `lane show --json` output, wherever the receipt nests it."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("rule") == "unique":
                found.append({k: node[k] for k in ("observed", "failing_count", "failing_sample", "detail")})
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(shown)
    assert found, "no unique rule result in lane show --json"
    return found[0]


def test_the_p7_benchmark_harness_runs_both_checks_side_by_side(tmp_path):
    from benchmarks import bounded as p7

    found = p7.measure(tmp_path, rounds=1, rows=100_000)
    assert found["passed"] and found["bounded"]["exit_codes"] == [0] and found["unbounded"]["exit_codes"] == [0]
    assert "--max-memory 256MB" in found["command"] and found["peak_rss_mb"] > 0 and found["time_ratio"] > 0
    huge = found["huge_row_group"]  # the extra figure: one row group of as many rows, checked under 128MB
    assert huge["passed"] and huge["rows"] == 100_000 and huge["row_groups"] == 1
    assert "--max-memory 128MB" in huge["command"] and huge["bounded"]["peak_rss_bytes"] > 0
    assert huge["baseline"]["peak_rss_bytes"] > 0 and isinstance(huge["within_budget"], bool)
    path, _ = p7.ensure_keys(tmp_path, 100_000)
    import pyarrow.parquet as pq

    keys = pq.read_table(path).column("id").to_numpy()
    assert len(np.unique(keys)) == 100_000 and keys.min() < -(1 << 60) and keys.max() > 1 << 60  # unique, spread

