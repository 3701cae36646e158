"""Every certification in force across the lanes of a store: what `lane catalog` lists.

The ledger port offers ``current(lane, output)``; the (lane, output) pairs come from the runs the
ledger knows (or from ``Ledger.pointers()`` when an adapter provides it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from batchlane.receipts import GateReceipt, parse_receipt, sha256_bytes
from batchlane.spec import LaneSpec, SpecError, load_spec
from batchlane.stores.base import Backend, CertPointer, NotFound

MAX_RUNS = 1_000_000


@dataclass(frozen=True)
class CatalogEntry:
    lane: str
    output: str
    run_id: str
    attempt: int
    rows: int | None
    size: int | None          # bytes over every certified file
    files: int
    certified_at: str         # ISO 8601 UTC
    consumers: list[str] | None   # None: the spec of the certifying run is no longer readable
    revoked: str | None       # the reason, when revoked
    status: str               # in force | revoked | broken: <why>

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _iso(moment: datetime) -> str:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def pointers(backend: Backend, lane: str | None = None) -> list[CertPointer]:
    listing = getattr(backend.ledger, "pointers", None)
    if callable(listing):
        found = list(listing())
    else:
        pairs = sorted({(run.lane, output) for run in backend.ledger.list_runs(lane, limit=MAX_RUNS)
                        for output in run.outputs})
        found = [p for p in (backend.ledger.current(name, output) for name, output in pairs) if p is not None]
    return sorted((p for p in found if lane is None or p.lane == lane), key=lambda p: (p.lane, p.output))


def certifications(backend: Backend, lane: str | None = None) -> list[CatalogEntry]:
    specs: dict[str, LaneSpec | None] = {}
    return [_entry(backend, pointer, specs) for pointer in pointers(backend, lane)]


def _entry(backend: Backend, pointer: CertPointer, specs: dict[str, LaneSpec | None]) -> CatalogEntry:
    rows: int | None = None
    size: int | None = None
    files = 0
    status = f"revoked: {pointer.revoked}" if pointer.revoked else "in force"
    try:
        data = backend.store.get(pointer.key)
        if sha256_bytes(data) != pointer.digest:
            raise ValueError(f"certification {pointer.key} was altered (digest mismatch)")
        receipt = parse_receipt(data)
        if not isinstance(receipt, GateReceipt) or receipt.decision != "certified":
            raise ValueError(f"{pointer.key} is not a certification")
        files = len(receipt.proof)
        size = sum(proof.size for proof in receipt.proof)
        counts = [proof.rows for proof in receipt.proof]
        rows = None if any(count is None for count in counts) else sum(c for c in counts if c is not None)
    except (NotFound, ValueError) as exc:
        status = f"broken: {exc}"
    return CatalogEntry(
        lane=pointer.lane, output=pointer.output, run_id=pointer.run_id, attempt=pointer.attempt, rows=rows,
        size=size, files=files, certified_at=_iso(pointer.certified_at),
        consumers=_consumers(backend, pointer, specs), revoked=pointer.revoked, status=status,
    )


def _consumers(backend: Backend, pointer: CertPointer, specs: dict[str, LaneSpec | None]) -> list[str] | None:
    """The consumers the certifying run's spec declares for the output (None when that spec is gone)."""
    run = backend.ledger.get_run(pointer.run_id)
    if run is None or not run.spec_path:
        return None
    if run.spec_path not in specs:
        try:
            specs[run.spec_path] = load_spec(run.spec_path)
        except SpecError:
            specs[run.spec_path] = None
    spec = specs[run.spec_path]
    if spec is None or spec.lane != pointer.lane or pointer.output not in spec.outputs:
        return None
    return list(spec.outputs[pointer.output].consumers)
