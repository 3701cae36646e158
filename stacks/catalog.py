"""Catalog: Glue Data Catalog publication of certified products (optional per lane, context ``glue_database``).

When on, the gate (decide, close, repair: ``batchlane.glue_catalog.sync_if_enabled``) copies each certification in
force, pinned to its S3 versions, from ``staging/`` to ``published/<lane>/<output>/<run>/<NNNN>/`` and points the
Glue table ``<database>.<output>`` there; a revocation deletes the table and the revoked copy. So:

* ``publish_policy`` (attached to the gate role; attach it to whoever runs ``lane revoke`` / ``lane repair`` with
  ``LANE_GLUE_DATABASE`` set): exactly what a sync calls. Glue on the catalog, this lane's database and its
  tables; reads of the certified ``staging/`` versions (the copy source); writes, reads and deletes under
  ``published/`` only.
* ``reader_policy`` (attach to Athena/Spark users): the catalog entries and ``published/`` only, and an explicit
  deny of ``staging/`` (no PASS, no read: SQL readers see certified versions, never the staged attempts).
* The materializer job, which runs untrusted code, is denied writing or deleting under ``published/`` by the
  lane bucket's policy, whatever its role says.
"""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.common import STAGING
from stacks.nag import ack

PUBLISHED = "published/*"
# Superseded and revoked published copies stay readable by version id (audits) this long after they are replaced.
PUBLISHED_NONCURRENT_DAYS = 30

# What batchlane.glue_catalog.sync_output calls through awswrangler: GetDatabase + CreateDatabase (create_database
# with exist_ok), GetTable (does_table_exist / get_table_parameters), CreateTable / UpdateTable (create_parquet_table,
# one call per certification), DeleteTable (revocation), GetPartitions (create_parquet_table in overwrite mode
# when a concurrent first sync created the table in between: it clears partitions before updating).
GLUE_PUBLISH_ACTIONS = ("glue:GetDatabase", "glue:CreateDatabase", "glue:GetTable", "glue:CreateTable",
                        "glue:UpdateTable", "glue:DeleteTable", "glue:GetPartitions")
GLUE_READ_ACTIONS = ("glue:GetDatabase", "glue:GetTable", "glue:GetPartitions")
# s3transfer's managed copy: HEAD + CopyObject (or UploadPartCopy parts) of the pinned source version, an abort on
# failure; exists/digest read the copy; a revocation deletes it.
PUBLISHED_OBJECT_ACTIONS = ("s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload")
JOB_DENIED_ON_PUBLISHED = ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion")


@dataclass(frozen=True)
class CatalogProps:
    lane: str
    database: str          # resolved name (settings.glue_database_for)


class LaneCatalog(Construct):
    """publish_policy, reader_policy; the bucket-policy deny for the job; published/ noncurrent expiry."""

    def __init__(self, scope: Construct, construct_id: str, *, props: CatalogProps, bucket: s3.Bucket,
                 gate_role: iam.IRole, job_role: iam.IRole) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        database = props.database
        self.catalog_arn = stack.format_arn(service="glue", resource="catalog")
        self.database_arn = stack.format_arn(service="glue", resource="database", resource_name=database)
        self.tables_arn = stack.format_arn(service="glue", resource="table", resource_name=f"{database}/*")
        glue_resources = [self.catalog_arn, self.database_arn, self.tables_arn]
        published = bucket.arn_for_objects(PUBLISHED)

        self.publish_policy = iam.ManagedPolicy(
            self, "PublishPolicy",
            description=f"batchlane {props.lane}: publish certified products to Glue database {database} "
                        "(gate; whoever runs lane revoke/repair with LANE_GLUE_DATABASE)",
            roles=[gate_role],
            statements=[
                iam.PolicyStatement(sid="GluePublishTables", actions=list(GLUE_PUBLISH_ACTIONS),
                                    resources=glue_resources),
                iam.PolicyStatement(sid="ReadCertifiedVersions", actions=["s3:GetObject", "s3:GetObjectVersion"],
                                    resources=[bucket.arn_for_objects(STAGING)]),
                iam.PolicyStatement(sid="WritePublishedCopies", actions=list(PUBLISHED_OBJECT_ACTIONS),
                                    resources=[published]),
                iam.PolicyStatement(sid="ListPublishedCopies", actions=["s3:ListBucket"], resources=[bucket.bucket_arn],
                                    conditions={"StringLike": {"s3:prefix": [PUBLISHED]}}),
            ],
        )
        self.reader_policy = iam.ManagedPolicy(
            self, "ReaderPolicy",
            description=f"batchlane {props.lane}: query certified products (Glue database {database}, published/ "
                        "only; staging/ denied)",
            statements=[
                iam.PolicyStatement(sid="GlueReadTables", actions=list(GLUE_READ_ACTIONS), resources=glue_resources),
                iam.PolicyStatement(sid="ReadPublishedCopies", actions=["s3:GetObject"], resources=[published]),
                # engines list the table location and look up the bucket's region before reading it
                iam.PolicyStatement(sid="ListPublishedCopies", actions=["s3:ListBucket"], resources=[bucket.bucket_arn],
                                    conditions={"StringLike": {"s3:prefix": [PUBLISHED]}}),
                iam.PolicyStatement(sid="LocatePublishedBucket", actions=["s3:GetBucketLocation"],
                                    resources=[bucket.bucket_arn]),
                iam.PolicyStatement(sid="DenyStaging", effect=iam.Effect.DENY, actions=["s3:*"],
                                    resources=[bucket.arn_for_objects(STAGING)]),
            ],
        )
        # Untrusted code never writes what SQL readers see, even if its role is broadened later.
        bucket.add_to_resource_policy(iam.PolicyStatement(
            sid="JobNeverWritesPublished", effect=iam.Effect.DENY, principals=[iam.ArnPrincipal(job_role.role_arn)],
            actions=list(JOB_DENIED_ON_PUBLISHED), resources=[published]))
        bucket.add_lifecycle_rule(id="expire-noncurrent-published", prefix="published/",
                                  noncurrent_version_expiration=Duration.days(PUBLISHED_NONCURRENT_DAYS))

        logical = stack.get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
        tables = f"arn:<AWS::Partition>:glue:<AWS::Region>:<AWS::AccountId>:table/{database}/*"
        for policy, who in ((self.publish_policy, "The gate creates, moves and deletes"),
                            (self.reader_policy, "SQL readers read")):
            ack(policy, id=f"AwsSolutions-IAM5[Resource::{tables}]",
                reason=f"{who} one table per lane output in this lane's Glue database {database}; table names "
                       "come from the spec's outputs, the grant is that one database's tables.")
            ack(policy, id=f"AwsSolutions-IAM5[Resource::<{logical}.Arn>/{PUBLISHED}]",
                reason="Published copies are keyed per lane, output, run and attempt; the grant is the published/ "
                       "prefix of the lane bucket only, never staging/ or receipts/ writes.")
        ack(self.publish_policy, id=f"AwsSolutions-IAM5[Resource::<{logical}.Arn>/{STAGING}]",
            reason="The copy source is the certified file version under staging/ (per run, output and attempt); "
                   "read only, pinned by version id.")

        cdk.CfnOutput(stack, "GlueDatabaseName", value=database,
                      description="Glue database of certified products (one table per output, certified versions only)")
        cdk.CfnOutput(stack, "CatalogReaderPolicyArn", value=self.reader_policy.managed_policy_arn,
                      description="Attach to Athena/Spark readers: Glue tables + published/ (certified copies) only")
        cdk.CfnOutput(stack, "CatalogPublishPolicyArn", value=self.publish_policy.managed_policy_arn,
                      description="Attached to the gate; attach to whoever runs lane revoke/repair with LANE_GLUE_DATABASE")
