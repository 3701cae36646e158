"""AWS crash equivalents under moto: a function that fails between two of its writes.

The handlers run in process, so a write point raises (LANE_CRASH_MODE=raise) the way a Lambda that dies
mid-way fails its task. The state machine then routes the failure, CloseRun repairs what is repairable
with the ordinary idempotent steps, and Settle judges from what reads do (the pointer), never from a
receipt alone.
"""

from __future__ import annotations

import pytest
from support.lane_aws import copy_example, deployed_lane

pytestmark = pytest.mark.xdist_group("moto_server")


def _backend():
    from batchlane.backends import backend_from_env

    return backend_from_env("aws")


@pytest.mark.parametrize("point", ["pointer.swap@1", "gate.index@1", "check.index@1"])
def test_a_function_failing_between_its_writes_is_repaired_before_settle(moto_endpoint, tmp_path, monkeypatch, point):
    from batchlane import writepoints
    from batchlane.gate import read_table
    from batchlane.verify import verify_run

    spec = copy_example(tmp_path / "lane")
    monkeypatch.setattr(writepoints, "_counts", {})
    monkeypatch.setenv("LANE_CRASH_AT", point)
    monkeypatch.setenv("LANE_CRASH_MODE", "raise")
    with deployed_lane(moto_endpoint, spec) as lane:
        result = lane.run({"outputs": ["customers_clean"]}, name=f"crash-{point.split('@')[0].replace('.', '-')}")
        assert writepoints._counts.get(point.split("@")[0]), "the crash point was never reached"
        assert result["status"] == "SUCCEEDED", result.get("cause")
        backend = _backend()
        pointer = backend.ledger.current("orders", "customers_clean")
        assert pointer is not None and pointer.run_id == result["name"]
        assert read_table(backend, "orders", "customers_clean").num_rows == 200
        report = verify_run(backend, result["name"])
        assert report.ok, report.problems


def test_settle_judges_from_the_pointer_not_the_receipt(moto_endpoint, tmp_path, monkeypatch):
    """A certification whose pointer never moved (and cannot be repaired: the run is busy elsewhere) is not
    settled: Settle fails naming it instead of calling the run certified."""
    from batchlane.closing import unsettled
    from batchlane.gate import check, decide
    from batchlane.materialize import materialize
    from batchlane.plan import begin_output, plan_run
    from batchlane.spec import load_spec

    spec_path = copy_example(tmp_path / "lane")
    with deployed_lane(moto_endpoint, spec_path):
        backend = _backend()
        spec = load_spec(spec_path)
        plan = plan_run(backend, spec, outputs=["customers_clean"], trigger="api")
        start = begin_output(backend, spec, plan.run_id, "customers_clean")
        materialize(backend.store, spec, plan.run_id, "customers_clean", start.attempt, job_id="t")
        check(backend, spec, plan.run_id, "customers_clean", start.attempt)
        from batchlane import writepoints

        monkeypatch.setattr(writepoints, "_counts", {})
        monkeypatch.setenv("LANE_CRASH_AT", "pointer.swap")
        monkeypatch.setenv("LANE_CRASH_MODE", "raise")
        with pytest.raises(writepoints.InjectedCrash):
            decide(backend, spec, plan.run_id, "customers_clean", start.attempt)
        monkeypatch.delenv("LANE_CRASH_AT")
        assert backend.ledger.current("orders", "customers_clean") is None
        assert "pointer has not moved" in unsettled(backend, spec, plan.run_id)["customers_clean"]
        decide(backend, spec, plan.run_id, "customers_clean", start.attempt)  # deciding again finishes it
        assert unsettled(backend, spec, plan.run_id) == {}


def test_an_attempt_that_cannot_begin_submits_no_job(moto_endpoint, tmp_path):
    spec = copy_example(tmp_path / "lane")
    (spec.parent / "data" / "customers.csv").unlink()
    with deployed_lane(moto_endpoint, spec) as lane:
        result = lane.run({"outputs": ["customers_clean"]}, name="cannot-begin")
        assert result["status"] == "FAILED" and "no file matches" in result["cause"]
        assert not [job for job in lane.calls["batch"] if "customers_clean" in job["command"]]
        assert _backend().ledger.current("orders", "customers_clean") is None


def test_a_check_that_dies_ends_in_an_explicit_fail_receipt(moto_endpoint, tmp_path, monkeypatch):
    """Lambda out of memory / timeout: the Check task fails with no receipt; RecordCheckFailure rejects the attempt
    with that reason (never a retry loop, never a silent pass)."""
    import lane_check_handler

    spec = copy_example(tmp_path / "lane")

    def out_of_memory(event, context=None):
        raise MemoryError("Runtime exited with error: signal: killed")

    monkeypatch.setattr(lane_check_handler, "check", lambda *args, **kwargs: out_of_memory(None))
    with deployed_lane(moto_endpoint, spec) as lane:
        result = lane.run({"outputs": ["customers_clean"]}, name="check-dies")
        assert result["status"] == "FAILED" and "the checker failed before a verdict" in result["cause"]
        from batchlane.evidence import load_receipt

        backend = _backend()
        checked = load_receipt(backend, "check-dies", "customers_clean", 1, "check")
        assert checked.verdict == "FAIL" and "MemoryError" in checked.error
        assert load_receipt(backend, "check-dies", "customers_clean", 1, "gate").decision == "rejected"
        assert backend.ledger.current("orders", "customers_clean") is None
