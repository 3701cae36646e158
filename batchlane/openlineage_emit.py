"""OpenLineage run events for a lane run, built from its receipts (openlineage-python client).

Off by default. ``emit_run(backend, run_id)`` sends nothing unless a transport is given or
``LANE_OPENLINEAGE`` is set:

- ``file:/path/events.jsonl``  one JSON event per line, appended
- ``console``                  the client's console transport (log lines)
- ``http://host:5000`` / ``https://...``  the client's HTTP transport (``api/v1/lineage``)
- ``openlineage``              the client's own configuration (``OPENLINEAGE_URL``, ``OPENLINEAGE_CONFIG``,
  ``openlineage.yml``, ``OPENLINEAGE__TRANSPORT__...``)

What is emitted per run (all ids stable: re-emitting a run sends the same run ids):

- the lane run: job ``<lane>``, START at the run's start, COMPLETE or FAIL at its latest manifest;
- per output attempt: job ``<lane>.<output>`` (parent: the lane run), START when it materialized,
  COMPLETE when the gate certified it (or it was memoized), FAIL when it was rejected or failed.
  Inputs are the input files the receipt pinned; the output is the data product ``<lane>.<output>``
  with its schema facet, a ``dataQualityAssertions`` facet holding every contract rule of the check
  receipt (expected, observed, pass/fail), and ``outputStatistics`` (rows, bytes, files).

The dataset namespace is ``LANE_OPENLINEAGE_NAMESPACE`` (default ``batchlane``); input files keep
their physical names (``s3://bucket`` + key, ``file`` + path).
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from batchlane import __version__
from batchlane.receipts import CheckReceipt, FileDigest, GateReceipt, MaterializeReceipt, RunManifest, parse_manifest
from batchlane.stores.base import Backend, NotFound

PRODUCER = f"https://github.com/batchlane/batchlane/tree/v{__version__}"
DEFAULT_NAMESPACE = "batchlane"


class LineageConfigError(ValueError):
    """LANE_OPENLINEAGE (or the transport argument) names no usable transport."""


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _run_uuid(started: datetime, *parts: object) -> str:
    from openlineage.client.uuid import generate_static_uuid

    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return str(generate_static_uuid(started, json.dumps([str(part) for part in parts]).encode()))


def _physical(uri: str) -> tuple[str, str]:
    """OpenLineage dataset naming: s3://bucket + key, file + absolute path."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        return f"s3://{parsed.netloc}", parsed.path.lstrip("/")
    if parsed.scheme == "file":
        return "file", parsed.path
    return parsed.scheme or "file", uri


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def transport_from(spec: Any) -> Any:
    """A client transport from ``file:PATH``, ``console``, ``http(s)://...`` or a Transport instance."""
    from openlineage.client.transport import Transport
    from openlineage.client.transport.console import ConsoleConfig, ConsoleTransport
    from openlineage.client.transport.file import FileConfig, FileTransport
    from openlineage.client.transport.http import HttpConfig, HttpTransport

    if isinstance(spec, Transport):
        return spec
    text = str(spec).strip()
    if text.startswith("file:"):
        path = text[len("file:"):]
        if path.startswith("//"):
            path = urlparse(text).path
        if not path:
            raise LineageConfigError("LANE_OPENLINEAGE=file:PATH needs a path")
        return FileTransport(FileConfig(log_file_path=path, append=True))
    if text == "console":
        return ConsoleTransport(ConsoleConfig())
    if text.startswith(("http://", "https://")):
        return HttpTransport(HttpConfig(url=text))
    raise LineageConfigError(
        f"LANE_OPENLINEAGE={text!r}: use file:PATH, console, http(s)://HOST, or openlineage (the client's own config)"
    )


def _client(spec: Any) -> Any:
    from openlineage.client import OpenLineageClient

    if isinstance(spec, str) and spec.strip() == "openlineage":
        return OpenLineageClient()
    return OpenLineageClient(transport=transport_from(spec))


def _load(backend: Backend, key: str) -> Any:
    from batchlane.receipts import parse_receipt

    try:
        return parse_receipt(backend.store.get(key))
    except (NotFound, ValueError):
        return None


def _assertions(check: CheckReceipt) -> Any:
    from openlineage.client.generated.data_quality_assertions_dataset import (
        Assertion,
        DataQualityAssertionsDatasetFacet,
    )

    return DataQualityAssertionsDatasetFacet(assertions=[
        Assertion(assertion=rule.rule, success=rule.passed, column=rule.column, name=rule.label, severity="error",
                  expected=_text(rule.expected), actual=_text(rule.observed),
                  params={"failing_count": rule.failing_count} if rule.failing_count else {})
        for rule in check.rules
    ])


def _product(namespace: str, lane: str, output: str, proof: list[FileDigest], check: CheckReceipt | None,
             with_statistics: bool) -> Any:
    from openlineage.client.event_v2 import OutputDataset
    from openlineage.client.generated.output_statistics_output_dataset import OutputStatisticsOutputDatasetFacet
    from openlineage.client.generated.schema_dataset import SchemaDatasetFacet, SchemaDatasetFacetFields

    facets: dict[str, Any] = {}
    schema = next((item.schema_ for item in proof if item.schema_), None)
    if schema:
        facets["schema"] = SchemaDatasetFacet(
            fields=[SchemaDatasetFacetFields(name=name, type=kind) for name, kind in schema.items()])
    if check is not None and check.rules:
        # the assertions describe this dataset version, so they ride on the produced dataset
        facets["dataQualityAssertions"] = _assertions(check)
    output_facets: dict[str, Any] = {}
    if with_statistics and proof:
        rows = [item.rows for item in proof]
        output_facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(
            rowCount=None if any(r is None for r in rows) else sum(r or 0 for r in rows),
            size=sum(item.size for item in proof), fileCount=len(proof))
    return OutputDataset(namespace=namespace, name=f"{lane}.{output}", facets=facets, outputFacets=output_facets)


def _inputs(materialized: MaterializeReceipt | None, product_namespace: str) -> list[Any]:
    """Input datasets: files by their physical location; a product input as the product dataset it reads
    (so lineage links the upstream job's output to this job's input)."""
    from openlineage.client.event_v2 import InputDataset

    if materialized is None:
        return []
    seen, datasets = set(), []
    for declared in materialized.inputs:
        pinned = [(product_namespace, f"{declared.product.lane}.{declared.product.output}")] \
            if declared.product is not None else [_physical(item.uri) for item in declared.files]
        for namespace, name in pinned:
            if (namespace, name) not in seen:
                seen.add((namespace, name))
                datasets.append(InputDataset(namespace=namespace, name=name))
    return datasets


def build_run_events(backend: Backend, run_id: str, *, namespace: str | None = None) -> list[Any]:
    """The OpenLineage RunEvents of a lane run, oldest first (no transport involved)."""
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.generated.error_message_run import ErrorMessageRunFacet
    from openlineage.client.generated.job_type_job import JobTypeJobFacet
    from openlineage.client.generated.parent_run import Job as ParentJob
    from openlineage.client.generated.parent_run import ParentRunFacet
    from openlineage.client.generated.parent_run import Run as ParentRun

    namespace = namespace or os.environ.get("LANE_OPENLINEAGE_NAMESPACE") or DEFAULT_NAMESPACE
    run = backend.ledger.get_run(run_id)
    if run is None:
        raise LookupError(f"no run {run_id!r} in the {backend.name} store")
    rows = backend.ledger.receipts(run_id)
    lane_job = Job(namespace=namespace, name=run.lane,
                   facets={"jobType": JobTypeJobFacet(processingType="BATCH", integration="BATCHLANE", jobType="DAG")})
    lane_run_id = _run_uuid(run.started_at, run.lane, run_id)
    parent = ParentRunFacet(run=ParentRun(runId=lane_run_id), job=ParentJob(namespace=namespace, name=run.lane))
    task_type = JobTypeJobFacet(processingType="BATCH", integration="BATCHLANE", jobType="TASK")
    events: list[Any] = [RunEvent(eventType=RunState.START, eventTime=_iso(run.started_at), producer=PRODUCER,
                                  run=Run(runId=lane_run_id), job=lane_job)]

    attempts: dict[tuple[str, int], dict[str, Any]] = {}
    manifests = []
    for row in rows:
        if row.kind == "manifest":
            manifests.append(row)
        elif row.kind in ("materialize", "check", "gate"):
            attempts.setdefault((row.output, row.attempt), {})[row.kind] = _load(backend, row.key)
    for (output, attempt), receipts in sorted(attempts.items()):
        materialized = receipts.get("materialize")
        materialized = materialized if isinstance(materialized, MaterializeReceipt) else None
        check = receipts.get("check") if isinstance(receipts.get("check"), CheckReceipt) else None
        gate = receipts.get("gate") if isinstance(receipts.get("gate"), GateReceipt) else None
        if materialized is not None:
            started = materialized.started_at
        else:
            started = check.created_at if check else gate.created_at if gate else run.started_at
        job = Job(namespace=namespace, name=f"{run.lane}.{output}", facets={"jobType": task_type})
        run_uuid = _run_uuid(started, run.lane, run_id, output, attempt)
        inputs = _inputs(materialized, namespace)
        events.append(RunEvent(eventType=RunState.START, eventTime=_iso(started), producer=PRODUCER,
                               run=Run(runId=run_uuid, facets={"parent": parent}), job=job, inputs=inputs))
        memoized = materialized is not None and materialized.status == "memoized"
        if gate is None and not memoized and not (materialized and materialized.status in ("failed", "blocked")):
            continue   # still running: START only
        certified = (gate is not None and gate.decision == "certified") or (memoized and gate is None)
        proof = gate.proof if gate is not None and certified else (check.products if check else [])
        product = _product(namespace, run.lane, output, proof, check, with_statistics=certified)
        finished = gate.created_at if gate else (materialized.finished_at if materialized else run.started_at)
        facets: dict[str, Any] = {"parent": parent}
        if not certified:
            reason = (gate.reason if gate else None) or (materialized.error if materialized else None) or "failed"
            facets["errorMessage"] = ErrorMessageRunFacet(message=reason, programmingLanguage="python")
        events.append(RunEvent(eventType=RunState.COMPLETE if certified else RunState.FAIL, eventTime=_iso(finished),
                               producer=PRODUCER, run=Run(runId=run_uuid, facets=facets), job=job, inputs=inputs,
                               outputs=[product]))
    if manifests:
        manifest: RunManifest | None
        try:
            manifest = parse_manifest(backend.store.get(manifests[-1].key))
        except (NotFound, ValueError):
            manifest = None
        if manifest is not None:
            events.append(RunEvent(
                eventType=RunState.COMPLETE if manifest.verdict == "PASS" else RunState.FAIL,
                eventTime=_iso(manifest.closed_at), producer=PRODUCER, run=Run(runId=lane_run_id), job=lane_job,
            ))
    return events


def lineage_target(transport: Any = None) -> Any:
    """The configured transport spec, or None when OpenLineage is off."""
    if transport is not None:
        return transport
    value = os.environ.get("LANE_OPENLINEAGE", "").strip()
    return value or None


def emit_run(backend: Backend, run_id: str, *, transport: Any = None, namespace: str | None = None,
             quiet: bool = False) -> list[Any]:
    """Build and send the run's OpenLineage events; returns them. Sends nothing when OpenLineage is off.

    ``quiet=True`` (for close_run: lineage never fails a run) logs a failure as a warning and returns [].
    """
    target = lineage_target(transport)
    if target is None:
        return []
    try:
        client = _client(target)
        events = build_run_events(backend, run_id, namespace=namespace)
        for event in events:
            client.emit(event)
    except Exception as exc:
        if not quiet:
            raise
        logging.getLogger("batchlane.openlineage").warning("OpenLineage events of run %s not sent: %s", run_id, exc)
        return []
    return events
