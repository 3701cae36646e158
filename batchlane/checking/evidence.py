"""Turn Arrow/NumPy values into JSON-serialisable evidence (numbers, strings, ISO datetimes)."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
from typing import Any

import numpy as np
import pyarrow as pa

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def ns_per_unit(unit: str) -> int:
    return _NS_PER_UNIT[unit]


def iso_from_ns(ns: int) -> str:
    """ISO-8601 UTC of nanoseconds since the epoch, keeping sub-microsecond digits when present."""
    seconds, fraction = divmod(int(ns), 1_000_000_000)
    moment = _EPOCH + dt.timedelta(seconds=seconds)
    text = moment.replace(tzinfo=None).isoformat()
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "+00:00"


def iso_from_days(days: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=int(days))).isoformat()


def jsonable(value: Any) -> Any:
    """A plain JSON value; NaN/inf become strings because JSON has no such numbers."""
    if isinstance(value, pa.Scalar):
        value = scalar_value(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value).replace("nan", "NaN").replace("inf", "Infinity")
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return base64.b64encode(value).decode()
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return value


def scalar_value(scalar: pa.Scalar) -> Any:
    """Python value of an Arrow scalar; timestamps at full precision as ISO strings."""
    if not scalar.is_valid:
        return None
    if isinstance(scalar, pa.TimestampScalar):
        return iso_from_ns(scalar.value * ns_per_unit(scalar.type.unit))
    if isinstance(scalar, pa.Date32Scalar):
        return iso_from_days(scalar.value)
    if isinstance(scalar, pa.Date64Scalar):
        return iso_from_days(scalar.value // 86_400_000)
    return jsonable(scalar.as_py())


def sample(array: pa.Array, limit: int = 5) -> list[Any]:
    return [scalar_value(array[i]) for i in range(min(limit, len(array)))]
