"""Read a certified product by name, fail closed (``batchlane.read`` and ``lane read`` use this)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchlane.backends import backend_from_env, local_backend
from batchlane.gate import NotCertified, read_table
from batchlane.stores.base import Backend

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def owning_lane(backend: Backend, output: str) -> str:
    lanes = sorted({run.lane for run in backend.ledger.list_runs(limit=1000)})
    owners = [lane for lane in lanes if backend.ledger.current(lane, output) is not None]
    if len(owners) == 1:
        return owners[0]
    if not owners:
        raise NotCertified(f"{output!r} has no certification in any lane of the {backend.name} store: no PASS, no read")
    raise NotCertified(f"output {output!r} exists in lanes {', '.join(owners)}: name the lane")


def read_product(output: str, *, lane: str | None = None, home: str | None = None,
                 backend: Backend | None = None) -> pd.DataFrame:
    """A certified product. With ``LANE_RESOLVE_FUNCTION`` set (a consumer role on AWS, which may read neither
    the ledger nor ``staging/``), through the stack's read-only resolve function; else from the store."""
    import os

    function = os.environ.get("LANE_RESOLVE_FUNCTION")
    if function and backend is None and home is None:
        from batchlane.consume.resolve_reader import lambda_invoker

        return read_resolved(lambda_invoker(function), output).to_pandas()
    backend = backend or (local_backend(home) if home else backend_from_env())
    return read_table(backend, lane or owning_lane(backend, output), output).to_pandas()


def read_resolved(invoke, output: str, download=None) -> pa.Table:
    """Ask the resolve function for the certified files of ``output`` (it refuses anything uncertified), download
    each through its version-pinned URL while hashing it, and refuse any file that differs from its proof."""
    import tempfile
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    from batchlane.consume.resolve_reader import _download

    answer = invoke({"action": "resolve", "output": output})
    tables = []
    with tempfile.TemporaryDirectory(prefix="lane-read-") as workdir:
        for number, item in enumerate(answer.get("files", [])):
            local = Path(workdir) / f"{number:05d}.parquet"
            sha256, size = (download or _download)(item["url"], local)
            if (sha256, size) != (item["sha256"], item["size"]):
                raise NotCertified(f"{answer.get('lane')}/{output}: {item['key']} does not hash to its proof "
                                   f"(sha256 {sha256[:12]}… != certified {item['sha256'][:12]}…)")
            tables.append(pq.read_table(local, columns=None))
    if not tables:
        raise NotCertified(f"{output}: the resolve function named no certified file")
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]
