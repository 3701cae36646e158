"""Fail closed: bad inputs, crashing transforms, killed jobs, tampering — nothing gets certified."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import yaml

from batchlane.backends import local_backend
from batchlane.gate import NotCertified, check, close_run, decide, read_table
from batchlane.materialize import materialize
from batchlane.plan import begin_output, plan_run
from batchlane.recording import record_crash
from batchlane.spec import load_spec
from batchlane.stores.base import AlreadyExists
from batchlane.verify import verify_run

TRANSFORMS = '''
import pandas as pd

def double(items):
    out = items.copy()
    out["value"] = out["value"] * 2
    return out

def boom(items):
    raise ValueError("boom: bad batch")

def not_a_frame(items):
    return [1, 2, 3]

def big(items):
    n = 4_000_000
    return pd.DataFrame({"id": range(n), "value": [1.5] * n, "label": ["x" * 20] * n})
'''


def make_lane(folder: Path, transform: str | None = "transforms:double", data: str | None = "id,value\n1,10\n2,20\n",
              input_name: str = "items.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "transforms.py").write_text(TRANSFORMS)
    if data is not None:
        (folder / input_name).write_text(data)
    output = {"inputs": {"items": input_name},
              "contract": {"columns": {"id": {"type": "int64", "not_null": True, "unique": True},
                                       "value": {"min": 0}},
                           "row_count": {"min": 1}}}
    if transform:
        output["transform"] = transform
    (folder / "lane.yaml").write_text(yaml.safe_dump({"lane": "tiny", "outputs": {"items_clean": output}}))
    return folder / "lane.yaml"


def run_in_process(backend, spec_path: Path, **plan_args):
    """plan -> begin -> materialize (in-process) -> check -> decide -> close: the runner's steps without subprocesses."""
    spec = load_spec(spec_path)
    plan = plan_run(backend, spec, **plan_args)
    for output in plan.outputs:
        start = begin_output(backend, spec, plan.run_id, output)
        if start.action == "materialize":
            materialize(backend.store, spec, plan.run_id, output, start.attempt, job_id="test")
        if start.action != "memoized":
            decide(backend, spec, plan.run_id, output, start.attempt)
    return spec, plan, close_run(backend, spec, plan.run_id)


@pytest.fixture
def backend(tmp_path):
    return local_backend(tmp_path / "home")


def assert_failed_closed(backend, manifest, expected_error: str):
    closure = manifest.outputs["items_clean"]
    assert manifest.verdict == "FAIL"
    assert closure.state == "failed"
    assert expected_error in closure.error
    assert "output items_clean, run " in closure.error  # errors name the output and the run
    assert backend.ledger.current("tiny", "items_clean") is None
    with pytest.raises(NotCertified, match="no certification"):
        read_table(backend, "tiny", "items_clean")
    receipt = json.loads(backend.store.get(f"receipts/{manifest.run_id}/items_clean/0001-materialize.json"))
    assert receipt["status"] == "failed" and expected_error in receipt["error"]
    gate = json.loads(backend.store.get(f"receipts/{manifest.run_id}/items_clean/0001-gate.json"))
    assert gate["decision"] == "rejected" and gate["proof"] == []


@pytest.mark.parametrize(
    ("data", "input_name", "transform", "expected"),
    [
        (None, "items.csv", "transforms:double", "input 'items' (items.csv): no file matches"),
        ("", "items.csv", "transforms:double", "file is empty"),
        ("id,value\n1,10\n2,\"20\n", "items.csv", "transforms:double", "malformed csv"),
        ("id,value\n", "items.csv", None, None),  # header only: zero rows -> row_count rule, not a crash
        ('{"id": 1, "value": 1}\n{"id": 2, "value": ', "items.jsonl", None, "malformed jsonl"),
        ("not parquet at all", "items.parquet", None, "malformed parquet"),
        ("a\tb", "items.txt", None, "unsupported format .txt"),
        ("id,value\n1,10\n", "items.csv", "transforms:boom", "transform transforms:boom raised ValueError: boom: bad batch"),
        ("id,value\n1,10\n", "items.csv", "transforms:not_a_frame", "returned list, expected a pandas DataFrame"),
        ("id,value\n1,10\n", "items.csv", "transforms:missing", "has no function 'missing'"),
        ("id,value\n1,10\n", "items.csv", "absent:double", "module file"),
    ],
)
def test_bad_inputs_and_transforms_fail_closed(tmp_path, backend, data, input_name, transform, expected):
    spec_path = make_lane(tmp_path / "lane", transform=transform, data=data, input_name=input_name)
    _, _, manifest = run_in_process(backend, spec_path)
    if expected is None:
        closure = manifest.outputs["items_clean"]
        assert closure.state == "rejected" and "row_count" in closure.failing_rules
        assert backend.ledger.current("tiny", "items_clean") is None
        return
    assert_failed_closed(backend, manifest, expected)


def test_contract_failure_rejects_with_evidence(tmp_path, backend):
    spec_path = make_lane(tmp_path / "lane", data="id,value\n1,10\n1,-5\n")
    _, plan, manifest = run_in_process(backend, spec_path)
    closure = manifest.outputs["items_clean"]
    assert closure.state == "rejected" and sorted(closure.failing_rules) == ["min(value)", "unique(id)"]
    checked = json.loads(backend.store.get(f"receipts/{plan.run_id}/items_clean/0001-check.json"))
    unique = next(rule for rule in checked["rules"] if rule["rule"] == "unique")
    assert unique["passed"] is False and unique["failing_sample"] == [1]
    assert backend.ledger.current("tiny", "items_clean") is None


def test_materializer_killed_mid_write_certifies_nothing(tmp_path, backend):
    spec_path = make_lane(tmp_path / "lane", transform="transforms:big")
    spec = load_spec(spec_path)
    plan = plan_run(backend, spec)
    start = begin_output(backend, spec, plan.run_id, "items_clean")
    env = {**os.environ, "LANE_BACKEND": "local", "LANE_HOME": backend.settings["home"]}
    job = subprocess.Popen(
        [sys.executable, "-m", "batchlane.materialize", "--spec", str(spec_path), "--run-id", plan.run_id,
         "--output", "items_clean", "--attempt", str(start.attempt)], env=env)
    scratch = Path(backend.settings["home"]) / ".tmp"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill as soon as the Parquet file has bytes on disk
        if any(path.stat().st_size > 0 for path in scratch.glob("*.parquet")):
            break
        time.sleep(0.005)
    else:
        job.kill()
        pytest.fail("the materializer never started writing")
    job.send_signal(signal.SIGKILL)
    assert job.wait() == -signal.SIGKILL
    assert not list((Path(backend.settings["home"]) / "staging").rglob("*.parquet")), "no partial product is published"
    from batchlane.stores.local import LocalObjectStore

    assert list(scratch.glob(f"{job.pid}-*")), "the killed job left its temporary file"
    LocalObjectStore(Path(backend.settings["home"]))  # the next use of the store sweeps a dead job's leftovers
    assert not list(scratch.glob(f"{job.pid}-*"))
    record_crash(backend, spec, plan.run_id, "items_clean", start.attempt, job_id=str(job.pid), error="killed (SIGKILL)")
    gate = decide(backend, spec, plan.run_id, "items_clean", start.attempt)
    assert gate.decision == "rejected" and "killed" in gate.reason
    assert close_run(backend, spec, plan.run_id).outputs["items_clean"].state == "failed"
    assert backend.ledger.current("tiny", "items_clean") is None


def test_data_changed_after_certification_refuses_read_and_verify(tmp_path, backend):
    _, plan, manifest = run_in_process(backend, make_lane(tmp_path / "lane"))
    assert manifest.verdict == "PASS"
    assert read_table(backend, "tiny", "items_clean").num_rows == 2
    product = next((Path(backend.settings["home"]) / "staging").rglob("*.parquet"))
    product.chmod(0o644)
    with open(product, "r+b") as handle:
        handle.seek(10)
        handle.write(b"\x00\x01")
    with pytest.raises(NotCertified, match="changed since certification"):
        read_table(backend, "tiny", "items_clean")
    report = verify_run(backend, plan.run_id)
    assert not report.ok and any("bytes changed since certification" in p for p in report.problems)


def test_tampered_receipt_fails_verify(tmp_path, backend):
    _, plan, _ = run_in_process(backend, make_lane(tmp_path / "lane"))
    assert verify_run(backend, plan.run_id).ok
    path = Path(backend.settings["home"]) / "receipts" / plan.run_id / "items_clean" / "0001-check.json"
    document = json.loads(path.read_text())
    document["verdict"] = "PASS"
    document["rows"] = 3
    path.chmod(0o644)
    path.write_bytes(json.dumps(document, sort_keys=True, separators=(",", ":")).encode())
    report = verify_run(backend, plan.run_id)
    assert not report.ok
    assert any("0001-check.json: digest mismatch" in p for p in report.problems)


def test_deleted_receipt_and_unindexed_receipt_fail_verify(tmp_path, backend):
    _, plan, _ = run_in_process(backend, make_lane(tmp_path / "lane"))
    folder = Path(backend.settings["home"]) / "receipts" / plan.run_id / "items_clean"
    (folder / "0001-check.json").unlink()
    (folder / "0009-check.json").write_text("{}")
    problems = verify_run(backend, plan.run_id).problems
    assert any("0001-check.json: indexed but missing" in p for p in problems)
    assert any("0009-check.json: stored but not in the ledger" in p for p in problems)


def test_receipts_are_write_once(tmp_path, backend):
    _, plan, _ = run_in_process(backend, make_lane(tmp_path / "lane"))
    key = f"receipts/{plan.run_id}/items_clean/0001-gate.json"
    before = backend.store.get(key)
    with pytest.raises(AlreadyExists):
        backend.store.put_once(key, b"{}")
    assert backend.store.get(key) == before


def test_revoked_certification_refuses_read(tmp_path, backend):
    run_in_process(backend, make_lane(tmp_path / "lane"))
    from batchlane.gate import revoke

    revoke(backend, "tiny", "items_clean", "upstream recall")
    with pytest.raises(NotCertified, match="revoked \\(upstream recall\\)"):
        read_table(backend, "tiny", "items_clean")


def test_pointer_never_regresses_to_an_older_attempt(tmp_path, backend):
    spec = load_spec(make_lane(tmp_path / "lane"))
    plan = plan_run(backend, spec)
    attempts = []
    for _ in range(2):
        start = begin_output(backend, spec, plan.run_id, "items_clean", force=True)
        materialize(backend.store, spec, plan.run_id, "items_clean", start.attempt, job_id="t")
        check(backend, spec, plan.run_id, "items_clean", start.attempt)
        attempts.append(start.attempt)
    decide(backend, spec, plan.run_id, "items_clean", attempts[1])
    decide(backend, spec, plan.run_id, "items_clean", attempts[0])  # late gate for the older attempt
    assert backend.ledger.current("tiny", "items_clean").attempt == attempts[1]


def _decide_in_child(home: str, spec_path: str, run_id: str, attempt: int) -> str:
    backend = local_backend(home)
    spec = load_spec(spec_path)
    return decide(backend, spec, run_id, "items_clean", attempt).decision


def test_concurrent_gates_leave_one_consistent_pointer(tmp_path, backend):
    spec_path = make_lane(tmp_path / "lane")
    spec = load_spec(spec_path)
    plan = plan_run(backend, spec)
    started = [begin_output(backend, spec, plan.run_id, "items_clean", force=True) for _ in range(2)]
    for start in started:
        materialize(backend.store, spec, plan.run_id, "items_clean", start.attempt, job_id="t")
    home = backend.settings["home"]
    jobs = [(home, str(spec_path), plan.run_id, s.attempt) for s in started for _ in range(3)]
    with ProcessPoolExecutor(max_workers=6) as pool:
        decisions = list(pool.map(_decide_in_child, *zip(*jobs, strict=True)))
    assert decisions == ["certified"] * 6
    pointer = backend.ledger.current("tiny", "items_clean")
    assert pointer.attempt == max(s.attempt for s in started)
    gates = [row for row in backend.ledger.receipts(plan.run_id, "items_clean") if row.kind == "gate"]
    assert len(gates) == 2  # one gate receipt per attempt, however many gates raced
    assert pointer.digest == next(row.digest for row in gates if row.attempt == pointer.attempt)
    assert read_table(backend, "tiny", "items_clean").num_rows == 2
    events = [e for e in backend.bus.read()[0] if e["type"] == "DataProductCertified"]
    # at-least-once delivery: racing gates may publish an event twice, always under the same id
    distinct = {e["id"]: e["attempt"] for e in events}
    assert pointer.attempt in distinct.values() and len(distinct) <= 2


def test_lost_event_stays_in_outbox_and_is_resent_at_close(tmp_path, backend, monkeypatch):
    spec = load_spec(make_lane(tmp_path / "lane"))
    plan = plan_run(backend, spec)
    start = begin_output(backend, spec, plan.run_id, "items_clean")
    materialize(backend.store, spec, plan.run_id, "items_clean", start.attempt, job_id="t")
    real_publish = backend.bus.publish
    monkeypatch.setattr(backend.bus, "publish", lambda events: [])  # the bus accepts nothing
    decide(backend, spec, plan.run_id, "items_clean", start.attempt)
    assert [e.type for e in backend.ledger.unpublished_events()] == ["DataProductCertified"]
    assert backend.bus.read()[0] == []
    monkeypatch.setattr(backend.bus, "publish", real_publish)
    close_run(backend, spec, plan.run_id)
    assert backend.ledger.unpublished_events() == []
    assert [e["type"] for e in backend.bus.read()[0]] == ["DataProductCertified", "RunClosed"]


def test_begin_refuses_outputs_outside_the_run(tmp_path, backend):
    from batchlane.plan import PlanError

    spec = load_spec(make_lane(tmp_path / "lane"))
    with pytest.raises(PlanError, match="no run 'nope'"):
        begin_output(backend, spec, "nope", "items_clean")
    plan = plan_run(backend, spec)
    with pytest.raises(PlanError, match="has no output 'other'"):
        begin_output(backend, spec, plan.run_id, "other")
    with pytest.raises(PlanError, match="no run 'missing'"):
        plan_run(backend, spec, rerun_of="missing")


def test_receipt_stored_but_not_indexed_is_adopted_only_when_it_fits_its_chain(tmp_path, backend):
    from batchlane.evidence import EvidenceError, load_receipt
    from batchlane.receipts import receipt_key

    spec = load_spec(make_lane(tmp_path / "lane"))
    plan = plan_run(backend, spec)
    start = begin_output(backend, spec, plan.run_id, "items_clean")
    materialize(backend.store, spec, plan.run_id, "items_clean", start.attempt, job_id="t")
    checked = check(backend, spec, plan.run_id, "items_clean", start.attempt)

    # a planted file that is no receipt: refused, never indexed
    backend.store.put_once(receipt_key(plan.run_id, "items_clean", start.attempt + 1, "check"), b"{}")
    with pytest.raises(EvidenceError, match="not a receipt"):
        load_receipt(backend, plan.run_id, "items_clean", start.attempt + 1, "check")

    # a certification that does not follow its check (forged): refused
    from batchlane.receipts import GateReceipt

    forged = GateReceipt(lane="tiny", run_id=plan.run_id, output="items_clean", attempt=start.attempt, prev="0" * 64,
                         decision="certified", check_digest=checked.digest(), materialize_digest="x",
                         proof=checked.products, memo_key="m")
    backend.store.put_once(receipt_key(plan.run_id, "items_clean", start.attempt, "gate"), forged.canonical())
    with pytest.raises(EvidenceError, match="does not follow"):
        load_receipt(backend, plan.run_id, "items_clean", start.attempt, "gate")
    assert backend.ledger.current("tiny", "items_clean") is None


def test_receipt_stored_by_a_crashed_writer_is_adopted(tmp_path, backend):
    from batchlane.evidence import load_receipt
    from batchlane.receipts import CheckReceipt, receipt_key

    spec = load_spec(make_lane(tmp_path / "lane"))
    plan = plan_run(backend, spec)
    start = begin_output(backend, spec, plan.run_id, "items_clean")
    materialize(backend.store, spec, plan.run_id, "items_clean", start.attempt, job_id="t")
    checked = check(backend, spec, plan.run_id, "items_clean", start.attempt)
    gate = decide(backend, spec, plan.run_id, "items_clean", start.attempt)
    # the same gate receipt, as a writer that died between store and index would leave it
    key = receipt_key(plan.run_id, "items_clean", start.attempt, "gate")
    assert isinstance(checked, CheckReceipt) and gate.prev == checked.digest()
    rows = backend.ledger.receipts(plan.run_id, "items_clean")
    assert key in {row.key for row in rows}
    assert load_receipt(backend, plan.run_id, "items_clean", start.attempt, "gate") == gate
