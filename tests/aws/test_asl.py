"""Static checks of statemachines/lane.asl.json and the function bundle layout (no AWS needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ASL_TEXT = (ROOT / "statemachines" / "lane.asl.json").read_text()
SUBSTITUTIONS = {"GateFunctionArn", "CheckFunctionArn", "JobQueueArn", "JobDefinitionName", "MaterializeTimeoutSeconds",
                 "LaneName", "CheckJobDefinitionName", "CheckJobTimeoutSeconds"}
LAMBDA_TRANSIENT = {"Lambda.ServiceException", "Lambda.TooManyRequestsException", "Lambda.AWSLambdaException",
                    "Lambda.SdkClientException"}


def _states(definition: dict) -> dict[str, dict]:
    found = {}
    for name, state in definition["States"].items():
        found[name] = state
        if state["Type"] == "Map":
            found.update(_states(state["ItemProcessor"]))
    return found


def _definition() -> dict:
    return json.loads(re.sub(r"\$\{(\w+)\}", lambda m: f"arn:aws:lambda:us-east-1:123456789012:function:{m.group(1)}", ASL_TEXT))


def test_only_the_agreed_substitutions_and_jsonpath():
    assert set(re.findall(r"\$\{(\w+)\}", ASL_TEXT)) == SUBSTITUTIONS
    assert _definition()["StartAt"] == "Plan"    # valid JSON once substituted
    assert "QueryLanguage" not in ASL_TEXT and "{%" not in ASL_TEXT  # JSONPath, never JSONata


def test_flow_plan_waves_close_settle():
    definition = _definition()
    states = definition["States"]
    assert definition["StartAt"] == "Plan"
    assert states["Plan"]["Next"] == "Waves?" and states["Plan"]["Parameters"]["execution.$"] == "$$.Execution.Name"
    # the wave loop: another wave? -> pick it -> one Map over its outputs -> count it -> another wave?
    (more,) = states["Waves?"]["Choices"]
    assert more == {"Variable": "$.work.wave", "NumericLessThanPath": "$.work.wave_count", "Next": "SelectWave"}
    assert states["Waves?"]["Default"] == "CloseRun"
    select = states["SelectWave"]
    assert select["Type"] == "Pass" and select["ResultPath"] == "$.wave" and select["Next"] == "Outputs"
    assert select["Parameters"] == {"outputs.$": "States.ArrayGetItem($.work.waves, $.work.wave)",
                                    "next.$": "States.MathAdd($.work.wave, 1)"}
    assert states["Outputs"]["Type"] == "Map" and states["Outputs"]["ItemsPath"] == "$.wave.outputs"
    assert states["Outputs"]["ItemSelector"]["output.$"] == "$$.Map.Item.Value"
    assert states["Outputs"]["Next"] == "NextWave"
    # a Map that fails as a whole (not an iteration: those catch their own errors) still closes and settles the run
    assert states["Outputs"]["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.wave.failure",
                                           "Next": "CloseRun"}]
    next_wave = states["NextWave"]
    assert (next_wave["Type"], next_wave["InputPath"], next_wave["ResultPath"], next_wave["Next"]) == (
        "Pass", "$.wave.next", "$.work.wave", "Waves?")
    assert states["CloseRun"]["Next"] == "Settle"
    assert states["Settle"]["Parameters"]["redrive_count.$"] == "$$.Execution.RedriveCount"
    assert states["Settle"]["ResultPath"] == "$.work"   # a redriven Settle hands back new waves, wave 0 next
    # a redriven Settle loops back to the wave loop with the outputs it hands back
    assert {choice["Next"] for choice in states["Settled?"]["Choices"]} | {states["Settled?"]["Default"]} == {"Done", "Waves?"}


def _reachable(states: dict[str, dict], start: str) -> list[str]:
    seen, todo = [], [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.append(name)
        state = states[name]
        todo += [state["Next"]] if "Next" in state else []
        todo += [choice["Next"] for choice in state.get("Choices", [])] + ([state["Default"]] if "Default" in state else [])
        todo += [catch["Next"] for catch in state.get("Catch", [])]
    return seen


def test_memoized_and_blocked_outputs_end_without_a_job_or_a_check():
    iteration = _definition()["States"]["Outputs"]["ItemProcessor"]["States"]
    routes = {choice["StringEquals"]: choice["Next"] for choice in iteration["ToRun?"]["Choices"]
              if "StringEquals" in choice}
    assert routes == {"memoized": "Memoized", "blocked": "Blocked", "failed": "Decide"}
    assert iteration["ToRun?"]["Default"] == "Materialize"
    for action in ("memoized", "blocked"):
        assert _reachable(iteration, routes[action]) == [routes[action]], action
        assert iteration[routes[action]]["Type"] == "Pass" and iteration[routes[action]]["End"] is True
    # a failed begin (inputs unreadable, too many partitions) is decided (rejected) without a job
    assert not {"Materialize", "MaterializeArray"} & set(_reachable(iteration, routes["failed"]))


def test_partitions_to_build_go_to_an_array_job_of_that_size_else_a_plain_job():
    """Begin's start.array_size >= 2 submits the materializer as a Batch array job (one child per partition to
    build); otherwise the plain job. Both are the same submission, with the same retries and catch; the array's
    timeout counts its rounds of children."""
    iteration = _definition()["States"]["Outputs"]["ItemProcessor"]["States"]
    choices = iteration["ToRun?"]["Choices"]
    assert choices[-1] == {"And": [{"Variable": "$.start.action", "StringEquals": "materialize"},
                                   {"Variable": "$.start.array_size", "NumericGreaterThanEquals": 2}],
                           "Next": "MaterializeArray"}
    assert all("StringEquals" in choice for choice in choices[:-1])      # memoized/blocked/failed are decided first
    plain, array = iteration["Materialize"], iteration["MaterializeArray"]
    assert array["Parameters"].pop("ArrayProperties") == {"Size.$": "$.start.array_size"}
    assert "ArrayProperties" not in plain["Parameters"]
    for key in ("Resource", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch", "Next"):
        assert array[key] == plain[key], key
    # the array waits for its rounds of children (Begin computes it from the single job's wait)
    assert (plain["TimeoutSecondsPath"], array["TimeoutSecondsPath"]) == (
        "$.materialize_timeout_seconds", "$.start.timeout_seconds")
    assert iteration["Begin"]["Parameters"]["materialize_timeout_seconds.$"] == "$.materialize_timeout_seconds"
    assert array["Next"] == "Check" and array["Catch"][0]["Next"] == "RecordCrash"


def test_no_output_waits_for_another():
    """References and product inputs are decided by the wave order: nothing retries a pending dependency."""
    assert "DependencyPending" not in ASL_TEXT
    for name, state in _states(_definition()).items():
        for retrier in state.get("Retry", []):
            assert retrier["MaxAttempts"] <= 6, name


def test_iterations_end_with_their_output_name_only():
    """A Map collects every iteration's output into one state (256 KiB), even with ResultPath null: each ending
    state passes on the output name only, never the state with failure causes."""
    iteration = _definition()["States"]["Outputs"]["ItemProcessor"]["States"]
    endings = [name for name, state in iteration.items() if state.get("End")]
    assert sorted(endings) == ["Blocked", "Decide", "Memoized", "RecordCheckFailure", "RecordCheckJobFailure", "Unsettled"]
    for name in endings:
        assert iteration[name]["OutputPath"] == "$.output", name


def test_iterations_catch_everything_and_never_fail():
    iteration = _definition()["States"]["Outputs"]["ItemProcessor"]["States"]
    assert not [name for name, state in iteration.items() if state["Type"] == "Fail"]
    for name in ("Begin", "Materialize", "MaterializeArray", "RecordCrash", "Check", "CheckJob", "Decide", "RecordCheckFailure",
                 "RecordCheckJobFailure"):
        assert any("States.ALL" in catch["ErrorEquals"] for catch in iteration[name]["Catch"]), name
    job = iteration["Materialize"]
    assert job["Resource"] == "arn:aws:states:::batch:submitJob.sync"
    overrides = json.dumps(job["Parameters"]["ContainerOverrides"])
    for reference in ("$.run_id", "$.output", "$.start.attempt_str"):
        assert reference in overrides


def test_retries_only_transient_errors():
    for name, state in _states(_definition()).items():
        for retrier in state.get("Retry", []):
            assert "States.ALL" not in retrier["ErrorEquals"] and "States.TaskFailed" not in retrier["ErrorEquals"], name
            assert retrier.get("BackoffRate", 1) > 1, name
        if state["Type"] == "Task" and "lambda" in state["Resource"]:
            retried = {error for retrier in state.get("Retry", []) for error in retrier["ErrorEquals"]}
            assert LAMBDA_TRANSIENT <= retried, name


def test_state_carries_references_not_receipts():
    check = _definition()["States"]["Outputs"]["ItemProcessor"]["States"]["Check"]
    assert set(check["ResultSelector"]) == {"route.$", "verdict.$", "receipt.$"}
    assert _definition()["States"]["Outputs"]["ResultPath"] is None


def test_bundle_layout_matches_the_dockerfile_and_handlers():
    dockerfile = (ROOT / "image" / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.13-slim" in dockerfile
    for source in re.findall(r"^COPY (\S+) ", dockerfile, flags=re.MULTILINE):
        if "$" not in source:
            assert (ROOT / source).exists(), source
    assert "/app/functions/materialize/main.py" in ASL_TEXT and (ROOT / "functions/materialize/main.py").is_file()
    for handler in ("functions/gate/handler.py", "functions/check/handler.py"):
        assert "def handler(event" in (ROOT / handler).read_text()


def test_materialize_entrypoint_reads_missing_arguments_from_the_environment():
    import importlib.util

    module_spec = importlib.util.spec_from_file_location("lane_materialize_main", ROOT / "functions/materialize/main.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    argv = module.build_argv(["--run-id", "r1", "--output", "o"],
                             {"LANE_SPEC": "/app/lane/lane.yaml", "AWS_BATCH_JOB_ID": "job-9", "LANE_ATTEMPT": "3",
                              "LANE_OUTPUT": "ignored"})
    assert argv == ["--run-id", "r1", "--output", "o", "--spec", "/app/lane/lane.yaml", "--attempt", "3",
                    "--job-id", "job-9"]
