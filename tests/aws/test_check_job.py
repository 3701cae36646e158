"""Issue 11, size-aware checking on AWS: a product above the check function's budget is checked by a Batch job.

Under moto, with the real statemachines/lane.asl.json: the check Lambda measures the staged product (S3's sizes)
and returns ``route: "batch"`` above ``LANE_CHECK_LAMBDA_MAX_BYTES`` (set tiny here); the Choice sends the
iteration to ``CheckJob``, a ``batch:submitJob.sync`` of the check job definition running
functions/check/job.py as a subprocess against the same moto server. A check job that fails ends in an explicit
FAIL check receipt naming the failure (RecordCheckJobFailure), never in a retry or a certification.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.lane_aws import copy_example, deployed_lane, register_check_job_definition
from support.sfn_history import summarize

from stacks.asl import EVENTS_PER_OUTPUT

pytestmark = pytest.mark.xdist_group("moto_server")

OUTPUTS = ["customers_clean", "orders_clean"]
TINY = {"LANE_CHECK_LAMBDA_MAX_BYTES": "1"}       # every product is "big"


def _backend() -> Any:
    from batchlane.backends import backend_from_env

    return backend_from_env("aws")


def _jobs(lane: Any, script: str) -> list[dict]:
    return [job for job in lane.calls["batch"] if any(part.endswith(script) for part in job.get("command", []))]


def _submitted_definitions(lane: Any) -> dict[str, str]:
    """job name -> the job definition (name) each submitted Batch job ran."""
    batch = lane.client("batch")
    found = {}
    for status in ("SUCCEEDED", "FAILED"):
        for summary in batch.list_jobs(jobQueue="lane-queue", jobStatus=status)["jobSummaryList"]:
            (job,) = batch.describe_jobs(jobs=[summary["jobId"]])["jobs"]
            found[job["jobName"]] = job["jobDefinition"].rsplit("/", 1)[-1].split(":")[0]
    return found


def test_a_big_product_is_checked_by_the_batch_check_job_and_certified(moto_endpoint, tmp_path):
    from batchlane.evidence import load_receipt
    from batchlane.verify import verify_run

    spec = copy_example(tmp_path / "lane")
    with deployed_lane(moto_endpoint, spec, env_overrides=TINY) as lane:
        arn = lane.start({"outputs": OUTPUTS}, name="run-big")
        result = lane.wait(arn)
        assert result["status"] == "SUCCEEDED", result.get("cause")

        # the check function measured each product and routed it, without checking or writing anything
        routed = [call for call in lane.calls["lambda"] if call["function"] == "lane-check"]
        assert sorted(call["event"]["output"] for call in routed) == OUTPUTS
        for call in routed:
            assert call["result"]["route"] == "batch" and call["result"]["verdict"] is None
            assert call["result"]["bytes"] > 1 and call["result"]["limit"] == 1

        # one check job per output, with the check job definition (not the materializer's)
        checks = _jobs(lane, "functions/check/job.py")
        assert sorted(job["command"][job["command"].index("--output") + 1] for job in checks) == OUTPUTS
        assert all(job["exit_code"] == 0 for job in checks)
        definitions = _submitted_definitions(lane)
        for output in OUTPUTS:
            assert definitions[f"orders-check-{output}-1"] == lane.check_job_definition_name
            assert definitions[f"orders-{output}-1"] == lane.job_definition_name

        backend = _backend()
        for output in OUTPUTS:
            checked = load_receipt(backend, "run-big", output, 1, "check")
            assert checked.verdict == "PASS" and checked.products and checked.rules
            materialized = load_receipt(backend, "run-big", output, 1, "materialize")
            assert checked.products[0].size == materialized.outputs[0].size > 1
            pointer = backend.ledger.current("orders", output)
            assert (pointer.run_id, pointer.attempt) == ("run-big", 1)
        report = verify_run(backend, "run-big")
        assert report.ok, report.problems

        summary = summarize(lane.history(arn))
        for output in OUTPUTS:
            assert summary.outputs[output].states == [
                "Begin", "ToRun?", "Materialize", "Check", "CheckInBatch?", "CheckJob", "Decide"]
            assert summary.outputs[output].events == EVENTS_PER_OUTPUT["checked_in_batch"]   # the documented budget


def test_a_small_product_stays_with_the_check_function(moto_endpoint, tmp_path):
    spec = copy_example(tmp_path / "lane")
    with deployed_lane(moto_endpoint, spec) as lane:     # the default budget: 2 GiB
        result = lane.run({"outputs": ["customers_clean"]}, name="run-small")
        assert result["status"] == "SUCCEEDED", result.get("cause")
        (routed,) = [call for call in lane.calls["lambda"] if call["function"] == "lane-check"]
        assert routed["result"]["route"] == "lambda" and routed["result"]["verdict"] == "PASS"
        assert not _jobs(lane, "functions/check/job.py")


def test_a_failed_check_job_ends_in_an_explicit_fail_receipt_naming_the_failure(moto_endpoint, tmp_path):
    from batchlane.evidence import load_receipt

    spec = copy_example(tmp_path / "lane")
    with deployed_lane(moto_endpoint, spec, env_overrides=TINY) as lane:
        # a broken deploy of the check job: it cannot read the lane spec and exits 2 before any receipt
        register_check_job_definition(lane.check_job_definition_name, lane.env,
                                      {"LANE_SPEC": str(tmp_path / "missing" / "lane.yaml")})
        result = lane.run({"outputs": ["customers_clean"]}, name="run-check-dies")
        assert result["status"] == "FAILED" and result["error"] == "OutputsUncertified"
        message = json.loads(result["cause"])["errorMessage"]
        assert "customers_clean: rejected: " in message and "the check job ended without a verdict" in message

        (job,) = _jobs(lane, "functions/check/job.py")
        assert job["exit_code"] == 2 and "check job: " in job["stderr"] and "lane.yaml" in job["stderr"]
        backend = _backend()
        checked = load_receipt(backend, "run-check-dies", "customers_clean", 1, "check")
        assert checked.verdict == "FAIL" and not checked.rules
        assert "the checker failed before a verdict: the check job ended without a verdict" in checked.error
        assert "exit code 2" in checked.error
        gate = load_receipt(backend, "run-check-dies", "customers_clean", 1, "gate")
        assert gate.decision == "rejected" and "exit code 2" in gate.reason
        assert backend.ledger.current("orders", "customers_clean") is None
        assert len(_jobs(lane, "functions/check/job.py")) == 1          # no retry of the check job


def _begun_attempt(lane: Any, run_id: str, output: str) -> int:
    """Plan a run and materialize one attempt (what Begin and Materialize do), without checking it."""
    import os
    import subprocess
    import sys

    from support.lane_aws import GATE_HANDLER, ROOT

    GATE_HANDLER({"action": "plan", "execution": run_id, "input": {"outputs": [output]}})
    start = GATE_HANDLER({"action": "begin", "run_id": run_id, "output": output, "trigger": "console"})
    job = subprocess.run([sys.executable, str(ROOT / "functions/materialize/main.py"), "--run-id", run_id,
                          "--output", output, "--attempt", str(start["attempt"])],
                         env={**os.environ, "AWS_BATCH_JOB_ID": "job-1"}, capture_output=True, text=True, check=False)
    assert job.returncode == 0, job.stderr
    return int(start["attempt"])


def test_a_check_job_out_of_memory_or_stopped_writes_a_fail_receipt_naming_the_budget(moto_endpoint, tmp_path,
                                                                                      monkeypatch):
    """In process: the job's own handling when the check raises MemoryError, or Batch stops it (SIGTERM)."""
    import signal

    import batchlane.gate
    from batchlane.evidence import load_receipt
    from functions.check import job as check_job

    spec = copy_example(tmp_path / "lane")
    with deployed_lane(moto_endpoint, spec) as lane:
        monkeypatch.setenv("LANE_CHECK_JOB_MEMORY_MIB", "8192")
        backend = _backend()

        def out_of_memory(*args: Any, **kwargs: Any) -> Any:
            raise MemoryError

        attempt = _begun_attempt(lane, "run-oom", "customers_clean")
        with monkeypatch.context() as patch:
            patch.setattr(batchlane.gate, "check", out_of_memory)
            assert check_job.main(["--run-id", "run-oom", "--output", "customers_clean",
                                   "--attempt", str(attempt)]) == 0
        checked = load_receipt(backend, "run-oom", "customers_clean", attempt, "check")
        assert checked.verdict == "FAIL"
        assert "too large for the checker's budget: the check job ran out of memory (8192 MiB)" in checked.error

        def stopped(*args: Any, **kwargs: Any) -> Any:
            signal.raise_signal(signal.SIGTERM)

        attempt = _begun_attempt(lane, "run-stopped", "customers_clean")
        previous = signal.getsignal(signal.SIGTERM)
        try:
            with monkeypatch.context() as patch:
                patch.setattr(batchlane.gate, "check", stopped)
                assert check_job.main(["--run-id", "run-stopped", "--output", "customers_clean",
                                       "--attempt", str(attempt)]) == 0
        finally:
            signal.signal(signal.SIGTERM, previous)
        checked = load_receipt(backend, "run-stopped", "customers_clean", attempt, "check")
        assert checked.verdict == "FAIL" and "check job was stopped before a verdict" in checked.error
        # Decide reads the job's receipt: rejected, naming the budget
        from support.lane_aws import GATE_HANDLER

        decision = GATE_HANDLER({"action": "decide", "run_id": "run-stopped", "output": "customers_clean",
                                 "attempt": attempt})
        assert decision["decision"] == "rejected"
        assert "too large for the checker's budget" in load_receipt(
            backend, "run-stopped", "customers_clean", attempt, "gate").reason


def test_check_job_refuses_bad_arguments_with_a_clear_error(capsys, monkeypatch, tmp_path):
    from functions.check import job as check_job

    with pytest.raises(SystemExit) as exited:
        check_job.main(["--run-id", "r", "--output", "o", "--attempt", "0"])
    assert exited.value.code == 2 and "--attempt must be 1 or more, got 0" in capsys.readouterr().err
    monkeypatch.delenv("LANE_SPEC", raising=False)
    assert check_job.main(["--run-id", "r", "--output", "o", "--attempt", "1"]) == 2
    assert "LANE_SPEC is not set: the check job needs the lane spec path" in capsys.readouterr().err
    spec = copy_example(tmp_path / "lane")
    monkeypatch.setenv("LANE_SPEC", str(spec))
    assert check_job.main(["--run-id", "r", "--output", "nope", "--attempt", "1"]) == 2
    assert "lane 'orders' has no output 'nope'" in capsys.readouterr().err


def test_lambda_budget_setting_is_validated(monkeypatch):
    from functions.check import handler

    monkeypatch.delenv("LANE_CHECK_LAMBDA_MAX_BYTES", raising=False)
    assert handler.lambda_max_bytes() == 2 * 1024**3
    monkeypatch.setenv("LANE_CHECK_LAMBDA_MAX_BYTES", "1048576")
    assert handler.lambda_max_bytes() == 1048576
    for bad, reason in (("2GB", "is not a whole number of bytes"), ("-1", "must be 0 or more bytes")):
        monkeypatch.setenv("LANE_CHECK_LAMBDA_MAX_BYTES", bad)
        with pytest.raises(handler.BadRequest, match=reason):
            handler.lambda_max_bytes()



def test_an_inline_lane_of_big_products_stays_inside_the_history_limit():
    """`auto` keeps inline up to INLINE_OUTPUT_LIMIT outputs. If every one of them is big (each through CheckJob,
    33 events instead of 27), as a chain with one Lambda retry each, the one history still fits: under 80%."""
    from stacks.asl import (
        EVENTS_PER_LAMBDA_RETRY,
        EVENTS_PER_RUN,
        EVENTS_PER_WAVE,
        HISTORY_LIMIT,
        INLINE_OUTPUT_LIMIT,
    )

    events = EVENTS_PER_RUN + INLINE_OUTPUT_LIMIT * (
        EVENTS_PER_WAVE["inline"] + EVENTS_PER_OUTPUT["checked_in_batch"] + EVENTS_PER_LAMBDA_RETRY)
    assert events < 0.8 * HISTORY_LIMIT, events


def test_staged_bytes_sums_the_attempts_staging_files_without_reading_them(tmp_path):
    """The size the check function routes by: every object under staging/RUN/OUTPUT/ATTEMPT/ (local store here; on
    S3 the ListObjectsV2 sizes, exercised by the moto scenarios above), and other attempts do not count."""
    from batchlane.backends import local_backend
    from functions.check import handler

    backend = local_backend(tmp_path / "home")
    backend.store.put_once("staging/r1/o/0001/part-0000.parquet", b"x" * 1000)
    backend.store.put_once("staging/r1/o/0001/report.json", b"{}")
    backend.store.put_once("staging/r1/o/0002/part-0000.parquet", b"y" * 5000)
    assert handler.staged_bytes(backend, "r1", "o", 1) == 1002
    assert handler.staged_bytes(backend, "r1", "o", 3) == 0


WIDE_SPEC = """\
lane: wide
outputs:
  events:
    inputs: {events: data/events.csv}
    contract:
      columns:
        event_id: {type: int64, not_null: true, unique: true}
      row_count: {min: 1}
"""


def _wide_lane(directory: Any, rows: int = 20_000) -> Any:
    """A lane whose one product holds a narrow checked key next to a wide column no rule reads."""
    import random

    spec = copy_example(directory)
    spec.write_text(WIDE_SPEC)
    generator = random.Random(3)
    lines = ["event_id,note"] + [f"{number},{generator.getrandbits(480):0120x}" for number in range(rows)]
    (spec.parent / "data" / "events.csv").write_text("\n".join(lines) + "\n")
    return spec


class _ProductWire:
    """GetObject calls of one boto3 client on Parquet keys: (Range header or None for a whole GET, bytes)."""

    def __init__(self, client: Any) -> None:
        self.client, self.gets = client, []
        client.meta.events.register("before-call.s3.GetObject", self._before)
        client.meta.events.register("after-call.s3.GetObject", self._after)

    @staticmethod
    def _before(params: dict, context: dict, **kwargs: Any) -> None:
        context["wire"] = (params.get("url_path", ""), params.get("headers", {}).get("Range"))

    def _after(self, parsed: dict, context: dict, **kwargs: Any) -> None:
        path, wanted = context.get("wire", ("", None))
        if path.endswith(".parquet") and "Error" not in parsed:
            self.gets.append((wanted, int(parsed["ContentLength"])))

    def close(self) -> None:
        self.client.meta.events.unregister("before-call.s3.GetObject", self._before)
        self.client.meta.events.unregister("after-call.s3.GetObject", self._after)


def _recorded(lane: Any, run_id: str, output: str) -> tuple[int, Any]:
    """A materialized attempt whose materialize receipt is recorded (hashing its files), not yet checked."""
    from batchlane.recording import record_materialized
    from batchlane.spec import load_spec

    attempt = _begun_attempt(lane, run_id, output)
    materialized = record_materialized(_backend(), load_spec(lane.spec_path), run_id, output, attempt)
    assert materialized.status == "succeeded", materialized.error
    return attempt, materialized


def test_the_check_job_reads_the_product_in_place_fetching_only_the_columns_its_rules_need(moto_endpoint, tmp_path,
                                                                                          monkeypatch):
    """No download: the job never calls the store's fetch; the rule scan's ranged GETs move less than the file,
    the hash stream reads it once in full, and the receipt's SHA-256 is the object's."""
    import hashlib

    from batchlane.evidence import load_receipt
    from batchlane.stores.aws import S3ObjectStore
    from batchlane.warm import lane_backend
    from functions.check import job as check_job

    spec = _wide_lane(tmp_path / "lane")
    with deployed_lane(moto_endpoint, spec) as lane:
        attempt, materialized = _recorded(lane, "run-wide", "events")
        (product,) = materialized.outputs
        stored = lane.client("s3").get_object(Bucket=product.uri.split("/")[2],
                                              Key=product.uri.split("/", 3)[3])["Body"].read()
        assert product.size == len(stored) > 1_000_000

        def no_download(self: Any, key: str, destination: Any) -> Any:
            raise AssertionError(f"the check job downloaded {key}")

        monkeypatch.setattr(S3ObjectStore, "fetch", no_download)
        wire = _ProductWire(lane_backend().store.s3)
        try:
            assert check_job.main(["--run-id", "run-wide", "--output", "events", "--attempt", str(attempt)]) == 0
        finally:
            wire.close()
        checked = load_receipt(_backend(), "run-wide", "events", attempt, "check")
        assert checked.verdict == "PASS", checked.error
        assert checked.products[0].sha256 == hashlib.sha256(stored).hexdigest() == product.sha256
        assert checked.products[0].version == product.version is not None

        whole = [size for wanted, size in wire.gets if wanted is None]
        ranged = sum(size for wanted, size in wire.gets if wanted is not None)
        assert whole == [product.size]                     # the hash stream: every byte, once
        assert 0 < ranged < product.size // 4, (ranged, product.size)   # the rule scan: footer + event_id chunks


def test_a_product_replaced_after_materialize_fails_the_check_job_never_a_pass_of_other_bytes(moto_endpoint, tmp_path):
    """Versioned bucket: a new version of a staged file after the materialize receipt recorded its version FAILs
    the check naming both versions (even with the same bytes: the recorded version is what is pinned). Without versioning (suspended here) the replaced bytes are read consistently
    by ETag and their SHA-256 differs from the receipt's: FAIL, as with a download."""
    import io

    import pyarrow.parquet as pq
    from support.aws_env import BUCKET
    from support.lane_aws import GATE_HANDLER

    from batchlane.evidence import load_receipt
    from functions.check import job as check_job

    spec = _wide_lane(tmp_path / "lane", rows=2_000)
    with deployed_lane(moto_endpoint, spec) as lane:
        s3 = lane.client("s3")
        attempt, materialized = _recorded(lane, "run-replaced", "events")
        (product,) = materialized.outputs
        key = product.uri.split("/", 3)[3]
        newer = s3.put_object(Bucket=BUCKET, Key=key, Body=s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        assert check_job.main(["--run-id", "run-replaced", "--output", "events", "--attempt", str(attempt)]) == 0
        checked = load_receipt(_backend(), "run-replaced", "events", attempt, "check")
        assert checked.verdict == "FAIL" and not checked.rules
        assert f"product file {key} cannot be read" in checked.error
        assert f"is now version {newer['VersionId']}, not version {product.version} that was recorded" in checked.error
        decision = GATE_HANDLER({"action": "decide", "run_id": "run-replaced", "output": "events", "attempt": attempt})
        assert decision["decision"] == "rejected"
        assert _backend().ledger.current("wide", "events") is None

        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})
        attempt, materialized = _recorded(lane, "run-unversioned", "events")
        (product,) = materialized.outputs
        assert product.version in (None, "null")
        key = product.uri.split("/", 3)[3]
        table = pq.read_table(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()))
        changed = io.BytesIO()
        pq.write_table(table.slice(1), changed)          # a valid product, one row short: the rules alone pass it
        s3.put_object(Bucket=BUCKET, Key=key, Body=changed.getvalue())
        assert check_job.main(["--run-id", "run-unversioned", "--output", "events", "--attempt", str(attempt)]) == 0
        checked = load_receipt(_backend(), "run-unversioned", "events", attempt, "check")
        assert checked.verdict == "FAIL"
        assert "product bytes changed between materialize and check" in checked.error
        assert checked.products[0].size == len(changed.getvalue()) != product.size
