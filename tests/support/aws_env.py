"""Shared AWS test fixtures: dummy credentials and the lane's resources created in moto."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "lane-test-bucket"
TABLE = "lane-test-ledger"
BUS = "lane-test-bus"

DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


@contextmanager
def patched_env(values: dict[str, str], drop: tuple[str, ...] = ("AWS_PROFILE",)) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in (*values, *drop)}
    for key in drop:
        os.environ.pop(key, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def create_lane_resources(bucket: str = BUCKET, table: str = TABLE, bus: str = BUS) -> dict[str, Any]:
    """The bucket, the single-table ledger (pk/sk, on-demand) and the custom bus, as the CDK stack makes them."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    events = boto3.client("events", region_name=REGION)
    bus_arn = events.create_event_bus(Name=bus)["EventBusArn"]
    return {"bucket": bucket, "table": table, "bus": bus, "bus_arn": bus_arn}


def subscribe_queue(bus: str, name: str = "lane-consumer", pattern: dict | None = None) -> str:
    """An EventBridge rule on the bus routing lane events to a new SQS queue; returns the queue URL."""
    import json

    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events", region_name=REGION)
    events.put_rule(Name=f"{name}-rule", EventBusName=bus,
                    EventPattern=json.dumps(pattern or {"source": ["batchlane"]}))
    events.put_targets(Rule=f"{name}-rule", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
    return url


def drain_queue(url: str) -> list[dict]:
    import json

    sqs = boto3.client("sqs", region_name=REGION)
    messages: list[dict] = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            return messages
        for message in batch:
            messages.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
