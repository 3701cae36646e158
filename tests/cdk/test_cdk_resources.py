"""Every resource of the lane stack, asserted on the synthesized template (one synth per session)."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template

from batchlane.spec import load_spec

from .conftest import FIXTURE_SPEC, REPO, one, resources

pytestmark = pytest.mark.xdist_group("cdk")

EXAMPLE_SPEC = REPO / "examples" / "orders" / "lane.yaml"


@pytest.fixture(scope="module")
def default(synth):
    return Template.from_json(synth.template("default"))


@pytest.fixture(scope="module")
def options(synth):
    return Template.from_json(synth.template("options"))


def test_stack_name_comes_from_the_lane(synth):
    assert synth.stack_names["default"] == "Batchlane-" + load_spec(EXAMPLE_SPEC).lane
    assert synth.stack_names["options"] == "Batchlane-options"
    assert synth.stack_names["copy"] == "Batchlane-orders-copy"


def test_no_fixed_physical_names_so_two_copies_of_a_lane_coexist(synth):
    """Retained resources and the bus/state machine carry no name the template fixes: CloudFormation names them
    per stack, so `cdk destroy` + `cdk deploy` never hits "already exists" and a second copy deploys beside the first."""
    named = {"AWS::S3::Bucket": "BucketName", "AWS::DynamoDB::Table": "TableName", "AWS::Logs::LogGroup": "LogGroupName",
             "AWS::StepFunctions::StateMachine": "StateMachineName", "AWS::SQS::Queue": "QueueName",
             "AWS::Lambda::Function": "FunctionName", "AWS::IAM::Role": "RoleName", "AWS::Batch::JobQueue": "JobQueueName"}
    for which in ("default", "copy"):
        template = synth.template(which)
        for kind, key in named.items():
            for name, body in resources(template, kind).items():
                assert key not in body["Properties"], (which, name, key)
    # the two names that are set derive from the stack name: distinct per copy
    buses = [one(synth.template(which), "AWS::Events::EventBus")[1]["Properties"]["Name"] for which in ("default", "copy")]
    assert buses[0] != buses[1]
    definitions = [_materialize_job(synth.template(which))[1]["Properties"]["JobDefinitionName"]
                   for which in ("default", "copy")]
    assert definitions == ["Batchlane-orders-materialize", "Batchlane-orders-copy-materialize"]


def test_lane_bucket_is_private_tls_only_encrypted_versioned_and_logged(synth, default):
    default.has_resource_properties("AWS::S3::Bucket", {
        "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                           "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
        "VersioningConfiguration": {"Status": "Enabled"},
        "LoggingConfiguration": {"DestinationBucketName": Match.any_value(), "LogFilePrefix": "lane-bucket/"},
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
    })
    for body in resources(synth.template("default"), "AWS::S3::Bucket").values():
        assert body["DeletionPolicy"] == "Retain"
        assert body["Properties"]["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    # TLS only, on both buckets
    policies = resources(synth.template("default"), "AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for body in policies.values():
        tls = [s for s in body["Properties"]["PolicyDocument"]["Statement"]
               if s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"]
        assert tls and all(s["Effect"] == "Deny" and s["Action"] == "s3:*" for s in tls)


def test_receipts_are_write_once_by_bucket_policy(synth):
    template = synth.template("default")
    bucket, _ = next((n, b) for n, b in resources(template, "AWS::S3::Bucket").items() if "LaneBucket" in n)
    policy = next(b for b in resources(template, "AWS::S3::BucketPolicy").values()
                  if b["Properties"]["Bucket"] == {"Ref": bucket})
    by_sid = {s.get("Sid"): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    write_once = by_sid["ReceiptsAreWriteOnce"]
    assert write_once["Effect"] == "Deny" and write_once["Action"] == "s3:PutObject"
    assert write_once["Condition"] == {"Null": {"s3:if-none-match": "true"}}
    assert json.dumps(write_once["Resource"]).endswith('"/receipts/*"]]}')
    never_deleted = by_sid["ReceiptsAreNeverDeleted"]
    assert never_deleted["Effect"] == "Deny"
    assert set(never_deleted["Action"]) == {"s3:DeleteObject", "s3:DeleteObjectVersion"}


def test_noncurrent_staging_versions_expire(synth):
    template = synth.template("default")
    _, bucket = next((n, b) for n, b in resources(template, "AWS::S3::Bucket").items() if "LaneBucket" in n)
    rules = {rule["Id"]: rule for rule in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    staging = rules["expire-noncurrent-staging"]
    assert staging["Prefix"] == "staging/" and staging["Status"] == "Enabled"
    assert staging["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert "ExpirationInDays" not in staging          # current (certified) versions never expire
    assert not any("receipts" in rule.get("Prefix", "") for rule in rules.values())


def test_object_lock_is_optional_via_context(default, options):
    default.has_resource_properties("AWS::S3::Bucket", {"LoggingConfiguration": Match.any_value(),
                                                        "ObjectLockEnabled": Match.absent()})
    options.has_resource_properties("AWS::S3::Bucket", {
        "ObjectLockEnabled": True,
        "ObjectLockConfiguration": {"ObjectLockEnabled": "Enabled",
                                    "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 365}}},
    })


def test_ledger_table(synth):
    _, table = one(synth.template("default"), "AWS::DynamoDB::Table")
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert {"AttributeName": "pk", "AttributeType": "S"} in props["AttributeDefinitions"]
    assert {"AttributeName": "sk", "AttributeType": "S"} in props["AttributeDefinitions"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["DeletionProtectionEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"


def test_batch_on_fargate_in_a_new_vpc(synth, default):
    template = synth.template("default")
    default.resource_count_is("AWS::EC2::VPC", 1)
    default.has_resource_properties("AWS::EC2::FlowLog", {"TrafficType": "ALL"})
    default.has_resource_properties("AWS::EC2::VPCEndpoint", {"VpcEndpointType": "Gateway"})
    _, environment = one(template, "AWS::Batch::ComputeEnvironment")
    props = environment["Properties"]
    assert props["Type"] == "managed"
    assert props["ComputeResources"]["Type"] == "FARGATE"
    assert props["ComputeResources"]["MaxvCpus"] == 16
    assert all("Ref" in subnet for subnet in props["ComputeResources"]["Subnets"])
    default.has_resource_properties("AWS::Batch::JobQueue", {
        "Priority": 1, "ComputeEnvironmentOrder": [{"Order": 1, "ComputeEnvironment": Match.any_value()}]})
    # a job stuck in RUNNABLE is cancelled (quota, capacity, impossible size) instead of holding the run
    _, queue = one(template, "AWS::Batch::JobQueue")
    limits = queue["Properties"]["JobStateTimeLimitActions"]
    assert {limit["Reason"] for limit in limits} == {
        "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"}
    assert all(limit["State"] == "RUNNABLE" and limit["Action"] == "CANCEL" and limit["MaxTimeSeconds"] == 1800
               for limit in limits)


def test_vpc_endpoints_without_nat(synth):
    """nat_gateways=0: isolated subnets reach ECR (api + registry), logs, S3 and DynamoDB through endpoints only."""
    copy = synth.template("copy")
    assert not resources(copy, "AWS::EC2::NatGateway")
    interface = {json.dumps(body["Properties"]["ServiceName"]) for body in resources(copy, "AWS::EC2::VPCEndpoint").values()
                 if body["Properties"].get("VpcEndpointType") == "Interface"}
    joined = " ".join(sorted(interface))
    assert ".ecr.api" in joined and ".ecr.dkr" in joined and ".logs" in joined
    assert len(interface) == 3
    for body in resources(copy, "AWS::EC2::VPCEndpoint").values():
        if body["Properties"].get("VpcEndpointType") == "Interface":
            assert body["Properties"]["PrivateDnsEnabled"] is True
    # the endpoints answer HTTPS from the jobs' security group only
    groups = resources(copy, "AWS::EC2::SecurityGroup")
    endpoint_group = next(body for name, body in groups.items() if "EndpointSecurityGroup" in name)
    (ingress,) = endpoint_group["Properties"]["SecurityGroupIngress"] if "SecurityGroupIngress" in endpoint_group[
        "Properties"] else [body["Properties"] for body in resources(copy, "AWS::EC2::SecurityGroupIngress").values()]
    assert (ingress["FromPort"], ingress["ToPort"], ingress["IpProtocol"]) == (443, 443, "tcp")
    assert "JobSecurityGroup" in json.dumps(ingress["SourceSecurityGroupId"])
    gateway = [body for body in resources(copy, "AWS::EC2::VPCEndpoint").values()
               if body["Properties"].get("VpcEndpointType") == "Gateway"]
    assert len(gateway) == 2
    # with a NAT gateway, only the (free) gateway endpoints
    default = synth.template("default")
    assert resources(default, "AWS::EC2::NatGateway")
    assert all(body["Properties"].get("VpcEndpointType") == "Gateway"
               for body in resources(default, "AWS::EC2::VPCEndpoint").values())


def test_imported_vpc_from_context(synth, options):
    options.resource_count_is("AWS::EC2::VPC", 0)
    _, environment = one(synth.template("options"), "AWS::Batch::ComputeEnvironment")
    assert environment["Properties"]["ComputeResources"]["Subnets"] == [
        "subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
    options.has_resource_properties("AWS::EC2::SecurityGroup", {"VpcId": "vpc-0123456789abcdef0"})


def _image_asset(synth, which: str = "default") -> dict:
    assets = json.loads((synth.outdir / f"{synth.stack_names[which]}.assets.json").read_text())
    (image,) = assets["dockerImages"].values()
    return image


def _materialize_job(template: dict) -> tuple[str, dict]:
    """The materializer's job definition (the check job's is tested in tests/cdk/test_cdk_check_job.py)."""
    (found,) = [(name, body) for name, body in resources(template, "AWS::Batch::JobDefinition").items()
                if "MaterializeJob" in name]
    return found


def test_job_definition_runs_the_runtime_image_with_a_job_role(synth):
    template = synth.template("default")
    _, job = _materialize_job(template)
    props = job["Properties"]
    container = props["ContainerProperties"]
    assert props["PlatformCapabilities"] == ["FARGATE"]
    assert props["RetryStrategy"] == {"Attempts": 1}
    assert props["JobDefinitionName"] == "Batchlane-orders-materialize"
    assert "JobRole" in container["JobRoleArn"]["Fn::GetAtt"][0]
    assert "MaterializeContainerExecutionRole" in container["ExecutionRoleArn"]["Fn::GetAtt"][0]
    assert container["NetworkConfiguration"] == {"AssignPublicIp": "DISABLED"}
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    assert "container-assets" in json.dumps(container["Image"])
    env = {item["Name"]: item["Value"] for item in container["Environment"]}
    assert env["LANE_BACKEND"] == "aws"
    assert env["LANE_SPEC"] == "/app/lane/lane.yaml"   # image/Dockerfile copies the spec dir to /app/lane
    assert {"LANE_BUCKET", "LANE_TABLE", "LANE_EVENT_BUS"} <= set(env)
    # the image asset: built from image/Dockerfile with the spec dir as a build arg, for x86_64
    image = _image_asset(synth)
    assert image["source"]["dockerFile"] == "image/Dockerfile"
    assert image["source"]["platform"] == "linux/amd64"
    assert image["source"]["dockerBuildArgs"] == {"LANE_SPEC_DIR": "examples/orders", "LANE_SPEC_FILE": "lane.yaml"}
    context = synth.outdir / image["source"]["directory"]
    assert (context / "batchlane" / "spec.py").is_file()
    assert (context / "examples" / "orders" / "lane.yaml").is_file()
    assert (context / "requirements" / "image.txt").is_file() and (context / "image" / "Dockerfile").is_file()
    assert not (context / ".venv").exists() and not (context / "tests").exists() and not (context / ".git").exists()


def test_one_runtime_image_for_batch_and_the_functions(synth):
    """Container-image Lambdas of the same image the job runs: no layer, no per-region layer map."""
    template = synth.template("default")
    _, job = _materialize_job(template)
    job_image = json.dumps(job["Properties"]["ContainerProperties"]["Image"])
    functions = resources(template, "AWS::Lambda::Function")
    assert len(functions) == 3
    handlers = []
    for name, body in functions.items():
        props = body["Properties"]
        assert props["PackageType"] == "Image", name
        assert "Layers" not in props and "Runtime" not in props, name
        uri = json.dumps(props["Code"]["ImageUri"])
        assert uri.rsplit(":", 1)[-1].strip('"]}') in job_image, name     # same image tag as the Batch job
        assert props["ImageConfig"]["EntryPoint"] == ["python", "-m", "awslambdaric"], name
        handlers += props["ImageConfig"]["Command"]
    assert sorted(handlers) == ["functions.check.handler.handler", "functions.gate.handler.handler",
                                "functions.gate.handler.handler"]
    assert "Mappings" not in template
    assert not resources(template, "AWS::Lambda::LayerVersion")


def test_runtime_image_installs_only_the_runtime_lock_on_python_313():
    dockerfile = (REPO / "image" / "Dockerfile").read_text()
    assert "FROM python:3.13-slim" in dockerfile
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert installs == ["RUN pip install --no-cache-dir --only-binary=:all: --no-deps -r /app/requirements/image.txt"]
    lock = "\n" + "".join((REPO / "requirements" / name).read_text() for name in ("image.txt", "aws.txt", "runtime.txt"))
    for tool in ("aws-cdk-lib", "moto", "pytest", "cfn-lint", "pandera", "cdk-nag", "jsii", "ruff", "mypy"):
        assert f"\n{tool}==" not in lock, tool
    assert "\nawslambdaric==" in lock and "\npyarrow==" in lock and "\nboto3==" in lock


def test_lambdas_check_gate_resolve(synth, default):
    template = synth.template("default")
    functions = resources(template, "AWS::Lambda::Function")
    for name, body in functions.items():
        props = body["Properties"]
        assert props["TracingConfig"] == {"Mode": "Active"}, name
        assert props["LoggingConfig"]["LogFormat"] == "JSON", name
        assert "Ref" in props["LoggingConfig"]["LogGroup"], name
        env = props["Environment"]["Variables"]
        assert env["LANE_BACKEND"] == "aws" and env["LANE_SPEC"] == "/app/lane/lane.yaml", name
        assert {"LANE_BUCKET", "LANE_TABLE", "LANE_EVENT_BUS"} <= set(env), name
    timeouts = {name.split("Functions")[1].split("Function")[0]: body["Properties"]["Timeout"]
                for name, body in functions.items()}
    assert timeouts == {"Check": 900, "Gate": 300, "Resolve": 60}
    # every function has its own log group with a retention
    for body in resources(template, "AWS::Logs::LogGroup").values():
        assert body["Properties"]["RetentionInDays"] == 90


def test_state_machine_is_standard_inline_logged_traced(synth, default):
    template = synth.template("default")
    _, machine = one(template, "AWS::StepFunctions::StateMachine")
    props = machine["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    assert "DefinitionS3Location" not in props
    definition = (REPO / "statemachines" / "lane.asl.json").read_text()
    assert props["DefinitionString"] == definition     # inline, verbatim: assertions and cfn-lint see it
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is True
    subs = props["DefinitionSubstitutions"]
    assert set(subs) == {"GateFunctionArn", "CheckFunctionArn", "JobQueueArn", "JobDefinitionName",
                         "MaterializeTimeoutSeconds", "LaneName", "CheckJobDefinitionName", "CheckJobTimeoutSeconds"}
    assert "GateFunction" in subs["GateFunctionArn"]["Fn::GetAtt"][0]
    assert "CheckFunction" in subs["CheckFunctionArn"]["Fn::GetAtt"][0]
    assert "JobQueue" in subs["JobQueueArn"]["Fn::GetAtt"][0]
    # by name, never a pinned revision: a redrive after `cdk deploy` runs the current image
    _, job = _materialize_job(template)
    assert subs["JobDefinitionName"] == job["Properties"]["JobDefinitionName"]
    # RUNNABLE limit (30 min) + job timeout (60 min) + 10 min to start
    assert subs["MaterializeTimeoutSeconds"] == str(30 * 60 + 60 * 60 + 600)
    materialize = json.loads(definition)["States"]["Outputs"]["ItemProcessor"]["States"]["Materialize"]
    assert materialize["TimeoutSecondsPath"] == "$.materialize_timeout_seconds"
    assert materialize["Parameters"]["JobDefinition"] == "${JobDefinitionName}"
    assert subs["LaneName"] == "orders"


def test_event_bus_and_run_triggers(synth, default, options):
    template = synth.template("default")
    machine = next(iter(resources(template, "AWS::StepFunctions::StateMachine")))
    rules = resources(template, "AWS::Events::Rule")
    schedule = [r["Properties"] for r in rules.values() if "ScheduleExpression" in r["Properties"]]
    assert len(schedule) == 1 and schedule[0]["ScheduleExpression"] == "rate(1 day)"
    assert "EventBusName" not in schedule[0]           # schedules live on the default bus
    landed = [r["Properties"] for r in rules.values()
              if r["Properties"].get("EventPattern", {}).get("detail-type") == ["DataLanded"]]
    assert len(landed) == 1
    assert landed[0]["EventPattern"]["detail"] == {"lane": ["orders"]}
    assert landed[0]["EventBusName"] == {"Ref": next(iter(resources(template, "AWS::Events::EventBus")))}
    for rule in schedule + landed:
        (target,) = rule["Targets"]
        assert target["Arn"] == {"Ref": machine}
        assert "Input" not in target and "InputTransformer" not in target   # the envelope is the execution input
        assert "EventDeliveryDlq" in target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
        assert target["RetryPolicy"]["MaximumRetryAttempts"] == 3
    # the custom upstream pattern from context, no schedule without context
    option_rules = resources(synth.template("options"), "AWS::Events::Rule")
    assert not any("ScheduleExpression" in r["Properties"] for r in option_rules.values())
    assert any(r["Properties"].get("EventPattern") == {"source": ["upstream.ingest"], "detail-type": ["FilesLanded"]}
               for r in option_rules.values())


@pytest.mark.parametrize("which, spec_path", [("default", EXAMPLE_SPEC), ("options", FIXTURE_SPEC)])
def test_one_queue_with_dlq_per_consumer_receiving_its_outputs_pass_events(synth, which, spec_path):
    template = synth.template(which)
    spec = load_spec(spec_path)
    expected: dict[str, set[str]] = {}
    for output, body in spec.outputs.items():
        for consumer in body.consumers:
            expected.setdefault(consumer, set()).add(output)
    rules = {name: body["Properties"] for name, body in resources(template, "AWS::Events::Rule").items()
             if body["Properties"].get("EventPattern", {}).get("detail-type") == ["DataProductCertified",
                                                                                   "DataProductRevoked"]}
    assert len(rules) == len(expected)
    queues = resources(template, "AWS::SQS::Queue")
    routed = {}
    for rule in rules.values():
        assert rule["EventPattern"]["source"] == ["batchlane"]
        (target,) = rule["Targets"]
        queue_id = target["Arn"]["Fn::GetAtt"][0]
        routed[queue_id] = set(rule["EventPattern"]["detail"]["output"])
        queue = queues[queue_id]["Properties"]
        assert queue["SqsManagedSseEnabled"] is True
        dlq = queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        assert queue["RedrivePolicy"]["maxReceiveCount"] == 5
        assert queues[dlq]["Properties"]["SqsManagedSseEnabled"] is True
    by_consumer = {}
    for consumer in expected:
        ident = "".join(p[:1].upper() + p[1:] for p in consumer.replace("_", "-").split("-"))
        queue_id = next(q for q in routed if q.startswith(f"ConsumersConsumer{ident}Queue"))
        by_consumer[consumer] = routed[queue_id]
    assert by_consumer == expected
    # every queue (consumer, DLQ, delivery DLQ) is TLS-only
    policies = resources(template, "AWS::SQS::QueuePolicy")
    tls_protected = set()
    for body in policies.values():
        for s in body["Properties"]["PolicyDocument"]["Statement"]:
            if s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false":
                tls_protected.update(q["Ref"] for q in body["Properties"]["Queues"])
    assert tls_protected == set(queues)
    for body in queues.values():
        assert body["Properties"]["SqsManagedSseEnabled"] is True


def test_alarms_for_failed_runs_rejected_products_and_dead_letters(synth, default, options):
    template = synth.template("default")
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    failed = next(a["Properties"] for n, a in alarms.items() if "FailedRunsAlarm" in n)
    metrics = {m["MetricStat"]["Metric"]["MetricName"] for m in failed["Metrics"] if "MetricStat" in m}
    assert metrics == {"ExecutionsFailed", "ExecutionsTimedOut"}
    assert failed["Threshold"] == 1
    rejected = next(a["Properties"] for n, a in alarms.items() if "RejectedProductsAlarm" in n)
    assert (rejected["Namespace"], rejected["MetricName"]) == ("batchlane", "RejectedProducts")
    # per lane: one lane's rejections never alarm another lane
    assert rejected["Dimensions"] == [{"Name": "Lane", "Value": "orders"}]
    _, metric_filter = one(template, "AWS::Logs::MetricFilter")
    (transformation,) = metric_filter["Properties"]["MetricTransformations"]
    assert transformation["MetricName"] == "RejectedProducts"
    assert transformation["Dimensions"] == [{"Key": "Lane", "Value": "$.detail.lane"}]
    assert metric_filter["Properties"]["FilterPattern"] == '{ $.detail.lane = "orders" }'
    options_alarm = next(a["Properties"] for n, a in resources(synth.template("options"), "AWS::CloudWatch::Alarm").items()
                         if "RejectedProductsAlarm" in n)
    assert options_alarm["Dimensions"] == [{"Name": "Lane", "Value": "fixture_orders"}]
    rules = resources(template, "AWS::Events::Rule")
    rejected_rule = next(r["Properties"] for r in rules.values()
                         if r["Properties"].get("EventPattern", {}).get("detail-type") == ["DataProductRejected"])
    log_group = metric_filter["Properties"]["LogGroupName"]["Ref"]
    assert log_group in json.dumps(rejected_rule["Targets"][0]["Arn"])
    _, resource_policy = one(template, "AWS::Logs::ResourcePolicy")
    document = json.dumps(resource_policy["Properties"]["PolicyDocument"])
    assert "events.amazonaws.com" in document and log_group in document
    dlq_alarms = [n for n in alarms if "DlqAlarm" in n]
    assert len(dlq_alarms) == 1 + len({c for o in load_spec(EXAMPLE_SPEC).outputs.values() for c in o.consumers})
    # no custom-resource Lambdas sneak in (e.g. CDK's log-group target): only our three functions
    assert len(resources(template, "AWS::Lambda::Function")) == 3
    # with alarm_topic_arn, every alarm notifies it
    for body in resources(synth.template("options"), "AWS::CloudWatch::Alarm").values():
        assert body["Properties"]["AlarmActions"] == [OPTIONS_TOPIC]


OPTIONS_TOPIC = "arn:aws:sns:eu-west-1:123456789012:lane-alarms"


def test_stack_outputs(synth):
    template = synth.template("default")
    outputs = template["Outputs"]
    for name in ("StateMachineArn", "BucketName", "TableName", "EventBusName"):
        assert name in outputs, name
    assert outputs["StateMachineArn"]["Value"] == {"Ref": next(iter(resources(template, "AWS::StepFunctions::StateMachine")))}
    consumers = {c for o in load_spec(EXAMPLE_SPEC).outputs.values() for c in o.consumers}
    urls = [name for name in outputs if name.startswith("Consumer") and name.endswith("QueueUrl")]
    assert len(urls) == len(consumers)
    for name in urls:
        assert outputs[name]["Value"]["Ref"].startswith("Consumers" + name.removesuffix("Url"))
