"""Size-aware checking (issue 11): the check job definition, its role, the state machine's grant and the settings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import actions_of, logical, resources, role_statements


def _check_job(template: dict[str, Any]) -> dict[str, Any]:
    (job,) = [body for name, body in resources(template, "AWS::Batch::JobDefinition").items() if "CheckJob" in name]
    return job["Properties"]


def test_check_job_runs_the_trusted_check_entry_with_its_own_role_disk_and_one_attempt(synth):
    template = synth.template("default")
    props = _check_job(template)
    container = props["ContainerProperties"]
    assert props["JobDefinitionName"] == "Batchlane-orders-check"
    assert props["RetryStrategy"] == {"Attempts": 1}          # out of memory or time would only repeat
    assert props["Timeout"] == {"AttemptDurationSeconds": 120 * 60}
    assert container["Command"] == ["python", "/app/functions/check/job.py", "--help"]
    assert container["JobRoleArn"]["Fn::GetAtt"][0] == logical(template, "AWS::IAM::Role", "BatchCheckRole")
    assert container["EphemeralStorage"] == {"SizeInGiB": 200}
    requirements = {item["Type"]: item["Value"] for item in container["ResourceRequirements"]}
    assert requirements == {"VCPU": "2", "MEMORY": "16384"}
    env = {item["Name"]: item["Value"] for item in container["Environment"]}
    assert env["LANE_SPEC"] == "/app/lane/lane.yaml" and env["LANE_BACKEND"] == "aws"
    assert env["LANE_CHECK_JOB_MEMORY_MIB"] == "16384" and env["LANE_CHECK_JOB_TIMEOUT_SECONDS"] == "7200"


def test_check_job_role_writes_receipts_and_the_materializer_role_still_cannot(synth):
    template = synth.template("default")
    checker = role_statements(template, "BatchCheckRole")
    by_sid = {s["Sid"]: s for s in checker}
    assert "receipts/*" in json.dumps(by_sid["WriteLaneObjects"]["Resource"])
    assert "staging/*" not in json.dumps(by_sid["WriteLaneObjects"]["Resource"])
    assert {"dynamodb:PutItem", "dynamodb:UpdateItem"} <= actions_of(checker)
    assert "ReadSpecInputs0" not in by_sid and "events:PutEvents" not in actions_of(checker)
    materializer = {s["Sid"]: s for s in role_statements(template, "ComputeJobRole")}
    assert "receipts/*" not in json.dumps(materializer["WriteLaneObjects"]["Resource"])


def test_state_machine_submits_both_job_definitions_by_name_and_check_function_knows_its_budget(synth):
    template = synth.template("default")
    by_sid = {s.get("Sid"): s for s in role_statements(template, "StateMachineRole")}
    text = json.dumps(by_sid["IntegrationJobDefinitionJobQueue"]["Resource"])
    assert ':job-definition/Batchlane-orders-materialize:*"' in text
    assert ':job-definition/Batchlane-orders-check:*"' in text
    (machine,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    subs = machine["Properties"]["DefinitionSubstitutions"]
    assert subs["CheckJobDefinitionName"] == "Batchlane-orders-check"
    assert subs["CheckJobTimeoutSeconds"] == str((30 + 120) * 60 + 600)   # RUNNABLE + job timeout + start
    check = resources(template, "AWS::Lambda::Function")[logical(template, "AWS::Lambda::Function", "CheckFunction")]
    assert check["Properties"]["Environment"]["Variables"]["LANE_CHECK_LAMBDA_MAX_BYTES"] == str(2 * 1024**3)
    # Begin sizes an array job's wait: one job timeout per round of children, max_vcpus / job_vcpu at once
    gate = resources(template, "AWS::Lambda::Function")[logical(template, "AWS::Lambda::Function", "GateFunction")]
    gate_env = gate["Properties"]["Environment"]["Variables"]
    assert (gate_env["LANE_JOB_TIMEOUT_SECONDS"], gate_env["LANE_JOB_SLOTS"]) == (str(60 * 60), "16")


@pytest.mark.parametrize("context, message", [
    ({"check_lambda_max_bytes": "2GB"}, "check_lambda_max_bytes"),
    ({"check_lambda_max_bytes": -1}, "check_lambda_max_bytes"),
    ({"check_job_vcpu": 3}, "check_job_vcpu: 3.0 is not a Fargate vCPU size"),
    ({"check_job_memory_mib": 100}, "check_job_memory_mib"),
    ({"check_job_timeout_minutes": 0}, "check_job_timeout_minutes"),
])
def test_bad_check_settings_fail_with_the_key(context, message):
    from stacks.settings import LaneSettings, SettingsError

    with pytest.raises(SettingsError, match=message):
        LaneSettings.from_context(context)


def test_check_settings_default_and_override():
    from stacks.settings import LaneSettings

    default = LaneSettings.from_context({})
    assert (default.check_lambda_max_bytes, default.check_job_vcpu, default.check_job_memory_mib,
            default.check_job_timeout_minutes) == (2 * 1024**3, 2.0, 16384, 120)
    tuned = LaneSettings.from_context({"check_lambda_max_bytes": "0", "check_job_memory_mib": 30720})
    assert tuned.check_lambda_max_bytes == 0 and tuned.check_job_memory_mib == 30720
