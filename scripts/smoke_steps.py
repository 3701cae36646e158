"""Step Functions steps for scripts/smoke.sh, with boto3 (no AWS CLI needed; AWS_ENDPOINT_URL points at moto).

    python scripts/smoke_steps.py outputs --stack NAME          # shell exports from the stack's outputs
    python scripts/smoke_steps.py start ARN [--input JSON] [--name NAME]   # prints the execution ARN
    python scripts/smoke_steps.py wait EXECUTION [--timeout S]  # prints status (and error) when it ends
    python scripts/smoke_steps.py stop-when-submitted EXECUTION # stops it once a Batch job was submitted
    python scripts/smoke_steps.py redrive EXECUTION             # console "Redrive": only unsuccessful steps rerun
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

POLL_SECONDS = 2.0


def _sfn() -> Any:
    return boto3.session.Session().client("stepfunctions")


def outputs(stack: str) -> int:
    described = boto3.session.Session().client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    values = {item["OutputKey"]: item["OutputValue"] for item in described.get("Outputs", [])}
    wanted = {"STATE_MACHINE_ARN": "StateMachineArn", "LANE_BUCKET": "BucketName", "LANE_TABLE": "TableName",
              "LANE_EVENT_BUS": "EventBusName", "LANE_RESOLVE_FUNCTION": "ResolveFunctionName"}
    missing = [key for key in wanted.values() if key not in values]
    if missing:
        print(f"stack {stack}: outputs {', '.join(missing)} not found (is it a batchlane lane stack?)", file=sys.stderr)
        return 2
    for variable, key in wanted.items():
        print(f"export {variable}={shlex.quote(values[key])}")
    return 0


def start(machine: str, document: str, name: str | None) -> int:
    kwargs = {"stateMachineArn": machine, "input": document}
    if name:
        kwargs["name"] = name
    print(_sfn().start_execution(**kwargs)["executionArn"])
    return 0


def wait(execution: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        described = _sfn().describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            break
        if time.monotonic() > deadline:
            print(f"{execution}: still RUNNING after {timeout:.0f}s", file=sys.stderr)
            return 1
        time.sleep(POLL_SECONDS)
    summary = {"status": described["status"]}
    if described.get("error"):
        summary["error"] = described["error"]
        cause = described.get("cause") or ""
        try:
            summary["cause"] = json.loads(cause).get("errorMessage", cause)
        except (ValueError, AttributeError):
            summary["cause"] = cause
    print(json.dumps(summary))
    return 0


def stop_when_submitted(execution: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = _sfn().get_execution_history(executionArn=execution, reverseOrder=True, maxResults=200)["events"]
        if any(event["type"] == "TaskSubmitted" and "batch" in json.dumps(event.get("taskSubmittedEventDetails", {}))
               for event in history):
            _sfn().stop_execution(executionArn=execution, error="SmokeForcedFailure",
                                  cause="scripts/smoke.sh stopped the run while its jobs were starting")
            print("stopped")
            return 0
        if _sfn().describe_execution(executionArn=execution)["status"] != "RUNNING":
            print("the execution ended before any job was submitted (every output memoized?)", file=sys.stderr)
            return 1
        time.sleep(POLL_SECONDS)
    print(f"no Batch job submitted within {timeout:.0f}s", file=sys.stderr)
    return 1


def redrive(execution: str) -> int:
    _sfn().redrive_execution(executionArn=execution)
    print("redriven")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("outputs")
    command.add_argument("--stack", required=True)
    command = commands.add_parser("start")
    command.add_argument("machine")
    command.add_argument("--input", default="{}")
    command.add_argument("--name")
    for name in ("wait", "stop-when-submitted"):
        command = commands.add_parser(name)
        command.add_argument("execution")
        command.add_argument("--timeout", type=float, default=3600)
    command = commands.add_parser("redrive")
    command.add_argument("execution")
    args = parser.parse_args(argv)
    try:
        if args.command == "outputs":
            return outputs(args.stack)
        if args.command == "start":
            return start(args.machine, args.input, args.name)
        if args.command == "wait":
            return wait(args.execution, args.timeout)
        if args.command == "stop-when-submitted":
            return stop_when_submitted(args.execution, args.timeout)
        return redrive(args.execution)
    except (ClientError, BotoCoreError) as exc:
        print(f"smoke step {args.command} failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
