"""Glue Data Catalog publication under moto (Glue + S3): SQL engines see the certification in force only."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import awswrangler as wr
import boto3
import pytest
from moto import mock_aws
from support.aws_env import BUCKET, BUS, DUMMY_ENV, REGION, TABLE, create_lane_resources, patched_env
from support.lane_aws import copy_example

from batchlane.backends import local_backend
from batchlane.gate import read_table, revoke
from batchlane.glue_catalog import CatalogError, athena_type, published_prefix, sync_if_enabled, sync_output
from batchlane.spec import LaneSpec, load_spec
from batchlane.stores.aws import aws_backend
from batchlane.stores.base import Backend
from consumers.helpers import attempt_output

OUTPUT = "customers_clean"
DATABASE = "batchlane_orders"


@dataclass
class Lane:
    backend: Backend
    spec: LaneSpec
    spec_path: Path


@pytest.fixture
def aws_lane(tmp_path) -> Iterator[Lane]:
    spec_path = copy_example(tmp_path / "lane")
    with patched_env(dict(DUMMY_ENV), drop=("AWS_PROFILE", "AWS_ENDPOINT_URL", "LANE_GLUE_DATABASE")), mock_aws():
        create_lane_resources()
        yield Lane(aws_backend(BUCKET, TABLE, BUS), load_spec(spec_path), spec_path)


def certify(lane: Lane) -> str:
    run_id, gate = attempt_output(lane.backend, lane.spec, OUTPUT)
    assert gate.decision == "certified"
    return run_id


def glue_table() -> dict:
    return boto3.client("glue", region_name=REGION).get_table(DatabaseName=DATABASE, Name=OUTPUT)["Table"]


def location_keys(location: str) -> list[str]:
    bucket, prefix = location.removeprefix("s3://").split("/", 1)
    listing = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def test_the_table_points_at_the_certified_version_and_reads_exactly_its_rows(aws_lane):
    run_id = certify(aws_lane)
    synced = sync_output(aws_lane.backend, "orders", OUTPUT)
    assert (synced.action, synced.database, synced.table, synced.run_id) == ("created", DATABASE, OUTPUT, run_id)
    table = glue_table()
    location = table["StorageDescriptor"]["Location"]
    assert location == f"s3://{BUCKET}/{published_prefix('orders', OUTPUT, run_id, 1)}"
    assert location_keys(location) == [f"{published_prefix('orders', OUTPUT, run_id, 1)}part-0000.parquet"]
    assert {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]} == {
        "customer_id": "bigint", "email": "string", "country": "string"}
    assert table["Parameters"]["batchlane_run_id"] == run_id
    assert table["Parameters"]["batchlane_certification"] == f"receipts/{run_id}/{OUTPUT}/0001-gate.json"

    certified = read_table(aws_lane.backend, "orders", OUTPUT).to_pandas()
    through_catalog = wr.s3.read_parquet(path=wr.catalog.get_table_location(DATABASE, OUTPUT))
    assert len(through_catalog) == 200
    assert rows(through_catalog) == rows(certified)      # exactly the certified rows, value by value


def rows(frame) -> list[tuple]:
    return sorted(tuple(record.values()) for record in frame.astype(object).to_dict("records"))


def test_sync_is_idempotent(aws_lane):
    certify(aws_lane)
    assert sync_output(aws_lane.backend, "orders", OUTPUT).action == "created"
    before = glue_table()
    assert sync_output(aws_lane.backend, "orders", OUTPUT).action == "unchanged"
    after = glue_table()
    assert after["StorageDescriptor"] == before["StorageDescriptor"] and after["Parameters"] == before["Parameters"]


def test_a_new_certification_moves_the_table_in_one_update(aws_lane):
    first = certify(aws_lane)
    sync_output(aws_lane.backend, "orders", OUTPUT)
    second = certify(aws_lane)
    glue = boto3.client("glue", region_name=REGION)
    calls: list[str] = []
    original = glue.update_table

    def recording(**kwargs):
        calls.append(kwargs["TableInput"]["StorageDescriptor"]["Location"])
        return original(**kwargs)

    glue.update_table = recording
    synced = sync_output(aws_lane.backend, "orders", OUTPUT, boto3_session=_session_with(glue))
    assert synced.action == "updated" and synced.run_id == second != first
    assert calls == [f"s3://{BUCKET}/{published_prefix('orders', OUTPUT, second, 1)}"]   # one UpdateTable
    assert glue_table()["Parameters"]["batchlane_run_id"] == second


def _session_with(glue_client):
    """A boto3 session whose Glue client is the given (recording) one; other services as usual."""
    session = boto3.session.Session(region_name=REGION)
    original = session.client

    def client(service_name, *args, **kwargs):
        return glue_client if service_name == "glue" else original(service_name, *args, **kwargs)

    session.client = client
    return session


def test_a_rejected_run_leaves_the_table_unchanged(aws_lane):
    run_id = certify(aws_lane)
    sync_output(aws_lane.backend, "orders", OUTPUT)
    before = glue_table()
    with open(aws_lane.spec_path.parent / "data" / "customers.csv", "a") as handle:
        handle.write("99999,broken@example.com,XX\n")         # XX is not an accepted country
    _, gate = attempt_output(aws_lane.backend, aws_lane.spec, OUTPUT)
    assert gate.decision == "rejected"
    assert sync_output(aws_lane.backend, "orders", OUTPUT).action == "unchanged"
    after = glue_table()
    assert after["StorageDescriptor"]["Location"] == before["StorageDescriptor"]["Location"]
    assert after["Parameters"]["batchlane_run_id"] == run_id
    frame = wr.s3.read_parquet(path=after["StorageDescriptor"]["Location"])
    assert 99999 not in set(frame["customer_id"]) and len(frame) == 200


def test_a_revoke_removes_the_table_and_the_published_copy(aws_lane):
    run_id = certify(aws_lane)
    synced = sync_output(aws_lane.backend, "orders", OUTPUT)
    revoke(aws_lane.backend, "orders", OUTPUT, "wrong country codes")
    removed = sync_output(aws_lane.backend, "orders", OUTPUT)
    assert removed.action == "removed" and "wrong country codes" in (removed.reason or "")
    assert not wr.catalog.does_table_exist(database=DATABASE, table=OUTPUT)
    assert location_keys(synced.location or "") == []
    assert sync_output(aws_lane.backend, "orders", OUTPUT).action == "absent"
    assert run_id


def test_nothing_uncertified_is_ever_published(aws_lane):
    assert sync_output(aws_lane.backend, "orders", OUTPUT).action == "absent"      # no certification: no table
    run_id = certify(aws_lane)
    prefix = published_prefix("orders", OUTPUT, run_id, 1)
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key=prefix + "part-0000.parquet", Body=b"not the certified bytes")
    with pytest.raises(CatalogError, match="does not match the proof"):
        sync_output(aws_lane.backend, "orders", OUTPUT)
    assert not wr.catalog.does_table_exist(database=DATABASE, table=OUTPUT)
    s3.delete_object(Bucket=BUCKET, Key=prefix + "part-0000.parquet")
    s3.put_object(Bucket=BUCKET, Key=prefix + "extra.parquet", Body=b"dropped in by someone")
    with pytest.raises(CatalogError, match="not certified: .*extra.parquet"):
        sync_output(aws_lane.backend, "orders", OUTPUT)
    assert not wr.catalog.does_table_exist(database=DATABASE, table=OUTPUT)


def test_sync_if_enabled_is_off_by_default_and_on_with_a_database(aws_lane, monkeypatch):
    certify(aws_lane)
    assert sync_if_enabled(aws_lane.backend, "orders", OUTPUT) is None
    monkeypatch.setenv("LANE_GLUE_DATABASE", "analytics")
    synced = sync_if_enabled(aws_lane.backend, "orders", OUTPUT)
    assert synced is not None and (synced.database, synced.action) == ("analytics", "created")


def test_the_local_backend_is_refused_clearly(tmp_path):
    with pytest.raises(CatalogError, match="needs the aws backend"):
        sync_output(local_backend(tmp_path / "home"), "orders", OUTPUT)


@pytest.mark.parametrize(("arrow", "athena"), [
    ("int64", "bigint"), ("int32", "int"), ("double", "double"), ("large_string", "string"), ("bool", "boolean"),
    ("timestamp[us]", "timestamp"), ("timestamp[ns, tz=UTC]", "timestamp"), ("date32[day]", "date"),
    ("decimal128(10, 2)", "decimal(10,2)"), ("dictionary<values=string, indices=int32, ordered=0>", "string"),
])
def test_arrow_types_map_to_glue_types(arrow, athena):
    assert athena_type(arrow) == athena


def test_an_unmapped_type_names_the_column():
    with pytest.raises(CatalogError, match="column 'tags': Arrow type 'list<item: string>'"):
        athena_type("list<item: string>", column="tags")


def test_a_quiet_sync_logs_instead_of_failing_the_gate(aws_lane, monkeypatch, caplog):
    run_id = certify(aws_lane)
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=BUCKET, Key=published_prefix("orders", OUTPUT, run_id, 1) + "extra.parquet", Body=b"x")
    monkeypatch.setenv("LANE_GLUE_DATABASE", "auto")
    assert sync_if_enabled(aws_lane.backend, "orders", OUTPUT, quiet=True) is None
    assert "Glue sync of orders/customers_clean failed" in caplog.text
    assert not wr.catalog.does_table_exist(database=DATABASE, table=OUTPUT)
    with pytest.raises(CatalogError):
        sync_if_enabled(aws_lane.backend, "orders", OUTPUT)
