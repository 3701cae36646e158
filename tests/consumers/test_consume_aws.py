"""The consumer SDK on AWS (moto): events go gate -> EventBridge -> the consumer's SQS queue (with a DLQ).

Certifications are real: each output is planned, materialized, recorded and decided in-process against
moto's S3/DynamoDB/EventBridge; EventBridge rules route to one queue per consumer like the stack does.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from support.aws_env import BUCKET, BUS, DUMMY_ENV, REGION, TABLE, create_lane_resources, patched_env
from support.lane_aws import ROOT, copy_example

from batchlane.consume import CertifiedVersion, Revocation, consumer
from batchlane.consume.resolve_reader import ResolveFunctionReader
from batchlane.gate import NotCertified, revoke
from batchlane.spec import LaneSpec, load_spec
from batchlane.stores.aws import aws_backend
from batchlane.stores.base import Backend
from consumers.helpers import attempt_output

MAX_RECEIVES = 3


def consumer_queue(name: str, *, max_receives: int = MAX_RECEIVES) -> tuple[str, str]:
    """A queue + DLQ for one consumer and the rule the stack makes: its outputs' certified and revoked events."""
    sqs = boto3.client("sqs", region_name=REGION)
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)})})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events", region_name=REGION)
    events.put_rule(Name=f"{name}-rule", EventBusName=BUS, EventPattern=json.dumps({
        "source": ["batchlane"], "detail-type": ["DataProductCertified", "DataProductRevoked"],
        "detail": {"consumers": [name]}}))
    events.put_targets(Rule=f"{name}-rule", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": arn}])
    return url, dlq


def queue_depth(url: str) -> int:
    attributes = boto3.client("sqs", region_name=REGION).get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    return sum(int(value) for value in attributes["Attributes"].values())


@dataclass
class World:
    backend: Backend
    spec: LaneSpec
    spec_path: Path
    queues: dict[str, tuple[str, str]]
    state_dir: Path

    def consumer(self, name: str, **kwargs):
        return consumer(name, backend=self.backend, queue_url=self.queues[name][0],
                        state_path=self.state_dir / f"{name}.sqlite", **kwargs)


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    spec_path = copy_example(tmp_path / "lane")
    env = {**DUMMY_ENV, "LANE_BACKEND": "aws", "LANE_BUCKET": BUCKET, "LANE_TABLE": TABLE, "LANE_EVENT_BUS": BUS,
           "LANE_SPEC": str(spec_path)}
    with patched_env(env, drop=("AWS_PROFILE", "AWS_ENDPOINT_URL", "LANE_CONSUMER_QUEUE_URL",
                                "LANE_RESOLVE_FUNCTION", "LANE_CONSUMER_STATE")), mock_aws():
        create_lane_resources()
        queues = {name: consumer_queue(name) for name in ("crm-sync", "fraud-stream", "billing")}
        yield World(aws_backend(BUCKET, TABLE, BUS), load_spec(spec_path), spec_path, queues, tmp_path / "state")


@pytest.fixture
def certified(world) -> World:
    for output in ("customers_clean", "orders_clean", "order_payments"):
        assert attempt_output(world.backend, world.spec, output)[1].decision == "certified"
    return world


def test_each_queue_delivers_exactly_its_consumers_outputs_readable(certified):
    expected = {"crm-sync": {"customers_clean"}, "fraud-stream": {"orders_clean", "order_payments"},
                "billing": {"order_payments"}}
    delivered = {name: {item.output: item for item in certified.consumer(name).pending()} for name in expected}
    assert {name: set(items) for name, items in delivered.items()} == expected
    orders = delivered["fraud-stream"]["orders_clean"]
    assert isinstance(orders, CertifiedVersion) and orders.state() == "in_force" and len(orders.read()) == 2000


def test_ack_deletes_the_message_and_a_crash_before_ack_redelivers(certified):
    url = certified.queues["crm-sync"][0]
    (item,) = certified.consumer("crm-sync").pending()
    assert queue_depth(url) == 1                   # received, not deleted: in flight
    # the process dies before ack; the visibility timeout expires (set to 0 here instead of waiting)
    boto3.client("sqs", region_name=REGION).change_message_visibility(
        QueueUrl=url, ReceiptHandle=item.envelope.receipt_handle, VisibilityTimeout=0)
    (again,) = certified.consumer("crm-sync").pending()
    assert again.event_id == item.event_id
    again.ack()
    assert queue_depth(url) == 0
    assert certified.consumer("crm-sync").pending() == []


def test_two_consumers_keep_independent_cursors(certified):
    for item in certified.consumer("fraud-stream").follow(poll=None):
        item.ack()
    assert queue_depth(certified.queues["fraud-stream"][0]) == 0
    (payments,) = certified.consumer("billing").pending()
    assert payments.output == "order_payments"


def test_a_duplicate_message_is_skipped_and_deleted(certified):
    crm = certified.consumer("crm-sync")
    for item in crm.follow(poll=None):
        item.ack()
        certified.backend.bus.publish([item.event])   # the outbox re-sends the same event
    assert crm.skipped == {"duplicate": 1}
    assert queue_depth(certified.queues["crm-sync"][0]) == 0


def test_an_older_version_after_a_newer_one_is_skipped_as_out_of_order(world):
    run_1, _ = attempt_output(world.backend, world.spec, "customers_clean")
    run_2, _ = attempt_output(world.backend, world.spec, "customers_clean")
    url = world.queues["crm-sync"][0]
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.purge_queue(QueueUrl=url)
    older, newer = _certified_events(world, run_1, run_2)
    world.backend.bus.publish([newer])                # the newer version arrives first
    world.backend.bus.publish([older])
    crm = world.consumer("crm-sync")
    delivered = []
    for item in crm.follow(poll=None):
        delivered.append(item.run_id)
        item.ack()
    assert delivered == [run_2]
    assert crm.skipped == {"out_of_order": 1}
    assert queue_depth(url) == 0


def _certified_events(world: World, *runs: str):
    from batchlane.receipts import LaneEvent, parse_receipt

    events = []
    for run_id in runs:
        key = f"receipts/{run_id}/customers_clean/0001-gate.json"
        gate = parse_receipt(world.backend.store.get(key))
        from batchlane.certification import order_of

        run = world.backend.ledger.get_run(run_id)
        events.append(LaneEvent(type="DataProductCertified", lane="orders", run_id=run_id, output="customers_clean",
                                attempt=1, receipt=key, receipt_digest=gate.digest(), proof=gate.proof,
                                verdict="PASS", consumers=["crm-sync"], order=order_of(run.started_at, 1),
                                time=gate.created_at))
    return events


def test_revocation_is_delivered_as_its_own_item(certified):
    fraud = certified.consumer("fraud-stream")
    held = {}
    for item in fraud.follow(poll=None):
        held[item.output] = item
        item.ack()
    revoke(certified.backend, "orders", "orders_clean", "late duplicates upstream", consumers=["fraud-stream"])
    with pytest.raises(NotCertified, match="revoked"):
        held["orders_clean"].read()
    (revocation,) = fraud.pending()
    assert isinstance(revocation, Revocation)
    assert (revocation.output, revocation.run_id, revocation.reason) == (
        "orders_clean", held["orders_clean"].run_id, "late duplicates upstream")
    revocation.ack()
    assert queue_depth(certified.queues["fraud-stream"][0]) == 0
    assert certified.consumer("crm-sync").pending()[0].output == "customers_clean"   # not its output


def test_an_unreadable_message_goes_to_the_dlq_after_max_receives(world):
    url, dlq = world.queues["billing"]
    sqs = boto3.client("sqs", region_name=REGION)
    sqs.send_message(QueueUrl=url, MessageBody='{"detail": {"id": "x", "type": "nonsense"}}')
    billing = world.consumer("billing", visibility_timeout=0)   # each receive makes it visible again at once
    assert billing.pending() == []
    assert billing.skipped["unreadable"] == MAX_RECEIVES
    assert queue_depth(url) == 0
    (dead,) = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(dead["Body"])["detail"]["type"] == "nonsense"


def test_a_consumer_role_reads_through_the_resolve_function(certified):
    """Consumer roles are denied staging/: versions are read through presigned URLs the resolve function signs."""
    handler = _gate_handler()
    invoked: list[dict] = []

    def invoke(request: dict) -> dict:
        invoked.append(request)
        try:
            return handler.handler(request)
        except handler.NotCertifiedError as exc:
            raise NotCertified(str(exc)) from None

    crm = certified.consumer("crm-sync", reader=ResolveFunctionReader(invoke))
    (item,) = crm.pending()
    frame = item.read()
    assert len(frame) == 200 and invoked and all(r == {"action": "resolve", "output": "customers_clean"}
                                                  for r in invoked)
    revoke(certified.backend, "orders", "customers_clean", "bad", consumers=["crm-sync"])
    with pytest.raises(NotCertified):
        item.read()


def test_an_aws_consumer_without_a_queue_url_is_refused_clearly(world):
    from batchlane.consume import ConsumerConfigError

    with pytest.raises(ConsumerConfigError, match="queue URL"):
        consumer("crm-sync", backend=world.backend, state_path=world.state_dir / "x.sqlite")


def _gate_handler():
    module_spec = importlib.util.spec_from_file_location("gate_handler_for_consumers",
                                                         ROOT / "functions" / "gate" / "handler.py")
    assert module_spec and module_spec.loader
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    assert os.environ["LANE_SPEC"]
    return module


class _FakeLambda:
    def __init__(self, answer: dict, function_error: str | None = None) -> None:
        self.answer, self.function_error, self.calls = answer, function_error, []

    def invoke(self, **kwargs):
        import io

        self.calls.append(kwargs)
        response = {"Payload": io.BytesIO(json.dumps(self.answer).encode())}
        if self.function_error:
            response["FunctionError"] = self.function_error
        return response


def test_the_lambda_invoker_maps_not_certified_and_names_other_failures():
    from batchlane.consume.resolve_reader import ResolveFunctionError, lambda_invoker

    ok = _FakeLambda({"certification": "k"})
    assert lambda_invoker("resolve-fn", client=ok)({"action": "resolve", "output": "o"}) == {"certification": "k"}
    assert ok.calls[0]["FunctionName"] == "resolve-fn"
    assert json.loads(ok.calls[0]["Payload"]) == {"action": "resolve", "output": "o"}
    refused = _FakeLambda({"errorType": "NotCertifiedError", "errorMessage": "orders/o was revoked"}, "Unhandled")
    with pytest.raises(NotCertified, match="was revoked"):
        lambda_invoker("resolve-fn", client=refused)({"action": "resolve", "output": "o"})
    broken = _FakeLambda({"errorType": "AccessDeniedException", "errorMessage": "no"}, "Unhandled")
    with pytest.raises(ResolveFunctionError, match="resolve-fn failed: AccessDeniedException"):
        lambda_invoker("resolve-fn", client=broken)({"action": "resolve", "output": "o"})
