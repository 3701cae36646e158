"""Compute: the VPC (or an imported one), Batch on Fargate, the materializer job definition and its role.

The job runs user code over untrusted input, so its role may write only under staging/ (product files and a
report); it reads the declared s3:// inputs, staging/ and receipts/ (certified product inputs) and looks up
the ledger. Receipts, index rows, pointers and events are written by the trusted functions only.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_batch as batch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.common import RECEIPTS, STAGING, InputScopes, grant_input_reads, grant_lane_objects, grant_ledger, retention
from stacks.nag import ack

# The state machine overrides the command per job; the image's WORKDIR is /app.
JOB_COMMAND_HELP = ["python", "/app/functions/materialize/main.py", "--help"]
CHECK_JOB_COMMAND_HELP = ["python", "/app/functions/check/job.py", "--help"]
CHECK_JOB_DISK_GIB = 200       # Fargate's largest ephemeral storage: products are read in place (ranged GETs); disk
                               # holds the spills of memory-bounded rules (unique, references) under --max-memory


@dataclass(frozen=True)
class ComputeProps:
    lane: str
    job_definition_name: str              # submitted by name: a redrive after a deploy runs the newest revision
    environment: dict[str, str]
    input_scopes: InputScopes
    input_kms_key_arns: tuple[str, ...]
    log_retention_days: int
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()
    nat_gateways: int = 1
    max_vcpus: int = 16
    job_vcpu: float = 1.0
    job_memory_mib: int = 4096
    job_timeout_minutes: int = 60
    runnable_timeout_minutes: int = 30
    check_job_definition_name: str = ""   # the trusted checker for products too large for the check function
    check_job_vcpu: float = 2.0
    check_job_memory_mib: int = 16384
    check_job_timeout_minutes: int = 120


class LaneCompute(Construct):
    """vpc, job_role, job_queue, job_definition; check_job_role, check_job_definition (the trusted checker for big
    products, same image, its own role); and the endpoints a NAT-less VPC needs."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ComputeProps, image: ecs.ContainerImage,
                 bucket: s3.IBucket, table: dynamodb.ITable) -> None:
        super().__init__(scope, construct_id)
        self.props = props
        self._network()

        self.job_role = iam.Role(
            self, "JobRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description=f"batchlane {props.lane}: materializer job (reads inputs; writes only staging/)")
        grant_lane_objects(self.job_role, bucket, read=[STAGING, RECEIPTS], write=[STAGING])
        grant_ledger(self.job_role, table, "read")
        grant_input_reads(self.job_role, props.input_scopes, props.input_kms_key_arns, who="the materializer job")

        security_group = ec2.SecurityGroup(
            self, "JobSecurityGroup", vpc=self.vpc, allow_all_outbound=True,
            description="batchlane materializer jobs: no inbound; outbound to S3/ECR/logs and the inputs")
        if not props.vpc_id and not props.nat_gateways:
            self._endpoints(security_group)
        compute = batch.FargateComputeEnvironment(
            self, "ComputeEnvironment", vpc=self.vpc, vpc_subnets=self.job_subnets, security_groups=[security_group],
            maxv_cpus=props.max_vcpus, spot=False, replace_compute_environment=False)
        # A job stuck in RUNNABLE (vCPU quota, no capacity, impossible size) is cancelled, so its Step Functions
        # task fails (and the output gets a failed receipt) instead of waiting for the task timeout.
        stuck = Duration.minutes(props.runnable_timeout_minutes)
        self.job_queue = batch.JobQueue(
            self, "JobQueue",
            compute_environments=[batch.OrderedComputeEnvironment(compute_environment=compute, order=1)],
            priority=1,
            job_state_time_limit_actions=[
                batch.JobStateTimeLimitAction(max_time=stuck, reason=reason,
                                              action=batch.JobStateTimeLimitActionsAction.CANCEL,
                                              state=batch.JobStateTimeLimitActionsState.RUNNABLE)
                for reason in (batch.JobStateTimeLimitActionsReason.INSUFFICIENT_INSTANCE_CAPACITY,
                               batch.JobStateTimeLimitActionsReason.COMPUTE_ENVIRONMENT_MAX_RESOURCE,
                               batch.JobStateTimeLimitActionsReason.JOB_RESOURCE_REQUIREMENT)],
        )
        job_logs = logs.LogGroup(self, "JobLogs", retention=retention(props.log_retention_days),
                                 removal_policy=RemovalPolicy.RETAIN)
        self.job_definition = batch.EcsJobDefinition(
            self, "MaterializeJob",
            job_definition_name=props.job_definition_name,
            container=batch.EcsFargateContainerDefinition(
                self, "MaterializeContainer",
                image=image,
                command=JOB_COMMAND_HELP,
                cpu=props.job_vcpu,
                memory=Size.mebibytes(props.job_memory_mib),
                job_role=self.job_role,   # without it the container has no role and grants do nothing
                environment=props.environment,
                logging=ecs.LogDriver.aws_logs(stream_prefix="materialize", log_group=job_logs),
                fargate_platform_version=ecs.FargatePlatformVersion.LATEST,
                assign_public_ip=False,
                ephemeral_storage_size=Size.gibibytes(50),
            ),
            # One attempt per submit: a Batch-level retry would rerun an attempt whose report already exists.
            # Retries are the lane's targeted reruns (new attempt numbers).
            retry_attempts=1,
            timeout=Duration.minutes(props.job_timeout_minutes),
            propagate_tags=True,
        )
        self.job_definition_arn_pattern = Stack.of(self).format_arn(
            service="batch", resource="job-definition", resource_name=f"{props.job_definition_name}:*")
        ack(self.job_definition.container.execution_role,
            id="AwsSolutions-IAM5[Resource::*]",
            reason="ecr:GetAuthorizationToken (image pull by the Batch execution role) supports no resource-level scoping.")
        self._check_job(image, bucket, table, job_logs)

    def _check_job(self, image: ecs.ContainerImage, bucket: s3.IBucket, table: dynamodb.ITable,
                   job_logs: logs.LogGroup) -> None:
        """The check job: trusted code (functions/check/job.py) in the same image, for products above the check
        function's budget. Its role is the check function's (read staging/ and receipts/, write receipts/ and the
        ledger), never the materializer's: the materializer job still cannot write a receipt. No input reads."""
        props = self.props
        if not props.check_job_definition_name:
            raise ValueError("ComputeProps.check_job_definition_name is required")
        self.check_job_role = iam.Role(
            self, "BatchCheckRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description=f"batchlane {props.lane}: check job (checks big products; writes check receipts)")
        grant_lane_objects(self.check_job_role, bucket, read=[STAGING, RECEIPTS], write=[RECEIPTS])
        grant_ledger(self.check_job_role, table, "write")
        timeout = Duration.minutes(props.check_job_timeout_minutes)
        self.check_job_definition = batch.EcsJobDefinition(
            self, "CheckJob",
            job_definition_name=props.check_job_definition_name,
            container=batch.EcsFargateContainerDefinition(
                self, "CheckContainer",
                image=image,
                command=CHECK_JOB_COMMAND_HELP,
                cpu=props.check_job_vcpu,
                memory=Size.mebibytes(props.check_job_memory_mib),
                job_role=self.check_job_role,
                environment={**props.environment,
                             # named in the FAIL receipt when the check runs out of memory or time
                             "LANE_CHECK_JOB_MEMORY_MIB": str(props.check_job_memory_mib),
                             "LANE_CHECK_JOB_TIMEOUT_SECONDS": str(int(timeout.to_seconds()))},
                logging=ecs.LogDriver.aws_logs(stream_prefix="check", log_group=job_logs),
                fargate_platform_version=ecs.FargatePlatformVersion.LATEST,
                assign_public_ip=False,
                ephemeral_storage_size=Size.gibibytes(CHECK_JOB_DISK_GIB),
            ),
            # One attempt: a check that ran out of memory or time would only repeat; it ends in a FAIL receipt.
            retry_attempts=1,
            timeout=timeout,
            propagate_tags=True,
        )
        self.check_job_definition_arn_pattern = Stack.of(self).format_arn(
            service="batch", resource="job-definition", resource_name=f"{props.check_job_definition_name}:*")
        ack(self.check_job_definition.container.execution_role,
            id="AwsSolutions-IAM5[Resource::*]",
            reason="ecr:GetAuthorizationToken (image pull by the Batch execution role) supports no resource-level scoping.")

    def _network(self) -> None:
        props = self.props
        if props.vpc_id:
            self.vpc = ec2.Vpc.from_vpc_attributes(
                self, "Vpc", vpc_id=props.vpc_id,
                availability_zones=[f"imported-{index}" for index, _ in enumerate(props.subnet_ids)],
                private_subnet_ids=list(props.subnet_ids))
            self.job_subnets = ec2.SubnetSelection(
                subnets=[ec2.Subnet.from_subnet_id(self, f"Subnet{index}", subnet)
                         for index, subnet in enumerate(props.subnet_ids)])
            return
        flow_logs = logs.LogGroup(self, "VpcFlowLogs", retention=retention(props.log_retention_days),
                                  removal_policy=RemovalPolicy.RETAIN)
        self.vpc = ec2.Vpc(
            self, "Vpc",
            max_azs=2,
            nat_gateways=props.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(
                    name="jobs",
                    subnet_type=(ec2.SubnetType.PRIVATE_WITH_EGRESS if props.nat_gateways
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

    def _endpoints(self, job_security_group: ec2.SecurityGroup) -> None:
        """Isolated subnets: Fargate pulls the image (ECR API + registry; layers come from S3 through the gateway
        endpoint) and ships logs only through endpoints, reachable on 443 from the jobs' security group only."""
        endpoint_group = ec2.SecurityGroup(
            self, "EndpointSecurityGroup", vpc=self.vpc, allow_all_outbound=False,
            description="batchlane VPC interface endpoints: HTTPS from the materializer jobs only")
        endpoint_group.add_ingress_rule(job_security_group, ec2.Port.tcp(443), "HTTPS from materializer jobs")
        for name, service in (("EcrApi", ec2.InterfaceVpcEndpointAwsService.ECR),
                              ("EcrDocker", ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER),
                              ("Logs", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS)):
            self.vpc.add_interface_endpoint(f"{name}Endpoint", service=service, subnets=self.job_subnets,
                                            private_dns_enabled=True, security_groups=[endpoint_group], open=False)
