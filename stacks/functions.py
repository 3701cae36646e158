"""Functions: check, gate and the consumers' read-only resolve twin, as container-image Lambdas of the runtime image.

Trusted code: the check function records the materialize receipt from the job's report (hashing the product
files itself) and checks; the gate plans, begins (lists/HEADs the declared s3:// inputs), decides, closes and
settles. Both write receipts/ (write-once by bucket policy), the ledger and events. Resolve writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Size
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.common import RECEIPTS, STAGING, InputScopes, grant_input_reads, grant_lane_objects, grant_ledger, retention
from stacks.image import PYTHON_VERSION, RuntimeImage
from stacks.nag import ack

CHECK_TIMEOUT = Duration.minutes(15)
GATE_TIMEOUT = Duration.minutes(5)
RESOLVE_TIMEOUT = Duration.seconds(60)


@dataclass(frozen=True)
class FunctionsProps:
    lane: str
    environment: dict[str, str]
    input_scopes: InputScopes
    input_kms_key_arns: tuple[str, ...]
    log_retention_days: int
    resolve_url_ttl_seconds: int = 900
    glue_database: str | None = None      # Glue publication (stacks/catalog.py): the gate syncs the catalog
    check_lambda_max_bytes: int = 2 * 1024**3   # above it the check function routes the product to the check job
    job_timeout_seconds: int = 3600      # one materializer job's Batch timeout (each child of an array job's too)
    job_slots: int = 16                  # materializer jobs that run at once (compute environment vCPUs / a job's)


class LaneFunctions(Construct):
    """check_function, gate_function, resolve_function and their roles."""

    def __init__(self, scope: Construct, construct_id: str, *, props: FunctionsProps, image: RuntimeImage,
                 bucket: s3.IBucket, table: dynamodb.ITable, bus: events.IEventBus) -> None:
        super().__init__(scope, construct_id)
        self.props = props
        self.image = image

        self.check_function, self.check_role = self._function(
            "CheckFunction", "functions.check.handler.handler",
            memory=3008, timeout=CHECK_TIMEOUT, tmp=Size.gibibytes(10),   # products are fetched to /tmp
            description="checker (records the job's report as the materialize receipt, then checks)",
            extra_env={"LANE_CHECK_LAMBDA_MAX_BYTES": str(props.check_lambda_max_bytes)})
        grant_lane_objects(self.check_role, bucket, read=[STAGING, RECEIPTS], write=[RECEIPTS])
        grant_ledger(self.check_role, table, "write")
        self.check_role.add_to_principal_policy(iam.PolicyStatement(
            sid="PublishLaneEvents", actions=["events:PutEvents"], resources=[bus.event_bus_arn]))

        self.gate_function, self.gate_role = self._function(
            "GateFunction", "functions.gate.handler.handler",
            memory=1024, timeout=GATE_TIMEOUT, tmp=Size.gibibytes(10),    # proofs are re-hashed from /tmp
            description="gate (plan, begin, record_crash, decide, settle, close)",
            # decide, close and repair publish the certification in force to Glue (batchlane.glue_catalog); begin
            # sizes an array job's wait by the rounds its children run in (batchlane.partitions)
            extra_env={"LANE_JOB_TIMEOUT_SECONDS": str(props.job_timeout_seconds),
                       "LANE_JOB_SLOTS": str(props.job_slots),
                       **({"LANE_GLUE_DATABASE": props.glue_database} if props.glue_database else {})})
        grant_lane_objects(self.gate_role, bucket, read=[STAGING, RECEIPTS], write=[RECEIPTS])
        grant_ledger(self.gate_role, table, "write", outbox_delete=True)
        self.gate_role.add_to_principal_policy(iam.PolicyStatement(
            sid="PublishLaneEvents", actions=["events:PutEvents"], resources=[bus.event_bus_arn]))
        # begin lists and HEADs the declared s3:// inputs (memo key: their versions/ETags)
        grant_input_reads(self.gate_role, props.input_scopes, props.input_kms_key_arns, who="the gate's begin")

        # Consumers resolve certified products through a read-only twin of the gate: same code, a role
        # that cannot write anything, so a consumer can never certify, reject or revoke.
        self.resolve_function, self.resolve_role = self._function(
            "ResolveFunction", "functions.gate.handler.handler",
            memory=1024, timeout=RESOLVE_TIMEOUT,
            description="read-only gate for consumers (resolve certified products)",
            extra_env={"LANE_GATE_ACTIONS": "resolve", "LANE_RESOLVE_URL_TTL": str(props.resolve_url_ttl_seconds)})
        grant_lane_objects(self.resolve_role, bucket, read=[STAGING, RECEIPTS], write=[])
        grant_ledger(self.resolve_role, table, "read")

    def _function(self, name: str, handler: str, *, memory: int, timeout: Duration, description: str,
                  extra_env: dict[str, str] | None = None, tmp: Size | None = None,
                  ) -> tuple[lambda_.DockerImageFunction, iam.Role]:
        lane = self.props.lane
        role = iam.Role(self, f"{name}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description=f"batchlane {lane}: {description}")
        log_group = logs.LogGroup(self, f"{name}Logs", retention=retention(self.props.log_retention_days),
                                  removal_policy=RemovalPolicy.RETAIN)
        function = lambda_.DockerImageFunction(
            self, name,
            code=self.image.lambda_code(handler),
            architecture=lambda_.Architecture.X86_64,
            role=role,
            memory_size=memory,
            timeout=timeout,
            ephemeral_storage_size=tmp or Size.mebibytes(512),
            environment={**self.props.environment, "LANE_SPEC": self.image.spec_path, **(extra_env or {})},
            description=f"batchlane {lane}: {description}",
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.INFO,
            log_group=log_group,
        )
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="WriteOwnLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn]))
        ack(role, id="AwsSolutions-IAM5[Resource::*]",
            reason="X-Ray tracing (xray:PutTraceSegments/PutTelemetryRecords) supports no resource-level scoping.")
        ack(function, id="AwsSolutions-L1",
            reason=f"A container-image function: the runtime is the image's Python {PYTHON_VERSION} "
                   "(image/Dockerfile), not a managed runtime cdk-nag can version-check.")
        return function, role
