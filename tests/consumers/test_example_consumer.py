"""examples/consumers/revenue_view.py: a derived view that only ever reflects certified data (local and moto SQS)."""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

import boto3
import pandas as pd
import pytest
from moto import mock_aws
from support.aws_env import BUCKET, BUS, DUMMY_ENV, TABLE, create_lane_resources, patched_env
from support.lane_aws import copy_example

from batchlane.backends import local_backend
from batchlane.consume import consumer
from batchlane.gate import read_table
from batchlane.spec import load_spec
from batchlane.stores.aws import aws_backend
from consumers.helpers import attempt_output

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "consumers" / "revenue_view.py"


def load_example():
    module_spec = importlib.util.spec_from_file_location("revenue_view_example", EXAMPLE)
    assert module_spec and module_spec.loader
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


revenue_view = load_example()


def view_rows(path: Path) -> dict[str, tuple[float, int]]:
    with sqlite3.connect(path) as db:
        return {day: (revenue, orders) for day, revenue, orders in db.execute("SELECT * FROM daily_revenue")}


def view_source(path: Path) -> tuple:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT run_id, state, note FROM source").fetchone()


def expected_totals(frame: pd.DataFrame) -> dict[str, tuple[float, int]]:
    paid = frame[frame["status"].isin(["PAID", "SHIPPED"])]
    grouped = paid.groupby(paid["ts"].dt.strftime("%Y-%m-%d"))["amount"].agg(["sum", "count"])
    return {day: (round(float(row["sum"]), 2), int(row["count"])) for day, row in grouped.iterrows()}


def test_the_view_follows_certified_versions_and_empties_on_revoke(lane_dir, lane_home, lane, lane_json, tmp_path):
    view = tmp_path / "revenue.sqlite"
    code, first = lane_json("run", lane_dir / "lane.yaml")
    assert code == 0
    assert revenue_view.main(["--view", str(view)]) == 0
    certified = read_table(local_backend(lane_home), "orders", "orders_clean").to_pandas()
    assert view_rows(view) == expected_totals(certified) and len(view_rows(view)) > 1
    assert view_source(view) == (first["run_id"], "certified", None)

    # a new certified version (one order's amount changed upstream) replaces the view
    orders_csv = lane_dir / "data" / "orders.csv"
    lines = orders_csv.read_text().splitlines()
    fields = lines[1].split(",")
    fields[2] = "1000.00"
    orders_csv.write_text("\n".join([lines[0], ",".join(fields), *lines[2:]]) + "\n")
    code, second = lane_json("run", lane_dir / "lane.yaml")
    assert code == 0 and second["outputs"]["orders_clean"]["state"] == "certified"
    assert revenue_view.main(["--view", str(view)]) == 0
    newer = read_table(local_backend(lane_home), "orders", "orders_clean").to_pandas()
    assert view_rows(view) == expected_totals(newer) != expected_totals(certified)
    assert view_source(view)[0] == second["run_id"]

    assert lane("revoke", "orders", "orders_clean", "--reason", "double-counted refunds")[0] == 0
    assert revenue_view.main(["--view", str(view)]) == 0
    assert view_rows(view) == {}
    assert view_source(view) == (second["run_id"], "revoked", "double-counted refunds")


def test_a_crash_between_the_view_and_the_ack_replays_without_double_counting(lane_dir, lane_home, lane, tmp_path):
    assert lane("run", lane_dir / "lane.yaml")[0] == 0
    view = tmp_path / "revenue.sqlite"
    follower = consumer("fraud-stream")
    item = next(item for item in follower.pending() if item.output == "orders_clean")
    revenue_view.apply(revenue_view.open_view(view), item)      # the view committed ... then the process died
    once = view_rows(view)
    assert revenue_view.main(["--view", str(view)]) == 0        # the restart gets the same event again
    assert view_rows(view) == once
    assert consumer("fraud-stream").pending() == []


def test_the_view_follows_the_consumer_queue_on_aws(tmp_path):
    from consumers.test_consume_aws import consumer_queue

    spec_path = copy_example(tmp_path / "lane")
    with patched_env(dict(DUMMY_ENV), drop=("AWS_PROFILE", "AWS_ENDPOINT_URL")), mock_aws():
        create_lane_resources()
        url, _ = consumer_queue("fraud-stream")
        backend = aws_backend(BUCKET, TABLE, BUS)
        spec = load_spec(spec_path)
        for output in ("customers_clean", "orders_clean"):
            assert attempt_output(backend, spec, output)[1].decision == "certified"
        view = tmp_path / "revenue.sqlite"
        follower = consumer("fraud-stream", backend=backend, queue_url=url, state_path=tmp_path / "state.sqlite")
        assert revenue_view.process(follower.follow(poll=None), view, log=lambda line: None) == 1
        certified = read_table(backend, "orders", "orders_clean").to_pandas()
        assert view_rows(view) == expected_totals(certified)
        depth = boto3.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        assert depth["Attributes"]["ApproximateNumberOfMessages"] == "0"


@pytest.mark.parametrize("argv", [[], ["--view"]])
def test_the_example_needs_a_view_path(argv, capsys):
    with pytest.raises(SystemExit) as raised:
        revenue_view.main(argv)
    assert raised.value.code == 2 and "--view" in capsys.readouterr().err
