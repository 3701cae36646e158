"""Issue 11 on AWS: a partitioned product is materialized as an AWS Batch array job, one child per partition to
build, by the real statemachines/lane.asl.json under moto.

One output partitioned by its ``day`` input (data/day-N.csv), reading ``rates`` whole. The transform appends the
day it was called for to calls.log, so "each child built exactly one partition" and "only that partition was
built" are observed, not assumed. A day with value -1 makes the transform raise (that partition fails, its child
reports it); a day with value 99 kills the child process before it reports (os._exit: a crash).

moto 5.2.5 creates the children of an array job but gives them no AWS_BATCH_JOB_ARRAY_INDEX and never fails
the parent: tests/support/moto_patches.py ``batch_array_jobs`` (canary in test_moto_patches.py) fixes both,
as AWS documents array jobs. Each scenario writes its execution history to /tmp/batchlane-sfn-history/partitions.txt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.lane_aws import GATE_HANDLER, deployed_lane
from support.sfn_history import reset_summary, summarize, write_summary

from stacks.asl import EVENTS_PER_OUTPUT

pytestmark = pytest.mark.xdist_group("moto_server")

LANE, OUTPUT = "parts", "events"
TRANSFORMS = '''
import os
from pathlib import Path


def events(day, rates):
    with Path(__file__).with_name("calls.log").open("a") as handle:
        handle.write(f"{int(day['day'].iloc[0])}\\n")
    if (day["value"] == 99).any():
        os._exit(3)                      # the job process dies: no report for this partition
    if (day["value"] < 0).any():
        raise ValueError("negative value in day " + str(int(day["day"].iloc[0])))
    out = day.copy()
    out["amount"] = out["value"] * float(rates["rate"].iloc[0])
    return out[["id", "day", "amount"]]
'''
SPEC = '''
lane: parts
outputs:
  events:
    inputs: {day: data/day-*.csv, rates: data/rates.csv}
    partition_by: day
    transform: transforms:events
    contract:
      columns:
        id: {type: int64, not_null: true, unique: true}
        day: {type: int64}
        amount: {type: float64, min: 0}
'''
BUILT_STATES = ["Begin", "ToRun?", "{job}", "Check", "CheckInBatch?", "Decide"]


@pytest.fixture(scope="module", autouse=True)
def _fresh_summary() -> None:
    reset_summary("partitions")


def _lane(directory: Path, days: tuple[int, ...] = (1, 2, 3)) -> Path:
    (directory / "data").mkdir(parents=True)
    (directory / "transforms.py").write_text(TRANSFORMS)
    (directory / "lane.yaml").write_text(SPEC)
    (directory / "data" / "rates.csv").write_text("rate\n2.0\n")
    for day in days:
        _write_day(directory, day)
    return directory / "lane.yaml"


def _write_day(lane: Path, day: int, value: int = 1) -> None:
    (lane / "data" / f"day-{day}.csv").write_text(f"id,day,value\n{day * 10 + 1},{day},{value}\n"
                                                  f"{day * 10 + 2},{day},{value}\n")


def _calls(lane: Path) -> list[int]:
    log = lane / "calls.log"
    days = sorted(int(line) for line in log.read_text().split()) if log.exists() else []
    log.unlink(missing_ok=True)
    return days


def _backend() -> Any:
    from batchlane.backends import backend_from_env

    return backend_from_env("aws")


def _materialized(backend: Any, run_id: str, attempt: int) -> Any:
    from batchlane.evidence import load_receipt

    return load_receipt(backend, run_id, OUTPUT, attempt, "materialize")


def _statuses(receipt: Any) -> dict[str, str]:
    return {part.name: part.status for part in receipt.partitions}


def _history(lane: Any, arn: str, title: str) -> Any:
    summary = summarize(lane.history(arn))
    write_summary("partitions", summary.render(title))
    return summary


def _children(lane: Any, parent: str) -> list[dict]:
    """The array job's children as Batch lists them (ListJobs arrayJobId), described, by index."""
    batch = lane.client("batch")
    listed = [item["jobId"] for item in batch.list_jobs(arrayJobId=parent)["jobSummaryList"]]
    described = batch.describe_jobs(jobs=listed)["jobs"] if listed else []
    return sorted(described, key=lambda job: job["arrayProperties"]["index"])


def _reports(backend: Any, run_id: str, attempt: int) -> dict[str, dict]:
    """The job's report(s) in the attempt's staging prefix, by file name."""
    from batchlane.receipts import staging_prefix

    prefix = staging_prefix(run_id, OUTPUT, attempt)
    return {key.removeprefix(prefix): json.loads(backend.store.get(key))
            for key in backend.store.list_keys(prefix) if key.endswith(".json")}


def _jobs_of(lane: Any, run_id: str, attempt: int) -> list[dict]:
    """Jobs the Batch patch ran (children and plain jobs) for the attempt, from their environment."""
    return [job for job in lane.calls["batch"]
            if job["environment"].get("LANE_RUN_ID") == run_id and job["environment"].get("LANE_ATTEMPT") == str(attempt)]


def test_partitions_build_as_an_array_job_one_child_per_partition(moto_endpoint, tmp_path):
    from batchlane.partitions import merkle_root
    from batchlane.verify import verify_run

    spec = _lane(tmp_path / "lane")
    lane_dir = spec.parent
    with deployed_lane(moto_endpoint, spec) as lane:
        backend = _backend()

        # 1. three partitions to build: one array job of size 3, child N builds the Nth partition
        arn = lane.start({}, name="parts-full")
        result = lane.wait(arn)
        assert result["status"] == "SUCCEEDED", result.get("cause")
        summary = _history(lane, arn, "3 partitions to build: array job of 3")
        history = summary.outputs[OUTPUT]
        assert history.states == [state.format(job="MaterializeArray") for state in BUILT_STATES]
        assert history.events == EVENTS_PER_OUTPUT["built"]        # an array job costs the plain job's events
        assert _calls(lane_dir) == [1, 2, 3]                        # each partition built once
        receipt = _materialized(backend, "parts-full", 1)
        assert receipt.status == "succeeded"
        parent = lane.client("batch").describe_jobs(jobs=[receipt.job_id])["jobs"][0]   # the receipt names the array
        assert parent["arrayProperties"]["size"] == 3 and parent["status"] == "SUCCEEDED"
        assert parent["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 3
        children = _children(lane, receipt.job_id)
        assert [child["jobId"] for child in children] == [f"{receipt.job_id}:{index}" for index in range(3)]
        assert all(child["status"] == "SUCCEEDED" for child in children)
        ran = _jobs_of(lane, "parts-full", 1)
        assert sorted(job["environment"]["AWS_BATCH_JOB_ARRAY_INDEX"] for job in ran) == ["0", "1", "2"]
        reports = _reports(backend, "parts-full", 1)
        assert sorted(reports) == ["report-0000.json", "report-0001.json", "report-0002.json"]  # no whole report.json
        built_by = {report["job_id"]: [part["name"] for part in report["partitions"]] for report in reports.values()}
        assert built_by == {f"{receipt.job_id}:{index}": [f"data/day-{index + 1}.csv"] for index in range(3)}
        assert _statuses(receipt) == {f"data/day-{day}.csv": "built" for day in (1, 2, 3)}
        assert receipt.partitions_root == merkle_root([(part.name, part.file.sha256) for part in receipt.partitions])
        assert sorted(file.uri.rsplit("/", 1)[1] for file in receipt.outputs) == [
            "part-0000.parquet", "part-0001.parquet", "part-0002.parquet"]
        pointer = backend.ledger.current(LANE, OUTPUT)
        assert (pointer.run_id, pointer.attempt) == ("parts-full", 1)
        assert verify_run(backend, "parts-full").ok

        # 2. one new file: one partition to build -> a plain job (Batch arrays start at 2), the others reused
        _write_day(lane_dir, 4)
        arn = lane.start({}, name="parts-add")
        result = lane.wait(arn)
        assert result["status"] == "SUCCEEDED", result.get("cause")
        history = _history(lane, arn, "1 partition to build: plain job").outputs[OUTPUT]
        assert history.states == [state.format(job="Materialize") for state in BUILT_STATES]
        assert _calls(lane_dir) == [4]
        receipt = _materialized(backend, "parts-add", 1)
        assert _statuses(receipt) == {"data/day-1.csv": "reused", "data/day-2.csv": "reused",
                                      "data/day-3.csv": "reused", "data/day-4.csv": "built"}
        (job,) = _jobs_of(lane, "parts-add", 1)
        assert "AWS_BATCH_JOB_ARRAY_INDEX" not in job["environment"]
        assert "arrayProperties" not in lane.client("batch").describe_jobs(jobs=[receipt.job_id])["jobs"][0]
        assert sorted(_reports(backend, "parts-add", 1)) == ["report.json"]
        assert len(receipt.outputs) == 4
        assert receipt.partitions_root == merkle_root([(part.name, part.file.sha256) for part in receipt.partitions])
        assert backend.ledger.current(LANE, OUTPUT).run_id == "parts-add"

        # 3. three to build: day 5's transform raises, day 6's child dies before reporting, day 7 builds
        _write_day(lane_dir, 5, value=-1)
        _write_day(lane_dir, 6, value=99)
        _write_day(lane_dir, 7)
        arn = lane.start({}, name="parts-fail")
        result = lane.wait(arn)
        assert result["status"] == "FAILED" and result["error"] == "OutputsUncertified", result.get("cause")
        history = _history(lane, arn, "array of 3: one partition fails, one child crashes").outputs[OUTPUT]
        assert history.states == ["Begin", "ToRun?", "MaterializeArray", "RecordCrash", "Decide"]
        assert _calls(lane_dir) == [5, 6, 7]
        receipt = _materialized(backend, "parts-fail", 1)
        assert receipt.status == "failed"
        assert _statuses(receipt) == {"data/day-1.csv": "reused", "data/day-2.csv": "reused",
                                      "data/day-3.csv": "reused", "data/day-4.csv": "reused",
                                      "data/day-5.csv": "failed", "data/day-6.csv": "failed",
                                      "data/day-7.csv": "built"}
        errors = {part.name: part.error for part in receipt.partitions if part.error}
        assert "negative value in day 5" in errors["data/day-5.csv"]
        parent_id = receipt.job_id
        assert errors["data/day-6.csv"].startswith(
            f"the job reported nothing for this partition: array child {parent_id}:1 wrote no report-")
        assert "array job: 2 of 3 child jobs failed" in errors["data/day-6.csv"]
        assert "2 partition(s) failed" in receipt.error
        parent = lane.client("batch").describe_jobs(jobs=[parent_id])["jobs"][0]
        assert parent["status"] == "FAILED" and parent["arrayProperties"]["statusSummary"]["FAILED"] == 2
        exits = {job["environment"]["AWS_BATCH_JOB_ARRAY_INDEX"]: job["exit_code"]
                 for job in _jobs_of(lane, "parts-fail", 1)}
        assert exits == {"0": 1, "1": 3, "2": 0}       # failed partition: exit 1 with a report; crash: exit 3
        assert backend.ledger.current(LANE, OUTPUT).run_id == "parts-add"    # the last certified stays in force

        # 4. fix both, rerun the failed run: attempt 2 builds days 5 and 6 only (an array of 2), reuses day 7
        _write_day(lane_dir, 5)
        _write_day(lane_dir, 6)
        arn = lane.start({"rerun_of": "parts-fail"}, name="parts-rerun")
        result = lane.wait(arn)
        assert result["status"] == "SUCCEEDED", result.get("cause")
        history = _history(lane, arn, "rerun of the failed: array of 2").outputs[OUTPUT]
        assert history.states == [state.format(job="MaterializeArray") for state in BUILT_STATES]
        assert _calls(lane_dir) == [5, 6]
        receipt = _materialized(backend, "parts-fail", 2)
        statuses = _statuses(receipt)
        assert statuses.pop("data/day-5.csv") == statuses.pop("data/day-6.csv") == "built"
        assert set(statuses.values()) == {"reused"} and len(statuses) == 5
        day7 = next(part for part in receipt.partitions if part.name == "data/day-7.csv")
        assert day7.reused_from == "receipts/parts-fail/events/0001-materialize.json"
        parent = lane.client("batch").describe_jobs(jobs=[receipt.job_id])["jobs"][0]
        assert parent["arrayProperties"]["size"] == 2 and parent["status"] == "SUCCEEDED"
        pointer = backend.ledger.current(LANE, OUTPUT)
        assert (pointer.run_id, pointer.attempt) == ("parts-fail", 2)
        from batchlane.gate import read_table

        assert sorted(set(read_table(backend, LANE, OUTPUT).column("day").to_pylist())) == [1, 2, 3, 4, 5, 6, 7]
        assert verify_run(backend, "parts-fail").ok


def test_begin_says_how_to_submit_and_refuses_more_partitions_than_an_array_holds(moto_endpoint, tmp_path,
                                                                                  monkeypatch):
    """The gate's Begin returns array_size (the core's batch_array_size); with more partitions to build than an
    array job holds (BATCH_ARRAY_MAX, lowered here to 2), the attempt fails before any job, saying why."""
    from batchlane.partitions import BATCH_ARRAY_MAX, TooManyPartitions, batch_array_size

    assert [batch_array_size(count) for count in (None, 0, 1, 2, 3, BATCH_ARRAY_MAX)] == [0, 0, 0, 2, 3, 10_000]
    with pytest.raises(TooManyPartitions, match="10,001 partitions to build exceed"):
        batch_array_size(BATCH_ARRAY_MAX + 1)
    spec = _lane(tmp_path / "lane", days=(1, 2, 3))
    with deployed_lane(moto_endpoint, spec):
        backend = _backend()
        plan = GATE_HANDLER({"action": "plan", "execution": "parts-begin", "input": {}})
        assert plan["work"]["waves"] == [[OUTPUT]]
        start = GATE_HANDLER({"action": "begin", "run_id": "parts-begin", "output": OUTPUT})
        assert (start["action"], start["array_size"]) == ("materialize", 3)
        assert "timeout_seconds" not in start  # only when the state machine passes the single job's wait
        monkeypatch.setitem(GATE_HANDLER.__globals__, "BATCH_ARRAY_MAX", 2)
        refused = GATE_HANDLER({"action": "begin", "run_id": "parts-begin", "output": OUTPUT})
        assert (refused["action"], refused["attempt"], refused["array_size"]) == ("failed", 2, 0)
        receipt = _materialized(backend, "parts-begin", 2)
        assert receipt.status == "failed" and receipt.job_id == "none"
        assert "3 partitions to build exceed the 2 one attempt may build" in receipt.error
        assert "partition by fewer, larger files" in receipt.error
        decided = GATE_HANDLER({"action": "decide", "run_id": "parts-begin", "output": OUTPUT, "attempt": 2})
        assert decided["decision"] == "rejected"


def test_an_array_jobs_wait_grows_with_the_rounds_its_children_run_in(moto_endpoint, tmp_path, monkeypatch):
    """Batch's timeout counts per child and only the compute environment's job slots run at once, so the
    MaterializeArray task waits one job timeout more per extra round (Begin's ``timeout_seconds``)."""
    from batchlane.partitions import array_timeout_seconds

    assert array_timeout_seconds(0, 4_200, 3_600, 16) == 4_200  # a plain job: the single job's wait
    assert array_timeout_seconds(16, 4_200, 3_600, 16) == 4_200  # one round
    assert array_timeout_seconds(17, 4_200, 3_600, 16) == 4_200 + 3_600
    assert array_timeout_seconds(10_000, 4_200, 3_600, 16) == 4_200 + 624 * 3_600
    with pytest.raises(ValueError, match="job slots must be 1 or more"):
        array_timeout_seconds(3, 4_200, 3_600, 0)
    spec = _lane(tmp_path / "lane", days=(1, 2, 3))
    monkeypatch.setenv("LANE_JOB_TIMEOUT_SECONDS", "600")
    monkeypatch.setenv("LANE_JOB_SLOTS", "2")
    with deployed_lane(moto_endpoint, spec):
        GATE_HANDLER({"action": "plan", "execution": "parts-wait", "input": {}})
        start = GATE_HANDLER({"action": "begin", "run_id": "parts-wait", "output": OUTPUT,
                              "materialize_timeout_seconds": 1_500})
        assert (start["array_size"], start["timeout_seconds"]) == (3, 1_500 + 600)  # 3 children, 2 at once


def test_the_array_job_is_allowed_by_the_synthesized_policies(moto_endpoint, tmp_path_factory):
    """The IAM proof (tests/aws/test_iam_proof.py) for the array path: the partitioned lane deployed with the
    shipped stack's template, every AWS call recorded per component (the state machine's array SubmitJob, the
    children's staging writes, the gate and the checker) and evaluated against that template's policies."""
    from support.aws_env import ACCOUNT, BUCKET, BUS, REGION, TABLE
    from support.call_recording import acting_as, recording
    from support.iam_proof import Names, PolicySet, figures, moto_resolver, proof_requests, simulate
    from support.lane_aws import FUNCTIONS, JOB_QUEUE
    from support.synth import session_synth

    root = tmp_path_factory.mktemp("iam-partitions")
    spec = _lane(root / "lane")
    template = session_synth(tmp_path_factory).template("default")
    with deployed_lane(moto_endpoint, spec, template=template, record_dir=root / "calls") as lane, \
            recording(root / "calls") as calls:
        with acting_as("operator"):
            result = lane.run({}, name="parts-iam")
        resolver = moto_resolver(template, region=REGION, account=ACCOUNT, bucket=BUCKET, table=TABLE, bus=BUS,
                                 functions=FUNCTIONS, job_queue=JOB_QUEUE, state_machine_arn=lane.state_machine_arn,
                                 consumer_queues=lane.consumer_queues)
        policies = PolicySet(template, resolver, BUCKET)
        jobs = list(lane.calls["batch"])
    assert result["status"] == "SUCCEEDED", result.get("cause")
    assert sorted(job["environment"]["AWS_BATCH_JOB_ARRAY_INDEX"] for job in jobs) == ["0", "1", "2"]
    submits = [call for call in calls if call["operation"] == "SubmitJob"]
    assert [call["params"].get("arrayProperties") for call in submits] == [{"size": 3}]
    requests = proof_requests(calls, Names(region=REGION, account=ACCOUNT), ("batch:submitJob.sync",))
    verdicts = simulate(requests, policies)
    report = figures(calls, verdicts)
    assert report["not_allowed"] == []
    writes = [r for r in requests if r.principal == "job" and r.action == "s3:PutObject"]
    assert sorted(r.resource.rsplit("/", 1)[1] for r in writes) == [
        "part-0000.parquet", "part-0001.parquet", "part-0002.parquet",
        "report-0000.json", "report-0001.json", "report-0002.json"]
    assert all(r.resource.startswith(f"arn:aws:s3:::{BUCKET}/staging/parts-iam/events/0001/") for r in writes)
