"""docs/cli-json.md documents each --json shape; the commands must produce exactly those keys."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli-json.md"
NAMED = {"outputs", "certifications_in_force"}   # dicts keyed by output name


def documented() -> dict[str, Any]:
    text = DOC.read_text(encoding="utf-8")
    found = re.findall(r"<!-- json-shape: ([\w-]+) -->\s*```json\n(.*?)```", text, flags=re.DOTALL)
    return {name: json.loads(body) for name, body in found}


def assert_same_shape(doc: Any, actual: Any, path: str = "$", key: str | None = None) -> None:
    if isinstance(doc, dict) and set(doc) == {"..."}:
        return  # documented elsewhere (receipt models)
    if isinstance(doc, dict):
        assert isinstance(actual, dict), f"{path}: documented an object, got {actual!r}"
        if key in NAMED:
            (example,) = doc.values()
            for name, value in actual.items():
                if value is None and key == "certifications_in_force":
                    continue  # no certification in force for this output
                assert_same_shape(example, value, f"{path}.{name}", name)
            return
        assert set(actual) == set(doc), f"{path}: keys {sorted(actual)} != documented {sorted(doc)}"
        for name, value in doc.items():
            assert_same_shape(value, actual[name], f"{path}.{name}", name)
    elif isinstance(doc, list):
        assert isinstance(actual, list), path
        if doc and actual:
            for item in actual:
                assert_same_shape(doc[0], item, f"{path}[]")
    else:
        assert not isinstance(actual, (dict, list)) or actual == [], f"{path}: documented a value, got {actual!r}"


def test_every_documented_shape_is_tested():
    assert set(documented()) == {"run", "rerun", "status", "status-run", "show", "verify", "catalog", "validate",
                                 "events", "repair", "lineage"}  # lineage: tests/cli/test_lineage.py


def test_run_and_audit_commands_match_the_documented_shapes(lane_dir, lane, lane_json):
    shapes = documented()
    spec = lane_dir / "lane.yaml"
    code, run = lane_json("run", spec)
    assert code == 0
    assert_same_shape(shapes["run"], run)
    code, rerun = lane_json("rerun", run["run_id"], "--outputs", "customers_clean")
    assert_same_shape(shapes["rerun"], rerun)
    code, nothing = lane_json("rerun", run["run_id"], "--failed")
    assert_same_shape(shapes["rerun"], nothing)
    assert_same_shape(shapes["status"], lane_json("status")[1])
    assert_same_shape(shapes["status-run"], lane_json("status", run["run_id"])[1])
    assert_same_shape(shapes["show"], lane_json("show", run["run_id"])[1])
    assert_same_shape(shapes["verify"], lane_json("verify", run["run_id"])[1])
    assert_same_shape(shapes["catalog"], lane_json("catalog")[1])
    assert_same_shape(shapes["repair"], lane_json("repair", run["run_id"])[1])
    code, out, _err = lane("events", "--json")
    for line in out.splitlines():
        event = json.loads(line)
        assert set(shapes["events"]) <= set(event)


def test_failed_outputs_have_the_same_shape(write_lane, lane_json):
    spec = write_lane("lane: x\noutputs:\n  a:\n    inputs: {i: data/i.csv}\n    transform: t:f\n",
                      {"data/i.csv": "a\n1\n", "t.py": "def f(i):\n    raise ValueError('boom')\n"})
    code, run = lane_json("run", spec)
    assert code == 1 and run["outputs"]["a"]["state"] == "failed"
    assert_same_shape(documented()["run"], run)
    assert_same_shape(documented()["status-run"], lane_json("status", run["run_id"])[1])


def test_validate_matches_the_documented_shape(write_lane, lane_json, monkeypatch):
    monkeypatch.setattr("batchlane.validate.s3_credentials_configured", lambda: False)
    spec = write_lane("lane: x\noutputs:\n  a: {inputs: {i: data/missing.csv}}\n  b: {inputs: {i: 's3://b/k.csv'}}\n")
    code, report = lane_json("validate", spec)
    assert code == 2 and report["problems"] and report["notes"]
    assert_same_shape(documented()["validate"], report)


def test_a_changed_shape_is_caught():
    with pytest.raises(AssertionError, match="keys"):
        assert_same_shape({"a": 1, "b": 2}, {"a": 1})
    with pytest.raises(AssertionError):
        assert_same_shape({"outputs": {"x": {"rows": 1}}}, {"outputs": {"y": {"rows": 1, "extra": 2}}})
