"""AWS-only behaviour of the adapters (the shared port contract is tests/contract/)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from support.aws_env import (
    BUCKET,
    BUS,
    DUMMY_ENV,
    REGION,
    TABLE,
    create_lane_resources,
    drain_queue,
    patched_env,
    subscribe_queue,
)

from batchlane.receipts import LaneEvent
from batchlane.stores.aws import PART, DynamoLedger, EventBridgeBus, S3ObjectStore, aws_backend
from batchlane.stores.base import AlreadyExists

T0 = datetime(2026, 11, 27, tzinfo=UTC)


@pytest.fixture
def aws() -> Iterator[None]:
    with patched_env(dict(DUMMY_ENV), drop=("AWS_PROFILE", "AWS_ENDPOINT_URL")), mock_aws():
        create_lane_resources()
        yield


def _event(number: int) -> LaneEvent:
    return LaneEvent(type="DataProductCertified", lane="orders", run_id=f"r{number}", output="clean", attempt=1,
                     receipt=f"receipts/r{number}/clean/0001-gate.json", receipt_digest=str(number), time=T0)


def test_large_files_upload_in_parts_write_once_with_one_streaming_hash(aws, tmp_path):
    store = S3ObjectStore(BUCKET, prefix="lanes/orders")
    data = (bytes(range(256)) * (PART // 256 + 4096))[: PART + 123_457]
    source = tmp_path / "big.parquet"
    source.write_bytes(data)
    digest = store.put_file_once(source, "staging/r1/clean/0001/part-0000.parquet")
    assert (digest.size, digest.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert digest.uri == f"s3://{BUCKET}/lanes/orders/staging/r1/clean/0001/part-0000.parquet"
    head = boto3.client("s3", region_name=REGION).head_object(
        Bucket=BUCKET, Key="lanes/orders/staging/r1/clean/0001/part-0000.parquet")
    assert head["ETag"].strip('"').endswith("-2")  # two parts: streamed, never loaded whole
    assert store.digest("staging/r1/clean/0001/part-0000.parquet").sha256 == digest.sha256
    assert store.list_keys("staging/") == ["staging/r1/clean/0001/part-0000.parquet"]
    with pytest.raises(AlreadyExists):
        store.put_file_once(source, "staging/r1/clean/0001/part-0000.parquet")


def _record_calls(client, method: str) -> list[dict]:
    """Wrap a boto3 client method so each call's keyword arguments are recorded (the call still goes through)."""
    calls: list[dict] = []
    original = getattr(client, method)

    def recording(**kwargs):
        calls.append(kwargs)
        return original(**kwargs)

    setattr(client, method, recording)
    return calls


def test_s3_write_once_is_enforced_by_s3_itself(aws):
    """put_once does no read-then-write: S3's If-None-Match: * decides (moto's check is not thread-atomic, S3's is)."""
    store = S3ObjectStore(BUCKET)
    sent = _record_calls(store.s3, "put_object")
    store.put_once("receipts/r1/clean/0001-check.json", b"first")
    with pytest.raises(AlreadyExists):
        store.put_once("receipts/r1/clean/0001-check.json", b"second")
    assert [call["IfNoneMatch"] for call in sent] == ["*", "*"]
    assert store.get("receipts/r1/clean/0001-check.json") == b"first"
    with pytest.raises(ClientError) as raised:
        boto3.client("s3", region_name=REGION).put_object(
            Bucket=BUCKET, Key="receipts/r1/clean/0001-check.json", Body=b"x", IfNoneMatch="*")
    assert raised.value.response["Error"]["Code"] == "PreconditionFailed"


def test_ledger_items_use_only_the_pk_sk_table_keys(aws):
    ledger = DynamoLedger(TABLE)
    ledger.next_attempt("r1", "clean")
    ledger.queue_event(_event(1))
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName=TABLE)["Items"]
    assert {(item["pk"]["S"], item["sk"]["S"]) for item in items} == {
        ("RUN#r1", "ATTEMPT#clean"), ("OUTBOX", _event(1).event_id()), (f"EVENT#{_event(1).event_id()}", "QUEUED")}
    table = boto3.client("dynamodb", region_name=REGION).describe_table(TableName=TABLE)["Table"]
    assert {key["AttributeName"] for key in table["KeySchema"]} == {"pk", "sk"}


class _FlakyEvents:
    """PutEvents that fails the second entry of every call and records batch sizes."""

    def __init__(self, fail_call: bool = False) -> None:
        self.batches: list[int] = []
        self.fail_call = fail_call

    def put_events(self, Entries):  # noqa: N803 - boto3 casing
        self.batches.append(len(Entries))
        if self.fail_call:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "PutEvents")
        results = [{"EventId": f"id-{i}"} for i in range(len(Entries))]
        if len(results) > 1:
            results[1] = {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}
        return {"FailedEntryCount": 1 if len(results) > 1 else 0, "Entries": results}


def test_eventbridge_batches_of_ten_and_partial_failures():
    events = [_event(n) for n in range(23)]
    client = _FlakyEvents()
    accepted = EventBridgeBus(BUS, client=client).publish(events)
    assert client.batches == [10, 10, 3]
    failed = {events[1].event_id(), events[11].event_id(), events[21].event_id()}
    assert set(accepted) == {event.event_id() for event in events} - failed
    assert EventBridgeBus(BUS, client=_FlakyEvents(fail_call=True)).publish(events) == []


def test_eventbridge_detail_is_the_lane_event_with_its_id(aws):
    queue = subscribe_queue(BUS, "detail-check", {"source": ["batchlane"], "detail-type": ["DataProductCertified"]})
    bus = EventBridgeBus(BUS)
    assert bus.publish([_event(7)]) == [_event(7).event_id()]
    (message,) = drain_queue(queue)
    assert message["detail-type"] == "DataProductCertified" and message["source"] == "batchlane"
    detail = dict(message["detail"])
    assert detail.pop("id") == _event(7).event_id()
    assert LaneEvent.model_validate(detail) == _event(7)


def test_outbox_survives_a_failed_publish_and_is_republished(aws):
    backend = aws_backend(BUCKET, TABLE, BUS)
    backend.bus = EventBridgeBus(BUS, client=_FlakyEvents(fail_call=True))
    from batchlane.gate import publish_pending

    backend.ledger.queue_event(_event(1))
    assert publish_pending(backend) == []
    assert [e.event_id() for e in backend.ledger.unpublished_events()] == [_event(1).event_id()]
    backend.bus = EventBridgeBus(BUS)
    assert publish_pending(backend) == [_event(1).event_id()]
    assert backend.ledger.unpublished_events() == []


def test_backend_from_env_and_subprocess_env(aws, monkeypatch):
    from batchlane.backends import BackendConfigError, backend_env, backend_from_env

    monkeypatch.delenv("LANE_BUCKET", raising=False)
    with pytest.raises(BackendConfigError, match="LANE_BUCKET"):
        backend_from_env("aws")
    monkeypatch.setenv("LANE_BUCKET", BUCKET)
    monkeypatch.setenv("LANE_TABLE", TABLE)
    monkeypatch.setenv("LANE_EVENT_BUS", BUS)
    backend = backend_from_env("aws")
    assert backend.name == "aws"
    assert backend_env(backend) == {"LANE_BACKEND": "aws", "LANE_BUCKET": BUCKET, "LANE_TABLE": TABLE,
                                    "LANE_EVENT_BUS": BUS}
    backend.store.put_once("receipts/x.json", b"{}")
    assert json.loads(backend.store.get("receipts/x.json")) == {}


def test_attempts_use_one_atomic_add(aws):
    """Concurrency is DynamoDB's job: next_attempt is a single UpdateItem ADD returning the new value."""
    ledger = DynamoLedger(TABLE)
    calls = _record_calls(ledger.db, "update_item")
    assert [ledger.next_attempt("r1", "clean") for _ in range(2)] == [1, 2]
    assert all(call["UpdateExpression"] == "ADD attempts :one" and call["ReturnValues"] == "UPDATED_NEW"
               for call in calls) and len(calls) == 2
