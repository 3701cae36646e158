"""The gate handler's parsing of execution inputs and Batch failure causes (no AWS needed)."""

from __future__ import annotations

import json

import pytest
from support.lane_aws import GATE_HANDLER

gate = __import__("sys").modules[GATE_HANDLER.__module__]


@pytest.mark.parametrize(("document", "expected"), [
    ({}, {"outputs": None, "rerun_of": None, "trigger": "console"}),
    (None, {"outputs": None, "rerun_of": None, "trigger": "console"}),
    ({"outputs": ["a", "b"]}, {"outputs": ["a", "b"], "rerun_of": None, "trigger": "console"}),
    ({"rerun_of": "r1"}, {"outputs": None, "rerun_of": "r1", "trigger": "rerun"}),
    ({"rerun_of": "r1", "outputs": ["a"]}, {"outputs": ["a"], "rerun_of": "r1", "trigger": "rerun"}),
    ({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}},
     {"outputs": None, "rerun_of": None, "trigger": "eventbridge"}),
    ({"detail-type": "Ready", "detail": {"outputs": ["a"]}}, {"outputs": ["a"], "rerun_of": None, "trigger": "eventbridge"}),
    ({"detail-type": "RunClosed", "detail": {"outputs": {"a": "certified"}}},
     {"outputs": None, "rerun_of": None, "trigger": "eventbridge"}),
])
def test_execution_inputs(document, expected):
    assert gate._selection(document) == {**expected, "variables": None}


@pytest.mark.parametrize("document", [{"output": ["a"]}, {"outputs": "a"}, {"trigger": "cron"}, ["a"]])
def test_bad_execution_inputs_fail_closed(document):
    with pytest.raises(gate.BadRequest):
        gate._selection(document)


def test_batch_failure_cause_is_summarised():
    cause = json.dumps({"JobId": "j-1", "Status": "FAILED", "StatusReason": "Essential container in task exited",
                        "Container": {"ExitCode": 137}})
    assert gate._describe_failure("States.TaskFailed", cause) == (
        "States.TaskFailed, exit code 137, Essential container in task exited", "j-1")
    assert gate._describe_failure("States.Timeout", None) == ("States.Timeout", "unknown")
    assert gate._describe_failure("X", "not json")[0] == "X, not json"


def test_unknown_action_and_missing_fields(monkeypatch):
    monkeypatch.setenv("LANE_SPEC", "/nonexistent/lane.yaml")
    with pytest.raises(gate.BadRequest, match="unknown gate action"):
        GATE_HANDLER({"action": "explode"})
    monkeypatch.delenv("LANE_SPEC")
    with pytest.raises(gate.BadRequest, match="LANE_SPEC"):
        GATE_HANDLER({"action": "begin", "run_id": "r"})


def test_plan_expands_graph_selectors_like_the_cli(monkeypatch):
    """{"outputs": ["+daily_revenue"]} from the console selects it and its upstream, in graph order."""
    from conftest import EXAMPLE

    from batchlane.plan import RunPlan
    from batchlane.spec import load_spec

    spec = load_spec(EXAMPLE / "lane.yaml")
    seen = {}

    def fake_plan_run(backend, spec_, **kwargs):
        seen.update(kwargs)
        return RunPlan(run_id="r1", lane=spec_.lane, outputs=kwargs["outputs"], trigger=kwargs["trigger"])

    monkeypatch.setattr(gate, "_context", lambda: (None, spec))
    monkeypatch.setattr(gate, "plan_run", fake_plan_run)
    result = gate.plan({"execution": "r1", "input": {"outputs": ["+daily_revenue"]}})
    assert seen["outputs"] == ["customers_clean", "orders_clean", "order_payments", "daily_revenue"]
    assert result["work"]["waves"] == [["customers_clean", "order_payments"], ["orders_clean"], ["daily_revenue"]]
    with pytest.raises(gate.BadRequest, match="did you mean 'daily_revenue'"):
        gate.plan({"execution": "r2", "input": {"outputs": ["daily_revenu+"]}})
