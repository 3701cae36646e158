"""OpenLineage events of the example run, validated against the official JSON schemas (vendored, offline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from batchlane.backends import local_backend
from batchlane.openlineage_emit import LineageConfigError, build_run_events, emit_run
from consumers.helpers import break_payments

SPEC_DIR = Path(__file__).parent / "openlineage_spec"
CORE_ID = "https://openlineage.io/spec/2-0-2/OpenLineage.json"


def _registry() -> tuple[Registry, set[str]]:
    documents = [json.loads(path.read_text()) for path in sorted(SPEC_DIR.rglob("*.json"))]
    registry = Registry().with_resources((doc["$id"], Resource.from_contents(doc)) for doc in documents)
    return registry, {doc["$id"] for doc in documents}


REGISTRY, KNOWN_IDS = _registry()


def validate(document: dict, schema_url: str) -> None:
    """Validate against the definition a schema URL names (``<$id>#/$defs/<Name>``), formats included."""
    validator = Draft202012Validator({"$ref": schema_url}, registry=REGISTRY, format_checker=FormatChecker())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def facets_of(event: dict) -> list[dict]:
    found = list((event["run"].get("facets") or {}).values()) + list((event["job"].get("facets") or {}).values())
    for dataset in event.get("inputs", []) + event.get("outputs", []):
        for group in ("facets", "inputFacets", "outputFacets"):
            found += list((dataset.get(group) or {}).values())
    return found


def validate_event(event: dict) -> None:
    assert event["schemaURL"] == f"{CORE_ID}#/$defs/RunEvent"
    validate(event, event["schemaURL"])
    for facet in facets_of(event):
        schema_url = facet["_schemaURL"]
        assert schema_url.split("#")[0] in KNOWN_IDS, f"facet schema {schema_url} is not vendored"
        validate(facet, schema_url)


def emitted(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_example_run_emits_valid_start_and_complete_events_with_assertions(lane_dir, lane_home, lane_json,
                                                                               tmp_path):
    code, result = lane_json("run", lane_dir / "lane.yaml")
    assert code == 0
    target = tmp_path / "lineage.jsonl"
    sent = emit_run(local_backend(lane_home), result["run_id"], transport=f"file:{target}")
    events = emitted(target)
    assert len(events) == len(sent) == 10
    for event in events:
        validate_event(event)
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [
        ("orders", "START"),
        ("orders.customers_clean", "START"), ("orders.customers_clean", "COMPLETE"),
        ("orders.daily_revenue", "START"), ("orders.daily_revenue", "COMPLETE"),
        ("orders.order_payments", "START"), ("orders.order_payments", "COMPLETE"),
        ("orders.orders_clean", "START"), ("orders.orders_clean", "COMPLETE"),
        ("orders", "COMPLETE"),
    ]
    lane_run = events[0]["run"]["runId"]
    complete = {e["job"]["name"]: e for e in events if e["eventType"] == "COMPLETE"}
    payments = complete["orders.order_payments"]
    assert payments["run"]["facets"]["parent"]["run"]["runId"] == lane_run
    assert sorted(Path(d["name"]).name for d in payments["inputs"]) == ["orders.csv", "payments.jsonl"]
    assert {d["namespace"] for d in payments["inputs"]} == {"file"}
    daily = complete["orders.daily_revenue"]  # product inputs link to the upstream jobs' output datasets
    assert sorted((d["namespace"], d["name"]) for d in daily["inputs"]) == [
        ("batchlane", "orders.order_payments"), ("batchlane", "orders.orders_clean")]
    (product,) = payments["outputs"]
    assert (product["namespace"], product["name"]) == ("batchlane", "orders.order_payments")
    assertions = product["facets"]["dataQualityAssertions"]["assertions"]
    assert assertions and all(a["success"] for a in assertions)
    assert {"column": "outstanding", "assertion": "min"}.items() <= next(
        a for a in assertions if a["assertion"] == "min" and a["column"] == "outstanding").items()
    assert product["outputFacets"]["outputStatistics"]["rowCount"] == 2000
    assert {f["name"]: f["type"] for f in product["facets"]["schema"]["fields"]} == {
        "order_id": "int64", "paid": "double", "payment_count": "int64", "outstanding": "double"}


def test_a_rejected_output_emits_fail_with_its_failing_assertion(lane_dir, lane_home, lane_json, tmp_path):
    assert lane_json("run", lane_dir / "lane.yaml")[0] == 0
    break_payments(lane_dir)
    code, result = lane_json("run", lane_dir / "lane.yaml")
    assert code == 1
    events = [json.loads(json.dumps(_to_dict(e))) for e in build_run_events(local_backend(lane_home),
                                                                              result["run_id"])]
    for event in events:
        validate_event(event)
    failed = [e for e in events if e["eventType"] == "FAIL"]
    assert [e["job"]["name"] for e in failed] == ["orders.daily_revenue", "orders.order_payments", "orders"]
    assert "blocked: upstream order_payments" in failed[0]["run"]["facets"]["errorMessage"]["message"]
    failed = failed[1:]
    (product,) = failed[0]["outputs"]
    broken = [a for a in product["facets"]["dataQualityAssertions"]["assertions"] if not a["success"]]
    assert [(a["assertion"], a["column"]) for a in broken] == [("min", "outstanding")]
    assert "min(outstanding)" in failed[0]["run"]["facets"]["errorMessage"]["message"]
    assert "outputStatistics" not in product.get("outputFacets", {})   # nothing was certified


def _to_dict(event) -> dict:
    from openlineage.client.serde import Serde

    return Serde.to_dict(event)


def test_run_ids_are_stable_across_emissions(lane_dir, lane_home, lane_json):
    code, result = lane_json("run", lane_dir / "lane.yaml", "--outputs", "customers_clean")
    assert code == 0
    backend = local_backend(lane_home)
    first = [e.run.runId for e in build_run_events(backend, result["run_id"])]
    assert first == [e.run.runId for e in build_run_events(backend, result["run_id"])]
    assert len(set(first)) == 2     # the lane run and the output's run


def test_off_by_default_on_with_lane_openlineage(lane_dir, lane_home, lane_json, tmp_path, monkeypatch):
    code, result = lane_json("run", lane_dir / "lane.yaml", "--outputs", "customers_clean")
    assert code == 0
    backend = local_backend(lane_home)
    monkeypatch.delenv("LANE_OPENLINEAGE", raising=False)
    assert emit_run(backend, result["run_id"]) == []
    target = tmp_path / "ol" / "events.jsonl"
    target.parent.mkdir()
    monkeypatch.setenv("LANE_OPENLINEAGE", f"file:{target}")
    assert len(emit_run(backend, result["run_id"])) == 4 and len(emitted(target)) == 4


@pytest.mark.parametrize("setting", ["kafka://broker", "file:", "nonsense"])
def test_an_unusable_transport_setting_is_named(lane_dir, lane_home, lane_json, monkeypatch, setting):
    code, result = lane_json("run", lane_dir / "lane.yaml", "--outputs", "customers_clean")
    assert code == 0
    monkeypatch.setenv("LANE_OPENLINEAGE", setting)
    with pytest.raises(LineageConfigError, match="LANE_OPENLINEAGE"):
        emit_run(local_backend(lane_home), result["run_id"])


def test_the_vendored_schemas_are_the_ones_the_installed_client_names():
    from openlineage.client.event_v2 import RunEvent
    from openlineage.client.generated.data_quality_assertions_dataset import DataQualityAssertionsDatasetFacet
    from openlineage.client.generated.error_message_run import ErrorMessageRunFacet
    from openlineage.client.generated.job_type_job import JobTypeJobFacet
    from openlineage.client.generated.output_statistics_output_dataset import OutputStatisticsOutputDatasetFacet
    from openlineage.client.generated.parent_run import ParentRunFacet
    from openlineage.client.generated.schema_dataset import SchemaDatasetFacet
    from openlineage.client.generated.tags_run import TagsRunFacet  # the client adds its version as run tags

    named = {cls._get_schema().split("#")[0] for cls in (
        RunEvent, DataQualityAssertionsDatasetFacet, ErrorMessageRunFacet, JobTypeJobFacet,
        OutputStatisticsOutputDatasetFacet, ParentRunFacet, SchemaDatasetFacet, TagsRunFacet)}
    assert named == KNOWN_IDS


def test_a_wrong_event_fails_the_schema():
    with pytest.raises(AssertionError, match="runId"):
        validate({"eventTime": "2026-11-29T00:00:00Z", "producer": "https://x", "schemaURL": f"{CORE_ID}#",
                  "run": {"runId": "not-a-uuid"}, "job": {"namespace": "n", "name": "j"}},
                 f"{CORE_ID}#/$defs/RunEvent")


def test_quiet_emission_logs_instead_of_failing_the_caller(lane_dir, lane_home, lane_json, monkeypatch, caplog):
    code, result = lane_json("run", lane_dir / "lane.yaml", "--outputs", "customers_clean")
    assert code == 0
    monkeypatch.setenv("LANE_OPENLINEAGE", "file:/nonexistent-dir/for/sure/events.jsonl")
    assert emit_run(local_backend(lane_home), result["run_id"], quiet=True) == []
    assert "OpenLineage events of run" in caplog.text
    with pytest.raises(RuntimeError):
        emit_run(local_backend(lane_home), result["run_id"])
