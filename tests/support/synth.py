"""One CDK synth per test run (jsii start + synth ~5 s), shared by tests/cdk and tests/aws (the IAM proof).

Four lane stacks in one app, all under cdk-nag AwsSolutions:
  * `default`: the shipped example lane exactly as `make synth` builds it (examples/orders/lane.yaml,
    statemachines/lane.asl.json, image/Dockerfile), plus a schedule.
  * `options`: a fixture lane with s3:// inputs (and a KMS key for them), an imported VPC, Object Lock,
    a consumer principal, an alarm topic, a custom DataLanded pattern, Glue publication to a named database
    and the Distributed Map (map_mode=distributed).
  * `copy`: the example lane again under another stack name, with no NAT gateway: two copies of one lane
    side by side in one app (and so in one region), and the VPC endpoints a NAT-less VPC needs; Glue
    publication on (`glue_database=auto`).
  * `landing`: a lane reading s3:// inputs (tests/aws/fixtures/landing), run end to end by the IAM proof.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "cdk" / "fixtures"
FIXTURE_SPEC = FIXTURES / "lane" / "lane.yaml"
if str(REPO) not in sys.path:  # app.py and stacks/ live at the repo root (not an installed package)
    sys.path.insert(0, str(REPO))

OPTIONS_KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/0b6c3f4e-1d2a-4c5b-9e8f-7a6b5c4d3e2f"
OPTIONS_GLUE_DATABASE = "certified_products"
OPTIONS_CONTEXT = {
    "spec": str(FIXTURE_SPEC),
    "stack_name": "Batchlane-options",
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": "subnet-0123456789abcdef0,subnet-0fedcba9876543210",
    "object_lock_days": 365,
    "object_lock_mode": "COMPLIANCE",
    "consumer_principal": "123456789012",
    "alarm_topic_arn": "arn:aws:sns:eu-west-1:123456789012:lane-alarms",
    "landed_event_pattern": json.dumps({"source": ["upstream.ingest"], "detail-type": ["FilesLanded"]}),
    "input_kms_key_arns": OPTIONS_KMS_KEY,
    "glue_database": OPTIONS_GLUE_DATABASE,
    "map_mode": "distributed",            # one Distributed Map per wave (child executions), as lanes > 400 outputs get
}
# The copy publishes to Glue (database batchlane_orders); the IAM proof's Glue scenario runs against it.
COPY_CONTEXT = {"stack_name": "Batchlane-orders-copy", "nat_gateways": 0, "glue_database": "auto"}
LANDING_SPEC = REPO / "tests" / "aws" / "fixtures" / "landing" / "lane.yaml"
LANDING_CONTEXT = {"spec": str(LANDING_SPEC), "stack_name": "Batchlane-landing"}


@dataclass
class Synth:
    outdir: Path
    templates: dict[str, dict[str, Any]]
    stack_names: dict[str, str]
    acknowledged: dict[str, str]          # "construct/path rule" -> reason (AwsSolutions only)
    error: str | None
    report: dict[str, Any] | None

    def template(self, which: str) -> dict[str, Any]:
        return self.templates[which]


def _synthesize(root: Path) -> dict[str, Any]:
    """Build and synth the two-stack app under cdk-nag; return what the tests need as JSON-able facts."""
    import aws_cdk as cdk

    from app import add_lane_stack, cdk_json_context, new_app
    from stacks.nag import add_nag

    outdir = root / "cdk.out"
    app = new_app(outdir=str(outdir))
    defaults = cdk_json_context()
    stacks = {
        "default": add_lane_stack(app, {**defaults, "schedule": "rate(1 day)"}),
        "options": add_lane_stack(app, {**defaults, **OPTIONS_CONTEXT}),
        "copy": add_lane_stack(app, {**defaults, **COPY_CONTEXT}),
        "landing": add_lane_stack(app, {**defaults, **LANDING_CONTEXT}),
    }
    add_nag(app)
    error = None
    try:
        app.synth()
    except Exception as exc:  # noqa: BLE001 - reported by test_nag_clean with the findings
        error = f"{type(exc).__name__}: {exc}"
    acknowledged = {}
    for stack in stacks.values():
        for construct in stack.node.find_all():
            for entry in construct.node.metadata:
                if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                    for rule, reason in entry.data.items():
                        if "AwsSolutions-" in rule:   # (CDK acknowledges some of its own template checks)
                            acknowledged[f"{construct.node.path} {rule}"] = reason
    return {"stack_names": {which: stack.stack_name for which, stack in stacks.items()},
            "acknowledged": acknowledged, "error": error}


def session_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Synthesized once per test run, even across xdist workers: the first worker to take the lock
    synthesizes into a directory shared by the run; the others wait for its facts and read the files.
    (pytest 9 + xdist 3.8 ignore `xdist_group` under --dist loadgroup, so the cdk tests may be spread.)"""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "batchlane-cdk-synth"
    root.mkdir(exist_ok=True)
    facts_path = root / "facts.json"
    try:
        os.close(os.open(root / "owner", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        owner = True
    except FileExistsError:
        owner = False
    if owner:
        try:
            facts = _synthesize(root)
        except Exception as exc:  # noqa: BLE001 - a construct error: every cdk test reports it
            facts = {"stack_names": {}, "acknowledged": {}, "error": f"{type(exc).__name__}: {exc}"}
        partial = root / "facts.json.tmp"
        partial.write_text(json.dumps(facts))
        partial.rename(facts_path)
    deadline = time.monotonic() + 300
    while not facts_path.exists():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for another worker's CDK synth")
        time.sleep(0.1)
    facts = json.loads(facts_path.read_text())
    if not facts["stack_names"]:
        pytest.fail(f"the lane stacks could not be built: {facts['error']}")
    outdir = root / "cdk.out"
    report_path = outdir / "validation-report.json"
    return Synth(
        outdir=outdir,
        templates={which: json.loads((outdir / f"{name}.template.json").read_text())
                   for which, name in facts["stack_names"].items()},
        stack_names=facts["stack_names"],
        acknowledged=facts["acknowledged"],
        error=facts["error"],
        report=json.loads(report_path.read_text()) if report_path.is_file() else None,
    )


