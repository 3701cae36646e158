"""What the Lambda handlers share: the lane spec and the backend, built once per warm container."""

from __future__ import annotations

import os
from functools import lru_cache

from batchlane.backends import backend_from_env
from batchlane.spec import LaneSpec, load_spec
from batchlane.stores.base import Backend

_BACKEND_SETTINGS = ("LANE_BACKEND", "LANE_BUCKET", "LANE_TABLE", "LANE_EVENT_BUS", "AWS_ENDPOINT_URL")


@lru_cache(maxsize=4)
def _spec(path: str) -> LaneSpec:
    return load_spec(path)


@lru_cache(maxsize=4)
def _backend(_settings: tuple[str | None, ...]) -> Backend:
    return backend_from_env()


def lane_spec(missing: type[Exception], who: str) -> LaneSpec:
    """The spec at $LANE_SPEC; raises ``missing`` naming ``who`` when it is not configured."""
    path = os.environ.get("LANE_SPEC")
    if not path:
        raise missing(f"LANE_SPEC is not set: {who} needs the lane spec path")
    return _spec(path)


def lane_backend() -> Backend:
    """One backend (and its boto3 clients) per warm container and configuration."""
    return _backend(tuple(os.environ.get(name) for name in _BACKEND_SETTINGS))
