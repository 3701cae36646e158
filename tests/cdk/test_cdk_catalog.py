"""Glue Data Catalog publication (context `glue_database`): off by default; when on, the gate publishes and
SQL readers read published/ only, and the materializer job can never write what they read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import actions_of, as_list, logical, resources, role_statements, statements

pytestmark = pytest.mark.xdist_group("cdk")

GLUE_PUBLISH = {"glue:GetDatabase", "glue:CreateDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable",
                "glue:DeleteTable", "glue:GetPartitions"}
GLUE_READ = {"glue:GetDatabase", "glue:GetTable", "glue:GetPartitions"}


def _text(value: Any) -> str:
    return json.dumps(value)


def _function_env(template: dict[str, Any], construct: str) -> dict[str, Any]:
    name = logical(template, "AWS::Lambda::Function", construct)
    return template["Resources"][name]["Properties"]["Environment"]["Variables"]


def _managed(template: dict[str, Any], construct: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    name = logical(template, "AWS::IAM::ManagedPolicy", construct)
    body = template["Resources"][name]["Properties"]
    return body, {s["Sid"]: s for s in body["PolicyDocument"]["Statement"]}


def _lane_bucket_policy(template: dict[str, Any]) -> list[dict[str, Any]]:
    bucket = logical(template, "AWS::S3::Bucket", "StorageLaneBucket")
    for body in resources(template, "AWS::S3::BucketPolicy").values():
        if body["Properties"]["Bucket"] == {"Ref": bucket}:
            return body["Properties"]["PolicyDocument"]["Statement"]
    raise AssertionError("no lane bucket policy")


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize("value, expected, database", [
    (None, None, None), ("", None, None), ("off", None, None), (False, None, None),
    ("auto", "auto", "batchlane_orders"), ("AUTO", "auto", "batchlane_orders"), (True, "auto", "batchlane_orders"),
    ("certified_products", "certified_products", "certified_products"),
])
def test_glue_database_setting(value, expected, database):
    from stacks.settings import LaneSettings

    settings = LaneSettings.from_context({} if value is None else {"glue_database": value})
    assert settings.glue_database == expected
    assert settings.glue_database_for("orders") == database


@pytest.mark.parametrize("value", ["Certified-Products", "db name", "x" * 256, "analytics.db"])
def test_a_bad_glue_database_fails_with_the_key_and_the_rule(value):
    from stacks.settings import LaneSettings, SettingsError

    with pytest.raises(SettingsError, match=r"context glue_database: .* must be auto, off, or a Glue database name"):
        LaneSettings.from_context({"glue_database": value})


def test_auto_names_the_database_as_the_runtime_does():
    """The stack scopes IAM to the database the gate will use: the same function names both."""
    from batchlane.glue_catalog import database_name
    from stacks.settings import LaneSettings

    settings = LaneSettings.from_context({"glue_database": "auto"})
    assert settings.glue_database_for("orders-eu") == database_name("orders-eu") == "batchlane_orders_eu"


# --------------------------------------------------------------------------- off (the default stack)


def test_off_by_default_no_env_no_grants_no_catalog(synth):
    template = synth.template("default")
    for function in ("GateFunction", "CheckFunction", "ResolveFunction"):
        assert "LANE_GLUE_DATABASE" not in _function_env(template, function), function
    assert not any(action.startswith("glue:") for _, s in statements(template) for action in as_list(s["Action"]))
    assert "published/" not in _text(template["Resources"])
    assert not [name for name in template["Outputs"] if "Catalog" in name or "Glue" in name]


# --------------------------------------------------------------------------- on


@pytest.mark.parametrize("which, database", [("copy", "batchlane_orders"), ("options", "certified_products")])
def test_on_the_gate_alone_gets_the_database(synth, which, database):
    template = synth.template(which)
    assert _function_env(template, "GateFunction")["LANE_GLUE_DATABASE"] == database
    # the check never decides; the resolve twin never writes: neither publishes
    for function in ("CheckFunction", "ResolveFunction"):
        assert "LANE_GLUE_DATABASE" not in _function_env(template, function), function
    assert template["Outputs"]["GlueDatabaseName"]["Value"] == database


@pytest.mark.parametrize("which, database", [("copy", "batchlane_orders"), ("options", "certified_products")])
def test_on_the_gate_role_gets_exactly_what_a_sync_calls(synth, which, database):
    template = synth.template(which)
    body, by_sid = _managed(template, "CatalogPublishPolicy")
    gate_role = logical(template, "AWS::IAM::Role", "GateFunctionRole")
    assert body["Roles"] == [{"Ref": gate_role}]
    assert set(by_sid) == {"GluePublishTables", "ReadCertifiedVersions", "WritePublishedCopies", "ListPublishedCopies"}
    glue = by_sid["GluePublishTables"]
    assert set(glue["Action"]) == GLUE_PUBLISH
    resources_text = [_text(resource) for resource in glue["Resource"]]
    assert [text.rsplit(":", 1)[-1] for text in resources_text] == [
        'catalog"]]}', f'database/{database}"]]}}', f'table/{database}/*"]]}}']
    assert set(by_sid["ReadCertifiedVersions"]["Action"]) == {"s3:GetObject", "s3:GetObjectVersion"}
    assert _text(by_sid["ReadCertifiedVersions"]["Resource"]).endswith('"/staging/*"]]}')
    write = by_sid["WritePublishedCopies"]
    assert set(write["Action"]) == {"s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}
    assert _text(write["Resource"]).endswith('"/published/*"]]}')
    assert by_sid["ListPublishedCopies"]["Condition"] == {"StringLike": {"s3:prefix": ["published/*"]}}
    # nothing else in the stack may write published/ or touch Glue
    for name, statement in statements(template):
        if statement.get("Effect", "Allow") != "Allow":
            continue
        actions = set(as_list(statement["Action"]))
        if any(action.startswith("glue:") for action in actions):
            assert name.startswith(("CatalogPublishPolicy", "CatalogReaderPolicy")), name
        if "/published/" in _text(statement.get("Resource")) and actions & {"s3:PutObject", "s3:DeleteObject"}:
            assert name.startswith("CatalogPublishPolicy"), name


@pytest.mark.parametrize("which, database", [("copy", "batchlane_orders"), ("options", "certified_products")])
def test_on_sql_readers_get_the_catalog_and_published_only(synth, which, database):
    template = synth.template(which)
    body, by_sid = _managed(template, "CatalogReaderPolicy")
    assert "Roles" not in body and "Users" not in body and "Groups" not in body     # attached by the account owner
    assert set(by_sid["GlueReadTables"]["Action"]) == GLUE_READ
    assert f"table/{database}/*" in _text(by_sid["GlueReadTables"]["Resource"])
    allowed = [s for s in by_sid.values() if s["Effect"] == "Allow"]
    assert actions_of(allowed) == GLUE_READ | {"s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"}
    assert _text(by_sid["ReadPublishedCopies"]["Resource"]).endswith('"/published/*"]]}')
    for statement in allowed:
        assert "/staging/" not in _text(statement) and "/receipts/" not in _text(statement)
    deny = by_sid["DenyStaging"]
    assert deny["Effect"] == "Deny" and deny["Action"] == "s3:*"
    assert _text(deny["Resource"]).endswith('"/staging/*"]]}')
    assert template["Outputs"]["CatalogReaderPolicyArn"]["Value"] == {"Ref": logical(
        template, "AWS::IAM::ManagedPolicy", "CatalogReaderPolicy")}


@pytest.mark.parametrize("which", ["copy", "options"])
def test_on_the_job_can_never_write_published(synth, which):
    template = synth.template(which)
    job_role = logical(template, "AWS::IAM::Role", "ComputeJobRole")
    for statement in role_statements(template, "ComputeJobRole"):
        assert "/published/" not in _text(statement.get("Resource")), statement
    # ... and the bucket policy denies it, whatever the job role is granted later
    (deny,) = [s for s in _lane_bucket_policy(template) if s.get("Sid") == "JobNeverWritesPublished"]
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == {"AWS": {"Fn::GetAtt": [job_role, "Arn"]}}
    assert set(deny["Action"]) == {"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"}
    assert _text(deny["Resource"]).endswith('"/published/*"]]}')


def test_on_published_noncurrent_versions_expire(synth):
    for which, expected in (("copy", True), ("options", True), ("default", False)):
        bucket = logical(synth.template(which), "AWS::S3::Bucket", "StorageLaneBucket")
        rules = {rule["Id"]: rule for rule in synth.template(which)["Resources"][bucket]["Properties"][
            "LifecycleConfiguration"]["Rules"]}
        assert ("expire-noncurrent-published" in rules) is expected, which
        if expected:
            rule = rules["expire-noncurrent-published"]
            assert rule["Prefix"] == "published/" and rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}


def test_a_bad_glue_database_fails_synth_before_cdk_starts():
    import subprocess
    import sys

    from .conftest import REPO

    result = subprocess.run([sys.executable, str(REPO / "app.py"), "-c", "glue_database=Sales-DB"], capture_output=True,
                            text=True, cwd=REPO, timeout=120, check=False)
    assert result.returncode == 2
    assert "synth failed: context glue_database: 'Sales-DB' must be auto, off, or a Glue database name" in result.stderr
