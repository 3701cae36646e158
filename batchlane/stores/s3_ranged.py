"""One S3 object version, read in place by ranged GETs: a seekable read-only file for the checker (issue 11).

The Batch check job (functions/check/job.py) checks products too big for the check function without copying
them to the job's disk: pyarrow opens each Parquet file through :class:`RangedObjectFile` and fetches the footer
and the column chunks the rules need with ``GetObject(Range="bytes=a-b")``, while a background thread streams the
whole object once for its SHA-256 (``batchlane.checking.filehash``).

**Pinned bytes.** :func:`pin_object` reads the object's current version with one ``HeadObject`` (VersionId,
ETag, size), refusing it when the caller expected another version (the one the materialize receipt recorded).
Every later GET names that ``VersionId`` (in a versioned bucket) and sends ``If-Match: <ETag>``, so a file
replaced or deleted while it is read raises :class:`ObjectChanged` instead of mixing bytes of two versions; after
the hash stream a second ``HeadObject`` confirms the key still serves the pinned version (a check must not certify
bytes that readers, who read the key's current version, can no longer get).

**Read cost, honestly.** For each product file: 2 HEADs; the hash stream reads every byte once (the
certification proves exact bytes, so nothing is skipped); the rule scan reads the footer (pyarrow asks for the
last 64 KiB, then any rest of a larger footer) plus the column chunks of the columns the rules need (pyarrow's
pre-buffering coalesces chunks closer than 8 KiB into one GET). Network bytes are therefore the object's size
plus the chunks the rules read: between 1x and 2x the object, never a copy on disk. Requests: one GET per
coalesced range, typically one or two per row group and file. Each read is exactly the range pyarrow asks for (no
read-ahead: pyarrow's own reads are already whole footers and coalesced column chunks, and a read-ahead buffer
would mostly fetch the neighbouring column chunks the rules skip). Memory: the chunks pyarrow is decoding and the
hash stream's 8 MiB. :class:`ReadCounter` counts requests and bytes of each kind (``S3ObjectSource.ranged`` and
``.streamed``). Measured under moto: a 17.1 MB file of 4 row groups whose rules read 2 of its 3 columns (an int64
key and a short string; the third a wide text column) took 9 ranged GETs moving 1.26 MB, plus the 17.1 MB hash
stream (``tests/aws/test_s3_ranged.py`` asserts the rule scan stays under a quarter of the file).

Why hand-written: ``pyarrow.fs.S3FileSystem`` cannot pin a VersionId or send If-Match, and its C++ client
cannot run inside moto's in-process mock that the tests use (no network); s3fs is not a dependency. This is a
small boto3 reader using the store's own client (retries, endpoint, credentials as configured there).
"""

from __future__ import annotations

import hashlib
import io
import threading
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from batchlane.checking.filehash import ObjectSource, SourceReadError

__all__ = [
    "ObjectChanged", "PinnedObject", "RangedObjectFile", "RangedReadError", "ReadCounter",
    "S3ObjectSource", "pin_object", "proven_source", "store_object_source",
]

HASH_CHUNK = 8 * 1024 * 1024

_CHANGED = ("PreconditionFailed", "412")
_GONE = ("NoSuchKey", "NoSuchVersion", "404", "NotFound")


class RangedReadError(SourceReadError):
    """An S3 object could not be read as pinned (permissions, network, a short or malformed response)."""


class ObjectChanged(RangedReadError):
    """The pinned object version was replaced or deleted: its bytes can no longer be read as one version."""


@dataclass(frozen=True)
class PinnedObject:
    """One version of one S3 object: what every read of it must match."""

    bucket: str
    key: str
    version_id: str | None   # None in a bucket without versioning: the ETag alone pins the bytes
    etag: str
    size: int

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def describe(self) -> str:
        return f"{self.uri} (version {self.version_id})" if self.version_id else f"{self.uri} (ETag {self.etag})"

    def get_arguments(self) -> dict[str, str]:
        arguments = {"Bucket": self.bucket, "Key": self.key, "IfMatch": self.etag}
        if self.version_id:
            arguments["VersionId"] = self.version_id
        return arguments


def _version(response: dict[str, Any]) -> str | None:
    return _real_version(response.get("VersionId"))


def _real_version(version: object) -> str | None:
    """A version id, or None for "no versioning" (S3 says ``null`` for objects written while it was off)."""
    return None if version in (None, "", "null") else str(version)


def _failure(error: Exception, pinned: PinnedObject | str, doing: str) -> RangedReadError:
    name = pinned.describe() if isinstance(pinned, PinnedObject) else pinned
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in _CHANGED:
            return ObjectChanged(f"{name} was replaced while being {doing} (its ETag no longer matches): "
                                 "refusing to mix bytes of two versions")
        if code in _GONE:
            return ObjectChanged(f"{name} was deleted while being {doing}")
    return RangedReadError(f"{name} could not be {doing}: {error}")


def pin_object(client: Any, bucket: str, key: str, *, expected_version: str | None = None) -> PinnedObject:
    """The key's current version, pinned; ObjectChanged when it is not ``expected_version`` (when given)."""
    where = f"s3://{bucket}/{key}"
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) in _GONE:
            raise ObjectChanged(f"{where} does not exist (deleted since it was written?)") from None
        raise _failure(exc, where, "opened") from None
    except BotoCoreError as exc:
        raise _failure(exc, where, "opened") from None
    pinned = PinnedObject(bucket=bucket, key=key, version_id=_version(head), etag=str(head["ETag"]),
                          size=int(head["ContentLength"]))
    expected_version = _real_version(expected_version)
    if expected_version and pinned.version_id != expected_version:
        raise ObjectChanged(f"{where} is now version {pinned.version_id}, not version {expected_version} that was "
                            "recorded when it was materialized: it was replaced since")
    return pinned


def confirm_current(client: Any, pinned: PinnedObject) -> None:
    """ObjectChanged unless the key still serves the pinned version (readers read the current one)."""
    try:
        head = client.head_object(Bucket=pinned.bucket, Key=pinned.key)
    except (ClientError, BotoCoreError) as exc:
        raise _failure(exc, pinned, "checked") from None
    current = _version(head) if pinned.version_id else str(head["ETag"])
    if current != (pinned.version_id or pinned.etag):
        raise ObjectChanged(f"{pinned.describe()} was replaced while being checked (the key now serves "
                            f"{'version' if pinned.version_id else 'ETag'} {current})")


class ReadCounter:
    """Requests and bytes fetched, safe to update from pyarrow's I/O threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.bytes = 0

    def add(self, fetched: int) -> None:
        with self._lock:
            self.requests += 1
            self.bytes += fetched


class RangedObjectFile(io.RawIOBase):
    """A seekable, read-only file over one pinned object version; each read is one ranged GET of exactly the bytes
    asked for. Thread-safe: pyarrow's I/O threads may share one file."""

    def __init__(self, client: Any, pinned: PinnedObject, counter: ReadCounter | None = None) -> None:
        super().__init__()
        self._client, self._pinned = client, pinned
        self._counter = counter or ReadCounter()
        self._position = 0
        self._lock = threading.Lock()

    @property
    def pinned(self) -> PinnedObject:
        return self._pinned

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._pinned.size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence}")
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset} in {self._pinned.uri}")
        self._position = base + offset
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        self._checkClosed()
        with self._lock:
            start = self._position
            end = self._pinned.size if size is None or size < 0 else min(self._pinned.size, start + size)
            if end <= start:
                return b""
            data = self._get(start, end)
            self._position = end
            return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[:len(data)] = data
        return len(data)

    def _get(self, start: int, end: int) -> bytes:
        """Bytes ``start`` up to ``end`` (exclusive) of the pinned version, in one GET."""
        pinned = self._pinned
        try:
            response = self._client.get_object(**pinned.get_arguments(), Range=f"bytes={start}-{end - 1}")
            body = response["Body"]
            try:
                data = body.read()
            finally:
                body.close()
        except (ClientError, BotoCoreError) as exc:
            raise _failure(exc, pinned, "read") from None
        self._counter.add(len(data))
        version = _version(response)
        if pinned.version_id and version != pinned.version_id:
            raise ObjectChanged(f"{pinned.describe()}: S3 answered with version {version}")
        if len(data) != end - start:
            raise RangedReadError(f"{pinned.describe()}: asked for bytes {start}-{end - 1}, got {len(data)} bytes")
        return data


class S3ObjectSource(ObjectSource):
    """A product file in S3 for the checker: ranged reads for the rules, one streamed pass for the SHA-256."""

    def __init__(self, client: Any, pinned: PinnedObject, uri: str | None = None) -> None:
        self._client, self.pinned = client, pinned
        self.uri = uri or pinned.uri
        self.ranged = ReadCounter()     # GETs of the rule scan (footer, column chunks)
        self.streamed = ReadCounter()   # the hash stream: one request, every byte

    @property
    def size(self) -> int:
        return self.pinned.size

    def open(self) -> RangedObjectFile:
        return RangedObjectFile(self._client, self.pinned, self.ranged)

    def sha256(self, chunk: int = HASH_CHUNK) -> tuple[int, str]:
        """(size, SHA-256) of the pinned version, streamed once; then the key must still serve that version."""
        pinned = self.pinned
        digest, size = hashlib.sha256(), 0
        try:
            response = self._client.get_object(**pinned.get_arguments())
            body = response["Body"]
            try:
                for piece in body.iter_chunks(chunk):
                    digest.update(piece)
                    size += len(piece)
            finally:
                body.close()
        except (ClientError, BotoCoreError) as exc:
            raise _failure(exc, pinned, "hashed") from None
        self.streamed.add(size)
        if pinned.version_id and _version(response) != pinned.version_id:
            raise ObjectChanged(f"{pinned.describe()}: S3 answered with version {_version(response)}")
        if size != pinned.size:
            raise RangedReadError(f"{pinned.describe()}: streamed {size} bytes of {pinned.size}")
        confirm_current(self._client, pinned)
        return size, digest.hexdigest()

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"S3ObjectSource({self.pinned.describe()})"


def store_object_source(store: Any, key: str, *, version: str | None, uri: str | None = None) -> S3ObjectSource:
    """The S3 object behind ``key`` of an ``S3ObjectStore`` (its client, bucket and prefix), pinned at its current
    version, which must be ``version`` when one was recorded. Raises RangedReadError (ObjectChanged when replaced)."""
    s3, bucket = getattr(store, "s3", None), getattr(store, "bucket", None)
    if s3 is None or bucket is None:
        raise TypeError(f"{type(store).__name__} is not an S3 object store: no ranged reads")
    object_key = str(getattr(store, "prefix", "")) + key.lstrip("/")
    pinned = pin_object(s3, bucket, object_key, expected_version=version)
    return S3ObjectSource(s3, pinned, uri)



def proven_source(store: Any, key: str, *, version: str | None, sha256: str, size: int,
                  uri: str | None = None) -> S3ObjectSource:
    """The object behind ``key``, pinned (at ``version`` when one is given) and hashed in full first: returned only
    when its bytes are ``size`` bytes with SHA-256 ``sha256``, else ObjectChanged. Reads through the source then
    get exactly those verified bytes (a pinned version is immutable; If-Match refuses a replaced object), so a
    reader that needs a few columns of a certified file verifies it by one stream and reads only those columns
    by ranged GETs, without a copy on disk (e.g. the values of a ``references`` rule)."""
    source = store_object_source(store, key, version=version, uri=uri)
    actual_size, actual = source.sha256()
    if (actual_size, actual) != (size, sha256):
        raise ObjectChanged(f"{source.pinned.describe()} is not the proven file: sha256 {actual[:12]}… "
                            f"({actual_size} bytes) != {sha256[:12]}… ({size} bytes)")
    return source
