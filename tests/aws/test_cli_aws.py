"""`lane --backend aws` against a moto server: run, rerun, status, show, verify, read.

The local runner starts each materialize job as a subprocess; it reaches moto through AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.aws_env import BUCKET, BUS, TABLE, create_lane_resources, drain_queue, patched_env, subscribe_queue
from support.lane_aws import copy_example, reset_server

pytestmark = pytest.mark.xdist_group("moto_server")


@pytest.fixture
def aws_lane(moto_endpoint, tmp_path) -> Iterator[tuple[Path, str]]:
    reset_server(moto_endpoint)
    create_lane_resources()
    queue = subscribe_queue(BUS, "cli-consumer")
    with patched_env({"LANE_BACKEND": "aws", "LANE_BUCKET": BUCKET, "LANE_TABLE": TABLE, "LANE_EVENT_BUS": BUS}):
        yield copy_example(tmp_path / "lane"), queue


@pytest.fixture
def lane_cli(capsys):
    from batchlane.cli import main

    def call(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = main([str(arg) for arg in argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


def test_lane_cli_runs_audits_and_reads_against_aws(aws_lane, lane_cli, tmp_path):
    spec, queue = aws_lane
    payments = spec.parent / "data" / "payments.jsonl"
    good = payments.read_text()
    payments.write_text(good + "".join(
        json.dumps({"payment_id": 90000 + n, "order_id": 1, "amount": 1000.0, "paid_at": "2026-01-02T00:00:00"}) + "\n"
        for n in range(3)))

    code, out, err = lane_cli("run", spec, "--outputs", "customers_clean,order_payments", "--backend", "aws", "--json")
    assert code == 1, err
    run_id = json.loads(out)["run_id"]

    code, out, err = lane_cli("status", "--backend", "aws", "--json")
    assert code == 0, err
    assert run_id in out

    code, out, err = lane_cli("status", run_id, "--backend", "aws", "--json")
    assert code in (0, 1), err
    states = json.loads(out)
    assert "order_payments" in json.dumps(states) and "rejected" in json.dumps(states)

    code, out, err = lane_cli("read", "order_payments", "--out", tmp_path / "refused.parquet", "--backend", "aws")
    assert code != 0 and not (tmp_path / "refused.parquet").exists()
    assert "order_payments" in err

    payments.write_text(good)
    code, out, err = lane_cli("rerun", run_id, "--failed", "--backend", "aws", "--json")
    assert code == 0, err

    code, out, err = lane_cli("show", run_id, "--backend", "aws", "--json")
    assert code == 0, err
    assert "order_payments" in out and "0002-gate.json" in out

    code, out, err = lane_cli("verify", run_id, "--backend", "aws", "--json")
    assert code == 0, (out, err)
    for human in (("status", run_id), ("show", run_id, "order_payments"), ("verify", run_id)):
        code, out, err = lane_cli(*human, "--backend", "aws")
        assert code == 0 and run_id in out + err, (human, out, err)

    code, out, err = lane_cli("read", "order_payments", "--out", tmp_path / "payments.parquet", "--backend", "aws")
    assert code == 0, err
    assert pq.read_table(tmp_path / "payments.parquet").num_rows == 2000

    events = {(m["detail-type"], m["detail"].get("output")) for m in drain_queue(queue)}
    assert ("DataProductCertified", "order_payments") in events and ("DataProductRejected", "order_payments") in events
    assert ("RunClosed", None) in events


def test_lane_cli_aws_needs_its_settings(lane_cli, monkeypatch):
    monkeypatch.delenv("LANE_BUCKET", raising=False)
    code, out, err = lane_cli("status", "--backend", "aws")
    assert code == 2 and "LANE_BUCKET" in err
