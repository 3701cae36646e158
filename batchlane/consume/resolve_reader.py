"""Read a pinned version through the stack's read-only resolve function (the consumer role's only way in).

Consumer roles are denied ``staging/`` and have no ledger access: they invoke the resolve function,
which checks the certification pointer and the certification's digest and hands out presigned URLs
pinned to the certified S3 versions. This reader accepts the answer only when it names exactly the
certification the event names, then downloads every file while hashing it and compares each with the
event's proof. After the download it asks again, so a revoke that raced the read fails the read.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchlane.consume.pinned import VersionNotInForce, VersionState, describe
from batchlane.gate import NotCertified
from batchlane.receipts import LaneEvent

if TYPE_CHECKING:
    import pyarrow as pa

Invoke = Callable[[dict], dict]


class ResolveFunctionError(RuntimeError):
    """The resolve function failed for a reason other than 'not certified' (permissions, bad request, crash)."""


def lambda_invoker(function_name: str, *, client: Any = None) -> Invoke:
    """Invoke the resolve function synchronously; NotCertifiedError answers raise NotCertified."""
    if client is None:
        import boto3

        client = boto3.session.Session().client("lambda")

    def invoke(request: dict) -> dict:
        response = client.invoke(FunctionName=function_name, Payload=json.dumps(request).encode())
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            kind = (payload or {}).get("errorType", "")
            message = (payload or {}).get("errorMessage", "")
            if kind == "NotCertifiedError":
                raise NotCertified(message)
            raise ResolveFunctionError(f"resolve function {function_name} failed: {kind}: {message}")
        return payload

    return invoke


def _download(url: str, destination: Path) -> tuple[str, int]:
    import hashlib

    import requests

    digest, size = hashlib.sha256(), 0
    with requests.get(url, stream=True, timeout=60) as response:
        if response.status_code != 200:
            raise NotCertified(f"download of a certified file failed: HTTP {response.status_code}")
        with open(destination, "wb") as handle:
            for chunk in response.iter_content(chunk_size=8 << 20):
                digest.update(chunk)
                handle.write(chunk)
                size += len(chunk)
    return digest.hexdigest(), size


class ResolveFunctionReader:
    def __init__(self, invoke: Invoke, *, download: Callable[[str, Path], tuple[str, int]] = _download) -> None:
        self.invoke = invoke
        self.download = download

    def _answer(self, event: LaneEvent) -> dict | None:
        try:
            return self.invoke({"action": "resolve", "output": event.output})
        except NotCertified:
            return None

    @staticmethod
    def _state(event: LaneEvent, answer: dict | None) -> VersionState:
        if answer is None:
            return "uncertified"   # no live certification: none at all, or revoked (the function does not say which)
        if (answer.get("certification"), answer.get("certification_digest")) == (event.receipt, event.receipt_digest):
            return "in_force"
        return "superseded"

    def state(self, event: LaneEvent) -> VersionState:
        return self._state(event, self._answer(event))

    def table(self, event: LaneEvent, columns: list[str] | None = None) -> pa.Table:
        import pyarrow as pa
        import pyarrow.parquet as pq

        answer = self._answer(event)
        state = self._state(event, answer)
        if state != "in_force" or answer is None:
            raise VersionNotInForce(f"{describe(event)} is not the certification in force: no PASS, no read", state)
        files = answer.get("files", [])
        if [(f["sha256"], f["size"]) for f in files] != [(p.sha256, p.size) for p in event.proof]:
            raise NotCertified(f"{describe(event)}: the resolve function's files differ from the event's proof")
        tables = []
        with tempfile.TemporaryDirectory(prefix="lane-consume-") as workdir:
            for number, item in enumerate(files):
                local = Path(workdir) / f"{number:05d}.parquet"
                sha256, size = self.download(item["url"], local)
                if (sha256, size) != (item["sha256"], item["size"]):
                    raise NotCertified(f"{describe(event)}: {item['key']} does not hash to its proof "
                                       f"(sha256 {sha256[:12]}… != certified {item['sha256'][:12]}…)")
                tables.append(pq.read_table(local, columns=columns))
        if self.state(event) != "in_force":
            raise VersionNotInForce(f"{describe(event)} stopped being in force while it was read: no PASS, no read",
                                    "revoked")
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]
