"""Issue 11: reading a product in place from S3 by ranged GETs (batchlane/stores/s3_ranged.py), under moto in-process.

The reader must return exactly the bytes of one pinned object version (any offset, any length), refuse to mix
versions (a replaced or deleted object is ObjectChanged, never other bytes), and let the checker hash the exact
bytes while the rules fetch only the column chunks they need. Bytes on the wire are counted by a botocore event
hook on the client, independently of the reader's own counters.
"""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws
from support.aws_env import DUMMY_ENV, REGION, patched_env

from batchlane.checks import CheckError, check_files
from batchlane.spec import Contract
from batchlane.stores.s3_ranged import (
    ObjectChanged,
    RangedReadError,
    S3ObjectSource,
    pin_object,
    proven_source,
    store_object_source,
)

VERSIONED = "ranged-versioned"
PLAIN = "ranged-unversioned"


class Wire:
    """Every GetObject the client sends: its Range header (None for a whole-object GET) and the bytes returned."""

    def __init__(self, client: Any) -> None:
        self.gets: list[tuple[str | None, int]] = []
        client.meta.events.register("before-call.s3.GetObject", self._before)
        client.meta.events.register("after-call.s3.GetObject", self._after)

    @staticmethod
    def _before(params: dict, context: dict, **kwargs: Any) -> None:
        context["wire_range"] = params.get("headers", {}).get("Range")

    def _after(self, parsed: dict, context: dict, **kwargs: Any) -> None:
        if "Error" not in parsed:
            self.gets.append((context.get("wire_range"), int(parsed["ContentLength"])))

    @property
    def ranged_bytes(self) -> int:
        return sum(size for wanted, size in self.gets if wanted is not None)

    @property
    def whole_gets(self) -> list[int]:
        return [size for wanted, size in self.gets if wanted is None]


@pytest.fixture
def s3() -> Iterator[Any]:
    with patched_env(dict(DUMMY_ENV), drop=("AWS_PROFILE", "AWS_ENDPOINT_URL")), mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=VERSIONED)
        client.put_bucket_versioning(Bucket=VERSIONED, VersioningConfiguration={"Status": "Enabled"})
        client.create_bucket(Bucket=PLAIN)
        yield client


def _parquet(rows: int = 60_000, row_group: int = 15_000) -> bytes:
    """A narrow key and status next to a wide payload column the contract below never reads."""
    generator = np.random.default_rng(7)
    payload = pa.array([bytes(generator.integers(0, 256, 48, dtype=np.uint8)).hex() for _ in range(rows)])
    table = pa.table({"id": np.arange(rows, dtype=np.int64), "payload": payload,
                      "status": pa.array(["NEW", "PAID", "SHIPPED"] * (rows // 3))})
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=row_group)
    return sink.getvalue()


NARROW = Contract.model_validate({"columns": {
    "id": {"type": "int64", "not_null": True, "unique": True},
    "status": {"type": "string", "accepted_values": ["NEW", "PAID", "SHIPPED"]},
}, "row_count": {"min": 1}})


def test_reads_return_exactly_the_objects_bytes_at_any_offset_with_one_ranged_get_each(s3):
    data = bytes(random.Random(1).getrandbits(8) for _ in range(100_003))
    s3.put_object(Bucket=VERSIONED, Key="blob", Body=data)
    wire = Wire(s3)
    source = S3ObjectSource(s3, pin_object(s3, VERSIONED, "blob"))
    assert source.size == len(data) and source.pinned.version_id
    with source.open() as handle:
        assert handle.seekable() and handle.readable()
        for start, length in ((0, 10), (99_990, 50), (4_096, 65_536), (100_003, 5), (12, 0)):
            assert handle.seek(start) == start
            assert handle.read(length) == data[start:start + length]
            assert handle.tell() == min(start + length, len(data))
        handle.seek(-3, io.SEEK_END)
        assert handle.read() == data[-3:]
        handle.seek(10)
        handle.seek(5, io.SEEK_CUR)
        buffer = bytearray(7)
        assert handle.readinto(buffer) == 7 and bytes(buffer) == data[15:22]
        with pytest.raises(ValueError, match="negative seek position"):
            handle.seek(-1)
    assert handle.closed
    with pytest.raises(ValueError):
        handle.read(1)
    # one GET per non-empty read, each asking for exactly the bytes read; the counter agrees with the wire
    assert [wanted for wanted, _ in wire.gets] == [
        "bytes=0-9", "bytes=99990-100002", "bytes=4096-69631", "bytes=100000-100002", "bytes=15-21"]
    assert source.ranged.requests == 5 and source.ranged.bytes == wire.ranged_bytes == 10 + 13 + 65_536 + 3 + 7


def test_the_hash_stream_reads_every_byte_once_and_equals_sha256_of_the_object(s3):
    data = _parquet()
    s3.put_object(Bucket=VERSIONED, Key="p.parquet", Body=data)
    wire = Wire(s3)
    source = S3ObjectSource(s3, pin_object(s3, VERSIONED, "p.parquet"))
    assert source.sha256(chunk=1 << 16) == (len(data), hashlib.sha256(data).hexdigest())
    assert wire.whole_gets == [len(data)] and source.streamed.bytes == len(data)


def test_a_check_in_place_hashes_the_whole_object_but_fetches_only_the_columns_its_rules_read(s3, tmp_path):
    data = _parquet()
    s3.put_object(Bucket=VERSIONED, Key="p.parquet", Body=data)
    local = tmp_path / "p.parquet"
    local.write_bytes(data)
    wire = Wire(s3)
    source = S3ObjectSource(s3, pin_object(s3, VERSIONED, "p.parquet"), uri="s3://x/p.parquet")
    in_place = check_files([source], NARROW)
    from_disk = check_files([local], NARROW, uris=["s3://x/p.parquet"])

    assert in_place.verdict == from_disk.verdict == "PASS"
    assert in_place.rules == from_disk.rules and in_place.rows == 60_000
    (digest,) = in_place.files
    assert (digest.uri, digest.size, digest.sha256) == ("s3://x/p.parquet", len(data), hashlib.sha256(data).hexdigest())
    assert digest == from_disk.files[0]
    # the hash stream: one whole GET; the rule scan: footer + id and status chunks, far less than the file
    assert wire.whole_gets == [len(data)]
    assert 0 < wire.ranged_bytes < len(data) // 4, (wire.ranged_bytes, len(data))
    assert source.ranged.bytes == wire.ranged_bytes and source.streamed.bytes == len(data)


def test_a_failing_rule_read_in_place_fails_as_it_does_from_disk(s3, tmp_path):
    data = _parquet()
    s3.put_object(Bucket=VERSIONED, Key="p.parquet", Body=data)
    strict = Contract.model_validate({"columns": {"status": {"accepted_values": ["NEW", "PAID"]}}})
    outcome = check_files([S3ObjectSource(s3, pin_object(s3, VERSIONED, "p.parquet"))], strict)
    assert outcome.verdict == "FAIL"
    (rule,) = [r for r in outcome.rules if r.rule == "accepted_values"]
    assert rule.failing_count == 20_000 and "SHIPPED" in rule.failing_sample


def test_a_pinned_version_is_read_whole_even_after_a_new_version_but_the_check_refuses_it(s3):
    """Versioned bucket: a new version never leaks into the pinned reads (no mixed bytes), and the check fails
    because the key no longer serves what it checked (readers read the current version)."""
    first, second = _parquet(rows=30_000), _parquet(rows=33_000)
    s3.put_object(Bucket=VERSIONED, Key="p.parquet", Body=first)
    source = S3ObjectSource(s3, pin_object(s3, VERSIONED, "p.parquet"))
    s3.put_object(Bucket=VERSIONED, Key="p.parquet", Body=second)

    with source.open() as handle:
        assert pq.ParquetFile(handle).read(columns=["id"]).num_rows == 30_000   # still the first version
        handle.seek(0)
        assert hashlib.sha256(handle.read()).hexdigest() == hashlib.sha256(first).hexdigest()
    with pytest.raises(ObjectChanged, match=r"was replaced while being checked \(the key now serves version"):
        source.sha256()
    with pytest.raises(CheckError, match="cannot hash product files: .*was replaced while being checked"):
        check_files([source], NARROW)


def test_an_unversioned_object_replaced_mid_read_is_refused_not_mixed(s3):
    data = _parquet()
    s3.put_object(Bucket=PLAIN, Key="p.parquet", Body=data)
    source = S3ObjectSource(s3, pin_object(s3, PLAIN, "p.parquet"))
    assert source.pinned.version_id is None and source.pinned.etag
    other = boto3.client("s3", region_name=REGION)     # a writer elsewhere, replacing it after the footer read
    gets = []

    def replace_after_footer(**kwargs: Any) -> None:
        gets.append(1)
        if len(gets) == 2:
            other.put_object(Bucket=PLAIN, Key="p.parquet", Body=_parquet(rows=30_000))

    s3.meta.events.register("before-call.s3.GetObject", replace_after_footer)
    with pytest.raises(ObjectChanged, match="was replaced while being read .*refusing to mix bytes of two versions"):
        with source.open() as handle:
            pq.ParquetFile(handle).read(columns=["id"])
    with pytest.raises(ObjectChanged, match="was replaced while being hashed"):
        source.sha256()


def test_a_check_whose_object_is_replaced_mid_scan_raises_a_check_error_naming_it(s3):
    s3.put_object(Bucket=PLAIN, Key="p.parquet", Body=_parquet())
    source = S3ObjectSource(s3, pin_object(s3, PLAIN, "p.parquet"), uri="s3://ranged-unversioned/p.parquet")
    other = boto3.client("s3", region_name=REGION)
    ranged = []

    def replace_during_scan(params: dict, **kwargs: Any) -> None:
        if "Range" in params.get("headers", {}):
            ranged.append(1)
            if len(ranged) == 2:   # after the footer, before the first row group's chunks
                other.put_object(Bucket=PLAIN, Key="p.parquet", Body=b"PAR1 something else")

    s3.meta.events.register("before-call.s3.GetObject", replace_during_scan)
    with pytest.raises(CheckError, match=r"s3://ranged-unversioned/p.parquet: row group 0 unreadable: .*was replaced "
                                         r"while being read"):
        check_files([source], NARROW)


def test_a_deleted_version_or_a_missing_object_is_named(s3):
    s3.put_object(Bucket=VERSIONED, Key="p.parquet", Body=b"abc")
    source = S3ObjectSource(s3, pin_object(s3, VERSIONED, "p.parquet"))
    s3.delete_object(Bucket=VERSIONED, Key="p.parquet", VersionId=source.pinned.version_id)
    with pytest.raises(ObjectChanged, match=r"s3://ranged-versioned/p.parquet \(version .*\) was deleted while "
                                            r"being read"):
        source.open().read(2)
    with pytest.raises(ObjectChanged, match="s3://ranged-versioned/missing does not exist"):
        pin_object(s3, VERSIONED, "missing")
    with pytest.raises(RangedReadError, match="s3://no-such-bucket-here/p could not be opened"):
        pin_object(s3, "no-such-bucket-here", "p")


def test_pinning_refuses_a_key_that_no_longer_serves_the_recorded_version(s3):
    recorded = s3.put_object(Bucket=VERSIONED, Key="p.parquet", Body=b"first")["VersionId"]
    assert pin_object(s3, VERSIONED, "p.parquet", expected_version=recorded).version_id == recorded
    current = s3.put_object(Bucket=VERSIONED, Key="p.parquet", Body=b"second")["VersionId"]
    with pytest.raises(ObjectChanged, match=f"is now version {current}, not version {recorded} that was recorded"):
        pin_object(s3, VERSIONED, "p.parquet", expected_version=recorded)
    # S3 calls "no version" null: an object written without versioning pins by its ETag
    s3.put_object(Bucket=PLAIN, Key="p", Body=b"x")
    assert pin_object(s3, PLAIN, "p", expected_version="null").version_id is None


def test_an_empty_or_non_parquet_object_is_a_check_error(s3):
    s3.put_object(Bucket=VERSIONED, Key="empty", Body=b"")
    s3.put_object(Bucket=VERSIONED, Key="text", Body=b"order_id,amount\n1,2\n" * 100)
    with pytest.raises(CheckError, match="s3://ranged-versioned/empty: empty file"):
        check_files([S3ObjectSource(s3, pin_object(s3, VERSIONED, "empty"))], NARROW)
    with pytest.raises(CheckError, match="s3://ranged-versioned/text: not a readable Parquet file"):
        check_files([S3ObjectSource(s3, pin_object(s3, VERSIONED, "text"))], NARROW)


def test_a_store_key_is_pinned_under_the_store_prefix_and_a_proven_source_is_verified_first(s3, tmp_path):
    from batchlane.backends import local_backend
    from batchlane.stores.aws import S3ObjectStore

    store = S3ObjectStore(VERSIONED, prefix="lanes/orders", client=s3)
    s3.put_object(Bucket=VERSIONED, Key="lanes/orders/staging/r/o/0001/part-0000.parquet", Body=b"bytes")
    source = store_object_source(store, "staging/r/o/0001/part-0000.parquet", version=None)
    assert source.uri == f"s3://{VERSIONED}/lanes/orders/staging/r/o/0001/part-0000.parquet"
    sha = hashlib.sha256(b"bytes").hexdigest()
    proven = proven_source(store, "staging/r/o/0001/part-0000.parquet", version=None, sha256=sha, size=5)
    assert proven.open().read() == b"bytes"
    with pytest.raises(ObjectChanged, match="is not the proven file: sha256"):
        proven_source(store, "staging/r/o/0001/part-0000.parquet", version=None, sha256="0" * 64, size=5)
    local = local_backend(tmp_path / "home").store
    with pytest.raises(TypeError, match=f"{type(local).__name__} is not an S3 object store"):
        store_object_source(local, "k", version=None)


def test_a_referenced_products_column_is_read_in_place_from_its_proven_version(s3):
    """`references` on S3: the referenced certified files are hashed (one stream each) and only the referenced
    column is fetched by ranged GETs: nothing is copied to disk, and a file that is not the proven one is refused."""
    from types import SimpleNamespace

    from batchlane.products import _referenced_in_place
    from batchlane.reading import NotCertified
    from batchlane.receipts import FileDigest
    from batchlane.stores.aws import S3ObjectStore

    store = S3ObjectStore(VERSIONED, prefix="lanes/orders", client=s3)
    data = _parquet()
    key = "staging/r/customers/0001/part-0000.parquet"
    put = s3.put_object(Bucket=VERSIONED, Key="lanes/orders/" + key, Body=data)
    proof = FileDigest(uri=store.uri(key), size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                       version=put["VersionId"])
    backend = SimpleNamespace(store=store)
    wire = Wire(s3)
    column = _referenced_in_place(backend, "orders", "customers", "id", [proof])
    values = pa.chunked_array(list(column.read()))
    assert values.to_pylist() == list(range(60_000))
    assert wire.whole_gets == [len(data)]  # the proof: every byte once
    assert 0 < wire.ranged_bytes < len(data) // 4  # the column: its chunks only, not the wide payload

    with pytest.raises(NotCertified, match="referenced product orders/customers: .*is not the proven file"):
        _referenced_in_place(backend, "orders", "customers", "id",
                             [proof.model_copy(update={"sha256": "0" * 64})])
    with pytest.raises(NotCertified, match="referenced product orders/customers has no column 'nope'"):
        _referenced_in_place(backend, "orders", "customers", "nope", [proof])
