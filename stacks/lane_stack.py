"""One CloudFormation stack per lane spec: storage, ledger, Batch on Fargate, check/gate Lambdas,
the state machine, EventBridge triggers and consumer queues, alarms.

Everything is environment-agnostic (no account/region lookups): `python app.py` synthesizes offline.
IAM is written statement by statement (no `grant_*` helpers that add `Action: *` or `Resource: *`
where the service allows scoping); every remaining wildcard carries a cdk-nag acknowledgement with
its reason, next to the statement that causes it.
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import (
    Duration,
    RemovalPolicy,
    Size,
    Stack,
)
from aws_cdk import aws_batch as batch
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from batchlane.spec import LaneSpec
from stacks.asl import AslError, AslUsage, check_substitutions
from stacks.nag import ack
from stacks.settings import REPO_ROOT, LaneSettings, SettingsError

PYTHON_VERSION = "3.13"
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_13
LAYER_UNZIPPED_LIMIT = 250 * 1024 * 1024   # Lambda: function + layers, unzipped
EVENT_SOURCE = "batchlane"   # batchlane.stores.aws.EventBridgeBus publishes with this Source
STAGING = "staging/*"
RECEIPTS = "receipts/*"
# Where the spec sits inside the bundles: same relative path as in the repo.
LAMBDA_ROOT = "/var/task"
IMAGE_ROOT = "/app"

# Everything but these is left out of the Lambda bundle and the image build context.
BUNDLE_ALWAYS = ("batchlane", "functions", "pyproject.toml", "requirements.txt")
BUNDLE_NEVER = ("__pycache__", "*.pyc", ".pytest_cache", ".lane", "*.egg-info")


def stack_name_for(spec: LaneSpec) -> str:
    return "Batchlane-" + re.sub(r"[^A-Za-z0-9-]", "-", spec.lane)


def stage_bundle(repo_root: Path, spec_rel_dir: Path, extra: list[str]) -> Path:
    """Copy the repo's core, the functions, the spec directory (and extra files) into a fresh directory that
    mirrors the repo layout. It is the Lambda code asset and the image build context: the same bytes as the
    repo root minus everything else, without CDK walking the whole tree (.venv) through ignore patterns."""
    staged = Path(tempfile.mkdtemp(prefix="batchlane-bundle-"))
    atexit.register(shutil.rmtree, staged, ignore_errors=True)
    keep = list(BUNDLE_ALWAYS) + extra
    if spec_rel_dir.as_posix() not in ("", "."):
        keep.append(spec_rel_dir.as_posix())
    ignore = shutil.ignore_patterns(*BUNDLE_NEVER)
    for rel in sorted(set(keep)):
        source = repo_root / rel
        if source.is_dir():
            shutil.copytree(source, staged / rel, ignore=ignore, dirs_exist_ok=True)
        elif source.is_file():
            (staged / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, staged / rel)
    return staged


def _dir_size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def _s3_input_scopes(spec: LaneSpec) -> dict[str, set[str]]:
    """bucket -> key prefixes (before the first glob character) the job reads, from the spec's s3:// inputs."""
    scopes: dict[str, set[str]] = {}
    for output in spec.outputs.values():
        for uri in output.inputs.values():
            if not uri.startswith("s3://"):
                continue
            bucket, _, key = uri[len("s3://"):].partition("/")
            prefix = re.split(r"[*?\[{]", key, maxsplit=1)[0]
            scopes.setdefault(bucket, set()).add(prefix)
    return scopes


class LaneStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: LaneSpec,
        asl: AslUsage,
        settings: LaneSettings,
        repo_root: Path = REPO_ROOT,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.spec = spec
        self.settings = settings
        self.lane = spec.lane
        self.physical = "batchlane-" + re.sub(r"[^a-z0-9-]", "-", spec.lane)
        cdk.Tags.of(self).add("batchlane:lane", spec.lane)

        if spec.source_path is None:
            raise SettingsError("the lane spec must be loaded from a file (load_spec) so it can be bundled")
        try:
            spec_rel = spec.source_path.relative_to(repo_root)
        except ValueError:
            raise SettingsError(f"lane spec {spec.source_path}: must live inside the repository ({repo_root}) to be bundled") from None
        self.spec_rel = spec_rel
        if not (repo_root / settings.dockerfile).is_file():
            raise SettingsError(f"materializer image: {repo_root / settings.dockerfile} not found (context dockerfile)")
        # A spec at the repo root bundles just its file; a spec in a directory bundles the directory
        # (transforms, contracts, seed data next to it).
        self.bundle = stage_bundle(repo_root, spec_rel.parent, [settings.dockerfile, spec_rel.as_posix()])
        self.retention = getattr(logs.RetentionDays, _retention_name(settings.log_retention_days))

        self._storage()
        self._ledger()
        self._bus()
        self._network()
        self._batch()
        self._functions()
        self._state_machine(asl)
        self._triggers()
        self._consumers()
        self._alarms()
        self._outputs()

    # ------------------------------------------------------------------ storage
    def _storage(self) -> None:
        self.access_logs = s3.Bucket(
            self, "AccessLogsBucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,   # S3 server access logging delivers only to SSE-S3 buckets
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(365),
                                              noncurrent_version_expiration=Duration.days(30))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        ack(self.access_logs,
            id="AwsSolutions-S1",
            reason="This is the server-access-log destination of the lane bucket; logging it into itself would loop.",
        )

        lock: dict[str, Any] = {}
        if self.settings.object_lock_days:
            retention = Duration.days(self.settings.object_lock_days)
            lock = {
                "object_lock_enabled": True,
                "object_lock_default_retention": (
                    s3.ObjectLockRetention.compliance(retention)
                    if self.settings.object_lock_mode == "COMPLIANCE"
                    else s3.ObjectLockRetention.governance(retention)
                ),
            }
        self.bucket = s3.Bucket(
            self, "LaneBucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="lane-bucket/",
            lifecycle_rules=[s3.LifecycleRule(id="abort-incomplete-uploads",
                                              abort_incomplete_multipart_upload_after=Duration.days(7))],
            removal_policy=RemovalPolicy.RETAIN,
            **lock,
        )
        # Receipts are write-once: refuse any PutObject under receipts/ that does not carry If-None-Match
        # (a plain PUT could overwrite), and refuse deletes of receipts, for every principal.
        self.bucket.add_to_resource_policy(iam.PolicyStatement(
            sid="ReceiptsAreWriteOnce",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["s3:PutObject"],
            resources=[self.bucket.arn_for_objects(RECEIPTS)],
            conditions={"Null": {"s3:if-none-match": "true"}},
        ))
        self.bucket.add_to_resource_policy(iam.PolicyStatement(
            sid="ReceiptsAreNeverDeleted",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["s3:DeleteObject", "s3:DeleteObjectVersion"],
            resources=[self.bucket.arn_for_objects(RECEIPTS)],
        ))

    # ------------------------------------------------------------------- ledger
    def _ledger(self) -> None:
        self.table = dynamodb.Table(
            self, "LedgerTable",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _bus(self) -> None:
        self.bus = events.EventBus(self, "LaneBus", event_bus_name=self.physical)
        # Deliveries EventBridge could not make (state machine starts, consumer queues) land here.
        self.delivery_dlq = self._queue("EventDeliveryDlq", dead_letter=None)

    # ------------------------------------------------------------------ network
    def _network(self) -> None:
        settings = self.settings
        if settings.vpc_id:
            self.vpc = ec2.Vpc.from_vpc_attributes(
                self, "Vpc", vpc_id=settings.vpc_id,
                availability_zones=[f"imported-{index}" for index, _ in enumerate(settings.subnet_ids)],
                private_subnet_ids=list(settings.subnet_ids),
            )
            self.job_subnets = ec2.SubnetSelection(
                subnets=[ec2.Subnet.from_subnet_id(self, f"Subnet{index}", subnet)
                         for index, subnet in enumerate(settings.subnet_ids)])
            return
        flow_logs = logs.LogGroup(self, "VpcFlowLogs", retention=self.retention, removal_policy=RemovalPolicy.RETAIN)
        self.vpc = ec2.Vpc(
            self, "Vpc",
            max_azs=2,
            nat_gateways=settings.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="jobs",
                    subnet_type=(ec2.SubnetType.PRIVATE_WITH_EGRESS if settings.nat_gateways
                                 else ec2.SubnetType.PRIVATE_ISOLATED),
                    cidr_mask=20),
            ],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                "DynamoDB": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.DYNAMODB),
            },
            flow_logs={"all": ec2.FlowLogOptions(
                destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
                traffic_type=ec2.FlowLogTrafficType.ALL)},
            restrict_default_security_group=False,
        )
        # The default security group of a new VPC is unused; CDK's restriction needs a custom-resource Lambda.
        self.job_subnets = ec2.SubnetSelection(subnet_group_name="jobs")

    # -------------------------------------------------------------------- batch
    def _batch(self) -> None:
        settings = self.settings
        self.job_role = iam.Role(
            self, "JobRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description=f"batchlane {self.lane}: materializer job (reads inputs, writes staging/ and receipts/)",
        )
        self._grant_lane_objects(self.job_role, read=[STAGING, RECEIPTS], write=[STAGING, RECEIPTS])
        self.job_role.add_to_principal_policy(iam.PolicyStatement(
            sid="AbortOwnMultipartUploads", actions=["s3:AbortMultipartUpload"],
            resources=[self.bucket.arn_for_objects(STAGING)]))
        self._grant_ledger(self.job_role, "receipts")
        for index, (bucket, prefixes) in enumerate(sorted(_s3_input_scopes(self.spec).items())):
            bucket_arn = f"arn:{cdk.Aws.PARTITION}:s3:::{bucket}"
            self.job_role.add_to_principal_policy(iam.PolicyStatement(
                sid=f"ReadSpecInputs{index}",
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[f"{bucket_arn}/{prefix}*" for prefix in sorted(prefixes)],
            ))
            self.job_role.add_to_principal_policy(iam.PolicyStatement(
                sid=f"ListSpecInputs{index}",
                actions=["s3:ListBucket"],
                resources=[bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in sorted(prefixes)]}},
            ))
            for prefix in prefixes:
                ack(self.job_role,
                    id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{bucket}/{prefix}*]",
                    reason=f"The lane spec reads s3://{bucket}/{prefix}... (a glob); the grant is exactly that key prefix.",
                )

        security_group = ec2.SecurityGroup(
            self, "JobSecurityGroup", vpc=self.vpc, allow_all_outbound=True,
            description="batchlane materializer jobs: no inbound; outbound to S3/ECR/logs and the inputs",
        )
        self.compute = batch.FargateComputeEnvironment(
            self, "ComputeEnvironment",
            vpc=self.vpc,
            vpc_subnets=self.job_subnets,
            security_groups=[security_group],
            maxv_cpus=settings.max_vcpus,
            spot=False,
            replace_compute_environment=False,
        )
        self.job_queue = batch.JobQueue(
            self, "JobQueue",
            compute_environments=[batch.OrderedComputeEnvironment(compute_environment=self.compute, order=1)],
            priority=1,
        )
        job_logs = logs.LogGroup(self, "JobLogs", retention=self.retention, removal_policy=RemovalPolicy.RETAIN)
        image = ecs.ContainerImage.from_asset(
            str(self.bundle),
            file=settings.dockerfile,
            platform=ecr_assets.Platform.LINUX_AMD64,
            # functions/materialize/Dockerfile copies LANE_SPEC_DIR to /app/lane/ and sets LANE_SPEC from LANE_SPEC_FILE.
            build_args={"LANE_SPEC_DIR": self.spec_rel.parent.as_posix() or ".", "LANE_SPEC_FILE": self.spec_rel.name},
        )
        self.job_definition = batch.EcsJobDefinition(
            self, "MaterializeJob",
            container=batch.EcsFargateContainerDefinition(
                self, "MaterializeContainer",
                image=image,
                cpu=settings.job_vcpu,
                memory=Size.mebibytes(settings.job_memory_mib),
                job_role=self.job_role,   # without it the container has no role and grants do nothing
                environment=self._environment(f"{IMAGE_ROOT}/lane/{self.spec_rel.name}"),
                logging=ecs.LogDriver.aws_logs(stream_prefix="materialize", log_group=job_logs),
                fargate_platform_version=ecs.FargatePlatformVersion.LATEST,
                assign_public_ip=False,
                ephemeral_storage_size=Size.gibibytes(50),
            ),
            # One attempt per submit: a Batch-level retry would rerun an attempt whose receipts already exist.
            # Retries are the lane's targeted reruns (new attempt numbers).
            retry_attempts=1,
            timeout=Duration.minutes(settings.job_timeout_minutes),
            propagate_tags=True,
        )
        execution_role = self.job_definition.container.execution_role
        ack(execution_role,
            id="AwsSolutions-IAM5[Resource::*]",
            reason="ecr:GetAuthorizationToken (image pull by the Batch execution role) supports no resource-level scoping.",
        )

    # ---------------------------------------------------------------- functions
    def _environment(self, spec_path: str) -> dict[str, str]:
        return {
            "LANE_BACKEND": "aws",
            "LANE_NAME": self.lane,
            "LANE_BUCKET": self.bucket.bucket_name,
            "LANE_TABLE": self.table.table_name,
            "LANE_EVENT_BUS": self.bus.event_bus_name,
            "LANE_SPEC": spec_path,
        }

    def _layer(self) -> lambda_.ILayerVersion:
        layer_dir = self.settings.layer_dir
        if (layer_dir / "python").is_dir():
            size = _dir_size(layer_dir)
            if size > LAYER_UNZIPPED_LIMIT:
                raise SettingsError(
                    f"dependency layer {layer_dir}: {size / 2**20:.0f} MiB unzipped exceeds Lambda's 250 MiB; "
                    "trim it (make layer strips tests, caches and boto3)")
            return lambda_.LayerVersion(
                self, "DependenciesLayer",
                code=lambda_.Code.from_asset(str(layer_dir)),
                compatible_runtimes=[LAMBDA_RUNTIME],
                compatible_architectures=[lambda_.Architecture.X86_64],
                description=f"batchlane dependencies (pip --platform manylinux2014_x86_64, Python {PYTHON_VERSION})",
            )
        # No built layer: the AWS SDK for pandas managed layer, picked by region at deploy time from a
        # CfnMapping (keeps the template environment-agnostic; an unmapped region fails the deploy).
        cdk.Annotations.of(self).add_warning_v2(
            "batchlane:managed-layer",
            f"{layer_dir}/python not found: using the AWS SDK for pandas managed layer (regions: "
            f"{', '.join(sorted(self.settings.managed_layer_arns)) or 'none'}). It carries pyarrow/pandas/boto3 but "
            "not necessarily pydantic/pyyaml: run `make layer` before `cdk deploy`.",
        )
        mapping = cdk.CfnMapping(
            self, "ManagedLayerArns",
            mapping={region: {"arn": arn} for region, arn in sorted(self.settings.managed_layer_arns.items())}
            or {"none": {"arn": "unset"}},
        )
        return lambda_.LayerVersion.from_layer_version_arn(
            self, "ManagedPandasLayer", mapping.find_in_map(cdk.Aws.REGION, "arn"))

    def _function(self, name: str, handler: str, code: lambda_.Code, layer: lambda_.ILayerVersion, *,
                  memory: int, timeout: Duration, description: str, extra_env: dict[str, str] | None = None,
                  tmp: Size | None = None) -> tuple[lambda_.Function, iam.Role]:
        role = iam.Role(self, f"{name}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description=f"batchlane {self.lane}: {description}")
        log_group = logs.LogGroup(self, f"{name}Logs", retention=self.retention, removal_policy=RemovalPolicy.RETAIN)
        function = lambda_.Function(
            self, name,
            runtime=LAMBDA_RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler=handler,
            code=code,
            layers=[layer],
            role=role,
            memory_size=memory,
            timeout=timeout,
            ephemeral_storage_size=tmp or Size.mebibytes(512),
            environment={**self._environment(f"{LAMBDA_ROOT}/{self.spec_rel.as_posix()}"), **(extra_env or {})},
            description=f"batchlane {self.lane}: {description}",
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.INFO,
            log_group=log_group,
        )
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="WriteOwnLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn]))
        ack(role,
            id="AwsSolutions-IAM5[Resource::*]",
            reason="X-Ray tracing (xray:PutTraceSegments/PutTelemetryRecords) supports no resource-level scoping.",
        )
        ack(function, id="AwsSolutions-L1",
            reason=f"Pinned to Python {PYTHON_VERSION}: the dependency layer (make layer: cp{PYTHON_VERSION.replace('.', '')} "
                   f"wheels) and the AWSSDKPandas-Python{PYTHON_VERSION.replace('.', '')} fallback share the runtime's ABI; "
                   "bump runtime, layer build and layer map together.")
        return function, role

    def _alarm_on_any(self, metric: cloudwatch.IMetric, construct_id: str, description: str) -> cloudwatch.Alarm:
        """Alarm as soon as the metric counts one event in a period; no data is not a breach."""
        return metric.create_alarm(
            self, construct_id, alarm_description=description, threshold=1, evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _functions(self) -> None:
        code = lambda_.Code.from_asset(str(self.bundle), exclude=["functions/materialize"])
        layer = self._layer()
        self.check_function, check_role = self._function(
            "CheckFunction", "functions.check.handler.handler", code, layer,
            memory=3008, timeout=Duration.minutes(15), tmp=Size.gibibytes(10),   # products are fetched to /tmp
            description="checker (reads staging/, writes its receipt)")
        self._grant_lane_objects(check_role, read=[STAGING, RECEIPTS], write=[RECEIPTS])
        self._grant_ledger(check_role, "receipts")

        self.gate_function, gate_role = self._function(
            "GateFunction", "functions.gate.handler.handler", code, layer,
            memory=1024, timeout=Duration.minutes(5), tmp=Size.gibibytes(10),    # proofs are re-hashed from /tmp
            description="gate (plan, begin, record_crash, decide, settle, close)")
        self._grant_lane_objects(gate_role, read=[STAGING, RECEIPTS], write=[RECEIPTS])
        self._grant_ledger(gate_role, "gate")
        gate_role.add_to_principal_policy(iam.PolicyStatement(
            sid="PublishLaneEvents", actions=["events:PutEvents"], resources=[self.bus.event_bus_arn]))

        # Consumers resolve certified products through a read-only twin of the gate: same code, a role
        # that cannot write anything, so a consumer can never certify, reject or revoke.
        self.resolve_function, resolve_role = self._function(
            "ResolveFunction", "functions.gate.handler.handler", code, layer,
            memory=1024, timeout=Duration.seconds(60),
            description="read-only gate for consumers (resolve certified products)",
            extra_env={"LANE_GATE_ACTIONS": "resolve", "LANE_RESOLVE_URL_TTL": "900"})
        self._grant_lane_objects(resolve_role, read=[STAGING, RECEIPTS], write=[])
        self._grant_ledger(resolve_role, "read")

    def _grant_lane_objects(self, role: iam.Role, *, read: list[str], write: list[str]) -> None:
        logical = self.get_logical_id(self.bucket.node.default_child)
        if read:
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="ReadLaneObjects", actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[self.bucket.arn_for_objects(pattern) for pattern in read]))
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="ListLanePrefixes", actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [pattern for pattern in read]}}))
        if write:
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="WriteLaneObjects", actions=["s3:PutObject"],
                resources=[self.bucket.arn_for_objects(pattern) for pattern in write]))
        for pattern in sorted(set(read) | set(write)):
            ack(role,
                id=f"AwsSolutions-IAM5[Resource::<{logical}.Arn>/{pattern}]",
                reason=f"Object keys under {pattern[:-1]} are per run/output/attempt; the grant is that one prefix "
                       "of the lane bucket, never the whole bucket.",
            )

    def _grant_ledger(self, role: iam.Role, access: str) -> None:
        """read: lookups; receipts: + index a receipt (conditional put); gate: + runs, attempts, pointers,
        outbox (transactions are authorized per item action). Deletes only of outbox rows (pk OUTBOX)."""
        actions = ["dynamodb:GetItem", "dynamodb:Query"]
        if access in ("receipts", "gate"):
            actions += ["dynamodb:PutItem", "dynamodb:ConditionCheckItem"]
        if access == "gate":
            actions += ["dynamodb:UpdateItem"]
        role.add_to_principal_policy(iam.PolicyStatement(
            sid=f"Ledger{access.title()}", actions=actions, resources=[self.table.table_arn]))
        if access == "gate":
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="LedgerOutboxDelete", actions=["dynamodb:DeleteItem"], resources=[self.table.table_arn],
                conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["OUTBOX"]}}))

    # ------------------------------------------------------------ state machine
    def _state_machine(self, asl: AslUsage) -> None:
        name = self.physical
        self.state_machine_arn = self.format_arn(
            service="states", resource="stateMachine", resource_name=name,
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)
        self.executions_arn = self.format_arn(
            service="states", resource="execution", resource_name=f"{name}:*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)
        available = {
            "GateFunctionArn": self.gate_function.function_arn,
            "CheckFunctionArn": self.check_function.function_arn,
            "JobQueueArn": self.job_queue.job_queue_arn,
            "JobDefinitionArn": self.job_definition.job_definition_arn,
            "LaneName": self.lane,
            "BucketName": self.bucket.bucket_name,
            "TableName": self.table.table_name,
            "EventBusName": self.bus.event_bus_name,
            "EventBusArn": self.bus.event_bus_arn,
        }
        check_substitutions(asl, set(available), self.settings.asl)

        role = iam.Role(self, "StateMachineRole", assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
                        description=f"batchlane {self.lane}: state machine (exactly what the ASL calls)")
        functions = {"GateFunctionArn": self.gate_function, "CheckFunctionArn": self.check_function}
        invoked = sorted(asl.lambda_function_substitutions)
        unknown_functions = [name for name in invoked if name not in functions]
        if unknown_functions:
            raise AslError(f"state machine definition {self.settings.asl}: ${{{unknown_functions[0]}}} is not a lane function")
        if invoked:
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="InvokeLaneFunctions", actions=["lambda:InvokeFunction"],
                resources=[functions[s].function_arn for s in invoked]))
        if asl.batch_submit:
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="SubmitMaterializeJobs", actions=["batch:SubmitJob"],
                resources=[self.job_queue.job_queue_arn, self.job_definition.job_definition_arn]))
        if asl.batch_sync:
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="WatchMaterializeJobs", actions=["batch:DescribeJobs"], resources=["*"]))
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="StopMaterializeJobs", actions=["batch:TerminateJob"],
                resources=[self.format_arn(service="batch", resource="job", resource_name="*")]))
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="BatchSyncManagedRule",
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[self.format_arn(service="events", resource="rule",
                                           resource_name="StepFunctionsGetEventsForBatchJobsRule")]))
            ack(role,
                id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:batch:<AWS::Region>:<AWS::AccountId>:job/*]",
                reason="batch:submitJob.sync terminates the job it started when the execution stops; job ids are "
                       "only known at run time, so the grant is this account/region's jobs.",
            )
        if asl.put_events:
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="PublishLaneEvents", actions=["events:PutEvents"], resources=[self.bus.event_bus_arn]))
        if asl.distributed_map:
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="DistributedMapChildren", actions=["states:StartExecution"], resources=[self.state_machine_arn]))
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="DistributedMapRedrive",
                actions=["states:DescribeExecution", "states:StopExecution", "states:RedriveExecution"],
                resources=[self.executions_arn]))
        log_group = logs.LogGroup(self, "StateMachineLogs", log_group_name=f"/aws/vendedlogs/states/{name}",
                                  retention=self.retention, removal_policy=RemovalPolicy.RETAIN)
        self.state_machine = sfn.StateMachine(
            self, "StateMachine",
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(asl.text),
            definition_substitutions={key: available[key] for key in sorted(asl.substitutions)},
            role=role,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
        )
        ack(role,
            id="AwsSolutions-IAM5[Resource::*]",
            reason="Only actions without resource-level scoping use '*': batch:DescribeJobs, X-Ray tracing "
                   "(xray:PutTraceSegments/...) and CloudWatch Logs delivery (logs:CreateLogDelivery/...).",
        )

        # Operators: start, redrive and stop runs (console or CLI). Attach to your ops role/group.
        self.operator_policy = iam.ManagedPolicy(
            self, "OperatorPolicy",
            description=f"batchlane {self.lane}: start, redrive, stop and audit runs of the lane",
            statements=[
                iam.PolicyStatement(sid="StartRuns", actions=["states:StartExecution"],
                                    resources=[self.state_machine.state_machine_arn]),
                iam.PolicyStatement(sid="RedriveAndInspectRuns",
                                    actions=["states:RedriveExecution", "states:StopExecution",
                                             "states:DescribeExecution", "states:GetExecutionHistory"],
                                    resources=[self.executions_arn]),
                iam.PolicyStatement(sid="ListRuns", actions=["states:ListExecutions", "states:DescribeStateMachine"],
                                    resources=[self.state_machine.state_machine_arn]),
                iam.PolicyStatement(sid="ReadReceipts", actions=["s3:GetObject", "s3:GetObjectVersion"],
                                    resources=[self.bucket.arn_for_objects(RECEIPTS)]),
                iam.PolicyStatement(sid="ListReceipts", actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn],
                                    conditions={"StringLike": {"s3:prefix": [RECEIPTS]}}),
                iam.PolicyStatement(sid="ReadLedger", actions=["dynamodb:GetItem", "dynamodb:Query"],
                                    resources=[self.table.table_arn]),
            ],
        )
        ack(self.operator_policy,
            id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
               f"execution:{name}:*]",
            reason="Executions are named per run at start time; the grant covers this state machine's executions only.",
        )
        ack(self.operator_policy,
            id=f"AwsSolutions-IAM5[Resource::<{self.get_logical_id(self.bucket.node.default_child)}.Arn>/{RECEIPTS}]",
            reason="Operators audit runs by reading receipts/ (never staging/); keys are per run and output.",
        )
        if asl.distributed_map:
            ack(role,
                id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
                   f"execution:{name}:*]",
                reason="A Distributed Map redrives its child executions; their names exist only at run time.",
            )

    # ----------------------------------------------------------------- triggers
    def _triggers(self) -> None:
        def target() -> targets.SfnStateMachine:
            # The execution receives the EventBridge envelope as its input (the ASL reads `detail`).
            return targets.SfnStateMachine(
                self.state_machine, dead_letter_queue=self.delivery_dlq,
                retry_attempts=3, max_event_age=Duration.hours(2))

        if self.settings.schedule:
            # Schedule expressions live on the default bus.
            self.schedule_rule = events.Rule(
                self, "ScheduleRule",
                description=f"batchlane {self.lane}: start a run on {self.settings.schedule}",
                schedule=events.Schedule.expression(self.settings.schedule),
                targets=[target()],
            )
        pattern = self.settings.landed_event_pattern or {
            "detail-type": ["DataLanded"],
            "detail": {"lane": [self.lane]},
        }
        self.landed_rule = events.Rule(
            self, "DataLandedRule",
            description=f"batchlane {self.lane}: start a run when upstream data lands",
            event_bus=self.bus,
            event_pattern=_event_pattern(pattern),
            targets=[target()],
        )

    # ---------------------------------------------------------------- consumers
    def _queue(self, name: str, *, dead_letter: sqs.IQueue | None, visibility: Duration = Duration.seconds(30),
               ) -> sqs.Queue:
        queue = sqs.Queue(
            self, name,
            encryption=sqs.QueueEncryption.SQS_MANAGED,   # EventBridge can send to SSE-SQS queues without a CMK
            enforce_ssl=True,
            retention_period=Duration.days(14),
            visibility_timeout=visibility,
            dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letter, max_receive_count=5) if dead_letter else None,
        )
        if dead_letter is None:
            ack(queue,
                id="AwsSolutions-SQS3",
                reason="This queue is itself a dead-letter queue (its depth is alarmed); it needs no DLQ of its own.",
            )
        return queue

    def _consumers(self) -> None:
        subscriptions: dict[str, list[str]] = {}
        for output, spec in self.spec.outputs.items():
            for consumer in spec.consumers:
                subscriptions.setdefault(consumer, []).append(output)
        self.consumer_queues: dict[str, sqs.Queue] = {}
        self.consumer_dlqs: dict[str, sqs.Queue] = {}
        self.consumer_roles: dict[str, iam.Role] = {}
        principal: iam.IPrincipal = (
            iam.ArnPrincipal(self.settings.consumer_principal)
            if self.settings.consumer_principal and self.settings.consumer_principal.startswith("arn:")
            else iam.AccountPrincipal(self.settings.consumer_principal)
            if self.settings.consumer_principal
            else iam.AccountRootPrincipal()
        )
        bucket_logical = self.get_logical_id(self.bucket.node.default_child)
        for consumer, outputs in sorted(subscriptions.items()):
            ident = _ident(consumer)
            dlq = self._queue(f"Consumer{ident}Dlq", dead_letter=None)
            queue = self._queue(f"Consumer{ident}Queue", dead_letter=dlq, visibility=Duration.minutes(5))
            events.Rule(
                self, f"Consumer{ident}Rule",
                description=f"batchlane {self.lane}: PASS events of {', '.join(sorted(outputs))} to consumer {consumer}",
                event_bus=self.bus,
                event_pattern=events.EventPattern(
                    source=[EVENT_SOURCE],
                    detail_type=["DataProductCertified"],
                    detail={"output": sorted(outputs)},
                ),
                targets=[targets.SqsQueue(queue, dead_letter_queue=self.delivery_dlq, retry_attempts=3)],
            )
            role = iam.Role(
                self, f"Consumer{ident}Role", assumed_by=principal,
                description=f"batchlane {self.lane}: consumer {consumer} (PASS events, resolve, receipts; never staging/)",
            )
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="ConsumePassEvents",
                actions=["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                         "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
                resources=[queue.queue_arn]))
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="ResolveCertifiedProducts", actions=["lambda:InvokeFunction"],
                resources=[self.resolve_function.function_arn]))
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="ReadReceipts", actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[self.bucket.arn_for_objects(RECEIPTS)]))
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="ListReceipts", actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [RECEIPTS]}}))
            # No PASS, no read: staging/ holds unproven bytes. Consumers get certified bytes only through
            # the resolve function's presigned URLs (signed by its role, after the proof is checked).
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="DenyStagingExceptThroughResolve", effect=iam.Effect.DENY,
                actions=["s3:*"], resources=[self.bucket.arn_for_objects(STAGING)]))
            ack(role,
                id=f"AwsSolutions-IAM5[Resource::<{bucket_logical}.Arn>/{RECEIPTS}]",
                reason="Consumers verify PASS events against receipts/ (per run and output keys); staging/ is denied.",
            )
            self.consumer_queues[consumer] = queue
            self.consumer_dlqs[consumer] = dlq
            self.consumer_roles[consumer] = role

    # ------------------------------------------------------------------- alarms
    def _alarms(self) -> None:
        action = (cw_actions.SnsAction(sns.Topic.from_topic_arn(self, "AlarmTopic", self.settings.alarm_topic_arn))
                  if self.settings.alarm_topic_arn else None)
        alarms: list[cloudwatch.Alarm] = []
        failed = cloudwatch.MathExpression(
            expression="failed + timedout",
            using_metrics={
                "failed": self.state_machine.metric_failed(statistic="Sum"),
                "timedout": self.state_machine.metric_timed_out(statistic="Sum"),
            },
            period=Duration.minutes(5),
            label="Failed or timed-out runs",
        )
        alarms.append(self._alarm_on_any(
            failed, "FailedRunsAlarm", f"batchlane {self.lane}: a run failed or timed out (redrive it from the console)"))

        # Rejected products: every DataProductRejected event is kept in a log group (audit trail) and
        # counted by a metric filter there.
        self.rejected_logs = rejected_logs = logs.LogGroup(
            self, "RejectedEventsLogs", log_group_name=f"/aws/events/{self.physical}/rejected",
            retention=self.retention, removal_policy=RemovalPolicy.RETAIN)
        events.Rule(
            self, "RejectedRule",
            description=f"batchlane {self.lane}: keep DataProductRejected events (alarm + audit)",
            event_bus=self.bus,
            event_pattern=events.EventPattern(source=[EVENT_SOURCE], detail_type=["DataProductRejected"]),
            targets=[_LogGroupTarget(rejected_logs)],
        )
        # What CDK's CloudWatchLogGroup target would install through a custom-resource Lambda, as a plain
        # resource: EventBridge may write to this log group only. (Accounts have 10 such policies per region.)
        logs.ResourcePolicy(
            self, "RejectedEventsLogsPolicy",
            policy_statements=[iam.PolicyStatement(
                sid="EventBridgeWritesRejectedEvents",
                principals=[iam.ServicePrincipal("events.amazonaws.com"),
                            iam.ServicePrincipal("delivery.logs.amazonaws.com")],
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[rejected_logs.log_group_arn],
            )],
        )
        rejected = logs.MetricFilter(
            self, "RejectedProductsMetric",
            log_group=rejected_logs,
            filter_pattern=logs.FilterPattern.all_events(),
            metric_namespace="batchlane",
            metric_name="RejectedProducts",
            metric_value="1",
            dimensions=None,
        ).metric(statistic="Sum", period=Duration.minutes(5))
        alarms.append(self._alarm_on_any(
            rejected, "RejectedProductsAlarm",
            f"batchlane {self.lane}: a data product was rejected (FAIL): see its check receipt"))
        for name, queue in [("EventDelivery", self.delivery_dlq),
                            *((f"Consumer{_ident(c)}", q) for c, q in sorted(self.consumer_dlqs.items()))]:
            alarms.append(self._alarm_on_any(
                queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(5), statistic="Maximum"),
                f"{name}DlqAlarm", f"batchlane {self.lane}: messages in the {name} dead-letter queue"))
        if action:
            for alarm in alarms:
                alarm.add_alarm_action(action)

    # ------------------------------------------------------------------ outputs
    def _outputs(self) -> None:
        def out(name: str, value: str, description: str) -> None:
            cdk.CfnOutput(self, name, value=value, description=description)

        out("StateMachineArn", self.state_machine.state_machine_arn, "Start runs here (console or StartExecution)")
        out("BucketName", self.bucket.bucket_name, "Lane bucket: staging/ (products) and receipts/ (write-once)")
        out("TableName", self.table.table_name, "Ledger table (pk/sk)")
        out("EventBusName", self.bus.event_bus_name, "Lane events and DataLanded triggers")
        out("JobQueueArn", self.job_queue.job_queue_arn, "Batch job queue of the materializer")
        out("ResolveFunctionName", self.resolve_function.function_name, "Consumers resolve certified products here")
        out("RejectedEventsLogGroup", self.rejected_logs.log_group_name, "Audit trail of DataProductRejected events")
        out("OperatorPolicyArn", self.operator_policy.managed_policy_arn, "Attach to operators: start/redrive/audit")
        for consumer, queue in sorted(self.consumer_queues.items()):
            ident = _ident(consumer)
            out(f"Consumer{ident}QueueUrl", queue.queue_url, f"PASS events for consumer {consumer}")
            out(f"Consumer{ident}RoleArn", self.consumer_roles[consumer].role_arn, f"Role for consumer {consumer}")


@jsii.implements(events.IRuleTarget)
class _LogGroupTarget:
    """An EventBridge target writing events to a log group (resource policy created by the stack)."""

    def __init__(self, log_group: logs.LogGroup) -> None:
        self.log_group = log_group

    def bind(self, rule: events.IRule, id: str | None = None) -> events.RuleTargetConfig:  # noqa: A002
        arn = Stack.of(self.log_group).format_arn(
            service="logs", resource="log-group", resource_name=self.log_group.log_group_name,
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)
        return events.RuleTargetConfig(arn=arn, target_resource=self.log_group)


def _ident(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]", name) if part)


def _retention_name(days: int) -> str:
    names = {1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
             60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
             365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS",
             1096: "THREE_YEARS", 1827: "FIVE_YEARS", 2192: "SIX_YEARS", 2557: "SEVEN_YEARS",
             2922: "EIGHT_YEARS", 3288: "NINE_YEARS", 3653: "TEN_YEARS"}
    return names[days]


def _event_pattern(pattern: dict[str, Any]) -> events.EventPattern:
    keys = {"source": "source", "detail-type": "detail_type", "detail": "detail", "account": "account",
            "region": "region", "resources": "resources", "id": "id", "time": "time", "version": "version"}
    unknown = set(pattern) - set(keys)
    if unknown:
        raise SettingsError(f"context landed_event_pattern: unknown top-level field(s) {sorted(unknown)}")
    return events.EventPattern(**{keys[key]: value for key, value in pattern.items()})
