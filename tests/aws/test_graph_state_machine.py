"""Issue 9 on AWS: the real statemachines/lane.asl.json follows the product graph in topological waves.

A three-level graph (``raw_clean`` -> ``scaled`` reads ``{product: raw_clean}`` -> ``summary`` reads
``{product: scaled}`` and references ``raw_clean.id``) under moto: all certified wave by wave; an upstream rejected -> its downstream blocked with no
Batch job submitted for them; the redrive path reruns the rejected and the blocked outputs in graph order.

moto has no RedriveExecution. A redrive is reproduced the way AWS performs one: the failed state (Settle) runs
again with its original input and ``$$.Execution.RedriveCount`` = 1, in the same definition (started at Settle).

Each scenario prints the execution history per output (``pytest -s``) and writes it to
/tmp/batchlane-sfn-history/graph.txt.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from support.lane_aws import deployed_lane
from support.sfn_history import reset_summary, summarize, write_summary

from stacks.asl import EVENTS_PER_OUTPUT, EVENTS_PER_RUN, EVENTS_PER_WAVE

pytestmark = pytest.mark.xdist_group("moto_server")

LANE = "chain"
GRAPH = ["raw_clean", "scaled", "summary"]
SPEC = """\
lane: chain
outputs:
  raw_clean:
    inputs: {raw: data/raw.csv}
    contract:
      columns:
        id:    {type: int64, not_null: true, unique: true}
        value: {type: int64, not_null: true, min: 0}
  scaled:
    inputs: {clean: {product: raw_clean}}
    transform: transforms:scale
    contract:
      columns:
        id:     {type: int64, not_null: true, unique: true}
        scaled: {type: int64, not_null: true, min: 0}
  summary:
    inputs: {scaled: {product: scaled}}
    transform: transforms:summarize
    contract:
      columns:
        id:    {type: int64, not_null: true, unique: true, references: raw_clean.id}
        share: {type: float64, not_null: true, min: 0, max: 1}
"""
TRANSFORMS = '''\
import pandas as pd


def scale(clean: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"id": clean["id"], "scaled": clean["value"] * 10})


def summarize(scaled: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"id": scaled["id"], "share": scaled["scaled"] / scaled["scaled"].sum()})
'''
# A run that fails at Settle: Settle's Task fails (4 events, not 5) and Settled?/Done never run.
FAILED_RUN_EVENTS = EVENTS_PER_RUN - 5
GOOD_RAW = "id,value\n1,5\n2,7\n3,9\n"
BAD_RAW = "id,value\n1,5\n2,-7\n3,9\n"      # value min 0: raw_clean is rejected


@pytest.fixture(scope="module", autouse=True)
def _fresh_summary() -> None:
    reset_summary("graph")


def _lane(directory: Path, raw: str = GOOD_RAW) -> Path:
    (directory / "data").mkdir(parents=True)
    (directory / "lane.yaml").write_text(SPEC)
    (directory / "transforms.py").write_text(TRANSFORMS)
    (directory / "data" / "raw.csv").write_text(raw)
    return directory / "lane.yaml"


def _backend():
    from batchlane.backends import backend_from_env

    return backend_from_env("aws")


def _jobs_per_output(lane: Any) -> Counter:
    """Batch jobs moto was asked to run (SubmitJob), per output, from the job names ``chain-OUTPUT-ATTEMPT``."""
    batch = lane.client("batch")
    names = []
    for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"):
        names += [job["jobName"] for job in batch.list_jobs(jobQueue="lane-queue", jobStatus=status)["jobSummaryList"]]
    return Counter(name.removeprefix(f"{LANE}-").rsplit("-", 1)[0] for name in names)


def _record(lane: Any, arn: str, title: str) -> Any:
    summary = summarize(lane.history(arn))
    write_summary("graph", summary.render(title))
    return summary


@contextmanager
def _redrive_count(executions: dict[str, int]) -> Iterator[None]:
    """``$$.Execution.RedriveCount`` for the named executions (what AWS sets on a redriven execution)."""
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    current = ExecutionWorker._get_evaluation_environment

    def environment(self):  # type: ignore[no-untyped-def]
        env = current(self)
        execution = env.states.context_object.context_object_data["Execution"]
        if execution["Name"] in executions:
            execution["RedriveCount"] = executions[execution["Name"]]
        return env

    with mock.patch.object(ExecutionWorker, "_get_evaluation_environment", environment):
        yield


def _redrive(lane: Any, failed_arn: str, name: str) -> tuple[str, dict]:
    """Redrive a failed execution: its failed state, Settle, again with its original input and RedriveCount 1."""
    sfn = lane.client("stepfunctions")
    events = lane.history(failed_arn)
    assert events[-1]["type"] == "ExecutionFailed"
    (settle_input,) = [event["stateEnteredEventDetails"]["input"] for event in events
                       if event["type"] == "TaskStateEntered" and event["stateEnteredEventDetails"]["name"] == "Settle"]
    deployed = sfn.describe_state_machine(stateMachineArn=lane.state_machine_arn)
    definition = json.loads(deployed["definition"])
    definition["StartAt"] = "Settle"
    machine = sfn.create_state_machine(name=f"{LANE}-lane-redrive", definition=json.dumps(definition),
                                       roleArn=deployed["roleArn"], type="STANDARD")
    with _redrive_count({name: 1}):
        arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name=name,
                                  input=settle_input)["executionArn"]
        return arn, lane.wait(arn)


def test_three_level_graph_runs_in_waves_and_a_rejected_upstream_blocks_its_downstream(moto_endpoint, tmp_path):
    from batchlane.evidence import load_receipt
    from batchlane.verify import verify_run

    spec = _lane(tmp_path / "lane")
    with deployed_lane(moto_endpoint, spec) as lane:
        backend = _backend()
        # 1. all certified, one wave per level, one job per output
        arn = lane.start({}, name="graph-pass")
        result = lane.wait(arn)
        assert result["status"] == "SUCCEEDED", result.get("cause")
        summary = _record(lane, arn, "three-level graph, all certified")
        assert summary.waves == [["raw_clean"], ["scaled"], ["summary"]]
        assert _jobs_per_output(lane) == Counter(GRAPH)
        for name in GRAPH:
            assert backend.ledger.current(LANE, name).run_id == "graph-pass"
            assert summary.outputs[name].states == ["Begin", "ToRun?", "Materialize", "Check", "CheckInBatch?", "Decide"]
            assert summary.outputs[name].events == EVENTS_PER_OUTPUT["built"]     # the documented budget
        assert summary.execution.events == EVENTS_PER_RUN + 3 * EVENTS_PER_WAVE["inline"]
        assert verify_run(backend, "graph-pass").ok
        # scaled read raw_clean through its certification: the pinned input names it
        begun = load_receipt(backend, "graph-pass", "scaled", 1, "materialize")
        (pinned,) = [digest.product for digest in begun.inputs if digest.product is not None]
        assert (pinned.output, pinned.run_id) == ("raw_clean", "graph-pass")

        # 2. the upstream is rejected: scaled and summary are blocked, no job is submitted for them
        (spec.parent / "data" / "raw.csv").write_text(BAD_RAW)
        arn = lane.start({}, name="graph-blocked")
        result = lane.wait(arn)
        assert result["status"] == "FAILED" and result["error"] == "OutputsUncertified"
        message = json.loads(result["cause"])["errorMessage"]
        assert "3 output(s) not certified: raw_clean, scaled, summary" in message
        summary = _record(lane, arn, "upstream raw_clean rejected")
        assert summary.execution.events == FAILED_RUN_EVENTS + 3 * EVENTS_PER_WAVE["inline"]
        assert summary.waves == [["raw_clean"], ["scaled"], ["summary"]]
        assert _jobs_per_output(lane) == Counter(GRAPH) + Counter(["raw_clean"])   # no job for scaled, summary
        assert [job["command"][job["command"].index("--output") + 1] for job in lane.calls["batch"]][3:] == ["raw_clean"]
        for name, blocked_by in (("scaled", ["raw_clean"]), ("summary", ["raw_clean", "scaled"])):
            assert summary.outputs[name].states == ["Begin", "ToRun?", "Blocked"]
            assert summary.outputs[name].events == EVENTS_PER_OUTPUT["blocked"]
            assert "TaskSubmitted" not in summary.outputs[name].types
            receipt = load_receipt(backend, "graph-blocked", name, 1, "materialize")
            assert receipt.status == "blocked" and receipt.job_id == "none"
            assert receipt.blocked_by == blocked_by, receipt.blocked_by
            assert load_receipt(backend, "graph-blocked", name, 1, "check") is None
            # the certification in force stays in force
            assert backend.ledger.current(LANE, name).run_id == "graph-pass"
        manifest = json.loads(backend.store.get("receipts/graph-blocked/manifest-0001.json"))
        assert {name: manifest["outputs"][name]["state"] for name in GRAPH} == {
            "raw_clean": "rejected", "scaled": "blocked", "summary": "blocked"}

        # 3. fix the data, redrive: Settle hands back the rejected and blocked outputs in waves, each rebuilt
        (spec.parent / "data" / "raw.csv").write_text(GOOD_RAW.replace("9", "11"))
        jobs_before = len(lane.calls["batch"])
        arn, result = _redrive(lane, arn, "graph-blocked-redrive-1")
        assert result["status"] == "SUCCEEDED", result.get("cause")
        summary = _record(lane, arn, "redrive after the fix (RedriveCount 1, from Settle)")
        assert summary.waves == [["raw_clean"], ["scaled"], ["summary"]]
        rerun = [job["command"][job["command"].index("--output") + 1] for job in lane.calls["batch"][jobs_before:]]
        assert rerun == GRAPH                           # one job per output, in graph order
        for name in GRAPH:
            pointer = backend.ledger.current(LANE, name)
            assert (pointer.run_id, pointer.attempt) == ("graph-blocked", 2), name
        manifest = json.loads(backend.store.get("receipts/graph-blocked/manifest-0002.json"))
        assert manifest["verdict"] == "PASS"
        assert verify_run(backend, "graph-blocked").ok


def _use_distributed_map(lane: Any) -> dict:
    """Replace the deployed definition with the one `cdk synth` makes for map_mode=distributed (stacks/asl.py)."""
    from support.lane_aws import ASL_PATH, FUNCTIONS, JOB_QUEUE, fill_asl

    from stacks.asl import read_asl, with_map_mode

    usage = with_map_mode(read_asl(ASL_PATH), "distributed", ASL_PATH)
    awslambda, batch = lane.client("lambda"), lane.client("batch")
    values = {
        "GateFunctionArn": awslambda.get_function(FunctionName=FUNCTIONS["gate"])["Configuration"]["FunctionArn"],
        "CheckFunctionArn": awslambda.get_function(FunctionName=FUNCTIONS["check"])["Configuration"]["FunctionArn"],
        "JobQueueArn": batch.describe_job_queues(jobQueues=[JOB_QUEUE])["jobQueues"][0]["jobQueueArn"],
        "JobDefinitionName": lane.job_definition_name, "MaterializeTimeoutSeconds": "6000", "LaneName": LANE,
        "CheckJobDefinitionName": lane.check_job_definition_name, "CheckJobTimeoutSeconds": "6000",
    }
    definition = json.loads(fill_asl(usage.text, values))
    lane.client("stepfunctions").update_state_machine(stateMachineArn=lane.state_machine_arn,
                                                      definition=json.dumps(definition))
    return definition


def test_distributed_map_runs_the_same_waves_under_moto(moto_endpoint, tmp_path):
    """moto executes ProcessorConfig DISTRIBUTED (a Map Run; the iterations run in process, and their events go to
    no history moto keeps): the same waves, blocking and no job for the blocked outputs. The parent's history holds
    per wave only the Map and Map Run events, never an iteration's: each output's history is its child execution's."""
    from batchlane.evidence import load_receipt

    spec = _lane(tmp_path / "lane", raw=BAD_RAW)
    with deployed_lane(moto_endpoint, spec) as lane:
        definition = _use_distributed_map(lane)
        assert definition["States"]["Outputs"]["ItemProcessor"]["ProcessorConfig"] == {
            "Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
        arn = lane.start({}, name="graph-distributed")
        result = lane.wait(arn)
        assert result["status"] == "FAILED" and result["error"] == "OutputsUncertified", result.get("cause")
        events = lane.history(arn)
        summary = _record(lane, arn, "distributed map, upstream raw_clean rejected (parent execution only)")
        assert summary.total == FAILED_RUN_EVENTS + 3 * EVENTS_PER_WAVE["distributed"]
        assert summary.waves == [["raw_clean"], ["scaled"], ["summary"]]
        assert summary.outputs == {}      # no iteration event in the parent's history
        types = Counter(event["type"] for event in events)
        assert types["MapRunStarted"] == types["MapRunSucceeded"] == 3
        assert types["MapIterationStarted"] == 0
        entered = [event["stateEnteredEventDetails"]["name"] for event in events if event["type"] == "TaskStateEntered"]
        assert entered == ["Plan", "CloseRun", "Settle"]      # Begin/Materialize/Check/Decide ran in the children
        assert _jobs_per_output(lane) == Counter(["raw_clean"])
        backend = _backend()
        for name in ("scaled", "summary"):
            assert load_receipt(backend, "graph-distributed", name, 1, "materialize").status == "blocked"
        manifest = json.loads(backend.store.get("receipts/graph-distributed/manifest-0001.json"))
        assert {name: manifest["outputs"][name]["state"] for name in GRAPH} == {
            "raw_clean": "rejected", "scaled": "blocked", "summary": "blocked"}
