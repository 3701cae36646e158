"""Deploy the lane into a moto server the way the CDK stack does, and run the real state machine.

Used by tests/aws (state machine scenarios, CLI against AWS). Everything talks to a
ThreadedMotoServer through AWS_ENDPOINT_URL, so the Batch job subprocesses reach the same moto.
"""

from __future__ import annotations

import importlib.util
import io
import json
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
from support.aws_env import ACCOUNT, BUCKET, BUS, DUMMY_ENV, REGION, TABLE, create_lane_resources, patched_env, subscribe_queue

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


def deploy(endpoint: str, spec_path: Path) -> LaneDeployment:
    """Bucket, ledger table, bus + consumer queue, two Lambdas, Batch queue + job definition, the state machine."""
    from batchlane.spec import load_spec

    lane = load_spec(spec_path).lane
    create_lane_resources()
    queue_url = subscribe_queue(BUS, "lane-consumer")
    env = {"LANE_BACKEND": "aws", "LANE_BUCKET": BUCKET, "LANE_TABLE": TABLE, "LANE_EVENT_BUS": BUS,
           "LANE_SPEC": str(spec_path)}

    lambda_role = _role("lane-lambda", "lambda.amazonaws.com")
    awslambda = boto3.client("lambda", region_name=REGION)
    arns = {}
    for name, handler in (("lane-gate", "functions/gate/handler.handler"), ("lane-check", "functions/check/handler.handler")):
        arns[name] = awslambda.create_function(
            FunctionName=name, Runtime="python3.11", Role=lambda_role, Handler=handler, Code={"ZipFile": _zip()},
            Timeout=900, MemorySize=1024, Environment={"Variables": env},
        )["FunctionArn"]

    batch = boto3.client("batch", region_name=REGION)
    batch_role = _role("lane-batch", "batch.amazonaws.com")
    environment = batch.create_compute_environment(
        computeEnvironmentName="lane-ce", type="UNMANAGED", state="ENABLED", serviceRole=batch_role)
    queue = batch.create_job_queue(jobQueueName="lane-queue", state="ENABLED", priority=1,
                                   computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}])
    definition = batch.register_job_definition(
        jobDefinitionName="lane-materialize", type="container",
        containerProperties={
            "image": "batchlane-materialize:latest",
            "command": ["python", "/app/functions/materialize/main.py", "--help"],
            "environment": [{"name": key, "value": value} for key, value in env.items()],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
        },
        timeout={"attemptDurationSeconds": 600},
    )

    sfn_role = _role("lane-states", "states.amazonaws.com")
    definition_text = fill_asl(ASL_PATH.read_text(), {
        "GateFunctionArn": arns["lane-gate"], "CheckFunctionArn": arns["lane-check"],
        "JobQueueArn": queue["jobQueueArn"], "JobDefinitionArn": definition["jobDefinitionArn"], "LaneName": lane,
    })
    machine = boto3.client("stepfunctions", region_name=REGION).create_state_machine(
        name=f"{lane}-lane", definition=definition_text, roleArn=sfn_role, type="STANDARD")
    return LaneDeployment(endpoint=endpoint, spec_path=spec_path, lane=lane,
                          state_machine_arn=machine["stateMachineArn"], queue_url=queue_url, env=env)


@contextmanager
def deployed_lane(endpoint: str, spec_path: Path) -> Iterator[LaneDeployment]:
    """Fresh moto state, the lane deployed, every patch active, LANE_* set as in the functions."""
    reset_server(endpoint)
    deployment = deploy(endpoint, spec_path)
    with patched_env(dict(deployment.env)), moto_patches.lane_patches(
        handlers={"lane-gate": GATE_HANDLER, "lane-check": CHECK_HANDLER},
        job_cwd=ROOT,
        job_env={"PYTHONPATH": str(ROOT), "AWS_ENDPOINT_URL": endpoint, **DUMMY_ENV},
        path_map={"/app/functions/": str(ROOT / "functions") + "/"},
    ) as calls:
        deployment.calls = calls
        yield deployment


def events_of(messages: list[dict]) -> list[tuple[str, str | None]]:
    return sorted((message["detail-type"], message["detail"].get("output")) for message in messages)


__all__ = ["ACCOUNT", "LaneDeployment", "copy_example", "deployed_lane", "events_of", "fill_asl", "moto_server"]
