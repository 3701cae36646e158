"""Which IAM request(s) AWS authorizes for one API call: action, resource ARN and the condition keys our
policies use (``s3:prefix``, ``s3:if-none-match``, ``dynamodb:LeadingKeys``); Glue calls name the catalog,
the database and the table. A call with no mapping raises
(fail closed): add it here when a component starts making it.

Standard library only: tests/support/call_recording.py loads it in subprocesses (the Batch job) to apply
denials computed by the IAM proof.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse


class ProofError(AssertionError):
    """A call the proof cannot map or a principal it cannot find: the proof fails closed."""


@dataclass(frozen=True)
class IamRequest:
    principal: str
    action: str
    resource: str
    context: tuple[tuple[str, Any], ...] = ()
    source: str = ""                      # "s3.PutObject" or "implicit: <docs table>"

    def key(self) -> tuple[str, str, str, str]:
        return (self.principal, self.action, self.resource, json.dumps(self.context))


@dataclass
class Names:
    """The moto deployment's physical names, to resolve ARNs from call parameters."""

    region: str
    account: str
    job_definition_revision: int = 1

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{resource}"

    def table(self, name: str) -> str:
        return name if name.startswith("arn:") else self.arn("dynamodb", f"table/{name}")

    def function(self, name: str) -> str:
        return name if name.startswith("arn:") else self.arn("lambda", f"function:{name}")

    def bus(self, name: str | None) -> str:
        name = name or "default"
        return name if name.startswith("arn:") else self.arn("events", f"event-bus/{name}")

    def job_queue(self, name: str) -> str:
        return name if name.startswith("arn:") else self.arn("batch", f"job-queue/{name}")

    def job_definition(self, name: str) -> str:
        if name.startswith("arn:"):
            return name
        return self.arn("batch", f"job-definition/{name if ':' in name else f'{name}:{self.job_definition_revision}'}")

    def queue(self, url: str) -> str:
        parts = urlparse(url).path.strip("/").split("/")
        return self.arn("sqs", parts[-1])


def _context(**values: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((key, value) for key, value in values.items() if value is not None))


def _pk(item: dict[str, Any] | None) -> list[str] | None:
    value = (item or {}).get("pk")
    return [value["S"]] if isinstance(value, dict) and "S" in value else None


def _copy_source(value: Any) -> tuple[str, str, str | None]:
    """CopySource as botocore accepts it: {"Bucket", "Key", "VersionId"} or "bucket/key[?versionId=...]"."""
    if isinstance(value, dict):
        return value.get("Bucket", ""), value.get("Key", ""), value.get("VersionId")
    text = unquote(str(value or "")).lstrip("/")
    path, _, query = text.partition("?versionId=")
    bucket, _, key = path.partition("/")
    return bucket, key, query or None


# Glue authorizes an action on the catalog, the database and (for table actions) the table; see "Specifying
# AWS Glue resource ARNs" (https://docs.aws.amazon.com/glue/latest/dg/glue-specifying-resource-arns.html).
_GLUE_DATABASE_ACTIONS = {"GetDatabase": "Name", "CreateDatabase": "DatabaseInput.Name", "DeleteDatabase": "Name",
                          "UpdateDatabase": "Name"}
_GLUE_TABLE_ACTIONS = {"GetTable": "Name", "DeleteTable": "Name", "CreateTable": "TableInput.Name",
                       "UpdateTable": "TableInput.Name", "GetPartitions": "TableName", "GetPartition": "TableName",
                       "BatchGetPartition": "TableName", "BatchDeletePartition": "TableName"}


def _field(params: dict[str, Any], path: str) -> str:
    value: Any = params
    for part in path.split("."):
        value = (value or {}).get(part)
    if not value:
        raise ProofError(f"glue call without {path}: {params}")
    return str(value)


def _glue_resources(operation: str, params: dict[str, Any], names: Names) -> list[str]:
    account = params.get("CatalogId") or names.account

    def arn(resource: str) -> str:
        return f"arn:aws:glue:{names.region}:{account}:{resource}"

    if operation in _GLUE_DATABASE_ACTIONS:
        database = _field(params, _GLUE_DATABASE_ACTIONS[operation])
        return [arn("catalog"), arn(f"database/{database}")]
    if operation in _GLUE_TABLE_ACTIONS:
        database, table = params.get("DatabaseName", ""), _field(params, _GLUE_TABLE_ACTIONS[operation])
        return [arn("catalog"), arn(f"database/{database}"), arn(f"table/{database}/{table}")]
    if operation == "GetTables":
        database = params.get("DatabaseName", "")
        return [arn("catalog"), arn(f"database/{database}"), arn(f"table/{database}/*")]
    raise ProofError(f"glue.{operation}: no IAM mapping in tests/support/iam_requests.py; add one")


def iam_requests(call: dict[str, Any], names: Names) -> list[IamRequest]:
    """The IAM request(s) AWS evaluates for one recorded call."""
    principal, service, operation, params = call["principal"], call["service"], call["operation"], call["params"]
    source = f"{service}.{operation}"

    def one(action: str, resource: str, context: tuple[tuple[str, Any], ...] = ()) -> IamRequest:
        return IamRequest(principal, action, resource, context, source)

    if service == "s3":
        bucket, key = params.get("Bucket", ""), params.get("Key", "")
        obj = f"arn:aws:s3:::{bucket}/{key}"
        versioned = bool(params.get("VersionId"))
        if operation in ("GetObject", "HeadObject"):
            return [one("s3:GetObjectVersion" if versioned else "s3:GetObject", obj)]
        if operation in ("PutObject", "CompleteMultipartUpload"):
            return [one("s3:PutObject", obj, _context(**{"s3:if-none-match": params.get("IfNoneMatch")}))]
        if operation in ("CreateMultipartUpload", "UploadPart"):
            return [one("s3:PutObject", obj)]
        if operation == "AbortMultipartUpload":
            return [one("s3:AbortMultipartUpload", obj)]
        if operation in ("ListObjectsV2", "ListObjects", "ListObjectVersions"):
            action = "s3:ListBucketVersions" if operation == "ListObjectVersions" else "s3:ListBucket"
            return [one(action, f"arn:aws:s3:::{bucket}", _context(**{"s3:prefix": params.get("Prefix", "")}))]
        if operation == "DeleteObject":
            return [one("s3:DeleteObjectVersion" if versioned else "s3:DeleteObject", obj)]
        if operation in ("CopyObject", "UploadPartCopy"):   # write the target, read the (pinned) source
            source_bucket, source_key, source_version = _copy_source(params.get("CopySource"))
            return [one("s3:PutObject", obj),
                    one("s3:GetObjectVersion" if source_version else "s3:GetObject",
                        f"arn:aws:s3:::{source_bucket}/{source_key}")]
        if operation == "GetBucketLocation":
            return [one("s3:GetBucketLocation", f"arn:aws:s3:::{bucket}")]
    elif service == "glue":
        return [one(f"glue:{operation}", resource) for resource in _glue_resources(operation, params, names)]
    elif service == "dynamodb":
        if operation == "TransactWriteItems":
            actions = {"Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem", "Delete": "dynamodb:DeleteItem",
                       "ConditionCheck": "dynamodb:ConditionCheckItem"}
            found = []
            for item in params.get("TransactItems", []):
                (kind, body), = item.items()
                keys = _pk(body.get("Item") or body.get("Key"))
                found.append(one(actions[kind], names.table(body["TableName"]),
                                 _context(**{"dynamodb:LeadingKeys": keys})))
            return found
        if operation == "TransactGetItems":
            return [one("dynamodb:GetItem", names.table(item["Get"]["TableName"]),
                        _context(**{"dynamodb:LeadingKeys": _pk(item["Get"].get("Key"))}))
                    for item in params.get("TransactItems", [])]
        if operation in ("GetItem", "PutItem", "UpdateItem", "DeleteItem"):
            keys = _pk(params.get("Key") or params.get("Item"))
            return [one(f"dynamodb:{operation}", names.table(params["TableName"]),
                        _context(**{"dynamodb:LeadingKeys": keys}))]
        if operation == "Query":
            value = (params.get("ExpressionAttributeValues") or {}).get(":pk", {})
            keys = [value["S"]] if "S" in value else None
            return [one("dynamodb:Query", names.table(params["TableName"]), _context(**{"dynamodb:LeadingKeys": keys}))]
        if operation == "Scan":
            return [one("dynamodb:Scan", names.table(params["TableName"]))]
    elif service == "events" and operation == "PutEvents":
        return [one("events:PutEvents", names.bus(entry.get("EventBusName"))) for entry in params.get("Entries", [])]
    elif service == "lambda" and operation == "Invoke":
        return [one("lambda:InvokeFunction", names.function(params["FunctionName"]))]
    elif service == "batch":
        if operation == "SubmitJob":
            return [one("batch:SubmitJob", names.job_queue(params["jobQueue"])),
                    one("batch:SubmitJob", names.job_definition(params["jobDefinition"]))]
        if operation == "DescribeJobs":
            return [one("batch:DescribeJobs", "*")]
        if operation == "TerminateJob":
            return [one("batch:TerminateJob", names.arn("batch", f"job/{params['jobId']}"))]
    elif service == "stepfunctions":
        if operation in ("StartExecution", "ListExecutions", "DescribeStateMachine"):
            return [one(f"states:{operation}", params["stateMachineArn"])]
        if operation in ("DescribeExecution", "GetExecutionHistory", "StopExecution", "RedriveExecution"):
            return [one(f"states:{operation}", params["executionArn"])]
    elif service == "sqs":
        if operation in ("ReceiveMessage", "DeleteMessage", "ChangeMessageVisibility", "GetQueueAttributes"):
            return [one(f"sqs:{operation}", names.queue(params["QueueUrl"]))]
        if operation in ("DeleteMessageBatch", "ChangeMessageVisibilityBatch"):
            return [one(f"sqs:{operation.removesuffix('Batch')}", names.queue(params["QueueUrl"]))]
        if operation == "GetQueueUrl":
            return [one("sqs:GetQueueUrl", names.arn("sqs", params["QueueName"]))]
    raise ProofError(f"{principal} called {source}: no IAM mapping in tests/support/iam_proof.py; add one")
