"""Partitioned, incremental products (issue 11, ``partition_by``), through the real CLI.

One output partitioned by its ``day`` input (data/day-N.csv), reading ``rates`` whole. The transform appends the
day it was called for to calls.log, so "only that partition was built" is observed, not assumed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from batchlane.backends import local_backend
from batchlane.gate import read_table
from batchlane.partitions import build_count, merkle_root, partition_report_key
from batchlane.reading import NotCertified
from batchlane.receipts import BeginReceipt, MaterializeReceipt, parse_receipt, receipt_key

TRANSFORMS = '''
from pathlib import Path


def events(day, rates):
    with Path(__file__).with_name("calls.log").open("a") as handle:
        handle.write(f"{int(day['day'].iloc[0])}\\n")
    if (day["value"] < 0).any():
        raise ValueError("negative value in day " + str(int(day["day"].iloc[0])))
    out = day.copy()
    out["amount"] = out["value"] * float(rates["rate"].iloc[0])
    return out[["id", "day", "amount"]]
'''

SPEC = '''
lane: parts
outputs:
  events:
    inputs: {day: data/day-*.csv, rates: data/rates.csv}
    partition_by: day
    transform: transforms:events
    contract:
      columns:
        id: {type: int64, not_null: true, unique: true}
        day: {type: int64}
        amount: {type: float64, min: 0}
'''


@pytest.fixture
def parts(tmp_path: Path) -> Path:
    lane = tmp_path / "parts"
    (lane / "data").mkdir(parents=True)
    (lane / "transforms.py").write_text(TRANSFORMS)
    (lane / "lane.yaml").write_text(SPEC)
    (lane / "data" / "rates.csv").write_text("rate\n2.0\n")
    for day in (1, 2, 3):
        write_day(lane, day)
    return lane


def write_day(lane: Path, day: int, ids: list[int] | None = None, value: int = 1) -> None:
    ids = ids if ids is not None else [day * 10 + 1, day * 10 + 2]
    (lane / "data" / f"day-{day}.csv").write_text("id,day,value\n" + "".join(f"{i},{day},{value}\n" for i in ids))


def calls(lane: Path) -> list[int]:
    log = lane / "calls.log"
    days = sorted(int(line) for line in log.read_text().split()) if log.exists() else []
    log.unlink(missing_ok=True)
    return days


def receipt(lane_home: Path, run_id: str, attempt: int, kind: str):
    return parse_receipt((lane_home / receipt_key(run_id, "events", attempt, kind)).read_bytes())


def statuses(materialized: MaterializeReceipt) -> dict[str, str]:
    return {part.name: part.status for part in materialized.partitions}


def certified_days(lane_home: Path) -> list[int]:
    return sorted(set(read_table(local_backend(lane_home), "parts", "events").column("day").to_pylist()))


def run(lane_json, parts: Path, *extra: str) -> tuple[int, dict]:
    return lane_json("run", parts / "lane.yaml", *extra)


def test_add_change_and_remove_build_only_the_partitions_that_changed(parts, lane_home, lane, lane_json):
    code, first = run(lane_json, parts)
    assert code == 0, first
    assert calls(parts) == [1, 2, 3]
    built = receipt(lane_home, first["run_id"], 1, "materialize")
    assert statuses(built) == {"data/day-1.csv": "built", "data/day-2.csv": "built", "data/day-3.csv": "built"}
    assert [file.uri.rsplit("/", 1)[1] for file in built.outputs] == ["part-0000.parquet", "part-0001.parquet",
                                                                       "part-0002.parquet"]
    assert built.partitions_root == merkle_root([(p.name, p.file.sha256) for p in built.partitions if p.file])

    code, same = run(lane_json, parts)  # nothing changed: the whole product is memoized
    assert code == 0 and same["outputs"]["events"]["state"] == "memoized"
    assert calls(parts) == []

    write_day(parts, 4)  # a new file: only its partition is built
    code, added = run(lane_json, parts)
    assert code == 0, added
    assert calls(parts) == [4]
    materialized = receipt(lane_home, added["run_id"], 1, "materialize")
    assert statuses(materialized) == {"data/day-1.csv": "reused", "data/day-2.csv": "reused",
                                      "data/day-3.csv": "reused", "data/day-4.csv": "built"}
    reused = next(part for part in materialized.partitions if part.name == "data/day-1.csv")
    assert reused.file == built.partitions[0].file  # the certified file itself, by reference
    assert reused.reused_from == receipt_key(first["run_id"], "events", 1, "materialize")
    assert certified_days(lane_home) == [1, 2, 3, 4]
    gate = receipt(lane_home, added["run_id"], 1, "gate")
    assert gate.proof == materialized.outputs and len(gate.proof) == 4  # the proof covers every partition

    write_day(parts, 2, value=5)  # a changed file: only its own partition
    code, changed = run(lane_json, parts)
    assert code == 0, changed
    assert calls(parts) == [2]
    assert statuses(receipt(lane_home, changed["run_id"], 1, "materialize"))["data/day-2.csv"] == "built"

    (parts / "data" / "day-1.csv").unlink()  # a removed file: its partition is gone, nothing is built
    code, removed = run(lane_json, parts)
    assert code == 0, removed
    assert calls(parts) == []
    after = receipt(lane_home, removed["run_id"], 1, "materialize")
    assert set(statuses(after)) == {"data/day-2.csv", "data/day-3.csv", "data/day-4.csv"}
    assert set(statuses(after).values()) == {"reused"}
    assert certified_days(lane_home) == [2, 3, 4]
    assert after.partitions_root != materialized.partitions_root
    code, verified = lane_json("verify", removed["run_id"])
    assert code == 0, verified
    code, shown, _ = lane("show", removed["run_id"], "events")
    assert code == 0
    assert "partitions 3 · merkle root " + after.partitions_root in shown
    assert "partition data/day-2.csv #1 reused" in shown


def test_failed_partition_fails_the_version_and_rerun_failed_rebuilds_only_it(parts, lane_home, lane_json):
    code, first = run(lane_json, parts)
    assert code == 0
    calls(parts)
    write_day(parts, 4)
    write_day(parts, 5, value=-1)  # its transform raises
    code, broken = run(lane_json, parts)
    assert code == 1
    assert broken["outputs"]["events"]["state"] == "failed"
    assert "1 partition(s) failed: data/day-5.csv: transform transforms:events raised ValueError: negative value " \
           "in day 5" in broken["outputs"]["events"]["error"]
    assert calls(parts) == [4, 5]  # one failing partition did not stop the other
    failed = receipt(lane_home, broken["run_id"], 1, "materialize")
    assert failed.status == "failed" and failed.outputs == [] and failed.partitions_root is None
    assert statuses(failed) == {"data/day-1.csv": "reused", "data/day-2.csv": "reused", "data/day-3.csv": "reused",
                                "data/day-4.csv": "built", "data/day-5.csv": "failed"}
    assert certified_days(lane_home) == [1, 2, 3]  # the last certified version stays in force and readable

    write_day(parts, 5)  # fixed
    code, rerun = lane_json("rerun", broken["run_id"], "--failed")
    assert code == 0, rerun
    assert calls(parts) == [5]  # day 4, built by the failed attempt, is reused
    again = receipt(lane_home, broken["run_id"], 2, "materialize")
    assert statuses(again)["data/day-5.csv"] == "built"
    day4 = next(part for part in again.partitions if part.name == "data/day-4.csv")
    assert (day4.status, day4.reused_from) == ("reused", receipt_key(broken["run_id"], "events", 1, "materialize"))
    assert certified_days(lane_home) == [1, 2, 3, 4, 5]
    code, verified = lane_json("verify", broken["run_id"])
    assert code == 0, verified


def test_duplicate_key_across_two_partitions_fails_the_products_unique(parts, lane_home, lane_json):
    code, _ = run(lane_json, parts)
    assert code == 0
    calls(parts)
    write_day(parts, 4, ids=[41, 12])  # 12 is day 2's key: each partition alone is unique, the product is not
    code, result = run(lane_json, parts)
    assert code == 1
    assert result["outputs"]["events"]["state"] == "rejected"
    assert calls(parts) == [4]
    checked = receipt(lane_home, result["run_id"], 1, "check")
    (unique,) = [rule for rule in checked.failing_rules if rule.rule == "unique"]
    assert unique.column == "id" and 12 in unique.failing_sample
    assert certified_days(lane_home) == [1, 2, 3]


def test_force_rebuilds_every_partition(parts, lane_home, lane_json):
    code, _ = run(lane_json, parts)
    assert code == 0
    calls(parts)
    code, forced = run(lane_json, parts, "--force")
    assert code == 0, forced
    assert calls(parts) == [1, 2, 3]


def test_tampered_certified_partition_is_rebuilt_not_reused(parts, lane_home, lane_json):
    code, first = run(lane_json, parts)
    assert code == 0
    calls(parts)
    built = receipt(lane_home, first["run_id"], 1, "materialize")
    path = local_backend(lane_home).store.local_path("/".join(built.outputs[1].uri.split("/")[-5:]))
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-8] + b"tampered")
    write_day(parts, 4)
    code, result = run(lane_json, parts)
    assert code == 0, result
    assert calls(parts) == [2, 4]  # day 2's certified bytes no longer match: built again, not reused
    assert certified_days(lane_home) == [1, 2, 3, 4]


ATTACKER = """
import os
from pathlib import Path


def events(day, rates):
    marker = Path(__file__).with_name("ATTACK")
    if marker.exists():  # while building this partition, rewrite the first certified partition file
        home = Path(os.environ.get("LANE_HOME") or Path(__file__).parents[1] / "home")
        victim = sorted(home.glob("staging/*/events/0001/part-0000.parquet"))[0]
        victim.chmod(0o644)
        victim.write_bytes(victim.read_bytes()[:-8] + b"tampered")
        marker.unlink()
    out = day.copy()
    out["amount"] = out["value"] * float(rates["rate"].iloc[0])
    return out[["id", "day", "amount"]]
"""


def test_job_that_rewrites_a_reused_partition_fails_the_check_and_the_rerun_rebuilds_it(parts, lane_home,
                                                                                          lane_json):
    """The recorder takes a reused partition's digest from the attempt's begin (hashed then); the job runs in
    between and may write where it should not. The check hashes every file, so the rewrite is a FAIL, never a
    certification of other bytes, and the next attempt finds the file changed and builds it again."""
    (parts / "transforms.py").write_text(ATTACKER)
    code, first = run(lane_json, parts)
    assert code == 0, first
    (parts / "ATTACK").touch()
    write_day(parts, 4)
    code, attacked = run(lane_json, parts)
    assert code == 1
    materialized = receipt(lane_home, attacked["run_id"], 1, "materialize")
    assert statuses(materialized)["data/day-1.csv"] == "reused"
    assert attacked["outputs"]["events"]["state"] == "rejected", attacked
    checked = receipt(lane_home, attacked["run_id"], 1, "check")
    assert checked.verdict == "FAIL"
    with pytest.raises(NotCertified, match="changed since certification"):  # in force, but its bytes are gone:
        certified_days(lane_home)                                             # refused, never served
    code, rerun = lane_json("rerun", attacked["run_id"], "--failed")
    assert code == 0, rerun
    again = receipt(lane_home, attacked["run_id"], 2, "materialize")
    assert statuses(again)["data/day-1.csv"] == "built"  # its recorded bytes are gone: rebuilt, not reused
    assert statuses(again)["data/day-4.csv"] == "reused"
    assert certified_days(lane_home) == [1, 2, 3, 4]


def test_array_job_builds_one_partition_per_index_and_records_them_together(parts, lane_home, lane_json,
                                                                             monkeypatch):
    """The AWS array-job interface: ``--partition-index N`` (or AWS_BATCH_JOB_ARRAY_INDEX) builds the Nth
    partition to build and writes report-{index:04d}.json; the recorder puts the reports together."""
    from batchlane import materialize
    from batchlane.gate import decide
    from batchlane.plan import begin_output, plan_run
    from batchlane.spec import load_spec

    code, _ = run(lane_json, parts)
    assert code == 0
    calls(parts)
    write_day(parts, 4)
    write_day(parts, 5)
    spec = load_spec(parts / "lane.yaml")
    backend = local_backend(lane_home)
    planned = plan_run(backend, spec)
    start = begin_output(backend, spec, planned.run_id, "events")
    assert start.action == "materialize"
    begun = receipt(lane_home, planned.run_id, 1, "begin")
    assert isinstance(begun, BeginReceipt)
    building = [plan for plan in begun.partitions if plan.reuse is None]
    assert [plan.name for plan in building] == ["data/day-4.csv", "data/day-5.csv"]
    assert build_count(backend, planned.run_id, "events", 1) == 2  # the array job's size
    argv = ["--spec", str(parts / "lane.yaml"), "--run-id", planned.run_id, "--output", "events", "--attempt", "1"]
    assert materialize.main([*argv, "--partition-index", "2"]) == 2  # out of range: bad usage, nothing written
    assert materialize.main([*argv, "--partition-index", "-1"]) == 2
    assert not (lane_home / "staging" / planned.run_id).exists()
    assert materialize.main([*argv, "--partition-index", "0"]) == 0
    monkeypatch.setenv("AWS_BATCH_JOB_ARRAY_INDEX", "1")
    assert materialize.main(argv) == 0
    assert calls(parts) == [4, 5]
    for plan in building:
        assert (lane_home / partition_report_key(planned.run_id, "events", 1, plan.index)).is_file()
    gate = decide(backend, spec, planned.run_id, "events", 1)
    assert gate.decision == "certified", gate.reason
    assert certified_days(lane_home) == [1, 2, 3, 4, 5]


def test_array_job_child_that_never_reported_fails_only_its_partition(parts, lane_home, lane_json):
    from batchlane import materialize
    from batchlane.gate import decide
    from batchlane.plan import begin_output, plan_run
    from batchlane.spec import load_spec

    spec = load_spec(parts / "lane.yaml")
    backend = local_backend(lane_home)
    planned = plan_run(backend, spec)
    begin_output(backend, spec, planned.run_id, "events")
    argv = ["--spec", str(parts / "lane.yaml"), "--run-id", planned.run_id, "--output", "events", "--attempt", "1"]
    assert materialize.main([*argv, "--partition-index", "0"]) == 0
    assert materialize.main([*argv, "--partition-index", "2"]) == 0  # the child for index 1 died silently
    gate = decide(backend, spec, planned.run_id, "events", 1)
    assert gate.decision == "rejected"
    materialized = receipt(lane_home, planned.run_id, 1, "materialize")
    assert statuses(materialized) == {"data/day-1.csv": "built", "data/day-2.csv": "failed",
                                      "data/day-3.csv": "built"}
    assert "data/day-2.csv: the job reported nothing for this partition" in materialized.error


PRODUCT_PARTITION = """
lane: parts
outputs:
  other:
    inputs: {raw: data/rates.csv}
  events:
    inputs: {day: {product: other}, rates: data/rates.csv}
    partition_by: day
    transform: transforms:events
"""

NO_TRANSFORM = """
lane: parts
outputs:
  events:
    inputs: {day: data/day-*.csv}
    partition_by: day
"""


@pytest.mark.parametrize(("text", "message"), [
    (SPEC.replace("partition_by: day", "partition_by: days"),
     "outputs.events.partition_by: no input named 'days'; file inputs: day, rates"),
    (PRODUCT_PARTITION, "outputs.events.partition_by: 'day' is a product input; partition_by names a file input"),
    (NO_TRANSFORM, "outputs.events.partition_by: a partitioned output needs a transform"),
], ids=["unknown-input", "product-input", "no-transform"])
def test_partition_by_errors_are_refused_at_load(parts, lane, text, message):
    spec = parts / "lane.yaml"
    spec.write_text(text)
    code, out, err = lane("validate", spec)
    assert code == 2
    assert message in " ".join((out + err).split())  # the console may wrap long lines
    code, out, err = lane("run", spec)
    assert code == 2
    assert message in " ".join(err.split())


WITH_PRODUCT = """
lane: parts
outputs:
  rates_clean:
    inputs: {rates: data/rates.csv}
    contract:
      columns:
        rate: {type: float64, min: 0}
  events:
    inputs: {day: data/day-*.csv, rates: {product: rates_clean}}
    partition_by: day
    transform: transforms:events
    contract:
      columns:
        id: {type: int64, not_null: true, unique: true}
"""


def test_partitions_read_a_product_input_whole_and_rebuild_when_its_bytes_change(parts, lane_home, lane_json):
    (parts / "lane.yaml").write_text(WITH_PRODUCT)
    code, first = run(lane_json, parts)
    assert code == 0, first
    assert calls(parts) == [1, 2, 3]
    begun = receipt(lane_home, first["run_id"], 1, "begin")
    assert next(group for group in begun.inputs if group.name == "rates").product.output == "rates_clean"
    write_day(parts, 4)
    code, added = run(lane_json, parts)
    assert code == 0, added
    assert {name: item["state"] for name, item in added["outputs"].items()} == {"rates_clean": "memoized",
                                                                                "events": "certified"}
    assert calls(parts) == [4]
    (parts / "data" / "rates.csv").write_text("rate\n3.0\n")  # the product every partition reads changes
    code, changed = run(lane_json, parts)
    assert code == 0, changed
    assert calls(parts) == [1, 2, 3, 4]
    amounts = read_table(local_backend(lane_home), "parts", "events").column("amount").to_pylist()
    assert sorted(amounts) == [3.0] * 8  # every partition was built from the new rates


def test_the_check_reads_only_new_partitions_and_the_old_ones_a_new_key_range_overlaps(parts, lane_home, lane,
                                                                                       lane_json):
    """Partition evidence (issue 11): the first check records each partition's hash, rows and rule summaries; the
    next reuses them for unchanged partitions (re-hashing their bytes) and reads only the new partition, plus the
    old partitions whose key range overlaps it, so a repeated key across partitions still fails."""
    code, first = run(lane_json, parts)
    assert code == 0, first
    checked = receipt(lane_home, first["run_id"], 1, "check")
    names = ["data/day-1.csv", "data/day-2.csv", "data/day-3.csv"]
    assert checked.partition_check.read == names and checked.partition_check.reused_from is None
    assert [(e.name, e.sha256, e.rows) for e in checked.partition_evidence] == [
        (name, product.sha256, 2) for name, product in zip(names, checked.products, strict=True)]

    write_day(parts, 4)
    code, added = run(lane_json, parts)
    assert code == 0, added
    checked = receipt(lane_home, added["run_id"], 1, "check")
    assert checked.partition_check.read == ["data/day-4.csv"] and checked.partition_check.reused == names
    assert checked.partition_check.reused_from == receipt_key(first["run_id"], "events", 1, "gate")
    assert "unique(id)" in checked.partition_check.rules_reused and checked.rows == 8
    code, shown, _ = lane("show", added["run_id"], "events")
    assert code == 0 and "partitions: read 1 partition(s), reused the evidence of 3 from receipts/" in shown

    write_day(parts, 5, ids=[22, 23])  # 22 is day 2's key; only day 2's id range overlaps 22..23
    code, repeated = run(lane_json, parts)
    assert code == 1
    checked = receipt(lane_home, repeated["run_id"], 1, "check")
    (unique,) = [rule for rule in checked.failing_rules if rule.rule == "unique"]
    assert unique.failing_sample == [22] and unique.detail == "9 distinct keys in 10 rows without nulls; 1 keys repeat"
    assert checked.partition_check.read == ["data/day-2.csv", "data/day-5.csv"]
    assert checked.partition_check.keys_only == ["data/day-2.csv"]
    assert certified_days(lane_home) == [1, 2, 3, 4]  # the FAIL lends no evidence: the next check reuses day 4's
    (parts / "data" / "day-5.csv").unlink()
    write_day(parts, 6)
    code, fixed = run(lane_json, parts)
    assert code == 0, fixed
    checked = receipt(lane_home, fixed["run_id"], 1, "check")
    assert checked.partition_check.reused_from == receipt_key(added["run_id"], "events", 1, "gate")
    assert checked.partition_check.read == ["data/day-6.csv"]


def test_a_revoked_certification_lends_no_evidence_to_the_next_check(parts, lane_home, lane, lane_json):
    code, first = run(lane_json, parts)
    assert code == 0, first
    code, _, err = lane("revoke", "parts", "events", "--reason", "bad upstream data")
    assert code == 0, err
    write_day(parts, 4)
    code, after = run(lane_json, parts)
    assert code == 0, after
    checked = receipt(lane_home, after["run_id"], 1, "check")
    assert checked.partition_check.reused == [] and len(checked.partition_check.read) == 4
    assert checked.partition_check.full_read == [
        "the certification of parts/events in force was revoked (bad upstream data): every partition is read"]


def test_evidence_in_a_check_receipt_altered_after_certification_is_not_reused(parts, lane_home, lane_json):
    code, first = run(lane_json, parts)
    assert code == 0, first
    stored = lane_home / receipt_key(first["run_id"], "events", 1, "check")
    stored.chmod(0o644)
    stored.write_bytes(stored.read_bytes().replace(b'"rows":2', b'"rows":3', 1))  # forged evidence
    write_day(parts, 4)
    code, after = run(lane_json, parts)
    assert code == 0, after
    checked = receipt(lane_home, after["run_id"], 1, "check")
    assert checked.partition_check.reused == [] and len(checked.partition_check.read) == 4
    assert "cannot lend its evidence" in checked.partition_check.full_read[0]
    assert checked.verdict == "PASS" and checked.rows == 8  # counted from the data, not from the forged receipt
