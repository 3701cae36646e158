"""Synth-free units: ASL reading, settings validation, bundling, layer pins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import FIXTURES, REPO

pytestmark = pytest.mark.xdist_group("cdk")


def _asl(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "lane.asl.json"
    path.write_text(json.dumps(document))
    return path


def test_real_asl_needs_lambda_and_batch_sync_only():
    from stacks.asl import read_asl

    usage = read_asl(REPO / "statemachines" / "lane.asl.json")
    assert usage.substitutions == {"GateFunctionArn", "CheckFunctionArn", "JobQueueArn", "JobDefinitionName",
                                   "MaterializeTimeoutSeconds", "LaneName", "CheckJobDefinitionName",
                                   "CheckJobTimeoutSeconds"}
    assert usage.lambda_function_substitutions == {"GateFunctionArn", "CheckFunctionArn"}
    assert usage.integrations == {"batch:submitJob.sync"}
    assert usage.batch_sync and not usage.put_events and not usage.distributed_map and not usage.batch_tags


def test_optimized_lambda_invoke_style_is_understood_too():
    from stacks.asl import read_asl

    usage = read_asl(FIXTURES / "invoke_style.asl.json")
    assert usage.integrations == {"lambda:invoke", "batch:submitJob.sync"}
    assert usage.lambda_function_substitutions == {"GateFunctionArn", "CheckFunctionArn"}


def test_an_integration_without_a_grant_fails_synth(tmp_path):
    from stacks.asl import AslError, read_asl

    path = _asl(tmp_path, {"StartAt": "A", "States": {"A": {
        "Type": "Task", "Resource": "arn:aws:states:::aws-sdk:s3:deleteObject", "End": True}}})
    with pytest.raises(AslError, match=r"state A: the stack grants no IAM for 'arn:aws:states:::aws-sdk:s3:deleteObject'"):
        read_asl(path)


def test_nested_states_and_distributed_map_are_found(tmp_path):
    from stacks.asl import read_asl

    path = _asl(tmp_path, {"StartAt": "M", "States": {"M": {
        "Type": "Map", "End": True, "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "P",
                                                       "States": {"P": {"Type": "Parallel", "End": True, "Branches": [
                                                           {"StartAt": "E", "States": {"E": {
                                                               "Type": "Task", "Resource": "arn:aws:states:::events:putEvents",
                                                               "End": True}}}]}}}}}})
    usage = read_asl(path)
    assert usage.distributed_map and usage.put_events


def test_unknown_substitution_and_jsonata_fail(tmp_path):
    from stacks.asl import AslError, check_substitutions, read_asl

    usage = read_asl(_asl(tmp_path, {"StartAt": "A", "States": {"A": {
        "Type": "Task", "Resource": "${NewFunctionArn}", "Parameters": {"x": "${Mystery}"}, "End": True}}}))
    with pytest.raises(AslError, match="no value for substitution.*Mystery"):
        check_substitutions(usage, {"NewFunctionArn", "GateFunctionArn"}, "x.json")
    with pytest.raises(AslError, match="JSONata"):
        read_asl(_asl(tmp_path, {"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}))
    with pytest.raises(AslError, match="file not found"):
        read_asl(tmp_path / "missing.json")


@pytest.mark.parametrize("context, message", [
    ({"vpc_id": "vpc-0123456789abcdef0"}, "subnet_ids"),
    ({"vpc_id": "my-vpc", "subnet_ids": "subnet-0123456789abcdef0"}, "vpc_id"),
    ({"subnet_ids": "subnet-0123456789abcdef0"}, "only valid together with vpc_id"),
    ({"schedule": "every day"}, "rate"),
    ({"object_lock_days": "ten"}, "object_lock_days"),
    ({"object_lock_mode": "LEGAL"}, "GOVERNANCE or COMPLIANCE"),
    ({"log_retention_days": 42}, "log_retention_days"),
    ({"job_vcpu": 3}, "Fargate vCPU"),
    ({"landed_event_pattern": "{not json"}, "landed_event_pattern"),
    ({"input_kms_key_arns": "alias/landing"}, "input_kms_key_arns"),
    ({"runnable_timeout_minutes": 5}, "runnable_timeout_minutes"),
])
def test_bad_context_fails_with_the_key(context, message):
    from stacks.settings import LaneSettings, SettingsError

    with pytest.raises(SettingsError, match=message):
        LaneSettings.from_context(context)


def test_cdk_json_context_is_valid():
    from app import cdk_json_context
    from stacks.settings import LaneSettings

    settings = LaneSettings.from_context(cdk_json_context())
    assert settings.spec == REPO / "examples" / "orders" / "lane.yaml"
    assert settings.vpc_id is None and settings.schedule is None and settings.input_kms_key_arns == ()
    assert (REPO / settings.dockerfile).is_file() and settings.runnable_timeout_minutes == 30


def test_bundle_keeps_core_functions_locks_and_spec_dir_only():
    from stacks.image import stage_bundle

    staged = stage_bundle(REPO, Path("examples/orders"), ["image/Dockerfile"])
    top = sorted(p.name for p in staged.iterdir())
    assert top == ["batchlane", "examples", "functions", "image", "pyproject.toml", "requirements"]
    assert (staged / "examples" / "orders" / "transforms.py").is_file()
    assert not list(staged.rglob("__pycache__"))


def test_input_scopes_are_the_prefixes_before_the_first_glob():
    from batchlane.spec import load_spec
    from stacks.common import InputScopes

    scopes = InputScopes.from_spec(load_spec(FIXTURES / "lane" / "lane.yaml"))
    assert scopes.prefixes == {"upstream-landing-bucket": ("customers/", "orders/2026/")}
    assert not InputScopes.from_spec(load_spec(REPO / "examples" / "orders" / "lane.yaml"))


def test_materialize_timeout_covers_runnable_start_and_the_job():
    from stacks.lane_stack import JOB_START_MARGIN_SECONDS, materialize_timeout_seconds
    from stacks.settings import LaneSettings

    settings = LaneSettings.from_context({"job_timeout_minutes": 120, "runnable_timeout_minutes": 45})
    assert materialize_timeout_seconds(settings) == 165 * 60 + JOB_START_MARGIN_SECONDS
