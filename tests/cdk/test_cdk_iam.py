"""IAM: no wildcard actions, resources scoped, each role exactly what its component does.

`wildcard_findings` is the policy linter these tests apply to every statement of the synthesized
templates; its own tests prove it catches `s3:*`, `*` and `Resource: *` when someone adds them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import OPTIONS_KMS_KEY, REPO, actions_of, as_list, logical, resources, role_statements, statements

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


@pytest.mark.parametrize("which", ["default", "options", "copy"])
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
    assert sorted(r["Fn::GetAtt"][0] for r in invoke["Resource"]) == sorted(
        logical(template, "AWS::Lambda::Function", name) for name in ("CheckFunction", "GateFunction"))
    submit = by_sid["IntegrationJobDefinitionJobQueue"]
    assert submit["Action"] == "batch:SubmitJob"
    text = _resource_text(submit)
    # by name, every revision of this lane's job definition (a redrive after a deploy runs the newest one)
    assert ':job-definition/Batchlane-orders-materialize:*"' in text
    assert logical(template, "AWS::Batch::JobQueue", "JobQueue") in text
    assert by_sid["IntegrationAny"] == {"Sid": "IntegrationAny", "Effect": "Allow",
                                        "Action": "batch:DescribeJobs", "Resource": "*"}
    assert by_sid["IntegrationJob"]["Action"] == "batch:TerminateJob"
    assert ":job/*" in _resource_text(by_sid["IntegrationJob"])
    managed = by_sid["IntegrationRule"]
    assert set(managed["Action"]) == {"events:PutTargets", "events:PutRule", "events:DescribeRule"}
    assert _resource_text(managed).endswith(':rule/StepFunctionsGetEventsForBatchJobsRule"]]}')
    own = {a for s in stmts if s.get("Sid") for a in as_list(s["Action"])}
    # the ASL passes no Tags to SubmitJob, so no batch:TagResource
    assert own == {"lambda:InvokeFunction", "batch:SubmitJob", "batch:DescribeJobs", "batch:TerminateJob",
                   "events:PutTargets", "events:PutRule", "events:DescribeRule"}
    # the rest is CDK's logging/tracing for the state machine, nothing else
    assert actions_of([s for s in stmts if not s.get("Sid")]) <= UNSCOPABLE


def test_tags_on_submit_job_add_tag_resource(tmp_path):
    """stacks/asl.py sees Tags on a submitJob; the table then adds batch:TagResource (AccessDenied otherwise)."""
    from stacks.asl import read_asl
    from stacks.orchestration import SERVICE_INTEGRATION_PERMISSIONS

    document = json.loads((REPO / "statemachines" / "lane.asl.json").read_text())
    assert not read_asl(REPO / "statemachines" / "lane.asl.json").batch_tags
    materialize = document["States"]["Outputs"]["ItemProcessor"]["States"]["Materialize"]
    materialize["Parameters"]["Tags"] = {"lane": "${LaneName}"}
    path = tmp_path / "tagged.asl.json"
    path.write_text(json.dumps(document))
    assert read_asl(path).batch_tags
    assert ("batch:TagResource", "job") in SERVICE_INTEGRATION_PERMISSIONS["batch:submitJob+Tags"]


def test_redrive_is_granted_to_operators_on_this_state_machines_executions(synth):
    template = synth.template("default")
    _, policy = next(iter(resources(template, "AWS::IAM::ManagedPolicy").items()))
    by_sid = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    redrive = by_sid["RedriveAndInspectRuns"]
    assert "states:RedriveExecution" in redrive["Action"]
    machine = logical(template, "AWS::StepFunctions::StateMachine", "StateMachine")
    assert f'":execution:", {{"Fn::GetAtt": ["{machine}", "Name"]}}, ":*"' in _resource_text(redrive)
    assert by_sid["StartRuns"]["Action"] == "states:StartExecution"
    # lane status/show/verify/read: ledger lookups, receipts and certified files, nothing written
    assert actions_of([by_sid["ReadLaneObjects"], by_sid["ReadLedger"], by_sid["ListLanePrefixes"]]) == {
        "s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "dynamodb:GetItem", "dynamodb:Query"}


LEDGER_WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem",
                 "dynamodb:BatchWriteItem"}


def test_job_role_writes_only_staging(synth):
    stmts = role_statements(synth.template("default"), "JobRole")
    assert actions_of(stmts) == {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:PutObject",
                                 "s3:AbortMultipartUpload", "dynamodb:GetItem", "dynamodb:Query"}
    assert not actions_of(stmts) & (LEDGER_WRITES | {"events:PutEvents"})
    for statement in stmts:
        if {"s3:PutObject", "s3:AbortMultipartUpload"} & set(as_list(statement["Action"])):
            assert "/staging/*" in _resource_text(statement) and "/receipts/" not in _resource_text(statement)
    # the fixture lane reads s3://upstream-landing-bucket/{customers,orders/2026}/...: exactly those prefixes
    options = role_statements(synth.template("options"), "JobRole")
    inputs = next(s for s in options if s.get("Sid") == "ReadSpecInputs0")
    text = _resource_text(inputs)
    assert ":s3:::upstream-landing-bucket/customers/*" in text and ":s3:::upstream-landing-bucket/orders/2026/*" in text
    listing = next(s for s in options if s.get("Sid") == "ListSpecInputs0")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["customers/*", "orders/2026/*"]}}
    decrypt = next(s for s in options if s.get("Sid") == "DecryptSpecInputs")
    assert decrypt["Action"] == "kms:Decrypt" and decrypt["Resource"] == OPTIONS_KMS_KEY
    assert "kms:ViaService" in json.dumps(decrypt["Condition"])
    # no s3:// inputs in the example lane: no input grants at all
    assert not any(s.get("Sid", "").startswith(("ReadSpecInputs", "DecryptSpecInputs")) for s in stmts)


def test_check_gate_resolve_roles(synth):
    template = synth.template("default")
    check = role_statements(template, "CheckFunctionRole")
    gate = role_statements(template, "GateFunctionRole")
    resolve = role_statements(template, "ResolveFunctionRole")
    writes = {"s3:PutObject", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "events:PutEvents"}
    # trusted writers (the check records the materialize receipt from the job's report): receipts/, ledger, bus
    for role in (check, gate):
        publish = next(s for s in role if s.get("Sid") == "PublishLaneEvents")
        assert "LaneBus" in _resource_text(publish)
    put = next(s for s in check if s.get("Sid") == "WriteLaneObjects")
    assert _resource_text(put).count("/receipts/*") == 1 and "/staging/" not in _resource_text(put)
    assert {"events:PutEvents", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"} <= actions_of(gate)
    outbox = next(s for s in gate if s.get("Sid") == "LedgerOutboxDelete")
    assert outbox["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["OUTBOX"]}}
    assert not any("dynamodb:DeleteItem" in as_list(s["Action"]) for s in gate if s is not outbox)
    assert actions_of(resolve) & writes == set()       # the consumers' gate cannot write anything
    # begin lists/HEADs the declared s3:// inputs: the gate reads exactly the job's input prefixes
    options_gate = {s.get("Sid"): s for s in role_statements(synth.template("options"), "GateFunctionRole")}
    options_job = {s.get("Sid"): s for s in role_statements(synth.template("options"), "JobRole")}
    for sid in ("ReadSpecInputs0", "ListSpecInputs0", "DecryptSpecInputs"):
        assert options_gate[sid] == options_job[sid], sid
    assert "ReadSpecInputs0" not in {s.get("Sid") for s in role_statements(synth.template("options"), "CheckFunctionRole")}


def test_consumer_roles_read_certified_products_only_through_resolve(synth):
    template = synth.template("default")
    roles = [n for n in resources(template, "AWS::IAM::Role") if n.startswith("ConsumersConsumer")]
    assert roles
    resolve = logical(template, "AWS::Lambda::Function", "ResolveFunction")
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
        if name.startswith("ConsumersConsumer"):
            principal = body["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["AWS"]
            assert ":iam::123456789012:root" in json.dumps(principal)
