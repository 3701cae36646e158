"""Issue 14 on AWS: the check Lambda (functions/check/handler.py, the same engine) judges structured rules,
`expect:` SQL and `max_change` against the certification in force in DynamoDB/S3, under the real state
machine executed by moto (tests/aws explains the harness)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `support` helpers, as tests/aws/conftest.py

pytestmark = pytest.mark.xdist_group("moto_server")

SPEC = """\
lane: rules
outputs:
  customers:
    inputs: {customers: data/customers.csv}
    contract:
      columns:
        customer_id: {type: int64, not_null: true, unique: {max_failing: 0}}
        country: {accepted_values: {value: [NL, FR, DE, BE, ES, IT, PL, SE, US, GB], severity: warn}}
      row_count: {min: 1, max_change: 0.5}
      expect:
        - {name: email_has_at, sql: "email LIKE '%@%'"}
        - {name: ids_small, sql: "customer_id < 150", severity: warn}
"""


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from support.lane_aws import moto_server

    with moto_server() as endpoint:
        yield endpoint


def _check_receipt(backend, run_id: str) -> dict:
    return json.loads(backend.store.get(f"receipts/{run_id}/customers/0001-check.json"))


def test_structured_rules_expect_and_max_change_on_aws(moto_endpoint, tmp_path):
    from support.aws_env import drain_queue
    from support.lane_aws import copy_example, deployed_lane

    from batchlane.backends import backend_from_env

    spec = copy_example(tmp_path / "lane")
    spec.write_text(SPEC)
    data = spec.parent / "data" / "customers.csv"
    original = data.read_text()
    with deployed_lane(moto_endpoint, spec) as lane:
        first = lane.run({}, name="run-first")
        assert first["status"] == "SUCCEEDED", first.get("cause")
        backend = backend_from_env("aws")
        receipt = _check_receipt(backend, "run-first")
        rules = {(rule["rule"], rule.get("column")): rule for rule in receipt["rules"]}
        assert receipt["verdict"] == "PASS"
        assert rules[("expect", "email_has_at")]["passed"]
        warned = rules[("expect", "ids_small")]
        assert (warned["passed"], warned["severity"], warned["failing_count"]) == (False, "warn", 51)
        assert warned["failing_sample"][0] == {"row": 149, "customer_id": 150}
        assert "nothing to compare against" in rules[("row_count_change", None)]["detail"]
        manifest = json.loads(backend.store.get("receipts/run-first/manifest-0001.json"))
        assert manifest["outputs"]["customers"]["warnings"] == ["expect(ids_small)"]
        certified = [message["detail"] for message in drain_queue(lane.queue_url)
                     if message["detail-type"] == "DataProductCertified"]
        assert certified and certified[0]["warnings"] == ["expect(ids_small)"]

        # twice the rows: beyond max_change 0.5 of the certification in force (read from DynamoDB + S3)
        lines = original.splitlines()
        extra = [f"{1000 + i},more{i}@example.com,NL" for i in range(len(lines) - 1)]
        data.write_text("\n".join([*lines, *extra]) + "\n")
        second = lane.run({}, name="run-second")
        assert second["status"] == "FAILED"
        receipt = _check_receipt(backend, "run-second")
        change = next(rule for rule in receipt["rules"] if rule["rule"] == "row_count_change")
        assert receipt["verdict"] == "FAIL" and not change["passed"]
        assert change["expected"]["baseline_rows"] == 200 and change["observed"]["rows"] == 400
        assert change["expected"]["baseline"] == "receipts/run-first/customers/0001-gate.json"
        assert backend.ledger.current("rules", "customers").run_id == "run-first"   # still in force
