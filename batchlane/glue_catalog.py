"""Glue Data Catalog publication: SQL engines (Athena, Spark, Redshift Spectrum) see certified versions only.

Write-audit-publish. A staged product lives under ``staging/RUN/OUTPUT/NNNN/``, a prefix the untrusted
job could write to and that also holds its ``report.json``, so the catalog never points there. Instead,
``sync_output`` publishes the certification in force:

1. copies each certified file, pinned to its S3 version id, to ``published/LANE/OUTPUT/RUN/NNNN/`` (trusted
   code only writes there; a copy made before is reused) and re-hashes the copy against the proof;
2. checks that the published prefix holds exactly the certified files;
3. points the Glue table (database ``batchlane_<lane>`` unless given, table = the output name) at that
   prefix with one ``UpdateTable`` (or ``CreateTable`` the first time), through awswrangler; columns
   come from the proof's Arrow schema; table parameters record the certification it shows.

A rejected or failed attempt never moves the pointer, so syncing after it changes nothing. When the
pointer is revoked or missing, or the certification does not check out, the table is deleted (queries
fail with "table not found" rather than read withdrawn data) and the revoked version's published copy
is deleted too. Syncing the same certification twice is a no-op. Products are unpartitioned: the core
writes a product as part files under one prefix, which the table reads as one dataset.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

from batchlane.gate import NotCertified, resolve
from batchlane.receipts import FileDigest
from batchlane.stores.base import Backend, CertPointer

PUBLISHED = "published/"
PARAMETER_PREFIX = "batchlane_"

Action = Literal["created", "updated", "unchanged", "removed", "absent"]


class CatalogError(RuntimeError):
    """The catalog cannot show this certification (wrong backend, unsupported column type, bad copy)."""


@dataclass(frozen=True)
class CatalogSync:
    """What one sync did, and what the table shows now."""

    database: str
    table: str
    action: Action
    location: str | None = None
    run_id: str | None = None
    attempt: int | None = None
    certification: str | None = None
    reason: str | None = None


def glue_name(text: str) -> str:
    """Glue/Athena names: lower case letters, digits and underscores."""
    name = re.sub(r"[^a-z0-9_]", "_", text.lower()).strip("_")
    if not name:
        raise CatalogError(f"{text!r} gives no usable Glue name")
    return name[:255]


def database_name(lane: str, database: str | None = None) -> str:
    return glue_name(database) if database else f"batchlane_{glue_name(lane)}"


def published_prefix(lane: str, output: str, run_id: str, attempt: int) -> str:
    return f"{PUBLISHED}{lane}/{output}/{run_id}/{attempt:04d}/"


_SIMPLE_TYPES = {
    "int8": "tinyint", "int16": "smallint", "int32": "int", "int64": "bigint",
    "uint8": "smallint", "uint16": "int", "uint32": "bigint",
    "halffloat": "float", "float": "float", "double": "double", "bool": "boolean",
    "string": "string", "large_string": "string", "utf8": "string", "large_utf8": "string",
    "binary": "binary", "large_binary": "binary", "date32[day]": "date", "date64[ms]": "date",
}


def athena_type(arrow_type: str, *, column: str = "?") -> str:
    """The Athena/Glue type for an Arrow type as receipts write it (``str(pyarrow type)``)."""
    text = arrow_type.strip()
    if text in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[text]
    if text.startswith("timestamp["):
        return "timestamp"
    decimal = re.fullmatch(r"decimal(?:32|64|128|256)?\((\d+),\s*(\d+)\)", text)
    if decimal:
        return f"decimal({decimal.group(1)},{decimal.group(2)})"
    dictionary = re.fullmatch(r"dictionary<values=([^,]+), indices=.*>", text)
    if dictionary:
        return athena_type(dictionary.group(1), column=column)
    raise CatalogError(f"column {column!r}: Arrow type {arrow_type!r} has no Glue mapping here")


def _columns(proof: list[FileDigest], where: str) -> dict[str, str]:
    schemas = [item.schema_ for item in proof]
    if not schemas or any(schema is None for schema in schemas):
        raise CatalogError(f"{where}: the certification's proof carries no schema")
    first = schemas[0] or {}
    if any(schema != first for schema in schemas[1:]):
        raise CatalogError(f"{where}: the certified files do not share one schema")
    return {name: athena_type(kind, column=name) for name, kind in first.items()}


def _s3_store(backend: Backend) -> Any:
    from batchlane.stores.aws import S3ObjectStore

    if not isinstance(backend.store, S3ObjectStore):
        raise CatalogError(f"Glue publication needs the aws backend (S3); this store is {backend.name!r}")
    return backend.store


def _session(boto3_session: Any) -> Any:
    import boto3

    return boto3_session or boto3.session.Session()


def _table_parameters(database: str, table: str, session: Any) -> dict[str, str] | None:
    import awswrangler as wr

    if not wr.catalog.does_table_exist(database=database, table=table, boto3_session=session):
        return None
    return dict(wr.catalog.get_table_parameters(database=database, table=table, boto3_session=session))


def _remove(backend: Backend, store: Any, lane: str, output: str, database: str, table: str, session: Any,
            pointer: CertPointer | None, reason: str) -> CatalogSync:
    import awswrangler as wr

    removed = wr.catalog.delete_table_if_exists(database=database, table=table, boto3_session=session)
    if pointer is not None and pointer.revoked:   # withdrawn bytes leave the published prefix too
        for key in store.list_keys(published_prefix(lane, output, pointer.run_id, pointer.attempt)):
            store.s3.delete_object(Bucket=store.bucket, Key=store._key(key))
    return CatalogSync(database=database, table=table, action="removed" if removed else "absent", reason=reason)


def _publish_files(store: Any, prefix: str, keys: list[str], proof: list[FileDigest], where: str,
                   verify_bytes: bool) -> None:
    expected = []
    for key, item in zip(keys, proof, strict=True):
        target = prefix + PurePosixPath(key).name
        expected.append(target)
        if not store.exists(target):
            source: dict[str, str] = {"Bucket": store.bucket, "Key": store._key(key)}
            if item.version:
                source["VersionId"] = item.version   # the certified bytes, whatever happened to the key since
            store.s3.copy(source, store.bucket, store._key(target))
        if verify_bytes:
            copied = store.digest(target)
            if (copied.sha256, copied.size) != (item.sha256, item.size):
                raise CatalogError(f"{where}: published copy {target} does not match the proof "
                                   f"(sha256 {copied.sha256[:12]}… != certified {item.sha256[:12]}…)")
    extra = sorted(set(store.list_keys(prefix)) - set(expected))
    if extra:
        raise CatalogError(f"{where}: {prefix} holds files that are not certified: {', '.join(extra)}")


def sync_output(backend: Backend, lane: str, output: str, *, database: str | None = None,
                boto3_session: Any = None, verify_bytes: bool = True) -> CatalogSync:
    """Make the Glue table of ``lane/output`` show the certification in force, and nothing else. Idempotent."""
    import awswrangler as wr

    store = _s3_store(backend)
    session = _session(boto3_session)
    db, table = database_name(lane, database), glue_name(output)
    where = f"{lane}/{output}"
    pointer = backend.ledger.current(lane, output)
    if pointer is None or pointer.revoked:
        reason = f"revoked: {pointer.revoked}" if pointer else "no certification"
        return _remove(backend, store, lane, output, db, table, session, pointer, reason)
    try:
        resolved = resolve(backend, lane, output, verify_bytes=False)
    except NotCertified as exc:
        return _remove(backend, store, lane, output, db, table, session, None, str(exc))
    pointer = resolved.pointer
    prefix = published_prefix(lane, output, pointer.run_id, pointer.attempt)
    location = store.uri(prefix)
    shown = _table_parameters(db, table, session)
    summary = {"database": db, "table": table, "location": location, "run_id": pointer.run_id,
               "attempt": pointer.attempt, "certification": pointer.key}
    if shown is not None and shown.get(PARAMETER_PREFIX + "certification_digest") == pointer.digest:
        return CatalogSync(action="unchanged", **summary)
    if shown is not None and shown.get(PARAMETER_PREFIX + "order", "") > pointer.order:
        return CatalogSync(action="unchanged", reason="the table shows a newer certification", **summary)
    columns = _columns(resolved.certification.proof, where)
    _publish_files(store, prefix, resolved.keys, resolved.certification.proof, where, verify_bytes)
    parameters = {
        PARAMETER_PREFIX + "lane": lane, PARAMETER_PREFIX + "output": output,
        PARAMETER_PREFIX + "run_id": pointer.run_id, PARAMETER_PREFIX + "attempt": str(pointer.attempt),
        PARAMETER_PREFIX + "order": pointer.order, PARAMETER_PREFIX + "certification": pointer.key,
        PARAMETER_PREFIX + "certification_digest": pointer.digest,
    }
    # no description: awswrangler would otherwise rewrite the description of an existing (shared) database
    wr.catalog.create_database(name=db, exist_ok=True, boto3_session=session)
    wr.catalog.create_parquet_table(
        database=db, table=table, path=location, columns_types=columns,
        mode="update" if shown is not None else "overwrite",  # type: ignore[arg-type]  # update: one UpdateTable call
        parameters=parameters, description=f"batchlane {lane}/{output}: the certification in force only",
        boto3_session=session,
    )
    return CatalogSync(action="updated" if shown is not None else "created", **summary)


def sync_lane(backend: Backend, lane: str, outputs: list[str], *, database: str | None = None,
              boto3_session: Any = None) -> list[CatalogSync]:
    """Sync every output of a lane (e.g. when a run closes)."""
    return [sync_output(backend, lane, output, database=database, boto3_session=boto3_session) for output in outputs]


def glue_enabled(settings: dict[str, str] | None = None) -> str | None:
    """The database to publish to when Glue publication is on (``LANE_GLUE_DATABASE``; ``auto`` = per lane)."""
    import os

    value = (settings or {}).get("LANE_GLUE_DATABASE") or os.environ.get("LANE_GLUE_DATABASE") or ""
    return value.strip() or None


def sync_if_enabled(backend: Backend, lane: str, output: str, *, quiet: bool = False) -> CatalogSync | None:
    """The hook for decide/revoke/close: publish when ``LANE_GLUE_DATABASE`` is set on the aws backend.

    ``quiet=True`` (for the gate: a certification stands whether or not the catalog could follow) logs a
    failure as a warning and returns None; the table then still shows the previous certification or
    nothing, never uncertified data, and the next sync (e.g. at close) repairs it.
    """
    database = glue_enabled(backend.settings)
    if backend.name != "aws" or database is None:
        return None
    try:
        return sync_output(backend, lane, output, database=None if database == "auto" else database)
    except Exception as exc:
        if not quiet:
            raise
        logging.getLogger("batchlane.glue_catalog").warning("Glue sync of %s/%s failed: %s", lane, output, exc)
        return None
