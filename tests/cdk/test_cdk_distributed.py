"""map_mode: the output Map per wave runs inline (the file as is) or distributed (each output a child execution).

The `options` stack is synthesized with map_mode=distributed (tests/support/synth.py), the `default` one with
auto (the example lane is small: inline). Both under cdk-nag.
"""

from __future__ import annotations

import json

import pytest

from .conftest import REPO, one, role_statements

pytestmark = pytest.mark.xdist_group("cdk")


def _definition(template: dict) -> dict:
    _, machine = one(template, "AWS::StepFunctions::StateMachine")
    return json.loads(machine["Properties"]["DefinitionString"])


def test_distributed_stack_names_its_state_machine_and_grants_its_child_executions(synth):
    template = synth.template("options")
    _, machine = one(template, "AWS::StepFunctions::StateMachine")
    name = machine["Properties"]["StateMachineName"]
    assert name == "Batchlane-options-lane"
    definition = _definition(template)
    assert definition["States"]["Outputs"]["ItemProcessor"]["ProcessorConfig"] == {
        "Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    # only the processor changes: the iteration's states are the ones moto runs inline
    inline = json.loads((REPO / "statemachines" / "lane.asl.json").read_text())
    assert definition["States"]["Outputs"]["ItemProcessor"]["States"] == inline["States"]["Outputs"]["ItemProcessor"]["States"]
    by_sid = {s.get("Sid"): s for s in role_statements(template, "StateMachineRole")}
    start = by_sid["StartChildExecutions"]
    assert start["Action"] == "states:StartExecution"
    assert json.dumps(start["Resource"]).endswith(f':stateMachine:{name}"]]}}')
    watch = by_sid["WatchChildExecutions"]
    assert sorted(watch["Action"]) == ["states:DescribeExecution", "states:StopExecution"]
    text = json.dumps(watch["Resource"])
    assert f":execution:{name}/*" in text and f":execution:{name}:*" in text and text.count(":execution:") == 2
    assert by_sid["RedriveMapRuns"]["Action"] == "states:RedriveExecution"
    assert f":execution:{name}/*" in json.dumps(by_sid["RedriveMapRuns"]["Resource"])


def test_inline_stack_is_unchanged(synth):
    template = synth.template("default")
    _, machine = one(template, "AWS::StepFunctions::StateMachine")
    assert "StateMachineName" not in machine["Properties"]
    assert machine["Properties"]["DefinitionString"] == (REPO / "statemachines" / "lane.asl.json").read_text()
    actions = {a for s in role_statements(template, "StateMachineRole") for a in
               (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert not [action for action in actions if action.startswith("states:")]


def test_map_mode_both_ways_at_the_asl_level(tmp_path):
    from stacks.asl import AslError, read_asl, resolve_map_mode, with_map_mode

    path = REPO / "statemachines" / "lane.asl.json"
    usage = read_asl(path)
    assert with_map_mode(usage, "inline", path) is usage and not usage.distributed_map
    distributed = with_map_mode(usage, "distributed", path)
    assert distributed.distributed_map and distributed.substitutions == usage.substitutions
    assert distributed.integrations == usage.integrations
    assert distributed.lambda_function_substitutions == usage.lambda_function_substitutions
    document = json.loads(distributed.text)
    maps = [name for name, state in document["States"].items() if state["Type"] == "Map"]
    assert maps == ["Outputs"]
    assert resolve_map_mode("auto", 3) == "inline" and resolve_map_mode("auto", 1000) == "distributed"
    assert resolve_map_mode("inline", 1000) == "inline"
    with pytest.raises(AslError, match="map mode 'sideways' must be one of auto, inline, distributed"):
        resolve_map_mode("sideways", 3)
    no_map = tmp_path / "no-map.asl.json"
    no_map.write_text(json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}))
    with pytest.raises(AslError, match="no top-level Map state"):
        with_map_mode(read_asl(no_map), "distributed", no_map)


def test_map_mode_context_is_validated():
    from stacks.settings import LaneSettings, SettingsError

    assert LaneSettings.from_context({}).map_mode == "auto"
    assert LaneSettings.from_context({"map_mode": "Distributed"}).map_mode == "distributed"
    with pytest.raises(SettingsError, match="context map_mode: 'fast' must be auto, inline or distributed"):
        LaneSettings.from_context({"map_mode": "fast"})
