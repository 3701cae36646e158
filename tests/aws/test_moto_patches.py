"""Canaries for tests/support/moto_patches.py: one per patch.

Each canary shows (a) that the private name it replaces still exists in the pinned moto and (b) the
behaviour with the patch; where cheap, also (c) that stock moto still needs it, so an upgrade that
fixes moto tells us to delete the patch instead of silently masking a change.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Iterator

import boto3
import moto
import pytest
from moto import mock_aws
from support import moto_patches
from support.aws_env import DUMMY_ENV, REGION, patched_env

IMAGE_ARGS = ["python", "-c", "import os, sys; sys.exit(int(os.environ['EXIT_WITH']))"]


@pytest.fixture
def aws() -> Iterator[None]:
    with patched_env(dict(DUMMY_ENV), drop=("AWS_PROFILE", "AWS_ENDPOINT_URL")), \
         mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield


def _role(name: str, service: str) -> str:
    document = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}
    return boto3.client("iam", region_name=REGION).create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(document))["Role"]["Arn"]


def _batch() -> tuple[str, str]:
    batch = boto3.client("batch", region_name=REGION)
    environment = batch.create_compute_environment(
        computeEnvironmentName="canary-ce", type="UNMANAGED", state="ENABLED",
        serviceRole=_role("canary-batch", "batch.amazonaws.com"))
    queue = batch.create_job_queue(jobQueueName="canary-q", state="ENABLED", priority=1, computeEnvironmentOrder=[
        {"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}])
    definition = batch.register_job_definition(
        jobDefinitionName="canary-job", type="container",
        containerProperties={"image": "canary", "command": IMAGE_ARGS, "vcpus": 1, "memory": 128,
                             "environment": [{"name": "EXIT_WITH", "value": "0"}]})
    return queue["jobQueueArn"], definition["jobDefinitionArn"]


def _wait_job(job_id: str) -> dict:
    batch = boto3.client("batch", region_name=REGION)
    for _ in range(300):
        job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
        if job["status"] in ("SUCCEEDED", "FAILED"):
            return job
        time.sleep(0.05)
    raise TimeoutError(job_id)


def _execute(definition: dict, document: dict | None = None) -> dict:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(name=f"canary-{time.monotonic_ns()}", definition=json.dumps(definition),
                                       roleArn=_role(f"canary-sfn-{time.monotonic_ns()}", "states.amazonaws.com"))
    arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input=json.dumps(document or {}))["executionArn"]
    for _ in range(600):
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.05)
    raise TimeoutError(arn)


def test_moto_is_the_pinned_version():
    assert moto.__version__ == moto_patches.MOTO_VERSION, "moto changed: re-run every canary below, then re-pin"


# 1 ------------------------------------------------------------------ Step Functions shape conversion

def _submit_job_sync(queue: str, definition: str) -> dict:
    return {"StartAt": "Job", "States": {"Job": {
        "Type": "Task", "Resource": "arn:aws:states:::batch:submitJob.sync",
        "Parameters": {"JobName": "canary", "JobQueue": queue, "JobDefinition": definition,
                       "ContainerOverrides": {"Environment": [{"Name": "EXIT_WITH", "Value": "0"}]}},
        "ResultSelector": {"status.$": "$.Status", "job.$": "$.JobId"}, "End": True}}}


def test_canary_sfn_shape_conversion(aws, tmp_path):
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )

    # stock moto: the hooks are stubs, so `JobName` reaches botocore unconverted
    assert "pass" in inspect.getsource(StateTaskService._normalise_parameters)
    assert hasattr(StateTaskService, "_to_boto_request") and hasattr(StateTaskService, "_from_boto_response")
    queue, definition = _batch()
    with moto_patches.batch_subprocess(cwd=tmp_path, env={}), moto_patches.batch_exit_code():
        stock = _execute(_submit_job_sync(queue, definition))
        assert stock["status"] == "FAILED" and "JobName" in stock.get("cause", ""), stock
        with moto_patches.sfn_shape_conversion():
            patched = _execute(_submit_job_sync(queue, definition))
    assert patched["status"] == "SUCCEEDED", patched
    assert json.loads(patched["output"])["status"] == "SUCCEEDED"


# 2 ---------------------------------------------------------------------------- $$.Execution.RedriveCount

def test_canary_sfn_redrive_count(aws):
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    assert hasattr(ExecutionWorker, "_get_evaluation_environment")
    definition = {"StartAt": "Read", "States": {"Read": {
        "Type": "Pass", "Parameters": {"redrives.$": "$$.Execution.RedriveCount"}, "End": True}}}
    stock = _execute(definition)
    assert stock["status"] == "FAILED", "moto now provides RedriveCount: drop sfn_redrive_count"
    with moto_patches.sfn_redrive_count():
        patched = _execute(definition)
    assert patched["status"] == "SUCCEEDED" and json.loads(patched["output"]) == {"redrives": 0}


# 3 ----------------------------------------------------------------------------------- Lambda in process

def _function(name: str) -> str:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    return boto3.client("lambda", region_name=REGION).create_function(
        FunctionName=name, Runtime="python3.11", Role=_role(f"canary-{name}", "lambda.amazonaws.com"),
        Handler="handler.handler", Code={"ZipFile": buffer.getvalue()},
        Environment={"Variables": {"CANARY_SETTING": "on"}})["FunctionArn"]


class Boom(RuntimeError):
    pass


def test_canary_lambda_in_process(aws, monkeypatch):
    from moto.awslambda.models import LambdaFunction

    assert list(inspect.signature(LambdaFunction._invoke_lambda).parameters) == ["self", "event"]
    monkeypatch.delenv("CANARY_SETTING", raising=False)
    _function("echo")
    _function("boom")

    def boom(event, context):
        raise Boom(f"bad {event['x']}")

    handlers = {"echo": lambda event, context: {"got": event, "fn": context.function_name,
                                                 "env": __import__("os").environ.get("CANARY_SETTING")},
                "boom": boom}
    awslambda = boto3.client("lambda", region_name=REGION)
    with moto_patches.lambda_in_process(handlers) as calls:
        ok = awslambda.invoke(FunctionName="echo", Payload=json.dumps({"x": 1}))
        failed = awslambda.invoke(FunctionName="boom", Payload=json.dumps({"x": 2}))
        # and through the Step Functions interpreter: the exception class is the error name
        arn = awslambda.get_function(FunctionName="boom")["Configuration"]["FunctionArn"]
        execution = _execute({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": arn, "End": True}}}, {"x": 3})
    assert json.loads(ok["Payload"].read()) == {"got": {"x": 1}, "fn": "echo", "env": "on"}
    assert "FunctionError" in failed
    assert json.loads(failed["Payload"].read())["errorType"] == "Boom"
    assert execution["status"] == "FAILED" and execution["error"] == "Boom"
    assert [call["function"] for call in calls] == ["echo", "boom", "boom"]


# 4 + 5 ------------------------------------------------------------------- Batch subprocess + exitCode

def test_canary_batch_subprocess_and_exit_code(aws, tmp_path):
    from moto.batch import models as batch_models

    assert callable(batch_models.Job.run) and hasattr(batch_models.Job, "_add_parameters_to_command")
    assert "exit_code" in inspect.getsource(batch_models.Job.describe_short)
    queue, definition = _batch()
    batch = boto3.client("batch", region_name=REGION)

    def submit(code: str) -> dict:
        job_id = batch.submit_job(jobName=f"c{code}", jobQueue=queue, jobDefinition=definition,
                                  containerOverrides={"environment": [{"name": "EXIT_WITH", "value": code}]})["jobId"]
        return _wait_job(job_id)

    with moto_patches.batch_subprocess(cwd=tmp_path, env={}) as jobs:
        stock_failed = submit("4")
        assert "exitCode" not in stock_failed.get("container", {}), "moto now reports exitCode: drop batch_exit_code"
        with moto_patches.batch_exit_code():
            succeeded, failed = submit("0"), submit("5")
    assert [job["exit_code"] for job in jobs] == [4, 0, 5]
    assert stock_failed["status"] == "FAILED"
    assert succeeded["status"] == "SUCCEEDED" and succeeded["container"]["exitCode"] == 0
    assert failed["status"] == "FAILED" and failed["container"]["exitCode"] == 5
    assert failed["statusReason"] == "Essential container in task exited"


# 6 ------------------------------------------------------------------------ DescribeJobs while submitting

def test_canary_batch_describe_snapshot():
    from moto.batch import models as batch_models

    class FakeJob:
        """Describing it submits another job: the dict grows mid-iteration, as under a concurrent SubmitJob."""

        def __init__(self, jobs: dict, name: str) -> None:
            self.jobs, self.arn, self.name = jobs, f"arn:{name}", name

        def describe(self) -> dict:
            self.jobs[f"late-{len(self.jobs)}"] = FakeJob({}, "late")
            return {"jobId": self.name}

    class FakeBackend:
        def __init__(self) -> None:
            self._jobs: dict = {}
            self._jobs["first"] = FakeJob(self._jobs, "first")

    stock = batch_models.BatchBackend.describe_jobs
    with pytest.raises(RuntimeError, match="changed size during iteration"):
        stock(FakeBackend(), None)  # if this stops raising, moto fixed it: drop batch_describe_snapshot
    with moto_patches.batch_describe_snapshot():
        assert batch_models.BatchBackend.describe_jobs(FakeBackend(), None) == [{"jobId": "first"}]
        assert batch_models.BatchBackend.describe_jobs(FakeBackend(), ["arn:first"]) == [{"jobId": "first"}]
        assert batch_models.BatchBackend.describe_jobs(FakeBackend(), ["other"]) == []


# 7 ------------------------------------------------------------------------------------------- Array jobs

# a child exits 1 when its index (or "none": no index) is FAIL_INDEX
ARRAY_CHILD = ["python", "-c", "import os, sys; sys.exit(int(os.environ.get('AWS_BATCH_JOB_ARRAY_INDEX', 'none') == "
                               "os.environ['FAIL_INDEX']))"]


def _submit_array(queue: str, definition: str, size: int, fail_index: str) -> str:
    return boto3.client("batch", region_name=REGION).submit_job(
        jobName="array", jobQueue=queue, jobDefinition=definition, arrayProperties={"size": size},
        containerOverrides={"command": ARRAY_CHILD, "environment": [{"name": "FAIL_INDEX", "value": fail_index}]},
    )["jobId"]


def test_canary_batch_array_jobs(aws, tmp_path):
    from moto.batch import models as batch_models

    assert "array_properties" in inspect.signature(batch_models.BatchBackend.submit_job).parameters
    assert hasattr(batch_models.Job, "_get_container_property")
    batch = boto3.client("batch", region_name=REGION)
    queue, definition = _batch()
    with moto_patches.batch_subprocess(cwd=tmp_path, env={}) as jobs, moto_patches.batch_exit_code():
        # stock moto: children run, but none knows its index, and a failed child leaves the parent SUBMITTED
        stock = _submit_array(queue, definition, 2, "none")       # no child has an index: every child exits 1
        children = [_wait_job(f"{stock}:{index}") for index in range(2)]
        assert [child["status"] for child in children] == ["FAILED", "FAILED"]
        assert all(moto_patches.ARRAY_INDEX_VARIABLE not in job["environment"] for job in jobs)
        assert batch.describe_jobs(jobs=[stock])["jobs"][0]["status"] == "SUBMITTED", \
            "moto now fails an array parent: check batch_array_jobs"
        assert "arrayProperties" not in children[0]
        with moto_patches.batch_array_jobs():
            failing = _submit_array(queue, definition, 3, "1")
            parent = _wait_job(failing)
            passing = _submit_array(queue, definition, 2, "7")
            passed = _wait_job(passing)
            child = batch.describe_jobs(jobs=[f"{failing}:2"])["jobs"][0]
            listed = batch.list_jobs(arrayJobId=failing)["jobSummaryList"]
            # and through the interpreter: submitJob.sync of a failing array fails the task (stock: waits forever)
            with moto_patches.sfn_shape_conversion():
                task = _submit_job_sync(queue, definition)
                parameters = task["States"]["Job"]["Parameters"]
                parameters["ArrayProperties"] = {"Size": 2}
                parameters["ContainerOverrides"] = {"Command": ARRAY_CHILD,
                                                    "Environment": [{"Name": "FAIL_INDEX", "Value": "0"}]}
                execution = _execute(task)
    assert parent["status"] == "FAILED" and parent["arrayProperties"]["size"] == 3
    assert parent["arrayProperties"]["statusSummary"]["FAILED"] == 1
    assert parent["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 2
    assert passed["status"] == "SUCCEEDED"
    assert child["arrayProperties"] == {"index": 2} and child["jobId"] == f"{failing}:2"
    assert sorted(item["jobId"] for item in listed) == [f"{failing}:{index}" for index in range(3)]
    ran = {job["job_id"]: job for job in jobs}
    for index in range(3):
        environment = ran[f"{failing}:{index}"]["environment"]
        assert environment[moto_patches.ARRAY_INDEX_VARIABLE] == str(index)
        assert environment["AWS_BATCH_JOB_ID"] == f"{failing}:{index}"
        assert ran[f"{failing}:{index}"]["exit_code"] == (index == 1)
    assert execution["status"] == "FAILED" and execution["error"] == "States.TaskFailed", execution
    assert json.loads(execution["cause"])["ArrayProperties"]["StatusSummary"]["FAILED"] == 1
