"""AWS adapters for the store ports: S3 objects, a DynamoDB ledger, an EventBridge bus.

Single-table DynamoDB design (partition key ``pk`` (S), sort key ``sk`` (S), no GSI):

============================  ==========================  =========================================
pk                            sk                          what
============================  ==========================  =========================================
``RUN#<run_id>``              ``RUN``                     the run record (conditional put)
``RUNS``                      ``<started_at>#<run_id>``   run index, newest first via a reverse query
``RUN#<run_id>``              ``ATTEMPT#<output>``        attempt counter (atomic ``ADD``)
``RUN#<run_id>``              ``RECEIPT#<key>``           receipt index row (conditional put)
``CERT#<lane>#<output>``      ``POINTER``                 certification pointer (compare-and-swap on ``version``)
``CERT#<lane>#<output>``      ``STATE#<version>``         every pointer state ever stored (history)
``POINTERS``                  ``<lane>#<output>``         listing copy of every pointer (``lane catalog``)
``OUTBOX``                    ``<event_id>``              queued, unpublished event (deleted when published)
``EVENT#<event_id>``          ``QUEUED``                  marker: this event id was queued once (dedupe)
============================  ==========================  =========================================

Access patterns: every read is a ``GetItem`` or a ``Query`` on one partition key, never a ``Scan``. A step of
one output (begin, check, decide) reads that output's receipt rows with ``begins_with(sk, "RECEIPT#receipts/
<run>/<output>/")``, its pointer and its attempt counter: a constant number of calls and items whatever the
number of outputs in the run (``tests/aws/test_dynamo_access.py`` counts them for 5 and 50 outputs). Only
run-level work (closing a run, ``lane show``/``verify``) reads the whole ``RUN#<run_id>`` partition. A run's
rows share one partition key; at 1,000 outputs a run holds about 5,000 small rows (far below the 10 GB item
collection limit) and each step touches only its own sort-key range.

A pointer swap is one ``TransactWriteItems``: the pointer (conditional on the version read), its
history row, the listing row and the outbox event, so an event is never lost between "certified"
and "published": ``unpublished_events`` re-publishes it. Which swaps are allowed (never to an older
certification, never undoing a revocation) is decided once, in ``batchlane.certification``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from batchlane.receipts import FileDigest, LaneEvent, utcnow
from batchlane.stores.base import (
    AlreadyExists,
    Backend,
    CertPointer,
    ConditionFailed,
    NotFound,
    ReceiptRow,
    RunRecord,
    StoreError,
    pointer_from_json,
    pointer_to_json,
)

CHUNK = 8 * 1024 * 1024            # streaming read size
PART = 16 * 1024 * 1024            # multipart part size (S3 minimum is 5 MiB)

_CLIENT_CONFIG = Config(retries={"max_attempts": 8, "mode": "adaptive"})


def _client(service: str, session: boto3.session.Session | None = None) -> Any:
    # AWS_ENDPOINT_URL (botocore >= 1.31) points clients at an emulator when set.
    return (session or boto3.session.Session()).client(service, config=_CLIENT_CONFIG)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


# --------------------------------------------------------------------------- S3


class S3ObjectStore:
    """Objects under ``s3://bucket/prefix``; write-once keys use ``If-None-Match: *``."""

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.s3 = client or _client("s3")

    def _key(self, key: str) -> str:
        return self.prefix + key.lstrip("/")

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    # -- writes

    def put_once(self, key: str, data: bytes) -> None:
        try:
            self.s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*",
                               ContentType="application/json" if key.endswith(".json") else "application/octet-stream")
        except ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise AlreadyExists(f"{self.uri(key)} was written before; the earlier bytes stand") from None
            raise StoreError(f"cannot write {self.uri(key)}: {exc}") from exc

    def put_file_once(self, source: Path, key: str) -> FileDigest:
        """Upload a finished file write-once, hashing it in the same single read pass."""
        source = Path(source)
        if self.exists(key):
            raise AlreadyExists(f"{self.uri(key)} was written before; the earlier bytes stand")
        sha = hashlib.sha256()
        size = 0
        with source.open("rb") as handle:
            first = handle.read(PART)
            sha.update(first)
            size += len(first)
            if len(first) < PART:   # small file: one conditional PUT
                try:
                    response = self.s3.put_object(Bucket=self.bucket, Key=self._key(key), Body=first, IfNoneMatch="*")
                except ClientError as exc:
                    if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                        raise AlreadyExists(f"{self.uri(key)} was written before") from None
                    raise StoreError(f"cannot upload {source} to {self.uri(key)}: {exc}") from exc
            else:                   # large file: multipart, hashing each part as it is sent
                response = self._multipart(handle, first, key, sha)
                size = response.pop("_size")
        return FileDigest(
            uri=self.uri(key), size=size, sha256=sha.hexdigest(),
            version=response.get("VersionId"),  # only a version id pins bytes; an ETag does not
        )

    def _multipart(self, handle: Any, first: bytes, key: str, sha: Any) -> dict[str, Any]:
        upload = self.s3.create_multipart_upload(Bucket=self.bucket, Key=self._key(key))
        upload_id = upload["UploadId"]
        parts: list[dict[str, Any]] = []
        size = 0
        try:
            chunk, number = first, 1
            while chunk:
                size += len(chunk)
                part = self.s3.upload_part(
                    Bucket=self.bucket, Key=self._key(key), UploadId=upload_id, PartNumber=number, Body=chunk
                )
                parts.append({"PartNumber": number, "ETag": part["ETag"]})
                chunk = handle.read(PART)
                sha.update(chunk)
                number += 1
            response = self.s3.complete_multipart_upload(
                Bucket=self.bucket, Key=self._key(key), UploadId=upload_id,
                MultipartUpload={"Parts": parts}, IfNoneMatch="*",
            )
        except ClientError as exc:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self._key(key), UploadId=upload_id)
            if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise AlreadyExists(f"{self.uri(key)} was written before") from None
            raise StoreError(f"cannot upload to {self.uri(key)}: {exc}") from exc
        except BaseException:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self._key(key), UploadId=upload_id)
            raise
        return {**response, "_size": size}

    # -- reads

    def _get(self, key: str) -> dict[str, Any]:
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise NotFound(f"{self.uri(key)} does not exist") from None
            raise StoreError(f"cannot read {self.uri(key)}: {exc}") from exc

    def get(self, key: str) -> bytes:
        return self._get(key)["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StoreError(f"cannot stat {self.uri(key)}: {exc}") from exc

    def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            keys.extend(item["Key"][len(self.prefix):] for item in page.get("Contents", []))
        return sorted(keys)

    def open_read(self, key: str) -> Iterator[bytes]:
        body = self._get(key)["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def _stream_digest(self, key: str, sink: Any = None) -> FileDigest:
        response = self._get(key)
        sha = hashlib.sha256()
        size = 0
        body = response["Body"]
        try:
            for chunk in body.iter_chunks(CHUNK):
                sha.update(chunk)
                size += len(chunk)
                if sink is not None:
                    sink.write(chunk)
        finally:
            body.close()
        return FileDigest(
            uri=self.uri(key), size=size, sha256=sha.hexdigest(),
            version=response.get("VersionId"),  # only a version id pins bytes; an ETag does not
        )

    def fetch(self, key: str, destination: Path) -> FileDigest:
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".partial")
        try:
            with partial.open("wb") as sink:
                digest = self._stream_digest(key, sink)
            os.replace(partial, destination)
        finally:
            partial.unlink(missing_ok=True)
        return digest

    def presigned_get(self, key: str, *, version: str | None = None, expires_in: int = 900) -> str:
        """A time-limited GET URL for one object, pinned to a version when one is given."""
        params = {"Bucket": self.bucket, "Key": self._key(key)}
        if version:
            params["VersionId"] = version
        return self.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)

    def local_path(self, key: str) -> Path | None:
        return None

    def digest(self, key: str) -> FileDigest:
        return self._stream_digest(key)

    def holds(self, key: str, recorded: FileDigest) -> bool:
        """One HEAD when the digest recorded a version id (the bucket is versioned: a version's bytes never
        change, and they were hashed when recorded): the key's current version must be that one, at that size.
        Without a recorded version the object is streamed and re-hashed."""
        if recorded.version is None:
            try:
                actual = self._stream_digest(key)
            except NotFound:
                return False
            return (actual.size, actual.sha256) == (recorded.size, recorded.sha256)
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StoreError(f"cannot stat {self.uri(key)}: {exc}") from exc
        return head.get("VersionId") == recorded.version and head.get("ContentLength") == recorded.size


# --------------------------------------------------------------------- DynamoDB


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _run_from(item: dict[str, Any]) -> RunRecord:
    return RunRecord(
        run_id=item["run_id"]["S"],
        lane=item["lane"]["S"],
        trigger=item["trigger"]["S"],
        started_at=_dt(item["started_at"]["S"]),
        spec_digest=item["spec_digest"]["S"],
        outputs=tuple(json.loads(item["outputs"]["S"])),
        spec_path=item.get("spec_path", {}).get("S", ""),
        params=json.loads(item.get("params", {}).get("S", "{}")),
    )


def _row_from(item: dict[str, Any]) -> ReceiptRow:
    return ReceiptRow(
        run_id=item["run_id"]["S"],
        output=item["output"]["S"],
        attempt=int(item["attempt"]["N"]),
        kind=item["kind"]["S"],
        key=item["key"]["S"],
        digest=item["digest"]["S"],
        status=item["status"]["S"],
        created_at=_dt(item["created_at"]["S"]),
    )


def _cancelled_by_condition(exc: ClientError) -> bool:
    if _code(exc) == "ConditionalCheckFailedException":
        return True
    if _code(exc) == "TransactionCanceledException":
        reasons = exc.response.get("CancellationReasons") or []
        if reasons:
            return any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons)
        return "ConditionalCheckFailed" in str(exc)
    return False


class DynamoLedger:
    """Runs, attempts, receipt index, certification pointers and the event outbox in one table."""

    def __init__(self, table_name: str, *, client: Any = None) -> None:
        self.table = table_name
        self.db = client or _client("dynamodb")

    # -- helpers

    def _query(self, pk: str, *, begins: str | None = None, forward: bool = True, limit: int | None = None) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk" + (" AND begins_with(sk, :sk)" if begins else ""),
            "ExpressionAttributeValues": {":pk": _s(pk), **({":sk": _s(begins)} if begins else {})},
            "ScanIndexForward": forward,
            "ConsistentRead": True,
        }
        if limit:
            kwargs["Limit"] = limit
        while True:
            page = self.db.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        item = self.db.get_item(TableName=self.table, Key={"pk": _s(pk), "sk": _s(sk)}, ConsistentRead=True).get("Item")
        return item

    # -- runs

    def create_run(self, run: RunRecord) -> RunRecord:
        started = _iso(run.started_at)
        record = {
            "pk": _s(f"RUN#{run.run_id}"), "sk": _s("RUN"),
            "run_id": _s(run.run_id), "lane": _s(run.lane), "trigger": _s(run.trigger),
            "started_at": _s(started), "spec_digest": _s(run.spec_digest),
            "outputs": _s(json.dumps(list(run.outputs))), "spec_path": _s(run.spec_path),
            "params": _s(json.dumps(run.params, sort_keys=True)),
        }
        index = {**record, "pk": _s("RUNS"), "sk": _s(f"{started}#{run.run_id}")}
        try:
            self.db.transact_write_items(TransactItems=[
                {"Put": {"TableName": self.table, "Item": record, "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Put": {"TableName": self.table, "Item": index}},
            ])
        except ClientError as exc:
            if not _cancelled_by_condition(exc):
                raise StoreError(f"cannot register run {run.run_id}: {exc}") from exc
            existing = self.get_run(run.run_id)
            if existing is None:  # pragma: no cover - a lost race with a delete
                raise StoreError(f"run {run.run_id}: registration conflict") from exc
            return existing
        return run

    def get_run(self, run_id: str) -> RunRecord | None:
        item = self._get(f"RUN#{run_id}", "RUN")
        return _run_from(item) if item else None

    def list_runs(self, lane: str | None = None, limit: int = 50) -> list[RunRecord]:
        runs: list[RunRecord] = []
        for item in self._query("RUNS", forward=False):
            if lane is None or item["lane"]["S"] == lane:
                runs.append(_run_from(item))
                if len(runs) >= limit:
                    break
        return runs

    # -- attempts and receipts

    def next_attempt(self, run_id: str, output: str) -> int:
        response = self.db.update_item(
            TableName=self.table,
            Key={"pk": _s(f"RUN#{run_id}"), "sk": _s(f"ATTEMPT#{output}")},
            UpdateExpression="ADD attempts :one",
            ExpressionAttributeValues={":one": _n(1)},
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["attempts"]["N"])

    def record_receipt(self, row: ReceiptRow) -> None:
        item = {
            "pk": _s(f"RUN#{row.run_id}"), "sk": _s(f"RECEIPT#{row.key}"),
            "run_id": _s(row.run_id), "output": _s(row.output), "attempt": _n(row.attempt),
            "kind": _s(row.kind), "key": _s(row.key), "digest": _s(row.digest),
            "status": _s(row.status), "created_at": _s(_iso(row.created_at)),
        }
        try:
            self.db.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise AlreadyExists(f"receipt {row.key} is already indexed") from None
            raise StoreError(f"cannot index receipt {row.key}: {exc}") from exc

    def receipts(self, run_id: str, output: str | None = None) -> list[ReceiptRow]:
        """One output's rows: a query on its sort-key range only (receipt keys are receipts/RUN/OUTPUT/...,
        the trailing slash keeps output ``a`` apart from ``ab``), so what one output step reads does not grow
        with the other outputs of its run. Without ``output``: the whole run, manifests included."""
        prefix = f"RECEIPT#receipts/{run_id}/" + (f"{output}/" if output is not None else "")
        return [_row_from(item) for item in self._query(f"RUN#{run_id}", begins=prefix)]

    # -- certification pointer: the pointer item, its history (one item per version) and a listing row

    def swap_pointer(self, expected_version: int, pointer: CertPointer, event: LaneEvent) -> CertPointer:
        stored = dataclasses.replace(pointer, version=expected_version + 1)
        body = {"body": _s(pointer_to_json(stored)), "version": _n(stored.version)}
        pk = f"CERT#{pointer.lane}#{pointer.output}"
        if expected_version:
            condition: dict[str, Any] = {"ConditionExpression": "#v = :expected",
                                         "ExpressionAttributeNames": {"#v": "version"},
                                         "ExpressionAttributeValues": {":expected": _n(expected_version)}}
        else:
            condition = {"ConditionExpression": "attribute_not_exists(pk)"}
        try:
            self.db.transact_write_items(TransactItems=[
                {"Put": {"TableName": self.table, "Item": {"pk": _s(pk), "sk": _s("POINTER"), **body}, **condition}},
                {"Put": {"TableName": self.table, "Item": {"pk": _s(pk), "sk": _s(f"STATE#{stored.version:010d}"),
                                                           **body},
                         "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Put": {"TableName": self.table,
                         "Item": {"pk": _s("POINTERS"), "sk": _s(f"{pointer.lane}#{pointer.output}"), **body}}},
                {"Put": {"TableName": self.table, "Item": self._outbox_item(event)}},
                {"Put": {"TableName": self.table, "Item": self._marker_item(event)}},
            ])
        except ClientError as exc:
            if _cancelled_by_condition(exc):
                raise ConditionFailed(
                    f"{pointer.lane}/{pointer.output}: the pointer moved (expected version {expected_version})"
                ) from None
            raise StoreError(f"cannot move the pointer of {pointer.lane}/{pointer.output}: {exc}") from exc
        return stored

    def current(self, lane: str, output: str) -> CertPointer | None:
        item = self._get(f"CERT#{lane}#{output}", "POINTER")
        return pointer_from_json(item["body"]["S"]) if item else None

    def history(self, lane: str, output: str) -> list[CertPointer]:
        return [pointer_from_json(item["body"]["S"])
                for item in self._query(f"CERT#{lane}#{output}", begins="STATE#")]

    def pointers(self, lane: str | None = None) -> list[CertPointer]:
        items = self._query("POINTERS", begins=f"{lane}#" if lane else None)
        return sorted((pointer_from_json(item["body"]["S"]) for item in items), key=lambda p: (p.lane, p.output))

    # -- outbox

    def _outbox_item(self, event: LaneEvent) -> dict[str, Any]:
        return {
            "pk": _s("OUTBOX"), "sk": _s(event.event_id()),
            "queued_at": _s(_iso(utcnow())), "time": _s(_iso(event.time)),
            "event": _s(event.model_dump_json()),
        }

    def _marker_item(self, event: LaneEvent) -> dict[str, Any]:
        return {"pk": _s(f"EVENT#{event.event_id()}"), "sk": _s("QUEUED"), "type": _s(event.type)}

    def queue_event(self, event: LaneEvent) -> None:
        """Queue once per event id: an event queued (or published) before is not queued again."""
        try:
            self.db.transact_write_items(TransactItems=[
                {"Put": {"TableName": self.table, "Item": self._outbox_item(event),
                         "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Put": {"TableName": self.table, "Item": self._marker_item(event),
                         "ConditionExpression": "attribute_not_exists(pk)"}},
            ])
        except ClientError as exc:
            if not _cancelled_by_condition(exc):
                raise StoreError(f"cannot queue event {event.type} of run {event.run_id}: {exc}") from exc

    def unpublished_events(self) -> list[LaneEvent]:
        items = sorted(self._query("OUTBOX"), key=lambda item: (item["queued_at"]["S"], item["time"]["S"]))
        return [LaneEvent.model_validate_json(item["event"]["S"]) for item in items]

    def mark_published(self, event_ids: list[str]) -> None:
        for event_id in event_ids:
            self.db.delete_item(TableName=self.table, Key={"pk": _s("OUTBOX"), "sk": _s(event_id)})


# ------------------------------------------------------------------ EventBridge


class EventBridgeBus:
    """PutEvents in batches of 10; returns only the ids EventBridge accepted."""

    BATCH = 10

    def __init__(self, bus_name: str, source: str = "batchlane", *, client: Any = None) -> None:
        self.bus_name = bus_name
        self.source = source
        self.events = client or _client("events")

    def entry(self, event: LaneEvent) -> dict[str, Any]:
        return {
            "Source": self.source,
            "DetailType": event.type,
            "Detail": json.dumps(event.envelope(), sort_keys=True),  # the same shape as the local event log
            "EventBusName": self.bus_name,
            "Time": event.time,
            "Resources": [],
        }

    def publish(self, events: list[LaneEvent]) -> list[str]:
        accepted: list[str] = []
        for start in range(0, len(events), self.BATCH):
            batch = events[start:start + self.BATCH]
            try:
                response = self.events.put_events(Entries=[self.entry(event) for event in batch])
            except ClientError:
                continue  # the whole batch stays in the outbox; the next publish retries it
            results = response.get("Entries", [])
            for event, result in zip(batch, results, strict=False):
                if result.get("EventId") and not result.get("ErrorCode"):
                    accepted.append(event.event_id())
        return accepted


# ---------------------------------------------------------------------- backend


def aws_backend(bucket: str, table: str, bus: str, *, prefix: str = "") -> Backend:
    session = boto3.session.Session()
    return Backend(
        name="aws",
        store=S3ObjectStore(bucket, prefix, client=_client("s3", session)),
        ledger=DynamoLedger(table, client=_client("dynamodb", session)),
        bus=EventBridgeBus(bus, client=_client("events", session)),
        settings={"LANE_BUCKET": bucket, "LANE_TABLE": table, "LANE_EVENT_BUS": bus,
                  **({"LANE_PREFIX": prefix} if prefix else {})},
    )
