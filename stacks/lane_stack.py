"""One CloudFormation stack per lane spec, composed of constructs with explicit inputs:

storage (bucket, ledger, bus) -> image (one runtime image) -> compute (VPC, Batch, job role) ->
functions (check, gate, resolve) -> catalog (optional Glue publication) -> orchestration (state machine, triggers, operator policy) ->
consumers (queues, roles) -> alarms.

Everything is environment-agnostic (no account/region lookups): `python app.py` synthesizes offline.
IAM is written statement by statement (no `grant_*` helpers that add `Action: *` or `Resource: *`
where the service allows scoping); every remaining wildcard carries a cdk-nag acknowledgement with
its reason, next to the statement that causes it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import Stack
from constructs import Construct

from batchlane.spec import LaneSpec
from stacks.alarms import AlarmsProps, LaneAlarms
from stacks.asl import AslUsage, resolve_map_mode, with_map_mode
from stacks.catalog import CatalogProps, LaneCatalog
from stacks.common import InputScopes, ident
from stacks.compute import ComputeProps, LaneCompute
from stacks.consumers import ConsumersProps, LaneConsumers
from stacks.functions import FunctionsProps, LaneFunctions
from stacks.image import RuntimeImage
from stacks.orchestration import LaneOrchestration, OrchestrationProps
from stacks.settings import REPO_ROOT, LaneSettings, SettingsError
from stacks.storage import LaneStorage, StorageProps

# Fargate start (30-90 s) plus the image pull, on top of the job's own timeout and the RUNNABLE limit.
JOB_START_MARGIN_SECONDS = 600


def stack_name_for(spec: LaneSpec) -> str:
    return "Batchlane-" + re.sub(r"[^A-Za-z0-9-]", "-", spec.lane)


def check_job_timeout_seconds(settings: LaneSettings) -> int:
    """The CheckJob task's TimeoutSeconds: RUNNABLE, start, then the check job's own timeout."""
    return (settings.runnable_timeout_minutes + settings.check_job_timeout_minutes) * 60 + JOB_START_MARGIN_SECONDS


def materialize_timeout_seconds(settings: LaneSettings) -> int:
    """The Materialize task's TimeoutSeconds: a job can wait in RUNNABLE, then start, then run."""
    return (settings.runnable_timeout_minutes + settings.job_timeout_minutes) * 60 + JOB_START_MARGIN_SECONDS


def job_slots(settings: LaneSettings) -> int:
    """Materializer jobs (or array children) the compute environment runs at once: its vCPUs over a job's."""
    return max(1, int(settings.max_vcpus // settings.job_vcpu))


class LaneStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, spec: LaneSpec, asl: AslUsage, settings: LaneSettings,
                 repo_root: Path = REPO_ROOT, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        lane = spec.lane
        cdk.Tags.of(self).add("batchlane:lane", lane)
        if spec.source_path is None:
            raise SettingsError("the lane spec must be loaded from a file (load_spec) so it can be bundled")
        try:
            spec_rel = spec.source_path.relative_to(repo_root)
        except ValueError:
            raise SettingsError(
                f"lane spec {spec.source_path}: must live inside the repository ({repo_root}) to be bundled") from None
        if not (repo_root / settings.dockerfile).is_file():
            raise SettingsError(f"runtime image: {repo_root / settings.dockerfile} not found (context dockerfile)")

        self.storage = storage = LaneStorage(self, "Storage", props=StorageProps(
            object_lock_days=settings.object_lock_days, object_lock_mode=settings.object_lock_mode))
        environment = {
            "LANE_BACKEND": "aws",
            "LANE_NAME": lane,
            "LANE_BUCKET": storage.bucket.bucket_name,
            "LANE_TABLE": storage.table.table_name,
            "LANE_EVENT_BUS": storage.bus.event_bus_name,
        }
        self.image = image = RuntimeImage(self, "RuntimeImage", repo_root=repo_root, spec_rel=spec_rel,
                                          dockerfile=settings.dockerfile)
        scopes = InputScopes.from_spec(spec)
        glue_database = settings.glue_database_for(lane)
        job_definition_name = f"{self.stack_name}-materialize"
        check_job_definition_name = f"{self.stack_name}-check"
        self.compute = compute = LaneCompute(
            self, "Compute",
            props=ComputeProps(
                lane=lane, job_definition_name=job_definition_name,
                environment={**environment, "LANE_SPEC": image.spec_path},
                input_scopes=scopes, input_kms_key_arns=settings.input_kms_key_arns,
                log_retention_days=settings.log_retention_days, vpc_id=settings.vpc_id,
                subnet_ids=settings.subnet_ids, nat_gateways=settings.nat_gateways, max_vcpus=settings.max_vcpus,
                job_vcpu=settings.job_vcpu, job_memory_mib=settings.job_memory_mib,
                job_timeout_minutes=settings.job_timeout_minutes,
                runnable_timeout_minutes=settings.runnable_timeout_minutes,
                check_job_definition_name=check_job_definition_name, check_job_vcpu=settings.check_job_vcpu,
                check_job_memory_mib=settings.check_job_memory_mib,
                check_job_timeout_minutes=settings.check_job_timeout_minutes),
            image=image.container_image, bucket=storage.bucket, table=storage.table)
        self.functions = functions = LaneFunctions(
            self, "Functions",
            props=FunctionsProps(lane=lane, environment=environment, input_scopes=scopes,
                                 input_kms_key_arns=settings.input_kms_key_arns,
                                 log_retention_days=settings.log_retention_days, glue_database=glue_database,
                                 check_lambda_max_bytes=settings.check_lambda_max_bytes,
                                 job_timeout_seconds=settings.job_timeout_minutes * 60,
                                 job_slots=job_slots(settings)),
            image=image, bucket=storage.bucket, table=storage.table, bus=storage.bus)
        self.catalog: LaneCatalog | None = None
        if glue_database:
            self.catalog = LaneCatalog(self, "Catalog", props=CatalogProps(lane=lane, database=glue_database),
                                       bucket=storage.bucket, gate_role=functions.gate_role, job_role=compute.job_role)
        map_mode = resolve_map_mode(settings.map_mode, len(spec.outputs))
        self.orchestration = orchestration = LaneOrchestration(
            self, "Orchestration",
            props=OrchestrationProps(lane=lane, asl=with_map_mode(asl, map_mode, settings.asl),
                                     asl_source=str(settings.asl),
                                     log_retention_days=settings.log_retention_days,
                                     materialize_timeout_seconds=materialize_timeout_seconds(settings),
                                     check_job_timeout_seconds=check_job_timeout_seconds(settings),
                                     schedule=settings.schedule, landed_event_pattern=settings.landed_event_pattern),
            gate_function=functions.gate_function, check_function=functions.check_function,
            job_queue_arn=compute.job_queue.job_queue_arn, job_definition_name=job_definition_name,
            job_definition_arn_pattern=compute.job_definition_arn_pattern,
            check_job_definition_name=check_job_definition_name,
            check_job_definition_arn_pattern=compute.check_job_definition_arn_pattern,
            bucket=storage.bucket, table=storage.table, bus=storage.bus, delivery_dlq=storage.delivery_dlq)
        subscriptions: dict[str, list[str]] = {}
        for output, output_spec in spec.outputs.items():
            for consumer in output_spec.consumers:
                subscriptions.setdefault(consumer, []).append(output)
        self.consumers = consumers = LaneConsumers(
            self, "Consumers",
            props=ConsumersProps(lane=lane, subscriptions={c: tuple(sorted(o)) for c, o in subscriptions.items()},
                                 consumer_principal=settings.consumer_principal),
            bus=storage.bus, delivery_dlq=storage.delivery_dlq, resolve_function=functions.resolve_function,
            bucket=storage.bucket)
        self.alarms = alarms = LaneAlarms(
            self, "Alarms",
            props=AlarmsProps(lane=lane, log_retention_days=settings.log_retention_days,
                              alarm_topic_arn=settings.alarm_topic_arn),
            state_machine=orchestration.state_machine, bus=storage.bus,
            dead_letter_queues={"EventDelivery": storage.delivery_dlq,
                                **{f"Consumer{ident(c)}": q for c, q in consumers.dlqs.items()}})

        def out(name: str, value: str, description: str) -> None:
            cdk.CfnOutput(self, name, value=value, description=description)

        out("StateMachineArn", orchestration.state_machine.state_machine_arn, "Start runs here (console or StartExecution)")
        out("BucketName", storage.bucket.bucket_name, "Lane bucket: staging/ (products) and receipts/ (write-once)")
        out("TableName", storage.table.table_name, "Ledger table (pk/sk)")
        out("EventBusName", storage.bus.event_bus_name, "Lane events and DataLanded triggers")
        out("JobQueueArn", compute.job_queue.job_queue_arn, "Batch job queue of the materializer")
        out("JobDefinitionName", job_definition_name, "Materializer job definition (submitted by name)")
        out("CheckJobDefinitionName", check_job_definition_name,
            "Check job definition for products above check_lambda_max_bytes (submitted by name)")
        out("ResolveFunctionName", functions.resolve_function.function_name, "Consumers resolve certified products here")
        out("RejectedEventsLogGroup", alarms.rejected_logs.log_group_name, "Audit trail of DataProductRejected events")
        out("OperatorPolicyArn", orchestration.operator_policy.managed_policy_arn,
            "Attach to operators: start/redrive/audit, lane status/show/verify/read")
        for consumer, queue in sorted(consumers.queues.items()):
            name = ident(consumer)
            out(f"Consumer{name}QueueUrl", queue.queue_url, f"Certified/revoked events for consumer {consumer}")
            out(f"Consumer{name}RoleArn", consumers.roles[consumer].role_arn, f"Role for consumer {consumer}")
