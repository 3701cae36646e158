"""cdk-nag AwsSolutions clean, cfn-lint clean, and bad input failing synth with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO

pytestmark = pytest.mark.xdist_group("cdk")

# cfn-lint checks we ignore, each with its reason (the Makefile's `lint` target uses the same list).
CFN_LINT_IGNORES = {
    # CDK adds DependsOn from a function/state machine to its role's default policy *and* the role;
    # the role part duplicates the GetAtt. Harmless, and emitted by CDK itself.
    "W3005": "redundant DependsOn that CDK emits next to a GetAtt",
}


def test_nag_clean_zero_unacknowledged_findings(synth):
    violations = []
    for plugin in (synth.report or {}).get("pluginReports", []):
        for violation in plugin.get("violations", []):
            where = [v.get("constructPath") for v in violation.get("violatingConstructs", [])]
            violations.append(f"{violation['ruleName']}: {violation['description']} at {where}")
    assert synth.error is None and violations == [], "\n".join(violations) or synth.error


def test_nag_canary_catches_an_insecure_bucket(tmp_path):
    """Proves the plugin wiring (stacks.nag.add_nag) fails synth on findings: a bare bucket is flagged."""
    import json

    import aws_cdk as cdk
    from aws_cdk import aws_s3 as s3

    from stacks.nag import add_nag

    app = cdk.App(outdir=str(tmp_path), builtin_cloud_formation_validation=False)
    s3.Bucket(cdk.Stack(app, "Canary"), "Plain")
    add_nag(app)
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules


def test_every_acknowledgement_is_specific_and_has_a_reason(synth):
    import aws_cdk as cdk

    from stacks.nag import ack

    with pytest.raises(ValueError, match="specific reason"):
        ack(cdk.App(), id="AwsSolutions-S1", reason="not needed")
    acknowledged = synth.acknowledged
    assert acknowledged
    for where, reason in acknowledged.items():
        assert len(reason) >= 40, where
        if "IAM5" in where:   # wildcard findings are acknowledged one resource at a time, never blanket
            assert "IAM5[" in where, where
    # never acknowledged at the app or stack root: each sits on the construct that causes it
    assert not any(where.split(" ")[0] in set(synth.stack_names.values()) for where in acknowledged)


def test_cfn_lint_clean(synth):
    paths = [str(synth.outdir / f"{name}.template.json") for name in synth.stack_names.values()]
    command = [str(Path(sys.executable).parent / "cfn-lint"), *paths]
    for rule in sorted(CFN_LINT_IGNORES):
        command += ["-i", rule]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    # exit code is a bitmask: 2 = errors, 4 = warnings, 8 = informational
    assert result.returncode == 0, result.stdout + result.stderr


def _synth_subprocess(*context: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    args = [arg for pair in context for arg in ("-c", pair)]
    return subprocess.run([sys.executable, str(REPO / "app.py"), *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120, check=False)


def test_broken_spec_fails_synth_with_the_field_path(tmp_path: Path):
    spec = yaml.safe_load((REPO / "examples" / "orders" / "lane.yaml").read_text())
    spec["outputs"]["orders_clean"]["contract"]["columns"]["amount"]["type"] = "money"
    broken = tmp_path / "lane.yaml"
    broken.write_text(yaml.safe_dump(spec))
    result = _synth_subprocess(f"spec={broken}")
    assert result.returncode == 2
    assert "outputs.orders_clean.contract.columns.amount.type" in result.stderr
    assert "synth failed" in result.stderr


def test_broken_spec_raises_spec_error_in_process(tmp_path: Path):
    from app import add_lane_stack, cdk_json_context
    from batchlane.spec import SpecError

    broken = tmp_path / "lane.yaml"
    broken.write_text("lane: ok\noutputs:\n  x:\n    inputs: {a: a.csv}\n    consumers: ['bad name!']\n")
    with pytest.raises(SpecError, match=r"outputs\.x\.consumers"):
        add_lane_stack(None, {**cdk_json_context(), "spec": str(broken)})   # fails before any construct


def test_make_synth_entry_point_is_offline(tmp_path: Path):
    """`python app.py` (what `make synth` runs) with no credentials, no Docker daemon, no metadata service."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update({"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                "DOCKER_HOST": "unix:///nonexistent.sock", "CDK_OUTDIR": str(tmp_path / "cdk.out")})
    result = subprocess.run([sys.executable, str(REPO / "app.py")], capture_output=True, text=True, cwd=REPO,
                            env=env, timeout=180, check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cdk.out" / "Batchlane-orders.template.json").is_file()
    assert (tmp_path / "cdk.out" / "manifest.json").is_file()
