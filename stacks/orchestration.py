"""Orchestration: the Standard state machine (statemachines/lane.asl.json), its role, run triggers, the operator policy.

The definition comes from a file, so CDK adds no IAM for the services it calls: the role gets exactly what
stacks/asl.py finds in the definition, and the permissions Step Functions itself uses for an optimized
integration come from SERVICE_INTEGRATION_PERMISSIONS (which the IAM proof in tests/aws also evaluates).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.asl import AslError, AslUsage, check_substitutions
from stacks.common import RECEIPTS, STAGING, retention
from stacks.nag import ack

BATCH_SYNC_RULE = "StepFunctionsGetEventsForBatchJobsRule"

# What Step Functions calls on the role's behalf for an optimized integration, beyond the task's own API call.
# Source: "IAM policies for calling AWS Batch with Step Functions",
# https://docs.aws.amazon.com/step-functions/latest/dg/batch-iam.html (Run a Job (.sync): batch:SubmitJob,
# batch:DescribeJobs, batch:TerminateJob; events:PutTargets, events:PutRule, events:DescribeRule on
# arn:aws:events:REGION:ACCOUNT:rule/StepFunctionsGetEventsForBatchJobsRule), and "Tag-based policies" /
# https://docs.aws.amazon.com/batch/latest/userguide/supported-iam-actions-resources.html (SubmitJob with
# Tags also needs batch:TagResource). The resource is a kind: "job-queue", "job-definition", "job", "rule", "*".
SERVICE_INTEGRATION_PERMISSIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "batch:submitJob": (("batch:SubmitJob", "job-queue"), ("batch:SubmitJob", "job-definition")),
    "batch:submitJob.sync": (
        ("batch:SubmitJob", "job-queue"), ("batch:SubmitJob", "job-definition"),
        ("batch:DescribeJobs", "*"), ("batch:TerminateJob", "job"),
        ("events:PutTargets", "rule"), ("events:PutRule", "rule"), ("events:DescribeRule", "rule"),
    ),
    "batch:submitJob+Tags": (("batch:TagResource", "job"),),
}


@dataclass(frozen=True)
class OrchestrationProps:
    lane: str
    asl: AslUsage
    asl_source: str
    log_retention_days: int
    materialize_timeout_seconds: int
    check_job_timeout_seconds: int = 3600
    schedule: str | None = None
    landed_event_pattern: dict[str, Any] | None = None


class LaneOrchestration(Construct):
    """state_machine, role, triggers (schedule + DataLanded), operator_policy."""

    def __init__(self, scope: Construct, construct_id: str, *, props: OrchestrationProps,
                 gate_function: lambda_.IFunction, check_function: lambda_.IFunction,
                 job_queue_arn: str, job_definition_name: str, job_definition_arn_pattern: str,
                 check_job_definition_name: str, check_job_definition_arn_pattern: str,
                 bucket: s3.IBucket, table: dynamodb.ITable, bus: events.IEventBus, delivery_dlq: sqs.IQueue) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        asl = props.asl
        available = {
            "GateFunctionArn": gate_function.function_arn,
            "CheckFunctionArn": check_function.function_arn,
            "JobQueueArn": job_queue_arn,
            "JobDefinitionName": job_definition_name,
            "MaterializeTimeoutSeconds": str(props.materialize_timeout_seconds),
            "CheckJobDefinitionName": check_job_definition_name,
            "CheckJobTimeoutSeconds": str(props.check_job_timeout_seconds),
            "LaneName": props.lane,
            "BucketName": bucket.bucket_name,
            "TableName": table.table_name,
            "EventBusName": bus.event_bus_name,
            "EventBusArn": bus.event_bus_arn,
        }
        check_substitutions(asl, set(available), props.asl_source)

        self.role = role = iam.Role(self, "StateMachineRole", assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
                                    description=f"batchlane {props.lane}: state machine (exactly what the ASL calls)")
        functions = {"GateFunctionArn": gate_function, "CheckFunctionArn": check_function}
        invoked = sorted(asl.lambda_function_substitutions)
        unknown = [name for name in invoked if name not in functions]
        if unknown:
            raise AslError(f"state machine definition {props.asl_source}: ${{{unknown[0]}}} is not a lane function")
        if invoked:
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="InvokeLaneFunctions", actions=["lambda:InvokeFunction"],
                resources=[functions[name].function_arn for name in invoked]))
        batch_resources = {
            "job-queue": [job_queue_arn],
            # submitted by name: IAM sees the revision the name resolves to (only the definitions the ASL names)
            "job-definition": [pattern for name, pattern in (("JobDefinitionName", job_definition_arn_pattern),
                                                             ("CheckJobDefinitionName", check_job_definition_arn_pattern))
                               if name in asl.substitutions],
            "job": [stack.format_arn(service="batch", resource="job", resource_name="*")],
            "rule": [stack.format_arn(service="events", resource="rule", resource_name=BATCH_SYNC_RULE)],
            "*": ["*"],
        }
        needed: dict[str, set[str]] = {}
        for integration in sorted(asl.integrations):
            for action, kind in SERVICE_INTEGRATION_PERMISSIONS.get(integration, ()):
                needed.setdefault(action, set()).add(kind)
        if asl.batch_submit and asl.batch_tags:
            for action, kind in SERVICE_INTEGRATION_PERMISSIONS["batch:submitJob+Tags"]:
                needed.setdefault(action, set()).add(kind)
        by_resources: dict[tuple[str, ...], list[str]] = {}
        for action, kinds in sorted(needed.items()):
            by_resources.setdefault(tuple(sorted(kinds)), []).append(action)
        for kind_group, actions in sorted(by_resources.items()):
            resources = [arn for kind in kind_group for arn in batch_resources[kind]]
            sid = "".join(part.capitalize() for kind in kind_group for part in kind.replace("*", "any").split("-"))
            role.add_to_principal_policy(iam.PolicyStatement(sid=f"Integration{sid}", actions=actions, resources=resources))
        if asl.batch_submit:
            for name in (job_definition_name, check_job_definition_name):
                ack(role, id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:batch:<AWS::Region>:<AWS::AccountId>:"
                               f"job-definition/{name}:*]",
                    reason="Jobs are submitted by job-definition name so a redrive after a deploy runs the newest "
                           "revision; the grant is every revision of this lane's job definitions only.")
        if asl.batch_sync:
            ack(role,
                id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:batch:<AWS::Region>:<AWS::AccountId>:job/*]",
                reason="batch:submitJob.sync terminates the job it started when the execution stops; job ids are "
                       "only known at run time, so the grant is this account/region's jobs.")
        if asl.put_events:
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="PublishLaneEvents", actions=["events:PutEvents"], resources=[bus.event_bus_arn]))

        # A Distributed Map starts each iteration as a child execution of this state machine, so the role names the
        # state machine: it gets a fixed name (a role policy on its own ARN would otherwise be a circular reference).
        machine_name = f"{stack.stack_name}-lane" if asl.distributed_map else None
        if machine_name is not None:
            self._grant_child_executions(role, machine_name)

        log_group = logs.LogGroup(self, "StateMachineLogs", retention=retention(props.log_retention_days),
                                  removal_policy=RemovalPolicy.RETAIN)
        self.state_machine = sfn.StateMachine(
            self, "StateMachine",
            state_machine_name=machine_name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(asl.text),
            definition_substitutions={key: available[key] for key in sorted(asl.substitutions)},
            role=role,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
        )
        ack(role, id="AwsSolutions-IAM5[Resource::*]",
            reason="Only actions without resource-level scoping use '*': batch:DescribeJobs, X-Ray tracing "
                   "(xray:PutTraceSegments/...) and CloudWatch Logs delivery (logs:CreateLogDelivery/...).")
        executions = cdk.Fn.join("", [
            "arn:", cdk.Aws.PARTITION, ":states:", cdk.Aws.REGION, ":", cdk.Aws.ACCOUNT_ID, ":execution:",
            self.state_machine.state_machine_name, ":*"])
        self._triggers(props, delivery_dlq, bus)
        self._operator_policy(props, executions, bucket, table)

    def _grant_child_executions(self, role: iam.Role, machine_name: str) -> None:
        """What a Distributed Map needs: start its child executions (of this state machine), watch and stop them,
        and redrive a failed Map Run when an operator redrives the parent. Source: "IAM policies for using
        Distributed Map states", https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html
        (states:StartExecution on the state machine; states:DescribeExecution/StopExecution on its executions;
        states:RedriveExecution for redriving a Map Run). Child execution ARNs are
        execution:MACHINE/MAP_RUN:ID, the parent's execution:MACHINE:NAME."""
        stack = Stack.of(self)

        def arn(resource: str, name: str) -> str:
            return stack.format_arn(service="states", resource=resource, resource_name=name,
                                    arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)

        executions = [arn("execution", f"{machine_name}/*"), arn("execution", f"{machine_name}:*")]
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="StartChildExecutions", actions=["states:StartExecution"], resources=[arn("stateMachine", machine_name)]))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="WatchChildExecutions", actions=["states:DescribeExecution", "states:StopExecution"],
            resources=executions))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="RedriveMapRuns", actions=["states:RedriveExecution"], resources=[executions[0]]))
        for pattern in (f"{machine_name}/*", f"{machine_name}:*"):
            ack(role, id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
                         f"execution:{pattern}]",
                reason="A Distributed Map's child executions are named at run time; the grant covers this state "
                       "machine's executions only.")

    def _triggers(self, props: OrchestrationProps, delivery_dlq: sqs.IQueue, bus: events.IEventBus) -> None:
        def target() -> targets.SfnStateMachine:
            # The execution receives the EventBridge envelope as its input (the ASL reads `detail`).
            return targets.SfnStateMachine(self.state_machine, dead_letter_queue=delivery_dlq,
                                           retry_attempts=3, max_event_age=Duration.hours(2))

        if props.schedule:
            # Schedule expressions live on the default bus.
            events.Rule(self, "ScheduleRule", description=f"batchlane {props.lane}: start a run on {props.schedule}",
                        schedule=events.Schedule.expression(props.schedule), targets=[target()])
        pattern = props.landed_event_pattern or {"detail-type": ["DataLanded"], "detail": {"lane": [props.lane]}}
        events.Rule(self, "DataLandedRule", description=f"batchlane {props.lane}: start a run when upstream data lands",
                    event_bus=bus, event_pattern=_event_pattern(pattern), targets=[target()])

    def _operator_policy(self, props: OrchestrationProps, executions: str, bucket: s3.IBucket,
                         table: dynamodb.ITable) -> None:
        """Operators start, redrive, stop and audit runs, and `lane status/show/verify/read` (certified bytes)."""
        machine = self.state_machine.state_machine_arn
        self.operator_policy = iam.ManagedPolicy(
            self, "OperatorPolicy",
            description=f"batchlane {props.lane}: start, redrive, stop and audit runs; lane status/show/verify/read",
            statements=[
                iam.PolicyStatement(sid="StartRuns", actions=["states:StartExecution"], resources=[machine]),
                iam.PolicyStatement(sid="RedriveAndInspectRuns",
                                    actions=["states:RedriveExecution", "states:StopExecution",
                                             "states:DescribeExecution", "states:GetExecutionHistory"],
                                    resources=[executions]),
                iam.PolicyStatement(sid="ListRuns", actions=["states:ListExecutions", "states:DescribeStateMachine"],
                                    resources=[machine]),
                # lane show/verify read receipts; lane verify/read hash the certified product files in staging/
                iam.PolicyStatement(sid="ReadLaneObjects", actions=["s3:GetObject", "s3:GetObjectVersion"],
                                    resources=[bucket.arn_for_objects(RECEIPTS), bucket.arn_for_objects(STAGING)]),
                iam.PolicyStatement(sid="ListLanePrefixes", actions=["s3:ListBucket"], resources=[bucket.bucket_arn],
                                    conditions={"StringLike": {"s3:prefix": [RECEIPTS, STAGING]}}),
                iam.PolicyStatement(sid="ReadLedger", actions=["dynamodb:GetItem", "dynamodb:Query"],
                                    resources=[table.table_arn]),
            ],
        )
        stack = Stack.of(self)
        logical = stack.get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
        machine_logical = stack.get_logical_id(self.state_machine.node.default_child)  # type: ignore[arg-type]
        ack(self.operator_policy,
            id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
               f"execution:<{machine_logical}.Name>:*]",
            reason="Executions are named per run at start time; the grant covers this state machine's executions only.")
        for pattern in (RECEIPTS, STAGING):
            ack(self.operator_policy, id=f"AwsSolutions-IAM5[Resource::<{logical}.Arn>/{pattern}]",
                reason="Operators audit runs (receipts/) and verify or export certified products (staging/); "
                       "keys are per run, output and attempt.")


def _event_pattern(pattern: dict[str, Any]) -> events.EventPattern:
    from stacks.settings import SettingsError

    keys = {"source": "source", "detail-type": "detail_type", "detail": "detail", "account": "account",
            "region": "region", "resources": "resources", "id": "id", "time": "time", "version": "version"}
    unknown = set(pattern) - set(keys)
    if unknown:
        raise SettingsError(f"context landed_event_pattern: unknown top-level field(s) {sorted(unknown)}")
    return events.EventPattern(**{keys[key]: value for key, value in pattern.items()})
