"""The gate's promises, on both backends: binding, tampering, memo soundness, revocation ordering."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from batchlane.gate import NotCertified, read_table, revoke
from batchlane.materialize import materialize
from batchlane.plan import begin_output, plan_run
from batchlane.receipts import LaneEvent, product_key
from batchlane.spec import load_spec
from batchlane.verify import verify_run


def make_lane(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "transforms.py").write_text("def negate(items):\n    items['value'] = -items['value']\n    return items\n")
    (folder / "items.csv").write_text("id,value\n1,10\n2,20\n")
    outputs = {
        "items_clean": {"inputs": {"items": "items.csv"}, "contract": {"columns": {"value": {"min": 0}}}},
        "items_negated": {"inputs": {"items": "items.csv"}, "transform": "transforms:negate"},
    }
    (folder / "lane.yaml").write_text(yaml.safe_dump({"lane": "tiny", "outputs": outputs}))
    return folder / "lane.yaml"


def run_all(backend, spec_path: Path):
    from batchlane.gate import close_run, decide

    spec = load_spec(spec_path)
    plan = plan_run(backend, spec)
    starts = {}
    for output in plan.outputs:
        start = begin_output(backend, spec, plan.run_id, output)
        starts[output] = start
        if start.action == "materialize":
            materialize(backend.store, spec, plan.run_id, output, start.attempt, job_id="test")
        if start.action != "memoized":
            decide(backend, spec, plan.run_id, output, start.attempt)
    return plan, starts, close_run(backend, spec, plan.run_id)


def _overwrite(backend, key: str, data: bytes) -> None:
    local = backend.store.local_path(key)
    if local is not None:
        local.chmod(0o644)
        local.write_bytes(data)
    else:
        backend.store.s3.put_object(Bucket=backend.store.bucket, Key=backend.store._key(key), Body=data)


def test_a_pointer_copied_onto_another_output_is_refused(backend, tmp_path):
    run_all(backend, make_lane(tmp_path / "lane"))
    ledger = backend.ledger
    clean, negated = ledger.current("tiny", "items_clean"), ledger.current("tiny", "items_negated")
    assert read_table(backend, "tiny", "items_negated").column("value").to_pylist() == [-10, -20]
    forged = dataclasses.replace(clean, output="items_negated")  # A's certification under B's name
    ledger.swap_pointer(negated.version, forged, LaneEvent(type="DataProductCertified", lane="tiny", run_id="x",
                                                           output="items_negated"))
    with pytest.raises(NotCertified, match="not the gate receipt of its own attempt"):
        read_table(backend, "tiny", "items_negated")
    # the same, with the key made to match: the receipt itself names another output
    renamed = dataclasses.replace(forged, key=negated.key, digest=clean.digest)
    ledger.swap_pointer(negated.version + 1, renamed, LaneEvent(type="DataProductCertified", lane="tiny", run_id="y",
                                                                output="items_negated"))
    with pytest.raises(NotCertified, match="altered|belongs to"):
        read_table(backend, "tiny", "items_negated")


def test_memo_hit_requires_the_certified_bytes_to_still_match(backend, tmp_path):
    spec_path = make_lane(tmp_path / "lane")
    first, _, _ = run_all(backend, spec_path)
    pointer = backend.ledger.current("tiny", "items_clean")
    from batchlane.evidence import load_receipt

    gate = load_receipt(backend, pointer.run_id, "items_clean", pointer.attempt, "gate")
    _overwrite(backend, product_key(gate.proof[0].uri), b"PAR1 not the certified bytes")
    with pytest.raises(NotCertified, match="changed since certification"):
        read_table(backend, "tiny", "items_clean")
    assert not verify_run(backend, first.run_id).ok
    second, starts, manifest = run_all(backend, spec_path)
    assert starts["items_clean"].action == "materialize"  # not "memoized . PASS" over changed bytes
    assert starts["items_negated"].action == "memoized"
    begun = load_receipt(backend, second.run_id, "items_clean", starts["items_clean"].attempt, "begin")
    assert "cannot be reused" in begun.memo_note and "changed since certification" in begun.memo_note
    assert manifest.verdict == "PASS"
    assert read_table(backend, "tiny", "items_clean").num_rows == 2


def test_a_run_started_before_a_revoke_cannot_recertify(backend, tmp_path):
    from batchlane.gate import decide

    spec_path = make_lane(tmp_path / "lane")
    run_all(backend, spec_path)
    spec = load_spec(spec_path)
    early = plan_run(backend, spec, outputs=["items_clean"])  # starts now, finishes after the revoke
    start = begin_output(backend, spec, early.run_id, "items_clean", force=True)
    materialize(backend.store, spec, early.run_id, "items_clean", start.attempt, job_id="t")
    revoke(backend, "tiny", "items_clean", "bad upstream batch")
    decide(backend, spec, early.run_id, "items_clean", start.attempt)
    current = backend.ledger.current("tiny", "items_clean")
    assert current.revoked == "bad upstream batch"
    with pytest.raises(NotCertified, match="revoked"):
        read_table(backend, "tiny", "items_clean")
    # a run started after the revoke may certify again
    later, _, manifest = run_all(backend, spec_path)
    assert manifest.outputs["items_clean"].state == "certified"
    assert backend.ledger.current("tiny", "items_clean").run_id == later.run_id
