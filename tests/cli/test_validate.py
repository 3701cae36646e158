"""`lane validate`: every problem listed, exit 0 or 2, nothing written."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from batchlane.validate import parameter_problems, validate_spec

BROKEN_SPEC = """\
lane: broken
outputs:
  a:
    inputs: {orders: data/nope.csv, extra: data/x.json}
    transform: t:missing
    contract:
      columns:
        id:   {type: int64, regex: '^[a-z]+$', accepted_values: [DE, 1]}
        name: {type: string, min: 0, max_age: 1d}
        small: {type: uint8, max: 300}
  b:
    inputs: {orders: data/orders.csv, other: data/orders.csv}
    transform: t:f
    contract:
      columns:
        id: {type: string, references: a.id}
  c:
    inputs: {z: "data/*.parquet"}
    transform: nomod:f
"""
BROKEN_FILES = {
    "data/x.json": "{}\n",
    "data/orders.csv": "id\n1\n",
    "t.py": 'print("noise from an import")\ndef f(orders, needed, /, extra=1):\n    return orders\n',
}


def test_the_example_lane_is_valid_and_nothing_is_written(lane_dir, lane_home, lane):
    before = sorted(p.relative_to(lane_dir) for p in lane_dir.rglob("*"))
    code, out, err = lane("validate", lane_dir / "lane.yaml")
    assert code == 0, err
    assert "valid" in out and "lane orders, 4 output(s), 6 input(s) (4 file(s)), 3 transform(s)" in out
    assert sorted(p.relative_to(lane_dir) for p in lane_dir.rglob("*")) == before  # no __pycache__ either
    assert not lane_home.exists(), "validate must not create a store"


def test_every_problem_is_listed_with_where_and_why(write_lane, lane_home, lane):
    spec = write_lane(BROKEN_SPEC, BROKEN_FILES)
    code, out, err = lane("validate", spec)
    assert code == 2
    expected = [
        "outputs.a.inputs.orders: data/nope.csv: file not found:",
        "outputs.a.inputs.extra: data/x.json: unsupported format:",
        "outputs.a.transform: transform 't:missing':",
        "has no function 'missing'",
        # rule/type problems come from the spec loader, one line each with its field path
        "outputs.a.contract.columns.id.regex: ",
        "outputs.a.contract.columns.id.accepted_values[0]: ",
        "outputs.a.contract.columns.name.min: ",
        "outputs.a.contract.columns.name.max_age: ",
        "outputs.a.contract.columns.small.max: ",
        # inputs and transforms are still checked, contracts with problems left aside
        "outputs.b.transform: t:f: takes no parameter 'other' for input 'other'",
        "outputs.b.transform: t:f: parameter 'orders' is positional-only",
        "outputs.c.inputs.z: data/*.parquet: no file matches",
        "outputs.c.transform: transform 'nomod:f': module file",
    ]
    for fragment in expected:
        assert fragment in err, fragment
    assert "invalid" in err and "problems" in err
    assert "noise from an import" not in out + err
    assert not lane_home.exists()
    assert not (spec.parent / "__pycache__").exists()


def test_json_report_lists_the_same_problems(write_lane, lane):
    spec = write_lane(BROKEN_SPEC, BROKEN_FILES)
    code, out, _err = lane("validate", spec, "--json")
    assert code == 2
    report = json.loads(out)
    assert report["ok"] is False and report["lane"] == "broken"
    assert {"where", "message"} == set(report["problems"][0])
    wheres = {item["where"] for item in report["problems"]}
    assert {"outputs.a.inputs.orders", "outputs.b.transform", "outputs.c.transform",
            "outputs.a.contract.columns.id.regex"} <= wheres
    assert report["checked"] == {"outputs": 3, "inputs": 5, "files": 3, "transforms": 3}
    assert {"where": "spec", "message": "the contracts of a have problems: their inputs and transforms were "
            "checked without them"} in report["notes"]


def test_rules_that_load_but_cannot_match_are_problems(write_lane, lane):
    spec = write_lane("""\
        lane: x
        outputs:
          a:
            inputs: {i: data/i.csv}
            contract: {columns: {id: {type: int64}}}
          b:
            inputs: {i: data/i.csv}
            contract: {columns: {id: {type: string, references: a.id}, n: {min: 0}}}
        """, {"data/i.csv": "id\n1\n"})
    code, out, err = lane("validate", spec)
    assert code == 2
    assert "outputs.b.contract.columns.id.references: id is string but a.id is int64" in err
    assert "note: outputs.b.contract.columns.n: no type declared" in out


def test_rule_type_checks_of_models_the_loader_accepts():
    from batchlane.spec import ColumnRules
    from batchlane.validate import rule_type_problems

    # the loader may refuse these itself; the check stands on its own for the models it accepts
    rules = ColumnRules.model_construct(type="uint8", max=300, min=None, regex="^a", max_age="1d",
                                        accepted_values=["DE", 1.5, 7], timezone="UTC")
    problems = rule_type_problems(rules)
    assert "max 300 is outside what uint8 can hold (0 to 255)" in problems
    assert "regex applies to string columns, and the column is uint8" in problems
    assert "max_age applies to timestamp or date columns, and the column is uint8" in problems
    assert "timezone applies to timestamp columns, and the column is uint8" in problems
    assert "accepted_values ['DE', 1.5] can never occur in a column of type uint8" in problems


def test_a_spec_that_does_not_load_is_one_problem(write_lane, lane):
    spec = write_lane("lane: x\noutputs:\n  a:\n    inputs: {i: data/i.csv}\n    contract: {columns: {c: {not_nul: true}}}\n")
    code, _, err = lane("validate", spec)
    assert code == 2 and "outputs.a.contract.columns.c.not_nul" in err
    code, _out, err = lane("validate", spec.parent / "missing.yaml")
    assert code == 2 and "file not found" in err


def test_s3_inputs_without_credentials_are_said_not_checked(write_lane, lane, monkeypatch):
    monkeypatch.setattr("batchlane.validate.s3_credentials_configured", lambda: False)
    spec = write_lane("lane: x\noutputs:\n  a:\n    inputs: {i: 's3://bucket/in/*.csv'}\n")
    code, out, err = lane("validate", spec)
    assert code == 0, err
    assert "outputs.a.inputs.i: s3://bucket/in/*.csv: not checked: no AWS credentials configured" in out


class _FakeS3:
    def __init__(self, keys: list[str]):
        self.keys = keys

    def get_paginator(self, name):
        keys = self.keys

        class Pages:
            def paginate(self, **request):  # boto3 keyword names: Bucket, Prefix
                return [{"Contents": [{"Key": k} for k in keys if k.startswith(request["Prefix"])]}]

        return Pages()

    def head_object(self, **request):  # boto3 keyword names: Bucket, Key
        if request["Key"] not in self.keys:
            raise KeyError(f"404 {request['Bucket']}/{request['Key']}")
        return {}


def test_s3_inputs_are_listed_when_credentials_exist(write_lane):
    spec = write_lane("""\
        lane: x
        outputs:
          a: {inputs: {i: 's3://b/in/*.csv'}}
          b: {inputs: {i: 's3://b/in/*.json'}}
          c: {inputs: {i: 's3://b/gone.csv'}}
          d: {inputs: {i: 's3://b/in/one.csv'}}
        """)
    fake = _FakeS3(["in/one.csv", "in/two.csv", "in/bad.txt"])
    report = validate_spec(spec, credentials=lambda: True, s3_client=lambda: fake)
    problems = {p.where: p.message for p in report.problems}
    assert "outputs.a.inputs.i" not in problems
    assert problems["outputs.b.inputs.i"] == "s3://b/in/*.json: no object matches"
    assert "cannot be listed" in problems["outputs.c.inputs.i"] and "404" in problems["outputs.c.inputs.i"]
    assert "outputs.d.inputs.i" not in problems
    assert report.files == 3


@pytest.mark.parametrize(("source", "inputs", "expected"), [
    ("def f(orders, payments): ...", ["orders", "payments"], []),
    ("def f(**inputs): ...", ["orders", "payments"], []),
    ("def f(orders, *, payments=None, scale=2): ...", ["orders", "payments"], []),
    ("def f(orders): ...", ["orders", "payments"], ["takes no parameter 'payments'"]),
    ("def f(orders, lookup): ...", ["orders"], ["parameter 'lookup' has no input of that name"]),
    ("def f(orders, /): ...", ["orders"], ["takes no parameter 'orders'", "positional-only"]),
])
def test_transform_parameters_against_input_names(source, inputs, expected):
    namespace: dict = {}
    exec(source, namespace)  # noqa: S102 (a test-made function)
    problems = parameter_problems(inspect.signature(namespace["f"]), inputs)
    assert len(problems) == len(expected)
    for problem, fragment in zip(problems, expected, strict=True):
        assert fragment in problem


def test_a_transform_that_fails_to_import_is_a_problem_not_a_crash(write_lane, lane):
    spec = write_lane("lane: x\noutputs:\n  a:\n    inputs: {i: data/i.csv}\n    transform: t:f\n",
                      {"data/i.csv": "a\n1\n", "t.py": "import sys\nsys.exit(3)\n"})
    code, _out, err = lane("validate", spec)
    assert code == 2 and "outputs.a.transform" in err and "SystemExit" in err


def test_empty_input_file_is_a_problem(write_lane):
    spec = write_lane("lane: x\noutputs:\n  a: {inputs: {i: data/i.csv}}\n", {"data/i.csv": ""})
    report = validate_spec(spec)
    assert [p.message for p in report.problems] == [f"data/i.csv: empty file {Path(spec.parent / 'data/i.csv')}"]
