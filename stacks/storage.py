"""Storage: the lane bucket (staging/ + write-once receipts/), its access-log bucket, the ledger table, the bus.

No physical names: CloudFormation names everything, so a retained bucket, table or log group never blocks a
redeploy, and two copies of one lane (different stack names) live side by side in one region.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.common import RECEIPTS, lane_queue
from stacks.nag import ack

# Superseded product versions under staging/ (a rerun never overwrites, but a crashed upload retried by the
# same attempt may) and every version of an unproven attempt's files stay readable for audits this long.
STAGING_NONCURRENT_DAYS = 30


@dataclass(frozen=True)
class StorageProps:
    object_lock_days: int | None = None
    object_lock_mode: str = "GOVERNANCE"


class LaneStorage(Construct):
    """bucket, access_logs, table, bus, delivery_dlq (EventBridge deliveries that failed)."""

    def __init__(self, scope: Construct, construct_id: str, *, props: StorageProps) -> None:
        super().__init__(scope, construct_id)
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
        ack(self.access_logs, id="AwsSolutions-S1",
            reason="This is the server-access-log destination of the lane bucket; logging it into itself would loop.")

        lock: dict[str, Any] = {}
        if props.object_lock_days:
            days = Duration.days(props.object_lock_days)
            lock = {
                "object_lock_enabled": True,
                "object_lock_default_retention": (
                    s3.ObjectLockRetention.compliance(days) if props.object_lock_mode == "COMPLIANCE"
                    else s3.ObjectLockRetention.governance(days)),
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
            lifecycle_rules=[
                s3.LifecycleRule(id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(7)),
                # Certified products are current versions pinned by version id: only noncurrent ones expire.
                s3.LifecycleRule(id="expire-noncurrent-staging", prefix="staging/",
                                 noncurrent_version_expiration=Duration.days(STAGING_NONCURRENT_DAYS)),
            ],
            removal_policy=RemovalPolicy.RETAIN,
            **lock,
        )
        # Receipts are write-once: refuse any PutObject under receipts/ that does not carry If-None-Match
        # (a plain PUT could overwrite), and refuse deletes of receipts, for every principal.
        self.bucket.add_to_resource_policy(iam.PolicyStatement(
            sid="ReceiptsAreWriteOnce", effect=iam.Effect.DENY, principals=[iam.AnyPrincipal()],
            actions=["s3:PutObject"], resources=[self.bucket.arn_for_objects(RECEIPTS)],
            conditions={"Null": {"s3:if-none-match": "true"}}))
        self.bucket.add_to_resource_policy(iam.PolicyStatement(
            sid="ReceiptsAreNeverDeleted", effect=iam.Effect.DENY, principals=[iam.AnyPrincipal()],
            actions=["s3:DeleteObject", "s3:DeleteObjectVersion"], resources=[self.bucket.arn_for_objects(RECEIPTS)]))

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
        # CDK generates a unique name (stack + path + hash) when none is given.
        self.bus = events.EventBus(self, "LaneBus")
        # Deliveries EventBridge could not make (state machine starts, consumer queues) land here.
        self.delivery_dlq: sqs.Queue = lane_queue(self, "EventDeliveryDlq", dead_letter=None)
