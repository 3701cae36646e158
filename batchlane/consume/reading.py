"""Read a certified product by name, fail closed (``batchlane.read`` and ``lane read`` use this)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from batchlane.backends import backend_from_env, local_backend
from batchlane.gate import NotCertified, read_table
from batchlane.stores.base import Backend

if TYPE_CHECKING:
    import pandas as pd


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
    backend = backend or (local_backend(home) if home else backend_from_env())
    return read_table(backend, lane or owning_lane(backend, output), output).to_pandas()
