"""The real statemachines/lane.asl.json, executed by moto's Step Functions interpreter.

Lambda tasks run functions/{gate,check}/handler.py in process; each Batch job runs the materializer
entrypoint (functions/materialize/main.py) as a subprocess against the same moto server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.aws_env import drain_queue
from support.lane_aws import CHECK_HANDLER, GATE_HANDLER, ROOT, copy_example, deployed_lane, events_of

pytestmark = pytest.mark.xdist_group("moto_server")

OUTPUTS = ["customers_clean", "daily_revenue", "order_payments", "orders_clean"]


def _backend():
    from batchlane.backends import backend_from_env

    return backend_from_env("aws")


def _break_payments(spec_path: Path) -> None:
    """Three extra payments for order 1: payment_count (max 2) and outstanding (min 0) fail."""
    with (spec_path.parent / "data" / "payments.jsonl").open("a") as handle:
        for number in range(3):
            handle.write(json.dumps({"payment_id": 90000 + number, "order_id": 1, "amount": 1000.0,
                                     "paid_at": "2026-01-02T00:00:00"}) + "\n")


def _message(result: dict) -> str:
    """The error message of a failed execution (the cause is the Lambda error document)."""
    return json.loads(result["cause"])["errorMessage"]


def _unique_events(messages: list[dict]) -> list[tuple[str, str | None]]:
    """Delivery is at-least-once (concurrent deciders may re-publish the outbox): dedupe on the stable id."""
    seen, unique = set(), []
    for message in messages:
        if message["detail"]["id"] not in seen:
            seen.add(message["detail"]["id"])
            unique.append(message)
    return events_of(unique)


def test_all_outputs_pass_and_events_reach_the_consumer_queue(moto_endpoint, tmp_path):
    spec = copy_example(tmp_path / "lane")
    with deployed_lane(moto_endpoint, spec) as lane:
        result = lane.run({}, name="run-all-pass")
        assert result["status"] == "SUCCEEDED", result.get("cause")
        messages = drain_queue(lane.queue_url)
        assert _unique_events(messages) == sorted(
            [("DataProductCertified", name) for name in OUTPUTS] + [("RunClosed", None)])
        certified = [m for m in messages if m["detail-type"] == "DataProductCertified"]
        assert all(m["source"] == "batchlane" and m["detail"]["run_id"] == "run-all-pass" for m in messages)
        assert all(m["detail"]["proof"] and m["detail"]["receipt"].endswith("-gate.json") for m in certified)

        backend = _backend()
        from batchlane.gate import read_table
        from batchlane.verify import verify_run

        for name in OUTPUTS:
            pointer = backend.ledger.current("orders", name)
            assert pointer is not None and pointer.run_id == "run-all-pass" and pointer.attempt == 1
            assert read_table(backend, "orders", name).num_rows > 0
        assert json.loads(backend.store.get("receipts/run-all-pass/manifest-0001.json"))["verdict"] == "PASS"
        report = verify_run(backend, "run-all-pass")
        assert report.ok, report.problems
        # the Batch jobs really ran the materializer entrypoint, one per output, with run id/output/attempt
        commands = sorted(job["command"][job["command"].index("--output") + 1] for job in lane.calls["batch"])
        assert commands == OUTPUTS and all(job["exit_code"] == 0 for job in lane.calls["batch"])
        # state passes references, never receipts
        assert all(len(json.dumps(call.get("result", ""))) < 2000 for call in lane.calls["lambda"])


def test_contract_failure_rejects_one_output_and_a_rerun_certifies_only_it(moto_endpoint, tmp_path):
    spec = copy_example(tmp_path / "lane")
    _break_payments(spec)
    with deployed_lane(moto_endpoint, spec) as lane:
        result = lane.run({}, name="run-fail")
        assert result["status"] == "FAILED"
        assert result["error"] == "OutputsUncertified"
        message = _message(result)
        assert "2 output(s) not certified: daily_revenue, order_payments. " in message
        assert "order_payments: rejected: failing rules: " in message
        assert "daily_revenue: blocked: " in message and "upstream order_payments was rejected" in message
        assert "customers_clean" not in message and "orders_clean" not in message

        backend = _backend()
        assert backend.ledger.current("orders", "order_payments") is None  # no certification
        assert backend.ledger.current("orders", "daily_revenue") is None     # blocked: never built
        assert not [job for job in lane.calls["batch"] if "daily_revenue" in job["command"]]
        for name in ("customers_clean", "orders_clean"):  # siblings still certified
            assert backend.ledger.current("orders", name).run_id == "run-fail"
        manifest = json.loads(backend.store.get("receipts/run-fail/manifest-0001.json"))  # closed before settle
        assert manifest["verdict"] == "FAIL" and manifest["outputs"]["order_payments"]["state"] == "rejected"
        assert any("payment_count" in rule for rule in manifest["outputs"]["order_payments"]["failing_rules"])
        events = _unique_events(drain_queue(lane.queue_url))
        assert ("DataProductRejected", "order_payments") in events
        assert ("DataProductCertified", "order_payments") not in events
        assert ("DataProductBlocked", "daily_revenue") in events

        rerun_outputs = ("/order_payments/", "/daily_revenue/")
        before = {key: data for key, data in lane.objects("receipts/run-fail/").items()
                  if not any(part in key for part in rerun_outputs) and "manifest" not in key}
        staged_before = {k: v for k, v in lane.objects("staging/run-fail/").items()
                         if not any(part in k for part in rerun_outputs)}

        # fix the data, then a targeted rerun execution of the same run
        (spec.parent / "data" / "payments.jsonl").write_text(
            (ROOT / "examples/orders/data/payments.jsonl").read_text())
        rerun = lane.run({"rerun_of": "run-fail"}, name="rerun-1")
        assert rerun["status"] == "SUCCEEDED", rerun.get("cause")
        for name in ("order_payments", "daily_revenue"):   # the rejected output, then the one it blocked
            pointer = backend.ledger.current("orders", name)
            assert pointer is not None and (pointer.run_id, pointer.attempt) == ("run-fail", 2), name
        after = {key: data for key, data in lane.objects("receipts/run-fail/").items()
                 if not any(part in key for part in rerun_outputs) and "manifest" not in key}
        assert after == before  # certified receipts byte-identical, no new ones
        assert {k: v for k, v in lane.objects("staging/run-fail/").items()
                if not any(part in k for part in rerun_outputs)} == staged_before
        rerun_jobs = [job for job in lane.calls["batch"] if "rerun" in " ".join(job["command"])]
        assert [job["command"][job["command"].index("--output") + 1] for job in rerun_jobs] == [
            "order_payments", "daily_revenue"]
        manifest = json.loads(backend.store.get("receipts/run-fail/manifest-0002.json"))
        assert manifest["verdict"] == "PASS" and manifest["sequence"] == 2
        from batchlane.verify import verify_run

        report = verify_run(backend, "run-fail")
        assert report.ok, report.problems
        assert _unique_events(drain_queue(lane.queue_url)) == [
            ("DataProductCertified", "daily_revenue"), ("DataProductCertified", "order_payments"), ("RunClosed", None)]


def test_materializer_crash_is_recorded_rejected_and_redriven(moto_endpoint, tmp_path):
    spec = copy_example(tmp_path / "lane")
    transforms = spec.parent / "transforms.py"
    transforms.write_text(transforms.read_text().replace(
        '    """Per order: what was paid',
        '    import os\n    os._exit(3)  # the job dies: no receipt\n    """Per order: what was paid'))
    with deployed_lane(moto_endpoint, spec) as lane:
        result = lane.run({"outputs": ["customers_clean", "order_payments"]}, name="run-crash")
        assert result["status"] == "FAILED" and result["error"] == "OutputsUncertified"
        assert "not certified: order_payments. order_payments: failed: " in _message(result)
        assert "ended without a report" in _message(result) and "exit code 3" in _message(result)
        crashed = [job for job in lane.calls["batch"] if "order_payments" in job["command"]]
        assert [job["exit_code"] for job in crashed] == [3]

        backend = _backend()
        from batchlane.evidence import load_receipt

        receipt = load_receipt(backend, "run-crash", "order_payments", 1, "materialize")
        assert receipt.status == "failed"
        assert "ended without a report" in receipt.error and "exit code 3" in receipt.error
        assert receipt.job_id == crashed[0]["job_id"]
        gate = load_receipt(backend, "run-crash", "order_payments", 1, "gate")
        assert gate.decision == "rejected"
        assert backend.ledger.current("orders", "order_payments") is None
        assert backend.ledger.current("orders", "customers_clean").run_id == "run-crash"

        # moto has no RedriveExecution: drive the handlers exactly as a redriven execution would.
        # first pass (RedriveCount 0): Settle fails naming the output
        with pytest.raises(Exception, match="order_payments") as raised:
            GATE_HANDLER({"action": "settle", "run_id": "run-crash", "redrive_count": 0, "handled_redrives": 0})
        assert type(raised.value).__name__ == "OutputsUncertified"
        transforms.write_text((ROOT / "examples/orders/transforms.py").read_text())
        # console redrive: Settle restarts with RedriveCount 1 and hands back only the uncertified outputs
        work = GATE_HANDLER({"action": "settle", "run_id": "run-crash", "redrive_count": 1, "handled_redrives": 0})
        assert work == {"waves": [["order_payments"]], "wave": 0, "wave_count": 1, "redrives": 1, "settled": False}
        # ... the Outputs map then runs one iteration: Begin -> job -> Check -> Decide
        start = GATE_HANDLER({"action": "begin", "run_id": "run-crash", "output": "order_payments", "trigger": "console"})
        assert start["attempt"] == 2 and start["action"] == "materialize"
        job = subprocess.run([sys.executable, str(ROOT / "functions/materialize/main.py"), "--run-id", "run-crash",
                              "--output", "order_payments", "--attempt", "2"],
                             env={**os.environ, "AWS_BATCH_JOB_ID": "redrive-job"}, capture_output=True, text=True)
        assert job.returncode == 0, job.stderr
        assert CHECK_HANDLER({"run_id": "run-crash", "output": "order_payments", "attempt": 2})["verdict"] == "PASS"
        decision = GATE_HANDLER({"action": "decide", "run_id": "run-crash", "output": "order_payments", "attempt": 2})
        assert decision["decision"] == "certified"
        closed = GATE_HANDLER({"action": "close", "run_id": "run-crash"})
        assert closed["sequence"] == 2 and closed["verdict"] == "PASS"
        settled = GATE_HANDLER({"action": "settle", "run_id": "run-crash", "redrive_count": 1, "handled_redrives": 1})
        assert settled["settled"] is True


def test_selection_eventbridge_envelope_and_bad_input(moto_endpoint, tmp_path):
    spec = copy_example(tmp_path / "lane")
    with deployed_lane(moto_endpoint, spec) as lane:
        envelope = {"version": "0", "id": "e-1", "detail-type": "UpstreamReady", "source": "upstream",
                    "detail": {"outputs": ["customers_clean"]}}
        result = lane.run(envelope, name="run-from-event")
        assert result["status"] == "SUCCEEDED", result.get("cause")
        backend = _backend()
        run = backend.ledger.get_run("run-from-event")
        assert run.trigger == "eventbridge" and run.outputs == ("customers_clean",)

        # the same inputs again: memoized, no job runs
        jobs_before = len(lane.calls["batch"])
        result = lane.run({"outputs": ["customers_clean"]}, name="run-memo")
        assert result["status"] == "SUCCEEDED", result.get("cause")
        assert len(lane.calls["batch"]) == jobs_before
        manifest = json.loads(backend.store.get("receipts/run-memo/manifest-0001.json"))
        assert manifest["outputs"]["customers_clean"]["state"] == "memoized"

        bad = lane.run({"outputs": ["nope"]}, name="run-bad")
        assert bad["status"] == "FAILED" and bad["error"] == "BadRequest" and "no output 'nope'" in _message(bad)
        assert backend.ledger.get_run("run-bad") is None
