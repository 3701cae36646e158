"""Partition-wise check evidence (issue 11): reusing the evidence of unchanged partitions gives exactly the rule
results of reading every partition, and evidence is reused only where it provably holds.

Each product is a set of Parquet partitions. The reference for every comparison is the ordinary check of the same
files without partitions (one evaluator fed every batch); the partition-wise check, with and without evidence of
an earlier certified version, must give identical RuleResults.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchlane.checking.reuse import evidence_fingerprint
from batchlane.checks import CheckOutcome, Partitioning, PriorEvidence, check_files, hash_file
from batchlane.contract import Contract

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
REFERENCED = pa.array(list(range(0, 400)), pa.int64())

CONTRACT = {
    "columns": {
        "id": {"type": "int64", "not_null": True, "unique": True},
        "region": {"type": "string", "not_null": {"severity": "warn"},
                   "accepted_values": {"value": ["north", "south", "east", "west"], "max_failing": 1000},
                   "regex": {"value": "^[a-z]+$", "severity": "warn"}},
        "seq": {"type": "int64"},
        "amount": {"type": "float64", "min": {"value": 0, "max_failing": 1000}, "max": {"value": 1000,
                                                                                         "severity": "warn"}},
        "customer": {"type": "int64", "references": {"value": "customers.id", "max_failing": 1000}},
        "at": {"type": "timestamp", "max_age": {"value": "30d", "severity": "warn"}},
    },
    "unique": [["region", "seq"]],
    "row_count": {"min": 1},
}


def contract(**changes) -> Contract:
    document = {**CONTRACT, **changes}
    return Contract.model_validate(document)


def references(output: str, column: str) -> pa.Array:
    assert (output, column) == ("customers", "id")
    return REFERENCED


def partition_table(rng: np.random.Generator, ids: np.ndarray, seq_base: int, *, dirty: bool) -> pa.Table:
    """One partition: unique ids and (region, seq) keys; with ``dirty``, the tolerated or warned violations."""
    rows = len(ids)
    regions = rng.choice(["north", "south", "east", "west"], rows).astype(object)
    amount = rng.random(rows) * 900
    customer = rng.integers(0, 400, rows)
    newest = np.datetime64(int((NOW - dt.timedelta(days=1)).timestamp()), "s")
    at = (newest - rng.integers(0, 86_400, rows).astype("timedelta64[s]")).astype("datetime64[us]")
    region_mask = np.zeros(rows, bool)
    amount_mask = np.zeros(rows, bool)
    if dirty:
        bad = rng.random(rows) < 0.05
        regions[bad] = rng.choice(["North", "nowhere", "s0uth"], int(bad.sum()))
        region_mask = rng.random(rows) < 0.03
        amount[rng.random(rows) < 0.04] = -rng.random() * 10
        amount[rng.random(rows) < 0.02] = 1000 + rng.random() * 5
        amount_mask = rng.random(rows) < 0.02
        customer[rng.random(rows) < 0.03] = 400 + rng.integers(0, 50)
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "region": pa.array(regions.tolist(), pa.string(), mask=region_mask),
        "seq": pa.array(np.arange(seq_base, seq_base + rows), pa.int64()),
        "amount": pa.array(amount, pa.float64(), mask=amount_mask),
        "customer": pa.array(customer, pa.int64()),
        "at": pa.array(at, pa.timestamp("us", tz="UTC")),
    })


class Product:
    """Partition files by name (a dict keeps them in name order when written in order)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, Path] = {}
        self.version = 0

    def write(self, name: str, table: pa.Table, row_group_size: int = 700) -> None:
        self.version += 1
        path = self.root / f"v{self.version}-{name}.parquet"
        pq.write_table(table, path, row_group_size=row_group_size)
        self.files[name] = path
        self.files = dict(sorted(self.files.items()))

    def remove(self, name: str) -> None:
        del self.files[name]

    @property
    def paths(self) -> list[Path]:
        return list(self.files.values())

    def partitioning(self, prior: PriorEvidence | None = None, no_prior: str | None = None) -> Partitioning:
        return Partitioning(names=list(self.files), expected_sha256=[hash_file(p)[1] for p in self.paths],
                            prior=prior, no_prior=no_prior)


def check(product: Product, checked: Contract, prior: PriorEvidence | None = None, *,
          partitioned: bool = True) -> CheckOutcome:
    return check_files(product.paths, checked, reference_values=references, now=NOW,
                       partitions=product.partitioning(prior) if partitioned else None)


def dump(outcome: CheckOutcome) -> list[dict]:
    return [rule.model_dump(mode="json") for rule in outcome.rules]


def certified(outcome: CheckOutcome, source: str = "receipts/run/out/0001-gate.json") -> PriorEvidence:
    prior, why = PriorEvidence.from_check(source, outcome.verdict, outcome.rules, outcome.files,
                                          outcome.partition_evidence, outcome.partition_check)
    assert prior is not None, why
    return prior


def same_as_full_read(product: Product, checked: Contract, prior: PriorEvidence) -> CheckOutcome:
    """The reuse check, asserted equal to a full partition-wise read and to the ordinary check."""
    reused = check(product, checked, prior)
    full = check(product, checked)
    plain = check(product, checked, partitioned=False)
    assert dump(full) == dump(plain)
    assert dump(reused) == dump(full)
    assert (reused.verdict, reused.rows, reused.files) == (full.verdict, full.rows, full.files)
    return reused


def old_product(tmp_path: Path, rng: np.random.Generator, partitions: int = 8) -> Product:
    product = Product(tmp_path)
    next_id = 0
    for number in range(partitions):
        rows = int(rng.integers(300, 2_000))
        ids = next_id + np.sort(rng.choice(rows * 2, rows, replace=False))
        product.write(f"day-{number:02d}", partition_table(rng, ids, number * 10_000, dirty=True))
        next_id += rows * 2
    return product


def reused_rules(outcome: CheckOutcome) -> set[str]:
    assert outcome.partition_check is not None
    return set(outcome.partition_check.rules_reused)


# ----------------------------------------------------------------------------- equality on randomized data


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_reuse_gives_the_rule_results_of_a_full_read(tmp_path, seed):
    rng = np.random.default_rng(seed)
    checked = contract()
    product = old_product(tmp_path, rng)
    first = check(product, checked)
    assert first.verdict == "PASS", [r.label for r in first.failing_rules]  # tolerated and warned violations only
    assert dump(first) == dump(check(product, checked, partitioned=False))
    prior = certified(first)
    names = list(product.files)
    old_ids = pq.read_table(product.files[names[3]], columns=["id"]).column("id").to_numpy()
    old_keys = pq.read_table(product.files[names[5]], columns=["region", "seq"]).to_pylist()
    base = 10_000_000 + seed * 100_000

    # a new partition repeating an old partition's id and an old (region, seq) key, a second new one repeating the
    # first's id, a changed partition with a violation, a removed partition
    new = partition_table(rng, np.arange(base, base + 900), 500_000, dirty=True)
    ids = new.column("id").to_numpy().copy()
    ids[7] = int(rng.choice(old_ids))
    new = new.set_column(0, "id", pa.array(ids))
    regions = new.column("region").to_pylist()
    seqs = new.column("seq").to_pylist()
    duplicate = next(key for key in old_keys if key["region"] is not None)
    regions[11], seqs[11] = duplicate["region"], duplicate["seq"]
    new = new.set_column(1, "region", pa.array(regions, pa.string())).set_column(2, "seq", pa.array(seqs))
    product.write("day-90", new)
    second = partition_table(rng, np.arange(base + 1_000, base + 1_600), 600_000, dirty=True)
    second = second.set_column(0, "id", pa.array(np.r_[[base + 20], np.arange(base + 1_001, base + 1_600)]))
    product.write("day-91", second)
    changed = partition_table(rng, np.arange(base + 2_000, base + 2_500), 700_000, dirty=True)
    product.write(names[1], changed.set_column(0, "id", pa.array(np.r_[[None], np.arange(base + 2_001, base + 2_500)],
                                                                    pa.int64())))
    product.remove(names[6])

    reused = same_as_full_read(product, checked, prior)
    assert reused.verdict == "FAIL"
    failing = {rule.label: rule for rule in reused.failing_rules}
    assert failing["unique(id)"].failing_count == 2  # the old id again, and the second new partition's repeat
    assert failing["unique(region,seq)"].failing_count == 1
    assert failing["not_null(id)"].failing_count == 1  # in the changed partition
    summary = reused.partition_check
    assert summary is not None
    assert set(summary.reused) == set(names) - {names[1], names[6]}
    assert {"day-90", "day-91", names[1]} <= set(summary.read)
    assert set(summary.read) - {"day-90", "day-91", names[1]} == set(summary.keys_only)
    assert names[3] in summary.keys_only and names[5] in summary.keys_only  # the partitions holding the repeats
    assert {"not_null(id)", "min(amount), max(amount)", "accepted_values(region)"} <= reused_rules(reused)
    evidence = {entry.name: entry for entry in reused.partition_evidence}
    assert list(evidence) == list(product.files)
    assert {name for name, entry in evidence.items() if entry.read} == set(summary.read)


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_adding_clean_partitions_reads_only_them_and_matches_a_full_read(tmp_path, seed):
    rng = np.random.default_rng(seed)
    checked = contract()
    product = old_product(tmp_path, rng, partitions=10)
    prior = certified(check(product, checked))
    product.write("day-99", partition_table(rng, np.arange(50_000_000, 50_000_800), 900_000, dirty=True))
    reused = same_as_full_read(product, checked, prior)
    summary = reused.partition_check
    assert summary is not None and summary.read == ["day-99"] and summary.keys_only == []
    assert len(summary.reused) == 10 and summary.reused_from == "receipts/run/out/0001-gate.json"
    assert {"unique(id)", "unique(region,seq)", "references(customer)", "max_age(at)"} <= reused_rules(reused)


def test_duplicates_only_between_two_new_partitions(tmp_path):
    rng = np.random.default_rng(11)
    checked = contract()
    product = old_product(tmp_path, rng, partitions=4)
    prior = certified(check(product, checked))
    product.write("day-50", partition_table(rng, np.arange(90_000, 90_100), 800_000, dirty=False))
    product.write("day-51", partition_table(rng, np.arange(90_050, 90_150), 800_050, dirty=False))
    reused = same_as_full_read(product, checked, prior)
    by_label = {rule.label: rule for rule in reused.rules}
    assert by_label["unique(id)"].failing_count == 50
    assert by_label["unique(id)"].failing_sample == [90_050, 90_051, 90_052, 90_053, 90_054]
    assert reused.partition_check is not None and reused.partition_check.read == ["day-50", "day-51"]


def test_composite_key_reads_an_old_partition_only_when_every_key_column_overlaps(tmp_path):
    checked = Contract.model_validate({"columns": {"a": {"type": "string"}, "b": {"type": "int64"}},
                                       "unique": [["a", "b"]]})
    product = Product(tmp_path)
    product.write("p1", pa.table({"a": ["x", "y"], "b": [1, 2]}))
    product.write("p2", pa.table({"a": ["m", "n"], "b": [10, 20]}))
    product.write("p3", pa.table({"a": ["p", "q"], "b": [1, 2]}))
    prior = certified(check(product, checked))
    product.write("p4", pa.table({"a": ["x", "z"], "b": [1, 15]}))  # a overlaps only p1; b overlaps p1, p2 and p3
    reused = same_as_full_read(product, checked, prior)
    assert reused.verdict == "FAIL" and reused.failing_rules[0].failing_sample == [["x", 1]]
    assert reused.partition_check is not None
    assert reused.partition_check.read == ["p1", "p4"] and reused.partition_check.keys_only == ["p1"]


def test_a_removed_partition_drops_out(tmp_path):
    rng = np.random.default_rng(3)
    checked = contract()
    product = old_product(tmp_path, rng, partitions=5)
    first = check(product, checked)
    prior = certified(first)
    gone = list(product.files)[2]
    product.remove(gone)
    reused = same_as_full_read(product, checked, prior)
    assert reused.partition_check is not None and reused.partition_check.read == []
    assert reused.rows == first.rows - pq.read_metadata(prior_path(first, gone)).num_rows
    assert [entry.name for entry in reused.partition_evidence] == list(product.files)


def prior_path(outcome: CheckOutcome, name: str) -> str:
    return next(entry.uri for entry in outcome.partition_evidence if entry.name == name)


# ----------------------------------------------------------------------------- when evidence is not reused


def test_evidence_of_a_failed_check_is_never_reused(tmp_path):
    product = Product(tmp_path)
    checked = Contract.model_validate({"columns": {"id": {"type": "int64", "unique": True}}})
    product.write("p1", pa.table({"id": [1, 2, 2]}))
    failed = check(product, checked)
    assert failed.verdict == "FAIL"
    prior, why = PriorEvidence.from_check("cert", failed.verdict, failed.rules, failed.files,
                                          failed.partition_evidence, failed.partition_check)
    assert prior is None and "did not pass (FAIL)" in (why or "")
    outcome = check_files(product.paths, checked, partitions=product.partitioning(None, why))
    assert outcome.partition_check is not None and outcome.partition_check.read == ["p1"]
    assert outcome.partition_check.full_read == [why]


def test_evidence_under_another_contract_is_not_reused(tmp_path):
    rng = np.random.default_rng(8)
    product = old_product(tmp_path, rng, partitions=3)
    prior = certified(check(product, contract()))
    stricter = contract(row_count={"min": 1, "max": 10_000_000})
    assert evidence_fingerprint(stricter) != prior.fingerprint
    outcome = same_as_full_read(product, stricter, prior)
    assert outcome.partition_check is not None
    assert outcome.partition_check.reused == [] and len(outcome.partition_check.read) == 3
    assert "another contract" in outcome.partition_check.full_read[0]


def test_a_reused_partition_whose_bytes_changed_is_read_again_and_its_hash_reported(tmp_path):
    rng = np.random.default_rng(9)
    checked = contract()
    product = old_product(tmp_path, rng, partitions=3)
    prior = certified(check(product, checked))
    name = list(product.files)[1]
    recorded = product.partitioning().expected_sha256
    assert recorded is not None
    victim = product.files[name]
    table = pq.read_table(victim)
    pq.write_table(table.set_column(0, "id", pa.array([0] * table.num_rows, pa.int64())), victim)  # bytes changed
    claimed = Partitioning(names=list(product.files), expected_sha256=recorded, prior=prior)  # as if unchanged
    outcome = check_files(product.paths, checked, reference_values=references, now=NOW, partitions=claimed)
    assert outcome.verdict == "FAIL"  # never a PASS over evidence of other bytes
    assert dump(outcome) == dump(check(product, checked, partitioned=False))
    assert outcome.files[1].sha256 != recorded[1]  # what the gate compares with the recorded bytes
    assert outcome.partition_check is not None
    assert outcome.partition_check.reused == [] and len(outcome.partition_check.read) == 3
    assert "is not the one its evidence describes" in outcome.partition_check.full_read[0]


def test_row_expressions_force_a_full_read(tmp_path):
    rng = np.random.default_rng(10)
    checked = contract(expect=[{"name": "positive_seq", "sql": "seq >= 0"}])
    product = old_product(tmp_path, rng, partitions=3)
    prior = certified(check(product, checked))
    product.write("day-70", partition_table(rng, np.arange(70_000_000, 70_000_100), 1, dirty=True))
    outcome = same_as_full_read(product, checked, prior)
    assert outcome.partition_check is not None and len(outcome.partition_check.read) == 4
    assert "expect(positive_seq): not partition-wise mergeable" in outcome.partition_check.full_read[0]


def test_a_key_the_certification_tolerated_duplicates_of_is_read_in_every_partition(tmp_path):
    checked = Contract.model_validate({"columns": {"id": {"type": "int64", "unique": {"max_failing": 5}},
                                                   "v": {"type": "int64", "not_null": True}}})
    product = Product(tmp_path)
    product.write("p1", pa.table({"id": [1, 2, 3], "v": [1, 1, 1]}))
    product.write("p2", pa.table({"id": [3, 4, 5], "v": [1, 1, 1]}))  # 3 repeats: tolerated
    prior = certified(check(product, checked))
    assert "id" not in prior.clean_keys
    product.write("p3", pa.table({"id": [100, 101], "v": [1, 1]}))
    outcome = same_as_full_read(product, checked, prior)
    assert outcome.partition_check is not None
    assert outcome.partition_check.read == ["p1", "p2", "p3"] and outcome.partition_check.keys_only == ["p1", "p2"]
    assert outcome.partition_check.reused == ["p1", "p2"]  # not_null(v) still reused
    assert any("did not find this key free of duplicates" in why for why in outcome.partition_check.full_read)


def test_freshness_is_rejudged_against_the_new_clock(tmp_path):
    """max_age keeps each partition's newest value; a partition with values beyond the allowed future skew at
    the new check's clock is read again, the others are re-judged from their evidence."""
    checked = Contract.model_validate({"columns": {"at": {"type": "timestamp", "max_age": {"value": "1d",
                                                                                           "severity": "warn"}}}})
    stamp = pa.timestamp("us", tz="UTC")
    product = Product(tmp_path)
    product.write("p1", pa.table({"at": pa.array([NOW - dt.timedelta(hours=2)], stamp)}))
    product.write("p2", pa.table({"at": pa.array([NOW + dt.timedelta(hours=3)], stamp)}))  # in the future: warns
    first = check_files(product.paths, checked, now=NOW, partitions=product.partitioning())
    assert first.verdict == "PASS" and first.warnings[0].failing_count == 1
    prior = certified(first)
    for later, read in ((NOW + dt.timedelta(hours=5), []), (NOW + dt.timedelta(hours=1), ["p2"])):
        reused = check_files(product.paths, checked, now=later, partitions=product.partitioning(prior))
        full = check_files(product.paths, checked, now=later)
        assert dump(reused) == dump(full)
        assert reused.partition_check is not None and reused.partition_check.read == read


def test_changed_referenced_values_read_every_partition(tmp_path):
    rng = np.random.default_rng(12)
    checked = contract()
    product = old_product(tmp_path, rng, partitions=3)
    prior = certified(check(product, checked))
    fewer = REFERENCED.slice(0, 300)
    reused = check_files(product.paths, checked, reference_values=lambda o, c: fewer, now=NOW,
                         partitions=product.partitioning(prior))
    full = check_files(product.paths, checked, reference_values=lambda o, c: fewer, now=NOW)
    assert dump(reused) == dump(full)
    assert reused.partition_check is not None and len(reused.partition_check.read) == 3
    assert "references(customer): no summary recorded" in reused.partition_check.full_read[0]


def test_partitions_must_name_every_file_once(tmp_path):
    from batchlane.checks import CheckError

    product = Product(tmp_path)
    product.write("p1", pa.table({"id": [1]}))
    checked = Contract.model_validate({"columns": {"id": {"type": "int64"}}})
    with pytest.raises(CheckError, match="2 partition names for 1 files"):
        check_files(product.paths, checked, partitions=Partitioning(names=["p1", "p2"]))


@pytest.mark.parametrize("seed", [20, 21])
def test_awkward_columns_merge_exactly(tmp_path, seed):
    """Dates, dictionary-encoded strings, NaN, null keys, a string key, row numbers of nulls far into a partition:
    the merged evidence still equals one evaluator's, with and without reuse."""
    rng = np.random.default_rng(seed)
    checked = Contract.model_validate({
        "columns": {
            "day": {"type": "date", "max_age": {"value": "400d", "severity": "warn"}},
            "kind": {"type": "string", "accepted_values": {"value": ["a", "b"], "severity": "warn"},
                     "regex": {"value": "^[ab]$", "max_failing_fraction": 0.5}},
            "ratio": {"type": "float64", "min": {"value": 0, "severity": "warn"},
                      "max": {"value": 1, "max_failing": 500}},
            "code": {"type": "string", "unique": {"severity": "warn"}, "not_null": {"max_failing": 99}},
        },
        "row_count": {"min": 1, "max_change": 0.9},
    })
    product = Product(tmp_path)

    def table(rows: int, start: int) -> pa.Table:
        days = (np.datetime64("2025-12-01") + rng.integers(0, 150, rows).astype("timedelta64[D]"))
        kinds = pa.array(rng.choice(["a", "b", "c", "zz"], rows, p=[0.45, 0.45, 0.05, 0.05])).dictionary_encode()
        ratio = rng.random(rows) * 1.05 - 0.02
        ratio[rng.random(rows) < 0.01] = np.nan
        codes = [f"k{start + i}" if rng.random() > 0.01 else None for i in range(rows)]
        return pa.table({"day": pa.array(days, pa.date32()), "kind": kinds, "ratio": ratio,
                         "code": pa.array(codes, pa.string())})

    for number in range(5):
        product.write(f"p{number}", table(int(rng.integers(200, 900)), number * 1_000), row_group_size=128)
    first = check(product, checked)
    assert dump(first) == dump(check(product, checked, partitioned=False))
    assert first.verdict == "PASS", [r.label for r in first.failing_rules]
    prior = certified(first)
    product.write("p9", table(300, 9_000).set_column(3, "code", pa.array(["k5"] * 300, pa.string())))
    reused = same_as_full_read(product, checked, prior)
    assert reused.partition_check is not None and reused.partition_check.read[-1] == "p9"
    assert len(reused.partition_check.reused) == 5
