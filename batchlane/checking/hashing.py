"""Keys as 64-bit integers: exact images of integer-like values, hashes of the rest.

Integer-like values (ints, timestamps, dates, bools, float bit patterns) map to
int64 exactly. Strings and binaries are hashed (polars when installed: ~50x faster
than the NumPy fallback); dictionary columns hash each dictionary entry once.
Equal values always give equal hashes; distinct values rarely collide, and the
caller confirms any repeat exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.types as pat

from batchlane.checking.arrowtypes import plain

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_LENGTH_MIX = np.uint64(0xD6E8FEB86659FD93)
_BYTE_WEIGHTS = np.random.default_rng(0x5EED).integers(1, 2**63, size=1024, dtype=np.uint64) | np.uint64(1)
_STRING_SLICE = 65_536  # rows hashed at once: bounds the per-byte temporaries


def mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads every input bit over the whole word (wrapping arithmetic)."""
    values = (values ^ (values >> np.uint64(30))) * _M1
    values = (values ^ (values >> np.uint64(27))) * _M2
    return values ^ (values >> np.uint64(31))


def combine(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Hash of a composite key from the running hash and the next column's hash (order matters)."""
    return mix64(left * _GOLDEN + right)


def is_exact_domain(arrow_type: pa.DataType) -> bool:
    return (
        pat.is_integer(arrow_type) or pat.is_timestamp(arrow_type) or pat.is_date(arrow_type)
        or pat.is_boolean(arrow_type) or pat.is_floating(arrow_type)
    )


def exact_keys(array: pa.Array) -> np.ndarray:
    """int64 image of every slot (null slots hold arbitrary values) of an integer-like array."""
    kind = array.type
    if pat.is_timestamp(kind) or pat.is_date64(kind):
        return array.cast(pa.int64()).to_numpy(zero_copy_only=False)
    if pat.is_date32(kind):
        return array.cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
    if pat.is_boolean(kind):
        return array.fill_null(False).to_numpy(zero_copy_only=False).astype(np.int64)
    if pat.is_floating(kind):
        values = array.fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64) + 0.0  # -0.0 -> 0.0
        values[np.isnan(values)] = np.nan  # one NaN bit pattern
        return values.view(np.int64)
    values = (array.fill_null(0) if array.null_count else array).to_numpy(zero_copy_only=False)
    return values.view(np.int64) if values.dtype == np.uint64 else values.astype(np.int64, copy=False)


def _hash_binary_slice(array: pa.Array) -> np.ndarray:
    offset_type = np.int64 if pat.is_large_string(array.type) or pat.is_large_binary(array.type) else np.int32
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[array.offset : array.offset + len(array) + 1]
    offsets = offsets.astype(np.int64)
    first, last = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(data_buffer, dtype=np.uint8)[first:last] if data_buffer is not None else np.empty(0, np.uint8)
    relative = offsets - first
    lengths = np.diff(relative)
    # Position of each byte inside its value: a position-weighted sum tells "ab" from "ba".
    position = np.arange(len(data), dtype=np.int64) - np.repeat(relative[:-1], lengths)
    weights = _BYTE_WEIGHTS[position & 1023] + (position >> 10).astype(np.uint64) * _GOLDEN
    sums = np.zeros(len(data) + 1, dtype=np.uint64)
    np.cumsum((data.astype(np.uint64) + np.uint64(1)) * weights, out=sums[1:])
    totals = sums[relative[1:]] - sums[relative[:-1]]
    return mix64(totals ^ (lengths.astype(np.uint64) * _LENGTH_MIX))


def _hash_binary_numpy(array: pa.Array) -> np.ndarray:
    out = np.empty(len(array), dtype=np.uint64)
    for start in range(0, len(array), _STRING_SLICE):
        part = array.slice(start, _STRING_SLICE)
        out[start : start + len(part)] = _hash_binary_slice(part)
    return out


def _hash_binary_polars(array: pa.Array) -> np.ndarray:
    import polars

    return polars.Series(array).hash(seed=0).to_numpy().astype(np.uint64, copy=False)


def _pick_binary_hasher() -> Callable[[pa.Array], np.ndarray]:
    """polars hashes strings ~50x faster than the NumPy fallback (0.15 s vs 7 s for 8M values)."""
    try:
        import polars  # noqa: F401  (only imported when a string key is checked)
    except ImportError:  # a slim runtime (e.g. a Lambda layer without polars) still works, slower
        return _hash_binary_numpy
    return _hash_binary_polars


hash_binary: Callable[[pa.Array], np.ndarray] | None = None


def hash_values(array: pa.Array) -> np.ndarray:
    """A uint64 hash of every slot (null slots arbitrary); equal values give equal hashes."""
    global hash_binary
    if pat.is_dictionary(array.type):
        entries = hash_values(array.dictionary)
        if len(entries) == 0:
            return np.zeros(len(array), dtype=np.uint64)
        return entries[array.indices.fill_null(0).to_numpy(zero_copy_only=False)]
    array = plain(array)
    if is_exact_domain(array.type):
        return mix64(exact_keys(array).view(np.uint64))
    if not (pat.is_string(array.type) or pat.is_large_string(array.type)
            or pat.is_binary(array.type) or pat.is_large_binary(array.type)):
        array = array.cast(pa.large_string())  # decimals and the like: hash their text
    if hash_binary is None:
        hash_binary = _pick_binary_hasher()
    return hash_binary(array)
