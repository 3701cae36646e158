"""DynamoDB access per output step does not grow with the number of outputs of a run.

A counting wrapper around the ledger's DynamoDB client records every call and every item it
returned (a query that reads a run's whole partition returns more items as the run grows, even in
one call). Lanes of 5 and 50 pass-through outputs (each after the first referencing the first, so
begin and check look at an upstream output of the same run) run begin -> materialize -> check ->
decide per output under moto; the last output of each lane (whose run partition then holds the receipts of
every other output) must cost exactly what it costs in the small lane, step by step.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from moto import mock_aws
from support.aws_env import BUCKET, BUS, DUMMY_ENV, TABLE, create_lane_resources, patched_env

from batchlane.gate import check, close_run, decide
from batchlane.materialize import materialize
from batchlane.plan import begin_output, plan_run
from batchlane.spec import load_spec
from batchlane.stores.aws import DynamoLedger, aws_backend

STEPS = ("begin", "materialize", "check", "decide")


class CountingClient:
    """Wraps a boto3 DynamoDB client: calls per operation, and items returned, for the step being measured."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: Counter[str] = Counter()
        self.items: Counter[str] = Counter()

    def reset(self) -> None:
        self.calls.clear()
        self.items.clear()

    def taken(self) -> tuple[Counter[str], Counter[str]]:
        """(calls, items) since the last reset or ``taken``, then start counting afresh."""
        found = (Counter(self.calls), Counter(self.items))
        self.reset()
        return found

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method) or name.startswith("_") or name in ("meta", "exceptions"):
            return method

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            response = method(*args, **kwargs)
            if isinstance(response, dict):
                self.items[name] += len(response.get("Items", [])) + (1 if "Item" in response else 0)
            return response

        return counted


@pytest.fixture
def aws() -> Iterator[None]:
    with patched_env(dict(DUMMY_ENV), drop=("AWS_PROFILE", "AWS_ENDPOINT_URL")), mock_aws():
        create_lane_resources()
        yield


def _lane(folder: Path, outputs: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "items.csv").write_text("id,value\n1,10\n2,20\n")
    def columns(index: int) -> dict:  # every output after the first references it: begin and check look upstream
        reference = {"references": "out000.id"} if index else {}
        return {"id": {"unique": True, **reference}, "value": {"min": 0}}

    spec = {"lane": f"wide{outputs}", "outputs": {
        f"out{index:03d}": {"inputs": {"items": "items.csv"}, "contract": {"columns": columns(index)}}
        for index in range(outputs)}}
    (folder / "lane.yaml").write_text(yaml.safe_dump(spec))
    return folder / "lane.yaml"


def _run_counting(tmp_path: Path, outputs: int) -> list[dict[str, tuple[Counter[str], Counter[str]]]]:
    """Per output, per step: (calls by operation, items returned by operation)."""
    spec = load_spec(_lane(tmp_path / f"lane{outputs}", outputs))
    backend = aws_backend(BUCKET, TABLE, BUS)
    assert isinstance(backend.ledger, DynamoLedger)
    counting = CountingClient(backend.ledger.db)
    backend.ledger.db = counting
    plan = plan_run(backend, spec)
    measured = []
    for output in plan.outputs:
        steps: dict[str, tuple[Counter[str], Counter[str]]] = {}
        counting.reset()
        start = begin_output(backend, spec, plan.run_id, output)
        steps["begin"] = counting.taken()
        assert start.action == "materialize", start
        materialize(backend.store, spec, plan.run_id, output, start.attempt, job_id="test")
        steps["materialize"] = counting.taken()
        checked = check(backend, spec, plan.run_id, output, start.attempt)
        steps["check"] = counting.taken()
        assert checked.verdict == "PASS", checked.rules
        gate = decide(backend, spec, plan.run_id, output, start.attempt)
        steps["decide"] = counting.taken()
        assert gate.decision == "certified"
        measured.append(steps)
    assert close_run(backend, spec, plan.run_id).verdict == "PASS"
    return measured


def test_calls_and_items_read_per_output_step_do_not_grow_with_the_outputs_of_a_run(aws, tmp_path):
    small = _run_counting(tmp_path, 5)
    large = _run_counting(tmp_path, 50)
    for name in STEPS:
        small_calls, small_items = small[-1][name]
        large_calls, large_items = large[-1][name]
        assert large_calls == small_calls, (name, small_calls, large_calls)
        assert large_items == small_items, (name, small_items, large_items)
        # and within the large run: the 50th output costs what the 2nd did
        assert large[-1][name] == large[1][name], (name, large[1][name], large[-1][name])
    total = sum(sum(large[-1][name][0].values()) for name in STEPS)
    assert "scan" not in {op for name in STEPS for op in large[-1][name][0]}
    assert total <= 40, {name: dict(large[-1][name][0]) for name in STEPS}  # a handful of calls per step


def test_receipts_of_one_output_are_a_key_prefix_query(aws):
    """receipts(run, output) asks DynamoDB for that output's rows only: no other output's row is returned."""
    from datetime import UTC, datetime

    from batchlane.stores.base import ReceiptRow

    ledger = DynamoLedger(TABLE)
    counting = CountingClient(ledger.db)
    ledger.db = counting
    when = datetime(2026, 11, 29, tzinfo=UTC)
    for output in ("a", "ab", "b"):  # "a" is a prefix of "ab": the query must not return ab's rows for a
        for kind in ("begin", "materialize"):
            ledger.record_receipt(ReceiptRow(run_id="r1", output=output, attempt=1, kind=kind,
                                             key=f"receipts/r1/{output}/0001-{kind}.json", digest="d",
                                             status="ok", created_at=when))
    counting.reset()
    rows = ledger.receipts("r1", "a")
    assert sorted(row.key for row in rows) == ["receipts/r1/a/0001-begin.json", "receipts/r1/a/0001-materialize.json"]
    assert counting.calls == Counter(query=1) and counting.items == Counter(query=2)
    counting.reset()
    assert len(ledger.receipts("r1")) == 6  # the whole run, when asked for the whole run
