"""Deploy the lane into a moto server the way the CDK stack does, and run the real state machine.

Used by tests/aws (state machine scenarios, CLI against AWS). Everything talks to a
ThreadedMotoServer through AWS_ENDPOINT_URL, so the Batch job subprocesses reach the same moto.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shutil
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import requests

from support import moto_patches
from support.aws_env import (
    ACCOUNT,
    BUCKET,
    BUS,
    DUMMY_ENV,
    REGION,
    TABLE,
    create_lane_resources,
    patched_env,
    subscribe_queue,
)

ROOT = Path(__file__).resolve().parents[2]
ASL_PATH = ROOT / "statemachines" / "lane.asl.json"
EXAMPLE = ROOT / "examples" / "orders"


def fill_asl(text: str, values: dict[str, str]) -> str:
    """Fill ${Name} substitutions (string.Template would choke on `$.` and `$$`)."""
    missing = sorted(set(re.findall(r"\$\{(\w+)\}", text)) - set(values))
    if missing:
        raise KeyError(f"no value for substitution(s) {missing}")
    return re.sub(r"\$\{(\w+)\}", lambda match: values[match.group(1)], text)


def _load_handler(path: Path, name: str) -> Any:
    module_spec = importlib.util.spec_from_file_location(name, path)
    assert module_spec and module_spec.loader
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module.handler


GATE_HANDLER = _load_handler(ROOT / "functions" / "gate" / "handler.py", "lane_gate_handler")
CHECK_HANDLER = _load_handler(ROOT / "functions" / "check" / "handler.py", "lane_check_handler")


@contextmanager
def moto_server() -> Iterator[str]:
    """A ThreadedMotoServer on a free port with Step Functions execution enabled; yields its endpoint."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

    with patched_env(dict(DUMMY_ENV), drop=("AWS_PROFILE", "AWS_ENDPOINT_URL")):
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            _, port = server.get_host_and_port()
            endpoint = f"http://127.0.0.1:{port}"
            with patched_env({"AWS_ENDPOINT_URL": endpoint, "MOTO_PORT": str(port)}):
                configure_server(endpoint)
                yield endpoint
        finally:
            server.stop()


def configure_server(endpoint: str) -> None:
    response = requests.post(f"{endpoint}/moto-api/config",
                             json={"stepfunctions": {"execute_state_machine": True}}, timeout=10)
    response.raise_for_status()


def reset_server(endpoint: str) -> None:
    requests.post(f"{endpoint}/moto-api/reset", timeout=30).raise_for_status()
    configure_server(endpoint)


def copy_example(destination: Path) -> Path:
    """A private copy of the example lane (tests edit its data); returns the spec path."""
    shutil.copytree(EXAMPLE, destination, ignore=shutil.ignore_patterns("__pycache__", ".lane"))
    return destination / "lane.yaml"


@dataclass
class LaneDeployment:
    endpoint: str
    spec_path: Path
    lane: str
    state_machine_arn: str
    queue_url: str
    env: dict[str, str]
    calls: dict[str, list] = field(default_factory=dict)
    job_definition_name: str = "lane-materialize"
    check_job_definition_name: str = "lane-check-job"
    consumer_queues: dict[str, str] = field(default_factory=dict)    # consumer construct id -> queue URL

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)

    def start(self, document: dict | None = None, name: str | None = None) -> str:
        kwargs: dict[str, Any] = {"stateMachineArn": self.state_machine_arn, "input": json.dumps(document or {})}
        if name:
            kwargs["name"] = name
        return self.client("stepfunctions").start_execution(**kwargs)["executionArn"]

    def wait(self, execution_arn: str, timeout: float = 300) -> dict:
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.2)
        raise TimeoutError(f"{execution_arn} still running after {timeout}s")

    def run(self, document: dict | None = None, name: str | None = None, timeout: float = 300) -> dict:
        return self.wait(self.start(document, name), timeout)

    def history(self, execution_arn: str) -> list[dict]:
        sfn = self.client("stepfunctions")
        events, token = [], None
        while True:
            page = sfn.get_execution_history(executionArn=execution_arn, **({"nextToken": token} if token else {}))
            events += page["events"]
            token = page.get("nextToken")
            if not token:
                return events

    def objects(self, prefix: str) -> dict[str, bytes]:
        s3 = self.client("s3")
        keys = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in sorted(keys)}


def _role(name: str, service: str) -> str:
    iam = boto3.client("iam", region_name=REGION)
    document = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(document))["Role"]["Arn"]


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


FUNCTIONS = {"gate": "lane-gate", "check": "lane-check", "resolve": "lane-resolve"}
JOB_QUEUE = "lane-queue"
DEFAULT_JOB_DEFINITION = "lane-materialize"
DEFAULT_CHECK_JOB_DEFINITION = "lane-check-job"
CHECK_JOB_PRINCIPAL = "check-job"     # call_recording principal of the check job's subprocess (IAM proof)


def _resolve_only(event: dict, context: Any = None) -> Any:
    """The resolve twin: the gate handler answering `resolve` only (LANE_GATE_ACTIONS=resolve on AWS; the
    in-process functions share one environment, so the restriction is applied here)."""
    if (event or {}).get("action") != "resolve":
        raise GATE_HANDLER.__globals__["BadRequest"](f"unknown gate action {(event or {}).get('action')!r}; "
                                                      "this function answers resolve")
    return GATE_HANDLER(event, context)


def _template_substitutions(template: dict | None) -> dict[str, str]:
    """Plain-string substitutions of the synthesized state machine (job definition name, timeouts)."""
    if template is None:
        return {"JobDefinitionName": DEFAULT_JOB_DEFINITION, "MaterializeTimeoutSeconds": "6000",
                "CheckJobDefinitionName": DEFAULT_CHECK_JOB_DEFINITION, "CheckJobTimeoutSeconds": "6000"}
    (machine,) = [body for body in template["Resources"].values() if body["Type"] == "AWS::StepFunctions::StateMachine"]
    return {key: value for key, value in machine["Properties"]["DefinitionSubstitutions"].items()
            if isinstance(value, str)}


def consumer_rules(template: dict) -> dict[str, dict]:
    """consumer construct id (e.g. FraudStream) -> the event pattern its rule routes to its queue, as synthesized."""
    found = {}
    for name, body in template["Resources"].items():
        if body["Type"] == "AWS::Events::Rule" and name.startswith("ConsumersConsumer"):
            found[name.removeprefix("ConsumersConsumer").split("Rule")[0]] = body["Properties"]["EventPattern"]
    return found


def deploy(endpoint: str, spec_path: Path, template: dict | None = None,
           env_overrides: dict[str, str] | None = None) -> LaneDeployment:
    """Bucket, ledger table, bus + consumer queue(s), three Lambdas, Batch queue + job definition, the state machine.

    With ``template`` (a synthesized lane stack), the job definition name, the state machine's substitutions and
    each consumer's queue + rule (its event pattern) are the template's."""
    from batchlane.spec import load_spec

    lane = load_spec(spec_path).lane
    create_lane_resources()
    queue_url = subscribe_queue(BUS, "lane-consumer")
    consumer_queues = {}
    for consumer, pattern in (consumer_rules(template) if template else {}).items():
        consumer_queues[consumer] = subscribe_queue(BUS, f"consumer-{consumer}", pattern)
    env = {"LANE_BACKEND": "aws", "LANE_BUCKET": BUCKET, "LANE_TABLE": TABLE, "LANE_EVENT_BUS": BUS,
           "LANE_SPEC": str(spec_path), **(env_overrides or {})}

    lambda_role = _role("lane-lambda", "lambda.amazonaws.com")
    awslambda = boto3.client("lambda", region_name=REGION)
    arns = {}
    for name, handler in ((FUNCTIONS["gate"], "functions/gate/handler.handler"),
                          (FUNCTIONS["check"], "functions/check/handler.handler"),
                          (FUNCTIONS["resolve"], "functions/gate/handler.handler")):
        arns[name] = awslambda.create_function(
            FunctionName=name, Runtime="python3.13", Role=lambda_role, Handler=handler, Code={"ZipFile": _zip()},
            Timeout=900, MemorySize=1024, Environment={"Variables": env},
        )["FunctionArn"]

    substitutions = _template_substitutions(template)
    batch = boto3.client("batch", region_name=REGION)
    batch_role = _role("lane-batch", "batch.amazonaws.com")
    environment = batch.create_compute_environment(
        computeEnvironmentName="lane-ce", type="UNMANAGED", state="ENABLED", serviceRole=batch_role)
    queue = batch.create_job_queue(jobQueueName=JOB_QUEUE, state="ENABLED", priority=1,
                                   computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}])
    register_job_definition(substitutions["JobDefinitionName"], env)
    register_check_job_definition(substitutions["CheckJobDefinitionName"], env)

    sfn_role = _role("lane-states", "states.amazonaws.com")
    definition_text = fill_asl(ASL_PATH.read_text(), {
        **substitutions,
        "GateFunctionArn": arns[FUNCTIONS["gate"]], "CheckFunctionArn": arns[FUNCTIONS["check"]],
        "JobQueueArn": queue["jobQueueArn"], "LaneName": lane,
    })
    machine = boto3.client("stepfunctions", region_name=REGION).create_state_machine(
        name=f"{lane}-lane", definition=definition_text, roleArn=sfn_role, type="STANDARD")
    return LaneDeployment(endpoint=endpoint, spec_path=spec_path, lane=lane,
                          state_machine_arn=machine["stateMachineArn"], queue_url=queue_url, env=env,
                          job_definition_name=substitutions["JobDefinitionName"], consumer_queues=consumer_queues,
                          check_job_definition_name=substitutions["CheckJobDefinitionName"])


def register_job_definition(name: str, env: dict[str, str], extra_env: dict[str, str] | None = None) -> str:
    """A (new revision of the) materializer job definition, as `cdk deploy` registers one; returns its ARN."""
    return boto3.client("batch", region_name=REGION).register_job_definition(
        jobDefinitionName=name, type="container",
        containerProperties={
            "image": "batchlane-runtime:latest",
            "command": ["python", "/app/functions/materialize/main.py", "--help"],
            "environment": [{"name": key, "value": value} for key, value in {**env, **(extra_env or {})}.items()],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
        },
        timeout={"attemptDurationSeconds": 600},
    )["jobDefinitionArn"]


def register_check_job_definition(name: str, env: dict[str, str], extra_env: dict[str, str] | None = None) -> str:
    """The check job definition (same image, the trusted check entry); its subprocess records its AWS calls as
    principal ``check-job`` (the materializer's are ``job``), so the IAM proof evaluates them against its role."""
    return boto3.client("batch", region_name=REGION).register_job_definition(
        jobDefinitionName=name, type="container",
        containerProperties={
            "image": "batchlane-runtime:latest",
            "command": ["python", "/app/functions/check/job.py", "--help"],
            "environment": [{"name": key, "value": value}
                            for key, value in {**env, "LANE_CALL_PRINCIPAL": CHECK_JOB_PRINCIPAL,
                                               **(extra_env or {})}.items()],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "4096"}],
        },
        timeout={"attemptDurationSeconds": 600},
    )["jobDefinitionArn"]


@contextmanager
def deployed_lane(endpoint: str, spec_path: Path, *, template: dict | None = None,
                  record_dir: Path | None = None, job_deny: set[tuple[str, str]] | None = None,
                  env_overrides: dict[str, str] | None = None) -> Iterator[LaneDeployment]:
    """Fresh moto state, the lane deployed, every patch active, LANE_* set as in the functions.

    With ``record_dir``, the Batch job subprocesses record their AWS calls there as principal ``job``
    (tests/support/call_recording.py); in-process calls are attributed to gate/check/resolve/state-machine.
    ``job_deny``: (IAM action, resource) pairs the job's calls are refused with AccessDenied.
    ``env_overrides``: extra LANE_* settings of the functions and jobs (e.g. LANE_CHECK_LAMBDA_MAX_BYTES)."""
    from support.call_recording import install, subprocess_env

    reset_server(endpoint)
    deployment = deploy(endpoint, spec_path, template, env_overrides)
    job_env = {"PYTHONPATH": str(ROOT), "AWS_ENDPOINT_URL": endpoint, **DUMMY_ENV}
    if record_dir is not None:
        install()
        recording_env = subprocess_env(record_dir, "job", job_deny)
        job_env.update(recording_env, PYTHONPATH=os.pathsep.join((recording_env["PYTHONPATH"], str(ROOT))))
    with patched_env(dict(deployment.env)), moto_patches.lane_patches(
        handlers={FUNCTIONS["gate"]: GATE_HANDLER, FUNCTIONS["check"]: CHECK_HANDLER, FUNCTIONS["resolve"]: _resolve_only},
        principals={name: component for component, name in FUNCTIONS.items()},
        job_cwd=ROOT,
        job_env=job_env,
        path_map={"/app/functions/": str(ROOT / "functions") + "/"},
    ) as calls:
        deployment.calls = calls
        yield deployment


def events_of(messages: list[dict]) -> list[tuple[str, str | None]]:
    return sorted((message["detail-type"], message["detail"].get("output")) for message in messages)


__all__ = ["ACCOUNT", "LaneDeployment", "copy_example", "deployed_lane", "events_of", "fill_asl", "moto_server"]
