"""batchlane.read() for a consumer role on AWS: through the resolve function, hashes checked, fail closed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchlane.consume.reading import read_product, read_resolved
from batchlane.gate import NotCertified


def _product(tmp_path: Path) -> tuple[bytes, dict]:
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3]}), path)
    data = path.read_bytes()
    return data, {"key": "staging/r/o/0001/part-0000.parquet", "url": "https://example.invalid/x",
                  "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def test_a_resolved_product_is_read_and_its_bytes_verified(tmp_path):
    data, item = _product(tmp_path)

    def download(url, destination):
        destination.write_bytes(data)
        return hashlib.sha256(data).hexdigest(), len(data)

    table = read_resolved(lambda request: {"lane": "orders", "files": [item]}, "o", download=download)
    assert table.column("id").to_pylist() == [1, 2, 3]

    def tampered(url, destination):
        destination.write_bytes(b"PAR1 other bytes")
        return hashlib.sha256(b"PAR1 other bytes").hexdigest(), 16

    with pytest.raises(NotCertified, match="does not hash to its proof"):
        read_resolved(lambda request: {"lane": "orders", "files": [item]}, "o", download=tampered)
    with pytest.raises(NotCertified, match="named no certified file"):
        read_resolved(lambda request: {"lane": "orders", "files": []}, "o", download=download)


def test_read_uses_the_resolve_function_when_configured(monkeypatch):
    import batchlane.consume.resolve_reader as resolve_reader

    calls = []

    def invoker(name, client=None):
        def invoke(request):
            calls.append((name, request))
            raise NotCertified("orders/o has no certification: no PASS, no read")
        return invoke

    monkeypatch.setenv("LANE_RESOLVE_FUNCTION", "lane-resolve")
    monkeypatch.setattr(resolve_reader, "lambda_invoker", invoker)
    with pytest.raises(NotCertified, match="no PASS, no read"):
        read_product("o")
    assert calls == [("lane-resolve", {"action": "resolve", "output": "o"})]
