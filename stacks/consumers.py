"""Consumers: per consumer of the spec, a queue (+ DLQ) receiving its outputs' certified and revoked events, and a
role that reads certified bytes only through the resolve function (staging/ is denied) and writes nothing."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.common import EVENT_SOURCE, RECEIPTS, STAGING, ident, lane_queue
from stacks.nag import ack

# What a consumer queue receives: a new certified product, and the withdrawal of one (stop using it).
CONSUMER_EVENT_TYPES = ("DataProductCertified", "DataProductRevoked")


@dataclass(frozen=True)
class ConsumersProps:
    lane: str
    subscriptions: dict[str, tuple[str, ...]]     # consumer -> outputs
    consumer_principal: str | None = None          # account id or role/user ARN allowed to assume the roles


class LaneConsumers(Construct):
    """queues, dlqs, roles: dicts keyed by consumer name."""

    def __init__(self, scope: Construct, construct_id: str, *, props: ConsumersProps, bus: events.IEventBus,
                 delivery_dlq: sqs.IQueue, resolve_function: lambda_.IFunction, bucket: s3.IBucket) -> None:
        super().__init__(scope, construct_id)
        self.queues: dict[str, sqs.Queue] = {}
        self.dlqs: dict[str, sqs.Queue] = {}
        self.roles: dict[str, iam.Role] = {}
        given = props.consumer_principal
        principal: iam.IPrincipal = (
            iam.ArnPrincipal(given) if given and given.startswith("arn:")
            else iam.AccountPrincipal(given) if given else iam.AccountRootPrincipal())
        logical = cdk.Stack.of(self).get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
        for consumer, outputs in sorted(props.subscriptions.items()):
            name = ident(consumer)
            dlq = lane_queue(self, f"Consumer{name}Dlq", dead_letter=None)
            queue = lane_queue(self, f"Consumer{name}Queue", dead_letter=dlq, visibility=Duration.minutes(5))
            events.Rule(
                self, f"Consumer{name}Rule",
                description=f"batchlane {props.lane}: certified/revoked events of {', '.join(outputs)} to {consumer}",
                event_bus=bus,
                event_pattern=events.EventPattern(source=[EVENT_SOURCE], detail_type=list(CONSUMER_EVENT_TYPES),
                                                  detail={"output": list(outputs)}),
                targets=[targets.SqsQueue(queue, dead_letter_queue=delivery_dlq, retry_attempts=3)],
            )
            role = iam.Role(
                self, f"Consumer{name}Role", assumed_by=principal,
                description=f"batchlane {props.lane}: consumer {consumer} (events, resolve, receipts; never staging/)")
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="ConsumeLaneEvents",
                actions=["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                         "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
                resources=[queue.queue_arn]))
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="ResolveCertifiedProducts", actions=["lambda:InvokeFunction"],
                resources=[resolve_function.function_arn]))
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="ReadReceipts", actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[bucket.arn_for_objects(RECEIPTS)]))
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="ListReceipts", actions=["s3:ListBucket"], resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [RECEIPTS]}}))
            # No PASS, no read: staging/ holds unproven bytes. Consumers get certified bytes only through
            # the resolve function's presigned URLs (signed by its role, after the proof is checked).
            role.add_to_principal_policy(iam.PolicyStatement(
                sid="DenyStagingExceptThroughResolve", effect=iam.Effect.DENY,
                actions=["s3:*"], resources=[bucket.arn_for_objects(STAGING)]))
            ack(role, id=f"AwsSolutions-IAM5[Resource::<{logical}.Arn>/{RECEIPTS}]",
                reason="Consumers verify events against receipts/ (per run and output keys); staging/ is denied.")
            self.queues[consumer] = queue
            self.dlqs[consumer] = dlq
            self.roles[consumer] = role
