"""Small pieces the lane constructs share: names, queues, alarms, scoped grants, the spec's s3:// input scopes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import aws_cdk as cdk
from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from batchlane.spec import LaneSpec
from stacks.nag import ack

EVENT_SOURCE = "batchlane"   # batchlane.stores.aws.EventBridgeBus publishes with this Source
STAGING = "staging/*"
RECEIPTS = "receipts/*"
GLOB_CHARS = re.compile(r"[*?\[{]")

RETENTION_NAMES = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
    60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
    365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS",
    1827: "FIVE_YEARS", 2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}


def ident(name: str) -> str:
    """A construct-id-safe CamelCase form of a spec name (consumer-a -> ConsumerA)."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]", name) if part)


def retention(days: int) -> logs.RetentionDays:
    return getattr(logs.RetentionDays, RETENTION_NAMES[days])


# ----------------------------------------------------------------------------- s3:// inputs


@dataclass(frozen=True)
class InputScopes:
    """What the spec reads from S3: bucket -> key prefixes (before the first glob character)."""

    prefixes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: LaneSpec) -> InputScopes:
        found: dict[str, set[str]] = {}
        for output in spec.outputs.values():
            for uri in output.inputs.values():
                if not isinstance(uri, str) or not uri.startswith("s3://"):
                    continue
                bucket, _, key = uri[len("s3://"):].partition("/")
                found.setdefault(bucket, set()).add(GLOB_CHARS.split(key, maxsplit=1)[0])
        return cls({bucket: tuple(sorted(prefixes)) for bucket, prefixes in sorted(found.items())})

    def __bool__(self) -> bool:
        return bool(self.prefixes)


def grant_input_reads(role: iam.Role, scopes: InputScopes, kms_key_arns: Iterable[str], *, who: str) -> None:
    """List + GetObject (HEAD is GetObject) on exactly the declared s3:// prefixes, kms:Decrypt for declared keys."""
    for index, (bucket, prefixes) in enumerate(scopes.prefixes.items()):
        bucket_arn = f"arn:{cdk.Aws.PARTITION}:s3:::{bucket}"
        role.add_to_principal_policy(iam.PolicyStatement(
            sid=f"ReadSpecInputs{index}", actions=["s3:GetObject", "s3:GetObjectVersion"],
            resources=[f"{bucket_arn}/{prefix}*" for prefix in prefixes]))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid=f"ListSpecInputs{index}", actions=["s3:ListBucket"], resources=[bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}}))
        for prefix in prefixes:
            ack(role,
                id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{bucket}/{prefix}*]",
                reason=f"The lane spec reads s3://{bucket}/{prefix}... ({who}); the grant is exactly that key prefix.")
    keys = sorted(set(kms_key_arns))
    if keys and scopes:
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="DecryptSpecInputs", actions=["kms:Decrypt"], resources=keys,
            conditions={"StringEquals": {"kms:ViaService": f"s3.{cdk.Aws.REGION}.amazonaws.com"}}))


# ----------------------------------------------------------------------------- lane bucket and ledger


def grant_lane_objects(role: iam.Role, bucket: s3.IBucket, *, read: list[str], write: list[str]) -> None:
    """Object reads/writes on prefixes of the lane bucket, listing only under the read prefixes."""
    logical = cdk.Stack.of(bucket).get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
    if read:
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="ReadLaneObjects", actions=["s3:GetObject", "s3:GetObjectVersion"],
            resources=[bucket.arn_for_objects(pattern) for pattern in read]))
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="ListLanePrefixes", actions=["s3:ListBucket"], resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": list(read)}}))
    if write:
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="WriteLaneObjects", actions=["s3:PutObject"],
            resources=[bucket.arn_for_objects(pattern) for pattern in write]))
    if STAGING in write:
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="AbortOwnMultipartUploads", actions=["s3:AbortMultipartUpload"],
            resources=[bucket.arn_for_objects(STAGING)]))
    for pattern in sorted(set(read) | set(write)):
        ack(role,
            id=f"AwsSolutions-IAM5[Resource::<{logical}.Arn>/{pattern}]",
            reason=f"Object keys under {pattern[:-1]} are per run/output/attempt; the grant is that one prefix "
                   "of the lane bucket, never the whole bucket.")


LEDGER_ACCESS = {
    # lookups only: resolving product inputs, resolve, operators
    "read": ("dynamodb:GetItem", "dynamodb:Query"),
    # trusted writers: receipts index, runs, attempts, pointers, outbox (transactions authorize per item action)
    "write": ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:ConditionCheckItem",
              "dynamodb:UpdateItem"),
}


def grant_ledger(role: iam.Role, table: dynamodb.ITable, access: str, *, outbox_delete: bool = False) -> None:
    role.add_to_principal_policy(iam.PolicyStatement(
        sid=f"Ledger{access.title()}", actions=list(LEDGER_ACCESS[access]), resources=[table.table_arn]))
    if outbox_delete:
        role.add_to_principal_policy(iam.PolicyStatement(
            sid="LedgerOutboxDelete", actions=["dynamodb:DeleteItem"], resources=[table.table_arn],
            conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["OUTBOX"]}}))


# ----------------------------------------------------------------------------- queues and alarms


DEFAULT_VISIBILITY = Duration.seconds(30)


def lane_queue(scope: Construct, construct_id: str, *, dead_letter: sqs.IQueue | None,
               visibility: Duration = DEFAULT_VISIBILITY) -> sqs.Queue:
    queue = sqs.Queue(
        scope, construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,   # EventBridge can send to SSE-SQS queues without a CMK
        enforce_ssl=True,
        retention_period=Duration.days(14),
        visibility_timeout=visibility,
        dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letter, max_receive_count=5) if dead_letter else None,
    )
    if dead_letter is None:
        ack(queue, id="AwsSolutions-SQS3",
            reason="This queue is itself a dead-letter queue (its depth is alarmed); it needs no DLQ of its own.")
    return queue


def alarm_on_any(scope: Construct, metric: cloudwatch.IMetric, construct_id: str, description: str) -> cloudwatch.Alarm:
    """Alarm as soon as the metric counts one event in a period; no data is not a breach."""
    return cloudwatch.Alarm(
        scope, construct_id, metric=metric, alarm_description=description, threshold=1, evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
