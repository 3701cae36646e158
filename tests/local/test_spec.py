"""Spec validation: every bad spec is refused at load with the field path and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from batchlane.spec import SpecError, load_contract, load_spec, parse_duration

GOOD = {
    "lane": "orders",
    "outputs": {
        "a": {"inputs": {"x": "x.csv"}, "contract": {"columns": {"id": {"type": "int64", "unique": True}}}},
        "b": {"inputs": {"x": "x.csv", "y": "y.csv"}, "transform": "t:f",
              "contract": {"columns": {"a_id": {"references": "a.id"}}, "unique": [["a_id", "day"]],
                           "row_count": {"min": 1, "max": 10}}},
    },
}


def write(tmp_path: Path, document) -> Path:
    path = tmp_path / "lane.yaml"
    path.write_text(yaml.safe_dump(document) if not isinstance(document, str) else document)
    return path


def mutate(path: list, value):
    import copy

    document = copy.deepcopy(GOOD)
    node = document
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return document


def test_good_spec_loads_with_dependency_order(tmp_path):
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.topological_order() == ["a", "b"]
    assert spec.outputs["b"].dependencies() == {"a"}
    assert spec.base_dir == tmp_path.resolve()
    assert spec.output_digest("a") != spec.output_digest("b")


def test_example_lane_is_valid():
    spec = load_spec(Path(__file__).parents[2] / "examples" / "orders" / "lane.yaml")
    assert len(spec.outputs) >= 3
    assert any(len(o.inputs) == 2 and o.transform for o in spec.outputs.values())
    assert any(o.contract.references() for o in spec.outputs.values())


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (["outputs", "a", "contract", "columns", "id", "typo"], True, "outputs.a.contract.columns.id.typo: Extra inputs are not permitted"),
        (["outputs", "a", "contract", "columns", "id", "type"], "int128", "outputs.a.contract.columns.id.type"),
        (["outputs", "a", "contract", "columns", "id", "regex"], "([", "invalid regular expression"),
        (["outputs", "a", "contract", "columns", "id", "max_age"], "30 parsecs", "is not a duration"),
        (["outputs", "a", "contract", "columns", "id", "min"], 5, None),
        (["outputs", "a", "contract", "row_count"], {"min": 5, "max": 1}, "min (5) is greater than max (1)"),
        (["outputs", "b", "contract", "columns", "a_id", "references"], "nope.id", "no output named 'nope'"),
        (["outputs", "b", "contract", "columns", "a_id", "references"], "a.missing", "'a' declares no column 'missing'"),
        (["outputs", "b", "contract", "columns", "a_id", "references"], "a", "must be OUTPUT.COLUMN"),
        (["outputs", "b", "transform"], "no_colon", "must be module:function"),
        (["outputs", "b", "transform"], None, "without a transform an output takes exactly one input"),
        (["outputs", "a", "inputs"], {}, "outputs.a.inputs"),
        (["outputs", "a", "consumers"], ["bad name!"], "consumer 'bad name!'"),
        (["lane"], "Bad Lane", "lane: String should match pattern"),
        (["outputs", "b", "contract", "unique"], [[]], "a composite key needs at least one column"),
    ],
)
def test_bad_spec_names_field_and_reason(tmp_path, path, value, expected):
    document = mutate(path, value)
    if expected is None:  # min without max is fine
        load_spec(write(tmp_path, document))
        return
    with pytest.raises(SpecError) as caught:
        load_spec(write(tmp_path, document))
    assert expected in str(caught.value)
    assert str(tmp_path / "lane.yaml") in str(caught.value)


def test_reference_cycle_is_refused(tmp_path):
    document = mutate(["outputs", "a", "contract", "columns", "id", "references"], "b.a_id")
    with pytest.raises(SpecError, match="reference cycle between outputs"):
        load_spec(write(tmp_path, document))


def test_self_reference_is_refused(tmp_path):
    document = mutate(["outputs", "a", "contract", "columns", "id", "references"], "a.id")
    with pytest.raises(SpecError, match="cannot reference itself"):
        load_spec(write(tmp_path, document))


def test_missing_and_unparseable_files(tmp_path):
    with pytest.raises(SpecError, match="file not found"):
        load_spec(tmp_path / "absent.yaml")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(write(tmp_path, "lane: [unclosed"))
    with pytest.raises(SpecError, match="lane: Field required"):
        load_spec(write(tmp_path, "outputs: {}"))


def test_contract_file_with_or_without_key(tmp_path):
    (tmp_path / "c1.yaml").write_text(yaml.safe_dump({"contract": GOOD["outputs"]["a"]["contract"]}))
    (tmp_path / "c2.yaml").write_text(yaml.safe_dump(GOOD["outputs"]["a"]["contract"]))
    assert load_contract(tmp_path / "c1.yaml") == load_contract(tmp_path / "c2.yaml")
    (tmp_path / "c3.yaml").write_text("columns: {id: {type: nope}}")
    with pytest.raises(SpecError, match="columns.id.type"):
        load_contract(tmp_path / "c3.yaml")


def test_durations():
    assert parse_duration("30d").days == 30
    assert parse_duration("12h").total_seconds() == 12 * 3600
    with pytest.raises(ValueError):
        parse_duration("soon")
