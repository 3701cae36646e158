"""Inputs of an output: resolve names to files (paths, globs, s3:// URIs), fingerprint and read them."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from batchlane.checking.filehash import hash_file
from batchlane.hashcache import HashCache
from batchlane.receipts import FileDigest, InputDigest
from batchlane.spec import LaneSpec

if TYPE_CHECKING:  # pandas/pyarrow load only when a job reads data: planning and the CLI stay fast
    import pandas as pd

READERS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class InputError(ValueError):
    """An input that cannot be used; the message names the input, the file and the reason."""


@dataclass(frozen=True)
class InputFile:
    name: str
    pattern: str
    uri: str
    local_path: Path | None   # None for s3:// until fetched

    @property
    def suffix(self) -> str:
        return Path(self.uri.split("?")[0]).suffix.lower()


def _s3_client():
    import boto3  # only when an input lives on S3

    return boto3.client("s3")


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def resolve_inputs(spec: LaneSpec, output: str) -> list[InputFile]:
    files: list[InputFile] = []
    for name, pattern in spec.outputs[output].file_inputs().items():
        if pattern.startswith("s3://"):
            matches = _resolve_s3(pattern)
            files += [InputFile(name, pattern, uri, None) for uri in matches]
            if not matches:
                raise InputError(f"input {name!r} ({pattern}): no object matches")
            continue
        base = Path(pattern) if Path(pattern).is_absolute() else spec.base_dir / pattern
        found = sorted(Path(path) for path in glob.glob(str(base)) if Path(path).is_file())
        if not found:
            raise InputError(f"input {name!r} ({pattern}): no file matches {base}")
        files += [InputFile(name, pattern, path.resolve().as_uri(), path.resolve()) for path in found]
    for item in files:
        if item.suffix not in READERS:
            raise InputError(
                f"input {item.name!r}: {item.uri} has an unsupported format {item.suffix or '(no suffix)'}; "
                f"use one of {', '.join(sorted(READERS))}"
            )
    return files


def _resolve_s3(pattern: str) -> list[str]:
    bucket, key = _split_s3(pattern)
    client = _s3_client()
    if not any(ch in key for ch in "*?["):
        return [pattern]
    prefix = key.split("*")[0].split("?")[0].split("[")[0]
    keys = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
    except Exception as exc:  # botocore ClientError/NoCredentialsError: name the pattern and the AWS error
        raise InputError(f"{pattern}: cannot list s3://{bucket}/{prefix}: {exc}") from None
    import fnmatch

    return [f"s3://{bucket}/{k}" for k in sorted(keys) if fnmatch.fnmatchcase(k, key)]


def fingerprint(files: list[InputFile], cache: HashCache | None = None) -> list[InputDigest]:
    """Size + SHA-256 of local files (streamed, several at once: hashing and reads release the GIL; with a
    ``cache``, unchanged files are not read again: ``batchlane.hashcache``); S3 objects by ETag/version (HEAD,
    no download)."""
    local = [item for item in files if item.local_path is not None]
    found: dict[int, FileDigest] = {}
    if len(local) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(len(local), _DIGEST_THREADS)) as pool:
            found = {id(item): digest for item, digest in
                     zip(local, pool.map(lambda item: _digest(item, cache), local), strict=True)}
    digests = [found.get(id(item)) or _digest(item, cache) for item in files]
    grouped: dict[tuple[str, str], list[FileDigest]] = {}
    for item, digest in zip(files, digests, strict=True):
        grouped.setdefault((item.name, item.pattern), []).append(digest)
    return [InputDigest(name=name, pattern=pattern, files=group) for (name, pattern), group in grouped.items()]


_DIGEST_THREADS = max(2, min(8, os.cpu_count() or 1))


def _digest(item: InputFile, cache: HashCache | None = None) -> FileDigest:
    if item.local_path is not None:
        size, sha = cache.sha256(item.local_path) if cache is not None else hash_file(item.local_path)
        return FileDigest(uri=item.uri, size=size, sha256=sha)
    bucket, key = _split_s3(item.uri)
    try:
        head = _s3_client().head_object(Bucket=bucket, Key=key)
    except Exception as exc:  # botocore ClientError/NoCredentialsError: name the input and the AWS error
        raise InputError(f"input {item.name!r} ({item.uri}): cannot be read from S3: {exc}") from None
    version = _s3_version(head)
    checksum = head.get("ChecksumSHA256") or hashlib.sha256(f"{item.uri}@{version}".encode()).hexdigest()
    return FileDigest(uri=item.uri, size=head["ContentLength"], sha256=checksum, version=version)


def _s3_version(response: dict) -> str:
    """A version id pins bytes on a versioned bucket; elsewhere the ETag, marked as such (``etag:...``)."""
    version = response.get("VersionId")
    if version and version != "null":
        return str(version)
    return "etag:" + str(response.get("ETag", "")).strip('"')


def fetch_s3(item: InputFile, workdir: Path, *, version: str | None = None) -> tuple[InputFile, FileDigest]:
    """Download an s3:// input (at a pinned version id when given), hashing while downloading."""
    bucket, key = _split_s3(item.uri)
    request = {"Bucket": bucket, "Key": key}
    if version and version.startswith("etag:"):
        request["IfMatch"] = '"' + version.removeprefix("etag:") + '"'
    elif version:
        request["VersionId"] = version
    try:
        body = _s3_client().get_object(**request)
    except Exception as exc:  # botocore ClientError/NoCredentialsError: name the input and the AWS error
        raise InputError(f"input {item.name!r} ({item.uri}): cannot be read from S3: {exc}") from None
    target = Path(tempfile.mkstemp(dir=workdir, suffix=item.suffix)[1])
    digest, size = hashlib.sha256(), 0
    with open(target, "wb") as handle:
        for chunk in body["Body"].iter_chunks(8 << 20):
            digest.update(chunk)
            handle.write(chunk)
            size += len(chunk)
    version = _s3_version(body)
    local = InputFile(item.name, item.pattern, item.uri, target)
    return local, FileDigest(uri=item.uri, size=size, sha256=digest.hexdigest(), version=version)


def _local_path(uri: str) -> Path:
    from urllib.parse import unquote, urlparse

    return Path(unquote(urlparse(uri).path))


def read_pinned(pinned: list[InputDigest], workdir: Path) -> tuple[dict[str, pd.DataFrame], list[InputDigest]]:
    """Read exactly the input files an attempt pinned when it began, refusing any whose bytes changed.

    Local files are hashed and compared with their pinned SHA-256; S3 objects are fetched at their pinned
    version (hashed while downloading). Returns the frames by input name and the digests as read.
    """
    files: list[InputFile] = []
    read: list[InputDigest] = []
    for group in pinned:
        digests = []
        for expected in group.files:
            where = f"input {group.name!r} ({expected.uri})"
            if expected.uri.startswith("s3://"):
                item, actual = fetch_s3(InputFile(group.name, group.pattern, expected.uri, None), workdir,
                                        version=expected.version)
                same = actual.size == expected.size and (expected.version is None or actual.version == expected.version)
            else:
                item = InputFile(group.name, group.pattern, expected.uri, _local_path(expected.uri))
                try:
                    actual = _digest(item)
                except OSError as exc:
                    raise InputError(f"{where}: cannot be read: {exc.strerror or exc}") from None
                same = (actual.size, actual.sha256) == (expected.size, expected.sha256)
            if not same:
                raise InputError(f"{where}: changed after the attempt began (its pinned digest no longer matches)")
            files.append(item)
            digests.append(actual)
        read.append(InputDigest(name=group.name, pattern=group.pattern, files=digests))
    return read_frames(files), read


def read_frame(item: InputFile) -> pd.DataFrame:
    """Read one local input file as a DataFrame; errors name the input and the file."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert item.local_path is not None
    kind = READERS[item.suffix]
    where = f"input {item.name!r} ({item.uri})"
    if item.local_path.stat().st_size == 0:
        raise InputError(f"{where}: file is empty")
    try:
        if kind == "csv":
            return pd.read_csv(item.local_path)
        if kind == "parquet":
            return pq.read_table(item.local_path).to_pandas()
        return pd.read_json(item.local_path, lines=True)
    except pd.errors.EmptyDataError:
        raise InputError(f"{where}: file has no columns or rows") from None
    except (pd.errors.ParserError, ValueError, pa.ArrowException, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{where}: malformed {kind}: {str(exc).splitlines()[0]}") from None


def read_frames(files: list[InputFile]) -> dict[str, pd.DataFrame]:
    """One DataFrame per input name (files of a glob are concatenated)."""
    import pandas as pd

    frames: dict[str, list[pd.DataFrame]] = {}
    for item in files:
        frames.setdefault(item.name, []).append(read_frame(item))
    return {name: parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True) for name, parts in frames.items()}
