"""Build a Backend (object store + ledger + event bus) for the local embedded store or AWS."""

from __future__ import annotations

import os
from pathlib import Path

from batchlane.stores.base import Backend, ObjectStore
from batchlane.stores.local import JsonlEventLog, LocalObjectStore, SqliteLedger


class BackendConfigError(ValueError):
    pass


def lane_home(home: Path | str | None = None) -> Path:
    return Path(home or os.environ.get("LANE_HOME") or ".lane").resolve()


def local_backend(home: Path | str | None = None) -> Backend:
    root = lane_home(home)
    return Backend(
        name="local",
        store=LocalObjectStore(root),
        ledger=SqliteLedger(root / "ledger.sqlite"),
        bus=JsonlEventLog(root / "events.jsonl"),
        settings={"home": str(root)},
    )


def backend_from_env(name: str | None = None) -> Backend:
    """LANE_BACKEND=local (default; LANE_HOME) or aws (LANE_BUCKET, LANE_TABLE, LANE_EVENT_BUS)."""
    name = name or os.environ.get("LANE_BACKEND", "local")
    if name == "local":
        return local_backend()
    if name == "aws":
        missing = [var for var in ("LANE_BUCKET", "LANE_TABLE", "LANE_EVENT_BUS") if not os.environ.get(var)]
        if missing:
            raise BackendConfigError(f"backend aws needs {', '.join(missing)} set (bucket, DynamoDB table, event bus)")
        from batchlane.stores.aws import aws_backend  # boto3 only when AWS is used

        return aws_backend(os.environ["LANE_BUCKET"], os.environ["LANE_TABLE"], os.environ["LANE_EVENT_BUS"])
    raise BackendConfigError(f"unknown backend {name!r}: use local or aws")


def store_from_env(name: str | None = None) -> ObjectStore:
    """Only the object store: what the materializer job may touch (LANE_BUCKET on AWS, LANE_HOME locally)."""
    name = name or os.environ.get("LANE_BACKEND", "local")
    if name == "local":
        return LocalObjectStore(lane_home())
    if name == "aws":
        if not os.environ.get("LANE_BUCKET"):
            raise BackendConfigError("the materializer on backend aws needs LANE_BUCKET set")
        from batchlane.stores.aws import S3ObjectStore

        return S3ObjectStore(os.environ["LANE_BUCKET"], os.environ.get("LANE_PREFIX", ""))
    raise BackendConfigError(f"unknown backend {name!r}: use local or aws")


def backend_env(backend: Backend) -> dict[str, str]:
    """Environment that makes a subprocess (the materializer job) open the same backend."""
    if backend.name == "local":
        return {"LANE_BACKEND": "local", "LANE_HOME": backend.settings["home"]}
    return {"LANE_BACKEND": backend.name, **{k: v for k, v in backend.settings.items() if k.startswith("LANE_")}}
