"""The IAM proof moto cannot give.

The moto scenarios (the real ASL, the handlers in process, the Batch job as a subprocess, the operator's
`lane` commands, a consumer reading through the resolve function) run with every AWS call recorded with the
component that made it (tests/support/call_recording.py). Each call becomes the IAM request AWS evaluates
(tests/support/iam_requests.py) and is evaluated with @cloud-copilot/iam-simulate against that component's
policies exactly as synthesized in the stack's template (identity policies + the lane bucket's policy).
Step Functions' own calls for `batch:submitJob.sync` come from the documented table in stacks/orchestration.py.

Proven here: every recorded call is allowed; removing any one needed statement denies something (canary);
the job's forge (a pointer, a gate receipt, an event) is denied; s3:// inputs run end to end with exactly the
declared prefixes granted, and a missing input grant ends the attempt naming AccessDenied.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from support.aws_env import ACCOUNT, BUCKET, BUS, REGION, TABLE, patched_env
from support.call_recording import acting_as, recording
from support.iam_proof import (
    IamRequest,
    Names,
    PolicySet,
    ProofError,
    figures,
    iam_requests,
    moto_resolver,
    proof_requests,
    simulate,
)
from support.lane_aws import FUNCTIONS, JOB_QUEUE, ROOT, copy_example, deployed_lane, register_job_definition
from support.synth import LANDING_SPEC, session_synth

pytestmark = pytest.mark.xdist_group("moto_server")

SYNC = ("batch:submitJob.sync",)
LANDING_BUCKET = "lane-landing-bucket"


@dataclass
class ProofRun:
    calls: list[dict[str, Any]]
    policies: PolicySet
    names: Names
    outcomes: dict[str, Any]

    def requests(self) -> list[IamRequest]:
        return proof_requests(self.calls, self.names, SYNC)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return session_synth(tmp_path_factory)


def _policies(template: dict, lane) -> PolicySet:
    resolver = moto_resolver(
        template, region=REGION, account=ACCOUNT, bucket=BUCKET, table=TABLE, bus=BUS, functions=FUNCTIONS,
        job_queue=JOB_QUEUE, state_machine_arn=lane.state_machine_arn, consumer_queues=lane.consumer_queues)
    return PolicySet(template, resolver, BUCKET)


def _cli(*argv: str) -> tuple[int, str]:
    import contextlib
    import io

    from batchlane.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            code = main([str(arg) for arg in argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue()


def _break_payments(spec: Path) -> None:
    with (spec.parent / "data" / "payments.jsonl").open("a") as handle:
        for number in range(3):
            handle.write(json.dumps({"payment_id": 90000 + number, "order_id": 1, "amount": 1000.0,
                                     "paid_at": "2026-01-02T00:00:00"}) + "\n")


@pytest.fixture(scope="module")
def example(moto_endpoint, synth, tmp_path_factory) -> Iterator[ProofRun]:
    """The example lane deployed from its synthesized template; runs, a rejection + rerun, a job crash, the
    operator's lane commands and a consumer, all recorded."""
    root = tmp_path_factory.mktemp("iam-example")
    spec = copy_example(root / "lane")
    template = synth.template("default")
    outcomes: dict[str, Any] = {}
    with deployed_lane(moto_endpoint, spec, template=template, record_dir=root / "calls") as lane, \
            recording(root / "calls") as calls:
        with acting_as("operator"):
            outcomes["pass"] = lane.run({}, name="iam-pass")
        transforms = spec.parent / "transforms.py"
        good_payments = (spec.parent / "data" / "payments.jsonl").read_text()
        _break_payments(spec)
        with acting_as("operator"):
            outcomes["fail"] = lane.run({"outputs": ["order_payments"]}, name="iam-fail")
        (spec.parent / "data" / "payments.jsonl").write_text(good_payments)
        transforms.write_text(transforms.read_text().replace(
            '    """Per order: what was paid', '    import os\n    os._exit(3)\n    """Per order: what was paid'))
        with acting_as("operator"):
            outcomes["crash"] = lane.run({"rerun_of": "iam-fail"}, name="iam-crash")
        # fix the code, "cdk deploy" (a new job-definition revision of the same name), then rerun
        transforms.write_text((ROOT / "examples/orders/transforms.py").read_text() + "\n# fixed: no exit\n")
        register_job_definition(lane.job_definition_name, lane.env, {"LANE_DEPLOYED_REVISION": "2"})
        # the rerun's product counts as big (check function budget 1 byte): the Batch check job checks it
        with acting_as("operator"), patched_env({"LANE_CHECK_LAMBDA_MAX_BYTES": "1"}):
            outcomes["rerun"] = lane.run({"rerun_of": "iam-fail"}, name="iam-rerun")
            lane.history(outcomes["rerun"]["executionArn"])
            outcomes["status"] = _cli("status", "--backend", "aws", "--json")
            outcomes["show"] = _cli("show", "iam-pass", "--backend", "aws", "--json")
            outcomes["verify"] = _cli("verify", "iam-pass", "--backend", "aws")
            outcomes["read"] = _cli("read", "orders_clean", "--out", str(root / "orders.parquet"), "--backend", "aws")
        with acting_as("consumer:fraud-stream"), patched_env({"LANE_CONSUMER_STATE": str(root / "consumer.sqlite")}):
            from batchlane.consume import consumer

            follower = consumer("fraud-stream", queue_url=lane.consumer_queues["FraudStream"],
                                resolve_function=FUNCTIONS["resolve"])
            read = []
            for delivery in follower.follow(poll=None):
                if delivery.kind == "certified":
                    read.append((delivery.output, len(delivery.read())))
                delivery.ack()
            outcomes["consumer"] = read
        outcomes["jobs"] = list(lane.calls["batch"])
    yield ProofRun(calls, _policies(template, lane), Names(region=REGION, account=ACCOUNT), outcomes)


def test_the_scenarios_did_what_they_say(example):
    outcomes = example.outcomes
    assert outcomes["pass"]["status"] == "SUCCEEDED", outcomes["pass"].get("cause")
    assert outcomes["fail"]["status"] == "FAILED" and outcomes["fail"]["error"] == "OutputsUncertified"
    assert outcomes["crash"]["status"] == "FAILED" and "exit code 3" in outcomes["crash"]["cause"]
    assert outcomes["rerun"]["status"] == "SUCCEEDED", outcomes["rerun"].get("cause")
    for command in ("status", "show", "verify", "read"):
        assert outcomes[command][0] == 0, (command, outcomes[command])
    # fraud-stream follows orders_clean and order_payments: it read certified versions through resolve
    assert {output for output, rows in outcomes["consumer"] if rows > 0} == {"orders_clean", "order_payments"}
    principals = {call["principal"] for call in example.calls}
    assert {"job", "check", "check-job", "gate", "resolve", "state-machine", "operator",
            "consumer:fraud-stream"} <= principals
    (check_job,) = [job for job in outcomes["jobs"] if "/functions/check/job.py" in " ".join(job["command"])]
    assert check_job["exit_code"] == 0 and check_job["command"][-1] == "3"     # iam-fail's attempt 3


def test_jobs_are_submitted_by_name_so_a_deploy_before_the_rerun_runs_the_new_revision(example):
    """The ASL names the job definition, not a revision: after `cdk deploy` registered revision 2 (and
    CloudFormation deregistered revision 1), the rerun's job runs revision 2."""
    jobs = example.outcomes["jobs"]
    crashed = [job for job in jobs if job["exit_code"] == 3]
    # iam-fail: attempt 1 rejected (bad data), attempt 2 crashed (exit 3), attempt 3 after the deploy
    rerun = [job for job in jobs if job["environment"].get("LANE_ATTEMPT") == "3"]
    assert crashed and all("LANE_DEPLOYED_REVISION" not in job["environment"] for job in crashed)
    assert len(rerun) == 1 and rerun[0]["environment"].get("LANE_DEPLOYED_REVISION") == "2"
    assert rerun[0]["exit_code"] == 0
    submits = [call for call in example.calls if call["operation"] == "SubmitJob"]
    assert submits and {call["params"]["jobDefinition"] for call in submits} == {
        "Batchlane-orders-materialize", "Batchlane-orders-check"}


def test_every_recorded_call_is_allowed_by_the_synthesized_policies(example):
    verdicts = simulate(example.requests(), example.policies)
    report = figures(example.calls, verdicts)
    print(f"\nIAM proof (example lane): {report['recorded_calls']} recorded calls, {report['distinct_requests']} "
          f"distinct requests, {report['principal_action_pairs']} (principal, action) pairs, "
          f"{report['allowed']} allowed")
    for principal, action in report["pairs"]:
        print(f"  {principal:24} {action}")
    assert report["not_allowed"] == []
    assert report["recorded_calls"] > 100 and report["principal_action_pairs"] > 20
    # what the integration table adds for .sync was evaluated too
    assert any(v.request.source.startswith("implicit") and v.request.action == "events:PutRule" for v in verdicts)


def test_job_calls_stay_in_staging_and_lookups(example):
    """Privilege separation as the job actually behaved: reads, lookups, and writes only under staging/."""
    job = [r for r in example.requests() if r.principal == "job"]
    assert job
    writes = [r for r in job if r.action in ("s3:PutObject", "s3:AbortMultipartUpload")]
    assert writes and all(r.resource.startswith(f"arn:aws:s3:::{BUCKET}/staging/") for r in writes)
    assert {r.action for r in job} <= {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:PutObject",
                                       "s3:AbortMultipartUpload", "dynamodb:GetItem", "dynamodb:Query"}


def test_check_job_writes_only_receipts_and_the_ledger(example):
    """The Batch check job (trusted) records and checks: it writes receipts/, never staging/, and no event."""
    checker = [r for r in example.requests() if r.principal == "check-job"]
    writes = [r for r in checker if r.action == "s3:PutObject"]
    assert writes and all(r.resource.startswith(f"arn:aws:s3:::{BUCKET}/receipts/iam-fail/") for r in writes)
    assert {r.action for r in checker} <= {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:PutObject",
                                           "dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem",
                                           "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"}


@pytest.mark.parametrize("principal, sid", [
    ("job", "WriteLaneObjects"),
    ("check-job", "WriteLaneObjects"),
    ("check-job", "LedgerWrite"),
    ("check", "LedgerWrite"),
    ("gate", "PublishLaneEvents"),
    ("gate", "WriteLaneObjects"),
    ("state-machine", "InvokeLaneFunctions"),
    ("state-machine", "IntegrationRule"),
    ("operator", "ReadLedger"),
    ("resolve", "ReadLaneObjects"),
])
def test_canary_removing_one_needed_statement_denies(example, principal, sid):
    weakened = example.policies.without_statement(principal, sid)
    denied = [v for v in simulate(example.requests(), weakened) if not v.allowed]
    assert denied and {v.request.principal for v in denied} == {principal}


def _forge_calls(lane_name: str) -> list[dict[str, Any]]:
    """What a malicious transform would do from inside the job: certify its own bytes."""
    pointer = {"pk": {"S": f"CERT#{lane_name}#orders_clean"}, "sk": {"S": "POINTER"}}
    return [
        {"principal": "job", "service": "dynamodb", "operation": "PutItem",
         "params": {"TableName": TABLE, "Item": pointer}},
        {"principal": "job", "service": "dynamodb", "operation": "UpdateItem",
         "params": {"TableName": TABLE, "Key": pointer}},
        {"principal": "job", "service": "dynamodb", "operation": "TransactWriteItems",
         "params": {"TransactItems": [{"Put": {"TableName": TABLE, "Item": pointer}}]}},
        {"principal": "job", "service": "s3", "operation": "PutObject",
         "params": {"Bucket": BUCKET, "Key": "receipts/r/orders_clean/0001-gate.json", "IfNoneMatch": "*"}},
        {"principal": "job", "service": "s3", "operation": "PutObject",
         "params": {"Bucket": BUCKET, "Key": "receipts/r/orders_clean/0001-materialize.json", "IfNoneMatch": "*"}},
        {"principal": "job", "service": "events", "operation": "PutEvents",
         "params": {"Entries": [{"EventBusName": BUS, "DetailType": "DataProductCertified"}]}},
    ]


def test_the_forge_is_denied(example):
    verdicts = simulate([r for call in _forge_calls("orders") for r in iam_requests(call, example.names)],
                        example.policies)
    # 5 distinct requests (the transaction's Put is the same request as the PutItem)
    assert {(v.request.action, v.request.resource.rsplit("/", 1)[-1]) for v in verdicts} == {
        ("dynamodb:PutItem", TABLE), ("dynamodb:UpdateItem", TABLE), ("s3:PutObject", "0001-gate.json"),
        ("s3:PutObject", "0001-materialize.json"), ("events:PutEvents", BUS)}
    assert [v for v in verdicts if v.allowed] == []
    # and the receipts are write-once for everyone: a PUT without If-None-Match is denied even to the gate
    overwrite = {"principal": "gate", "service": "s3", "operation": "PutObject",
                 "params": {"Bucket": BUCKET, "Key": "receipts/r/orders_clean/0001-gate.json"}}
    (verdict,) = simulate(iam_requests(overwrite, example.names), example.policies)
    assert verdict.result == "ExplicitlyDenied"


def test_an_unmapped_call_fails_the_proof_closed(example):
    with pytest.raises(ProofError, match="no IAM mapping"):
        iam_requests({"principal": "gate", "service": "s3", "operation": "PutBucketPolicy", "params": {}},
                     example.names)


# --------------------------------------------------------------------------- s3:// inputs end to end


def _landing_data() -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=LANDING_BUCKET)
    s3.put_bucket_versioning(Bucket=LANDING_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=LANDING_BUCKET, Key="customers/part-1.csv", Body=b"customer_id,name\n1,a\n2,b\n")
    s3.put_object(Bucket=LANDING_BUCKET, Key="customers/part-2.csv", Body=b"customer_id,name\n3,c\n")
    s3.put_object(Bucket=LANDING_BUCKET, Key="orders/2026/jan.csv", Body=b"order_id,amount\n10,5.0\n11,7.5\n")
    s3.put_object(Bucket=LANDING_BUCKET, Key="orders/2025/old.csv", Body=b"order_id,amount\n1,1.0\n")


@pytest.fixture(scope="module")
def landing(moto_endpoint, synth, tmp_path_factory) -> Iterator[ProofRun]:
    root = tmp_path_factory.mktemp("iam-landing")
    template = synth.template("landing")
    with deployed_lane(moto_endpoint, LANDING_SPEC, template=template, record_dir=root / "calls") as lane, \
            recording(root / "calls") as calls:
        _landing_data()
        with acting_as("operator"):
            result = lane.run({}, name="landing-1")
    yield ProofRun(calls, _policies(template, lane), Names(region=REGION, account=ACCOUNT), {"run": result})


def test_s3_inputs_run_end_to_end_with_exactly_the_declared_prefixes(landing):
    assert landing.outcomes["run"]["status"] == "SUCCEEDED", landing.outcomes["run"].get("cause")
    verdicts = simulate(landing.requests(), landing.policies)
    report = figures(landing.calls, verdicts)
    print(f"\nIAM proof (s3:// input lane): {report['recorded_calls']} recorded calls, {report['distinct_requests']} "
          f"distinct requests, {report['principal_action_pairs']} (principal, action) pairs, {report['allowed']} allowed")
    assert [v for v in verdicts if not v.allowed] == []
    inputs = [v.request for v in verdicts if LANDING_BUCKET in v.request.resource]
    readers = {request.principal for request in inputs}
    assert readers == {"job", "gate"}             # begin lists/HEADs, the job reads; nobody else touches inputs
    for request in inputs:
        if request.action == "s3:ListBucket":
            assert dict(request.context)["s3:prefix"] in ("customers/", "orders/2026/")
        else:
            assert request.resource.split(f"{LANDING_BUCKET}/")[1].startswith(("customers/", "orders/2026/"))
    # the grant is exactly the declared prefixes: the 2025 folder next to them is not readable
    decoy = {"principal": "job", "service": "s3", "operation": "GetObject",
             "params": {"Bucket": LANDING_BUCKET, "Key": "orders/2025/old.csv"}}
    listing = {"principal": "gate", "service": "s3", "operation": "ListObjectsV2",
               "params": {"Bucket": LANDING_BUCKET, "Prefix": "orders/"}}
    denied = simulate(iam_requests(decoy, landing.names) + iam_requests(listing, landing.names), landing.policies)
    assert [v.result for v in denied] == ["ImplicitlyDenied", "ImplicitlyDenied"]


def test_a_missing_input_grant_ends_in_a_failed_attempt_naming_access_denied(landing, moto_endpoint, tmp_path):
    """The job's policy without its input statement, evaluated by the simulator, says which of the job's real
    calls AWS would refuse; the same run with exactly those calls refused fails the attempt with AccessDenied."""
    weakened = landing.policies.without_statement("job", "ReadSpecInputs0")
    refused = {(v.request.action, v.request.resource) for v in simulate(landing.requests(), weakened)
               if not v.allowed}
    assert refused and all(LANDING_BUCKET in resource for _, resource in refused)
    with deployed_lane(moto_endpoint, LANDING_SPEC, template=landing.policies.template, record_dir=tmp_path / "calls",
                       job_deny=refused) as lane:
        _landing_data()
        result = lane.run({"outputs": ["orders"]}, name="landing-denied")
        jobs = list(lane.calls["batch"])
    assert result["status"] == "FAILED" and result["error"] == "OutputsUncertified"
    message = json.loads(result["cause"])["errorMessage"]
    assert [job["exit_code"] for job in jobs] == [1]        # the attempt failed; its report names the cause
    assert "orders" in message and "AccessDenied" in message, message
    assert "s3://lane-landing-bucket/orders/2026/jan.csv" in message and "s3:GetObjectVersion" in message
    print(f"\nwhat surfaces for a missing input grant: {message}")


# --------------------------------------------------------------------------- Glue Data Catalog publication


GLUE_OUTPUT = "orders_clean"


def _gate_glue_database(template: dict) -> str:
    (gate,) = [body for name, body in template["Resources"].items()
               if body["Type"] == "AWS::Lambda::Function" and name.startswith("FunctionsGateFunction")]
    return gate["Properties"]["Environment"]["Variables"]["LANE_GLUE_DATABASE"]


def _glue_table(database: str, table: str) -> dict[str, Any] | None:
    glue = boto3.client("glue", region_name=REGION)
    try:
        return glue.get_table(DatabaseName=database, Name=table)["Table"]
    except glue.exceptions.EntityNotFoundException:
        return None


def _catalog_part(call: dict[str, Any]) -> bool:
    """A call the Glue sync makes: Glue itself, or S3 under published/."""
    params = call["params"]
    return call["service"] == "glue" or (
        call["service"] == "s3" and str(params.get("Key") or params.get("Prefix") or "").startswith("published/"))


@pytest.fixture(scope="module")
def glue(moto_endpoint, synth, tmp_path_factory) -> Iterator[ProofRun]:
    """The example lane deployed from the `copy` template (context glue_database=auto), with the gate's
    LANE_GLUE_DATABASE as synthesized: a certified run (the gate publishes), a rejected run, its fixed rerun
    (the table moves), an SQL reader
    reading the table with awswrangler, and an administrator's `lane revoke`, all recorded."""
    import awswrangler as wr

    from batchlane.gate import resolve
    from batchlane.stores.aws import aws_backend

    root = tmp_path_factory.mktemp("iam-glue")
    spec = copy_example(root / "lane")
    template = synth.template("copy")
    database = _gate_glue_database(template)
    outcomes: dict[str, Any] = {"database": database}
    with deployed_lane(moto_endpoint, spec, template=template, record_dir=root / "calls") as lane, \
            patched_env({"LANE_GLUE_DATABASE": database}), recording(root / "calls") as calls:
        with acting_as("operator"):
            outcomes["pass"] = lane.run({}, name="glue-pass")
        backend = aws_backend(BUCKET, TABLE, BUS)
        outcomes["certified_rows"] = sum(item.rows or 0 for item in resolve(
            backend, "orders", GLUE_OUTPUT, verify_bytes=False).certification.proof)
        outcomes["after_pass"] = {output: _glue_table(database, output) for output in ("orders_clean", "order_payments")}
        good_payments = (spec.parent / "data" / "payments.jsonl").read_text()
        _break_payments(spec)
        with acting_as("operator"):
            outcomes["fail"] = lane.run({"outputs": ["order_payments"]}, name="glue-fail")
        outcomes["after_fail"] = _glue_table(database, "order_payments")
        (spec.parent / "data" / "payments.jsonl").write_text(good_payments)
        transforms = spec.parent / "transforms.py"     # changed code: no memo hit, a new certification
        transforms.write_text(transforms.read_text() + "\n# fixed\n")
        with acting_as("operator"):   # the fixed rerun is certified: the table moves (UpdateTable)
            outcomes["rerun"] = lane.run({"rerun_of": "glue-fail"}, name="glue-rerun")
        outcomes["after_rerun"] = _glue_table(database, "order_payments")
        with acting_as("catalog-reader"):
            outcomes["sql_rows"] = len(wr.s3.read_parquet_table(database=database, table=GLUE_OUTPUT))
        # an administrator revokes (receipts, ledger and events are theirs to write; the catalog part is evaluated
        # against the publish policy the stack hands out for it)
        with acting_as("revoker"):
            outcomes["revoke"] = _cli("revoke", "orders", GLUE_OUTPUT, "--reason", "bad upstream extract",
                                      "--backend", "aws")
        outcomes["after_revoke"] = _glue_table(database, GLUE_OUTPUT)
        outcomes["published_after_revoke"] = sorted(lane.objects(f"published/orders/{GLUE_OUTPUT}/"))
    proof_calls = [call for call in calls if call["principal"] != "revoker"]
    proof_calls += [{**call, "principal": "catalog-publisher"} for call in calls
                    if call["principal"] == "revoker" and _catalog_part(call)]
    outcomes["revoker_catalog_calls"] = len(proof_calls) - len([c for c in calls if c["principal"] != "revoker"])
    yield ProofRun(proof_calls, _policies(template, lane), Names(region=REGION, account=ACCOUNT), outcomes)


def test_glue_scenarios_did_what_they_say(glue):
    outcomes, database = glue.outcomes, glue.outcomes["database"]
    assert database == "batchlane_orders"
    assert outcomes["pass"]["status"] == "SUCCEEDED", outcomes["pass"].get("cause")
    table = outcomes["after_pass"][GLUE_OUTPUT]
    assert table is not None
    parameters = table["Parameters"]
    location = table["StorageDescriptor"]["Location"]
    # the certified version's published copy, never staging/
    assert location == f"s3://{BUCKET}/published/orders/{GLUE_OUTPUT}/{parameters['batchlane_run_id']}/0001/"
    assert outcomes["fail"]["status"] == "FAILED" and outcomes["fail"]["error"] == "OutputsUncertified"
    before, after = outcomes["after_pass"]["order_payments"], outcomes["after_fail"]
    assert before is not None and after is not None
    assert after["Parameters"] == before["Parameters"]                       # a rejection never moves the table
    assert after["StorageDescriptor"]["Location"] == before["StorageDescriptor"]["Location"]
    assert outcomes["rerun"]["status"] == "SUCCEEDED", outcomes["rerun"].get("cause")
    moved = outcomes["after_rerun"]
    shown = moved["Parameters"]
    assert shown["batchlane_certification"] != before["Parameters"]["batchlane_certification"]
    assert shown["batchlane_run_id"] != before["Parameters"]["batchlane_run_id"]        # the rerun's certification
    assert moved["StorageDescriptor"]["Location"] == (
        f"s3://{BUCKET}/published/orders/order_payments/{shown['batchlane_run_id']}/"
        f"{int(shown['batchlane_attempt']):04d}/")
    assert outcomes["sql_rows"] == outcomes["certified_rows"] > 0            # SQL sees exactly the certified rows
    assert outcomes["revoke"][0] == 0, outcomes["revoke"]
    assert outcomes["after_revoke"] is None and outcomes["published_after_revoke"] == []
    assert outcomes["revoker_catalog_calls"] > 0


def test_every_glue_publication_call_is_allowed_by_the_synthesized_policies(glue):
    verdicts = simulate(glue.requests(), glue.policies)
    report = figures(glue.calls, verdicts)
    print(f"\nIAM proof (Glue publication): {report['recorded_calls']} recorded calls, {report['distinct_requests']} "
          f"distinct requests, {report['principal_action_pairs']} (principal, action) pairs, {report['allowed']} allowed")
    for principal, action in report["pairs"]:
        if action.startswith("glue:") or principal.startswith("catalog-"):
            print(f"  {principal:24} {action}")
    assert report["not_allowed"] == []
    pairs = set(report["pairs"])
    assert {("gate", "glue:CreateTable"), ("gate", "glue:CreateDatabase"), ("gate", "glue:GetTable"),
            ("gate", "glue:UpdateTable"),
            ("gate", "s3:PutObject"), ("catalog-reader", "glue:GetTable"), ("catalog-reader", "s3:GetObject"),
            ("catalog-publisher", "glue:DeleteTable"), ("catalog-publisher", "s3:DeleteObject")} <= pairs
    published = f"arn:aws:s3:::{BUCKET}/published/"
    gate_writes = [v.request for v in verdicts if v.request.principal == "gate" and v.request.action == "s3:PutObject"
                   and v.request.source == "s3.CopyObject"]
    assert gate_writes and all(request.resource.startswith(published) for request in gate_writes)
    reader = [v.request for v in verdicts if v.request.principal == "catalog-reader" and v.request.action.startswith("s3:")]
    assert reader and all(request.resource.startswith((published, f"arn:aws:s3:::{BUCKET}")) for request in reader)
    assert not [r for r in reader if "/staging/" in r.resource or "/receipts/" in r.resource]
    assert not [call for call in glue.calls if call["principal"] == "job" and call["service"] == "glue"]


@pytest.mark.parametrize("principal, sid", [
    ("gate", "GluePublishTables"),
    ("gate", "WritePublishedCopies"),
    ("catalog-reader", "GlueReadTables"),
    ("catalog-reader", "ReadPublishedCopies"),
    ("catalog-publisher", "GluePublishTables"),
])
def test_glue_canary_removing_one_needed_statement_denies(glue, principal, sid):
    weakened = glue.policies.without_statement(principal, sid)
    denied = [v for v in simulate(glue.requests(), weakened) if not v.allowed]
    assert denied and {v.request.principal for v in denied} == {principal}


def test_the_job_and_sql_readers_cannot_touch_what_they_must_not(glue):
    """The job (untrusted code) cannot write or delete published copies, whatever its role says (bucket policy);
    SQL readers cannot read staging/ (explicit deny), write published/, or move a Glue table."""
    key = f"published/orders/{GLUE_OUTPUT}/forged/0001/part-0.parquet"
    database = glue.outcomes["database"]
    attempts = [
        {"principal": "job", "service": "s3", "operation": "PutObject", "params": {"Bucket": BUCKET, "Key": key}},
        {"principal": "job", "service": "s3", "operation": "DeleteObject", "params": {"Bucket": BUCKET, "Key": key}},
        {"principal": "job", "service": "glue", "operation": "UpdateTable",
         "params": {"DatabaseName": database, "TableInput": {"Name": GLUE_OUTPUT}}},
        {"principal": "catalog-reader", "service": "s3", "operation": "GetObject",
         "params": {"Bucket": BUCKET, "Key": "staging/glue-pass/orders_clean/0001/part-0.parquet"}},
        {"principal": "catalog-reader", "service": "s3", "operation": "PutObject", "params": {"Bucket": BUCKET, "Key": key}},
        {"principal": "catalog-reader", "service": "glue", "operation": "UpdateTable",
         "params": {"DatabaseName": database, "TableInput": {"Name": GLUE_OUTPUT}}},
    ]
    verdicts = simulate([r for call in attempts for r in iam_requests(call, glue.names)], glue.policies)
    results = {(v.request.principal, v.request.action, v.request.resource.rsplit(":", 1)[-1]): v.result
               for v in verdicts}
    assert not [v for v in verdicts if v.allowed], results
    # the job's writes to published/ meet the bucket policy's explicit deny, not just a missing grant
    assert results[("job", "s3:PutObject", f"{BUCKET}/{key}")] == "ExplicitlyDenied"
    assert results[("job", "s3:DeleteObject", f"{BUCKET}/{key}")] == "ExplicitlyDenied"
    assert any(v.result == "ExplicitlyDenied" and "/staging/" in v.request.resource for v in verdicts
               if v.request.principal == "catalog-reader")


@pytest.mark.parametrize("call, expected", [
    ({"service": "s3", "operation": "CopyObject",
      "params": {"Bucket": BUCKET, "Key": "published/x/0001/p.parquet",
                 "CopySource": f"{BUCKET}/staging/r/x/0001/p.parquet?versionId=v1"}},
     [("s3:PutObject", f"arn:aws:s3:::{BUCKET}/published/x/0001/p.parquet"),
      ("s3:GetObjectVersion", f"arn:aws:s3:::{BUCKET}/staging/r/x/0001/p.parquet")]),
    ({"service": "s3", "operation": "UploadPartCopy",
      "params": {"Bucket": BUCKET, "Key": "published/p", "CopySource": {"Bucket": BUCKET, "Key": "staging/p"}}},
     [("s3:PutObject", f"arn:aws:s3:::{BUCKET}/published/p"), ("s3:GetObject", f"arn:aws:s3:::{BUCKET}/staging/p")]),
    ({"service": "glue", "operation": "CreateDatabase", "params": {"DatabaseInput": {"Name": "db"}}},
     [("glue:CreateDatabase", f"arn:aws:glue:{REGION}:{ACCOUNT}:catalog"),
      ("glue:CreateDatabase", f"arn:aws:glue:{REGION}:{ACCOUNT}:database/db")]),
    ({"service": "glue", "operation": "UpdateTable", "params": {"DatabaseName": "db", "TableInput": {"Name": "t"}}},
     [("glue:UpdateTable", f"arn:aws:glue:{REGION}:{ACCOUNT}:catalog"),
      ("glue:UpdateTable", f"arn:aws:glue:{REGION}:{ACCOUNT}:database/db"),
      ("glue:UpdateTable", f"arn:aws:glue:{REGION}:{ACCOUNT}:table/db/t")]),
])
def test_copy_and_glue_calls_map_to_every_resource_aws_authorizes(call, expected):
    requests = iam_requests({"principal": "gate", **call}, Names(region=REGION, account=ACCOUNT))
    assert [(request.action, request.resource) for request in requests] == expected


def test_an_unmapped_or_incomplete_glue_call_fails_the_proof_closed():
    names = Names(region=REGION, account=ACCOUNT)
    with pytest.raises(ProofError, match="no IAM mapping"):
        iam_requests({"principal": "gate", "service": "glue", "operation": "DeleteDatabase2", "params": {}}, names)
    with pytest.raises(ProofError, match="without TableInput.Name"):
        iam_requests({"principal": "gate", "service": "glue", "operation": "CreateTable",
                      "params": {"DatabaseName": "db", "TableInput": {}}}, names)
