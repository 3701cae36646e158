"""The resolve action: consumers get version-pinned URLs for certified bytes only (no PASS, no read)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from support.aws_env import BUCKET, BUS, DUMMY_ENV, TABLE, create_lane_resources, patched_env
from support.lane_aws import ROOT, copy_example

from batchlane.gate import decide
from batchlane.materialize import materialize
from batchlane.plan import begin_output, plan_run
from batchlane.spec import load_spec
from batchlane.stores.aws import aws_backend

OUTPUT = "customers_clean"


@pytest.fixture
def certified(tmp_path) -> Iterator[tuple[dict, object]]:
    spec_path = copy_example(tmp_path / "lane")
    env = {**DUMMY_ENV, "LANE_BACKEND": "aws", "LANE_BUCKET": BUCKET, "LANE_TABLE": TABLE, "LANE_EVENT_BUS": BUS,
           "LANE_SPEC": str(spec_path)}
    with patched_env(env, drop=("AWS_PROFILE", "AWS_ENDPOINT_URL")), mock_aws():
        create_lane_resources()
        backend = aws_backend(BUCKET, TABLE, BUS)
        spec = load_spec(spec_path)
        plan = plan_run(backend, spec, outputs=[OUTPUT])
        start = begin_output(backend, spec, plan.run_id, OUTPUT)
        materialize(backend.store, spec, plan.run_id, OUTPUT, start.attempt, job_id="test")
        assert decide(backend, spec, plan.run_id, OUTPUT, start.attempt).decision == "certified"
        yield {"run_id": plan.run_id, "backend": backend}, ROOT / "functions" / "gate" / "handler.py"


def _handler(handler_path):
    import importlib.util

    module_spec = importlib.util.spec_from_file_location("gate_handler_for_resolve", handler_path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_resolve_returns_version_pinned_urls_with_proof(certified):
    context, handler_path = certified
    gate = _handler(handler_path)
    answer = gate.handler({"action": "resolve", "output": OUTPUT})
    assert answer["run_id"] == context["run_id"] and answer["attempt"] == 1
    (file,) = answer["files"]
    assert "versionid=" in file["url"].lower() and file["key"].startswith(f"staging/{context['run_id']}/{OUTPUT}/")
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=file["key"], VersionId=file["version"])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == file["sha256"] and len(body) == file["size"]


def test_resolve_refuses_uncertified_and_revoked(certified, monkeypatch):
    context, handler_path = certified
    gate = _handler(handler_path)
    with pytest.raises(gate.NotCertifiedError, match="orders/orders_clean has no certification"):
        gate.handler({"action": "resolve", "output": "orders_clean"})
    with pytest.raises(gate.BadRequest, match="no output 'nope'"):
        gate.handler({"action": "resolve", "output": "nope"})
    from batchlane.gate import revoke

    revoke(context["backend"], "orders", OUTPUT, "recalled")
    with pytest.raises(gate.NotCertifiedError, match="revoked \\(recalled\\)"):
        gate.handler({"action": "resolve", "output": OUTPUT})


def test_resolve_twin_answers_only_resolve(certified, monkeypatch):
    _, handler_path = certified
    gate = _handler(handler_path)
    monkeypatch.setenv("LANE_GATE_ACTIONS", "resolve")
    with pytest.raises(gate.BadRequest, match="this function answers resolve"):
        gate.handler({"action": "decide", "run_id": "r", "output": OUTPUT, "attempt": 1})
    assert gate.handler({"action": "resolve", "output": OUTPUT})["files"]
