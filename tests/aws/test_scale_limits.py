"""P10 (issue 11): the worst-case state payload and history events of statemachines/lane.asl.json for 1,000
outputs, all failing with long causes, against the Step Functions limits, with a margin.

Limits ("Step Functions service quotas", https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html):
  * 256 KiB: maximum input or output size of a state, task result or execution (an inline or Distributed Map's
    collected iteration results count, even with ResultPath null);
  * 25,000 events in one execution's history (redrives included); a Distributed Map's child executions each have
    their own history;
  * an error cause is cut at 32,768 characters (DescribeExecution `cause`).

Payloads are built from the real code (the gate's `_work` and `uncertified_message`, a real 1,000-output spec,
the ASL's own paths); history events from the per-state budget in stacks/asl.py, which
tests/aws/test_graph_state_machine.py measures under moto.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.lane_aws import ASL_PATH, GATE_HANDLER

from stacks.asl import (
    EVENTS_PER_BATCH_RETRY,
    EVENTS_PER_CHILD,
    EVENTS_PER_LAMBDA_RETRY,
    EVENTS_PER_OUTPUT,
    EVENTS_PER_RUN,
    EVENTS_PER_WAVE,
    HISTORY_LIMIT,
    INLINE_OUTPUT_LIMIT,
    PAYLOAD_LIMIT,
    resolve_map_mode,
)

OUTPUTS = 1_000
CAUSE_LIMIT = 32_768             # characters of an error cause Step Functions keeps
MARGIN = 0.7                     # every worst case stays under 70% of its limit
LONG_CAUSE = "x" * 100_000       # a failure cause far longer than any limit
NAME = "o{:05d}" + "x" * 57      # 63 characters: the longest output name the spec allows


def _size(document: object) -> int:
    return len(json.dumps(document, separators=(",", ":")).encode())


@pytest.fixture(scope="module")
def wide_spec(tmp_path_factory):
    """1,000 outputs with the longest names, none reading another: one wave holding all of them (the largest
    wave the state can carry)."""
    from batchlane.spec import load_spec

    directory: Path = tmp_path_factory.mktemp("wide")
    (directory / "data").mkdir()
    (directory / "data" / "x.csv").write_text("id\n1\n")
    outputs = "\n".join(f"  {NAME.format(i)}:\n    inputs: {{x: data/x.csv}}" for i in range(OUTPUTS))
    (directory / "lane.yaml").write_text(f"lane: {'l' * 63}\noutputs:\n{outputs}\n")
    return load_spec(directory / "lane.yaml")


def _asl() -> dict:
    return json.loads(ASL_PATH.read_text())


def test_the_parent_state_stays_small_with_1000_failing_outputs(wide_spec):
    names = list(wide_spec.outputs)
    assert len(names) == OUTPUTS and all(len(name) == 63 for name in names)
    states = _asl()["States"]
    # Plan's result: the run and the waves (the gate's own code builds them)
    work = GATE_HANDLER.__globals__["_work"](wide_spec, names, redrives=0)
    assert len(work["waves"]) == 1 and sorted(work["waves"][0]) == sorted(names)
    run = {"run_id": "r" * 80, "lane": wide_spec.lane, "trigger": "eventbridge"}
    state = {"run": run, "work": work}
    # SelectWave puts the wave's outputs (a copy) at $.wave; the Map reads them from there
    assert states["SelectWave"]["ResultPath"] == "$.wave" and states["Outputs"]["ItemsPath"] == "$.wave.outputs"
    state["wave"] = {"outputs": work["waves"][0], "next": 1}
    # the worst Map input: the Map itself failed (caught into $.wave.failure) with the longest cause kept
    assert states["Outputs"]["Catch"][0]["ResultPath"] == "$.wave.failure"
    state["wave"]["failure"] = {"Error": "States.Runtime", "Cause": LONG_CAUSE[:CAUSE_LIMIT]}
    assert _size(state) < MARGIN * PAYLOAD_LIMIT, _size(state)
    # the Map's collected results: each iteration ends with its output name only, whatever failed in it
    iteration = states["Outputs"]["ItemProcessor"]["States"]
    assert {state.get("OutputPath") for state in iteration.values() if state.get("End")} == {"$.output"}
    assert not [state for state in iteration.values() if state["Type"] in ("Succeed", "Fail")]
    assert states["Outputs"]["ResultPath"] is None
    collected = list(names)
    assert _size(collected) < MARGIN * PAYLOAD_LIMIT / 2, _size(collected)
    # Settle's result when redriven: the same waves again
    settled = GATE_HANDLER.__globals__["_work"](wide_spec, names, redrives=1)
    assert _size({**state, "work": settled}) < MARGIN * PAYLOAD_LIMIT


def test_an_iteration_state_stays_small_with_the_longest_failure():
    """One output's state at its largest: selected item, begin, a failed job with the longest cause, the crash
    record and the decision (shapes as the gate handler returns them)."""
    iteration = _asl()["States"]["Outputs"]["ItemProcessor"]["States"]
    item = {"run_id": "r" * 80, "trigger": "eventbridge", "output": NAME.format(0), "materialize_timeout_seconds": 6000}
    state = dict(item)
    state["start"] = {"output": item["output"], "attempt": 99, "action": "materialize", "attempt_str": "99",
                      "array_size": 10_000}
    assert iteration["Materialize"]["Catch"][0]["ResultPath"] == iteration["MaterializeArray"]["Catch"][0][
        "ResultPath"] == "$.failure"
    state["failure"] = {"Error": "States.TaskFailed", "Cause": LONG_CAUSE[:CAUSE_LIMIT]}
    state["crash"] = {"status": "failed", "receipt": f"receipts/{item['run_id']}/{item['output']}/0099-materialize.json"}
    state["decision"] = {"decision": "rejected", "receipt": state["crash"]["receipt"].replace("materialize", "gate"),
                         "digest": "f" * 64}
    assert _size(state) < MARGIN * PAYLOAD_LIMIT / 4, _size(state)


def test_settle_names_1000_failing_outputs_within_the_cause_limit():
    message = GATE_HANDLER.__globals__["uncertified_message"](
        "l" * 63, "r" * 80, {NAME.format(i): f"rejected: {LONG_CAUSE}" for i in range(OUTPUTS)})
    assert len(message) < MARGIN * CAUSE_LIMIT, len(message)
    assert message.startswith(f"run {'r' * 80} of lane {'l' * 63}: 1000 output(s) not certified: {NAME.format(0)}, ")
    assert "... and " in message and message.endswith(f"(all of them: lane status {'r' * 80}).")
    small = GATE_HANDLER.__globals__["uncertified_message"]("l", "r", {"b": "blocked: upstream a", "a": "rejected: x"})
    assert "2 output(s) not certified: a, b. a: rejected: x; b: blocked: upstream a. " in small and "more" not in small
    # a few outputs keep their whole reasons, however long (an AccessDenied names the key and the action)
    long_reason = "failed: " + "AccessDenied s3://bucket/key s3:GetObjectVersion " * 40
    few = GATE_HANDLER.__globals__["uncertified_message"]("l", "r", {"a": long_reason, "b": "rejected: x"})
    assert f"a: {long_reason}; b: rejected: x. " in few


def _child_worst_case() -> int:
    """One output's child execution at its longest: every Lambda task (Begin, Check or RecordCrash, Decide) retried
    to its MaxAttempts, the Batch tasks (Materialize, and CheckJob for a big product) retried to their MaxAttempts."""
    iteration = _asl()["States"]["Outputs"]["ItemProcessor"]["States"]

    def retries(name: str) -> int:
        return sum(retrier["MaxAttempts"] for retrier in iteration[name].get("Retry", []))

    lambda_retries = max(retries("Check"), retries("RecordCrash")) + retries("Begin") + retries("Decide")
    # one of Materialize (a plain job) and MaterializeArray (a partitioned output's array job) runs per attempt:
    # the same events each (tests/aws/test_partitions_aws.py measures EVENTS_PER_OUTPUT["built"] for both)
    materialize_retries = max(retries("Materialize"), retries("MaterializeArray"))
    return (EVENTS_PER_CHILD + EVENTS_PER_OUTPUT["checked_in_batch"] + lambda_retries * EVENTS_PER_LAMBDA_RETRY
            + (materialize_retries + retries("CheckJob")) * EVENTS_PER_BATCH_RETRY)


def test_history_events_per_execution_for_1000_outputs():
    assert resolve_map_mode("auto", OUTPUTS) == "distributed"
    # inline, one execution holds every iteration: 1,000 built outputs alone exceed the limit
    assert EVENTS_PER_RUN + EVENTS_PER_WAVE["inline"] + OUTPUTS * EVENTS_PER_OUTPUT["built"] > HISTORY_LIMIT
    # distributed: the parent holds per wave only the Map and Map Run events; worst case a chain, 1,000 waves
    parent = EVENTS_PER_RUN + OUTPUTS * EVENTS_PER_WAVE["distributed"]
    assert parent < MARGIN * HISTORY_LIMIT, parent
    # ... and each output's child execution has its own history, far inside the limit even fully retried
    child = _child_worst_case()
    assert child < 0.01 * HISTORY_LIMIT, child
    # a redrive pass adds Settle, Settled? and CloseRun to the parent plus the waves it reruns: a one-wave lane of
    # 1,000 outputs can be redriven hundreds of times before its history is full
    per_redrive = 5 + 2 + 5 + EVENTS_PER_WAVE["distributed"]
    assert (HISTORY_LIMIT - (EVENTS_PER_RUN + EVENTS_PER_WAVE["distributed"])) // per_redrive > 500


def test_inline_mode_keeps_a_margin_up_to_its_output_limit():
    """`auto` keeps inline (cheaper, no child executions) up to INLINE_OUTPUT_LIMIT outputs: even as a chain (one
    wave each), every iteration in the one history, each output with one Lambda retry, it stays under 70%."""
    assert resolve_map_mode("auto", INLINE_OUTPUT_LIMIT) == "inline"
    assert resolve_map_mode("auto", INLINE_OUTPUT_LIMIT + 1) == "distributed"
    events = EVENTS_PER_RUN + INLINE_OUTPUT_LIMIT * (
        EVENTS_PER_WAVE["inline"] + EVENTS_PER_OUTPUT["built"] + EVENTS_PER_LAMBDA_RETRY)
    assert events < MARGIN * HISTORY_LIMIT, events
