"""IAM: no wildcard actions, resources scoped, each role exactly what its component does.

`wildcard_findings` is the policy linter these tests apply to every statement of the synthesized
templates; its own tests prove it catches `s3:*`, `*` and `Resource: *` when someone adds them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import actions_of, as_list, resources, role_statements, statements

pytestmark = pytest.mark.xdist_group("cdk")

# Actions AWS does not scope to resources: the only ones allowed with Resource "*".
UNSCOPABLE = {
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
    "ecr:GetAuthorizationToken",
    "batch:DescribeJobs",
}


def wildcard_findings(statement: dict[str, Any]) -> list[str]:
    """Problems of one Allow statement: wildcard actions, or Resource "*" for a scopable action."""
    if statement.get("Effect", "Allow") != "Allow":
        return []    # a Deny may be broad: broader is stricter
    findings = []
    actions = as_list(statement.get("Action", []))
    if "NotAction" in statement or "NotResource" in statement:
        findings.append("NotAction/NotResource in an Allow")
    for action in actions:
        if "*" in action:
            findings.append(f"wildcard action {action}")
    if "*" in as_list(statement.get("Resource", [])):
        scopable = sorted(set(actions) - UNSCOPABLE)
        if scopable:
            findings.append(f"Resource * for scopable actions {scopable}")
    return findings


@pytest.mark.parametrize("statement, expected", [
    ({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}, "wildcard action s3:*"),
    ({"Effect": "Allow", "Action": ["s3:Get*"], "Resource": "arn:aws:s3:::b/*"}, "wildcard action s3:Get*"),
    ({"Effect": "Allow", "Action": "*", "Resource": "*"}, "wildcard action *"),
    ({"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"}, "Resource * for scopable actions"),
    ({"Effect": "Allow", "Action": ["xray:PutTraceSegments", "dynamodb:PutItem"], "Resource": "*"}, "dynamodb:PutItem"),
    ({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}, "NotAction"),
])
def test_the_linter_catches_wildcards(statement, expected):
    assert any(expected in finding for finding in wildcard_findings(statement))


def test_the_linter_accepts_scoped_and_unscopable():
    assert wildcard_findings({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/staging/*"}) == []
    assert wildcard_findings({"Effect": "Allow", "Action": ["xray:PutTraceSegments"], "Resource": "*"}) == []
    assert wildcard_findings({"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::b/staging/*"}) == []


@pytest.mark.parametrize("which", ["default", "options"])
def test_no_wildcard_actions_and_no_avoidable_star_resources(synth, which):
    problems = [(name, s.get("Sid"), finding)
                for name, s in statements(synth.template(which)) for finding in wildcard_findings(s)]
    assert problems == []


@pytest.mark.parametrize("which", ["default", "options"])
def test_no_aws_managed_policies_and_no_inline_admin(synth, which):
    for name, body in resources(synth.template(which), "AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in body["Properties"], name


def _resource_text(statement: dict[str, Any]) -> str:
    return json.dumps(statement["Resource"])


def test_s3_grants_are_prefix_scoped_never_the_whole_bucket(synth):
    for name, statement in statements(synth.template("default")):
        for action in as_list(statement["Action"]):
            if not action.startswith("s3:") or statement.get("Effect") == "Deny":
                continue
            text = _resource_text(statement)
            if action == "s3:ListBucket":
                assert "s3:prefix" in json.dumps(statement.get("Condition", {})), (name, statement)
            else:
                assert "/staging/*" in text or "/receipts/*" in text, (name, action, text)


def test_state_machine_role_is_exactly_what_the_asl_calls(synth):
    template = synth.template("default")
    stmts = role_statements(template, "StateMachineRole")
    by_sid = {s.get("Sid"): s for s in stmts}
    invoke = by_sid["InvokeLaneFunctions"]
    assert invoke["Action"] == "lambda:InvokeFunction"
    assert sorted(r["Fn::GetAtt"][0][:12] for r in invoke["Resource"]) == ["CheckFunctio", "GateFunction"]
    submit = by_sid["SubmitMaterializeJobs"]
    assert submit["Action"] == "batch:SubmitJob"
    assert {next(iter(r.values()))[0] if "Fn::GetAtt" in r else r["Ref"] for r in submit["Resource"]} == {
        next(n for n in resources(template, "AWS::Batch::JobQueue")),
        next(n for n in resources(template, "AWS::Batch::JobDefinition"))}
    assert by_sid["WatchMaterializeJobs"] == {"Sid": "WatchMaterializeJobs", "Effect": "Allow",
                                              "Action": "batch:DescribeJobs", "Resource": "*"}
    assert by_sid["StopMaterializeJobs"]["Action"] == "batch:TerminateJob"
    assert ":job/*" in _resource_text(by_sid["StopMaterializeJobs"])
    managed = by_sid["BatchSyncManagedRule"]
    assert set(managed["Action"]) == {"events:PutTargets", "events:PutRule", "events:DescribeRule"}
    assert _resource_text(managed).endswith(':rule/StepFunctionsGetEventsForBatchJobsRule"]]}')
    own = {a for s in stmts if s.get("Sid") for a in as_list(s["Action"])}
    assert own == {"lambda:InvokeFunction", "batch:SubmitJob", "batch:DescribeJobs", "batch:TerminateJob",
                   "events:PutTargets", "events:PutRule", "events:DescribeRule"}
    # the rest is CDK's logging/tracing for the state machine, nothing else
    assert actions_of([s for s in stmts if not s.get("Sid")]) <= UNSCOPABLE


def test_redrive_is_granted_to_operators_on_this_state_machines_executions(synth):
    template = synth.template("default")
    _, policy = next(iter(resources(template, "AWS::IAM::ManagedPolicy").items()))
    by_sid = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    redrive = by_sid["RedriveAndInspectRuns"]
    assert "states:RedriveExecution" in redrive["Action"]
    assert ":execution:batchlane-orders:*" in _resource_text(redrive)
    assert by_sid["StartRuns"]["Action"] == "states:StartExecution"


def test_job_role_least_privilege(synth):
    stmts = role_statements(synth.template("default"), "JobRole")
    assert actions_of(stmts) == {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:PutObject",
                                 "s3:AbortMultipartUpload", "dynamodb:GetItem", "dynamodb:Query",
                                 "dynamodb:PutItem", "dynamodb:ConditionCheckItem"}
    # the fixture lane reads s3://upstream-landing-bucket/{customers,orders/2026}/...: exactly those prefixes
    options = role_statements(synth.template("options"), "JobRole")
    inputs = next(s for s in options if s.get("Sid") == "ReadSpecInputs0")
    text = _resource_text(inputs)
    assert ":s3:::upstream-landing-bucket/customers/*" in text and ":s3:::upstream-landing-bucket/orders/2026/*" in text
    listing = next(s for s in options if s.get("Sid") == "ListSpecInputs0")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["customers/*", "orders/2026/*"]}}


def test_check_gate_resolve_roles(synth):
    template = synth.template("default")
    check = role_statements(template, "CheckFunctionRole")
    gate = role_statements(template, "GateFunctionRole")
    resolve = role_statements(template, "ResolveFunctionRole")
    writes = {"s3:PutObject", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "events:PutEvents"}
    assert "events:PutEvents" not in actions_of(check)
    put = next(s for s in check if s.get("Sid") == "WriteLaneObjects")
    assert _resource_text(put).count("/receipts/*") == 1 and "/staging/" not in _resource_text(put)
    assert {"events:PutEvents", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"} <= actions_of(gate)
    outbox = next(s for s in gate if s.get("Sid") == "LedgerOutboxDelete")
    assert outbox["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["OUTBOX"]}}
    assert not any("dynamodb:DeleteItem" in as_list(s["Action"]) for s in gate if s is not outbox)
    assert actions_of(resolve) & writes == set()       # the consumers' gate cannot write anything


def test_consumer_roles_read_certified_products_only_through_resolve(synth):
    template = synth.template("default")
    roles = [n for n in resources(template, "AWS::IAM::Role") if n.startswith("Consumer")]
    assert roles
    resolve = next(n for n in resources(template, "AWS::Lambda::Function") if n.startswith("ResolveFunction"))
    for role in roles:
        stmts = role_statements(template, role)
        deny = [s for s in stmts if s["Effect"] == "Deny"]
        assert len(deny) == 1 and deny[0]["Action"] == "s3:*"
        assert _resource_text(deny[0]).endswith('"/staging/*"]]}')
        for s in stmts:
            if s["Effect"] == "Allow":
                assert "/staging/" not in _resource_text(s), (role, s)
        invoke = next(s for s in stmts if s.get("Sid") == "ResolveCertifiedProducts")
        assert invoke["Resource"] == {"Fn::GetAtt": [resolve, "Arn"]}
        assert actions_of(stmts) == {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                                     "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "lambda:InvokeFunction",
                                     "s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"}


def test_consumer_principal_from_context(synth):
    template = synth.template("options")
    for name, body in resources(template, "AWS::IAM::Role").items():
        if name.startswith("Consumer"):
            principal = body["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["AWS"]
            assert ":iam::123456789012:root" in json.dumps(principal)
