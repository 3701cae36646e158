"""Writing and reading receipts: write-once in the object store, indexed in the ledger, chained per attempt.

An attempt's receipts form one chain: begin -> materialize -> check -> gate, each holding the digest of
the one before it (``prev``). Attempts of one output never share a chain, so attempts that race (a run
and a rerun, an orphaned job) cannot break each other's evidence. Manifests chain among themselves.

Every write is "store, then index". A crash (or a concurrent writer) between the two leaves a receipt
stored but not indexed; readers adopt it, after checking that it fits the receipt it claims to follow.
A receipt that does not fit is evidence of tampering and is refused, never indexed.
"""

from __future__ import annotations

from batchlane.receipts import (
    KIND_ORDER,
    AnyReceipt,
    BeginReceipt,
    CheckReceipt,
    GateReceipt,
    MaterializeReceipt,
    RunManifest,
    parse_manifest,
    parse_receipt,
    receipt_key,
    sha256_bytes,
)
from batchlane.stores.base import AlreadyExists, Backend, NotFound, ReceiptRow
from batchlane.writepoints import write_point

# the receipt each kind follows in its attempt's chain (a memoized materialize receipt follows nothing)
PREDECESSOR = {"materialize": "begin", "check": "materialize", "gate": "check"}


class EvidenceError(RuntimeError):
    """Stored evidence does not match its index or its chain (tampered, missing or inconsistent)."""


def status_of(receipt: AnyReceipt) -> str:
    if isinstance(receipt, BeginReceipt):
        return "begun"
    if isinstance(receipt, MaterializeReceipt):
        return receipt.status
    if isinstance(receipt, CheckReceipt):
        return receipt.verdict
    return receipt.decision


def sorted_rows(rows: list[ReceiptRow]) -> list[ReceiptRow]:
    """The one receipt order, for every backend: by output, attempt, then chain position."""
    return sorted(rows, key=lambda r: (r.output, r.attempt, KIND_ORDER.get(r.kind, 9), r.key))


def output_rows(backend: Backend, run_id: str, output: str) -> list[ReceiptRow]:
    return sorted_rows(backend.ledger.receipts(run_id, output))


def _row(receipt: AnyReceipt | RunManifest, key: str) -> ReceiptRow:
    if isinstance(receipt, RunManifest):
        return ReceiptRow(run_id=receipt.run_id, output="", attempt=receipt.sequence, kind="manifest", key=key,
                          digest=receipt.digest(), status=receipt.verdict, created_at=receipt.closed_at)
    return ReceiptRow(run_id=receipt.run_id, output=receipt.output, attempt=receipt.attempt, kind=receipt.kind,
                      key=key, digest=receipt.digest(), status=status_of(receipt), created_at=receipt.created_at)


def _index(backend: Backend, row: ReceiptRow) -> None:
    """Index a row; a row indexed before must carry the same digest (else the stored bytes were swapped)."""
    try:
        backend.ledger.record_receipt(row)
    except AlreadyExists:
        indexed = [r for r in backend.ledger.receipts(row.run_id, row.output or None) if r.key == row.key]
        if indexed and indexed[0].digest != row.digest:
            raise EvidenceError(f"{row.key}: stored bytes do not match the ledger digest (receipt tampered)") from None


def write_receipt(backend: Backend, receipt: AnyReceipt) -> str:
    """Store once, then index. Returns the key. A second write of the same key raises AlreadyExists."""
    key = receipt_key(receipt.run_id, receipt.output, receipt.attempt, receipt.kind)
    write_point(f"{receipt.kind}.store")
    backend.store.put_once(key, receipt.canonical())
    write_point(f"{receipt.kind}.index")
    _index(backend, _row(receipt, key))
    return key


def _fits_chain(backend: Backend, receipt: AnyReceipt, key: str) -> None:
    """An unindexed receipt may be adopted only where it follows its indexed predecessor exactly."""
    expected = receipt_key(receipt.run_id, receipt.output, receipt.attempt, receipt.kind)
    if key != expected:
        raise EvidenceError(f"{key}: holds a receipt of {expected}")
    before = PREDECESSOR.get(receipt.kind)
    if before is None or receipt.prev is None:
        if before in ("materialize", "check"):  # check and gate receipts always follow a receipt
            raise EvidenceError(f"{key}: not indexed and follows no receipt")
        return
    predecessor = load_receipt(backend, receipt.run_id, receipt.output, receipt.attempt, before)
    if predecessor is None or predecessor.digest() != receipt.prev:
        raise EvidenceError(f"{key}: not indexed, and does not follow the {before} receipt of its attempt")
    if isinstance(receipt, GateReceipt) and receipt.decision == "certified":
        if not (isinstance(predecessor, CheckReceipt) and predecessor.verdict == "PASS"
                and predecessor.products == receipt.proof):
            raise EvidenceError(f"{key}: a certification that its check receipt does not support")


def adopt(backend: Backend, key: str) -> AnyReceipt:
    """Index a receipt that was stored but not indexed (crash or concurrent writer), if it fits its chain."""
    data = backend.store.get(key)
    try:
        receipt = parse_receipt(data)
    except ValueError as exc:
        raise EvidenceError(f"{key}: not a receipt ({str(exc).splitlines()[0]})") from None
    _fits_chain(backend, receipt, key)
    _index(backend, _row(receipt, key))
    return receipt


def load_receipt(backend: Backend, run_id: str, output: str, attempt: int, kind: str) -> AnyReceipt | None:
    """The receipt, checked against its ledger digest; None when it was never written."""
    key = receipt_key(run_id, output, attempt, kind)
    rows = [row for row in backend.ledger.receipts(run_id, output) if row.key == key]
    if not rows:
        try:
            return adopt(backend, key)
        except NotFound:
            return None
    try:
        data = backend.store.get(key)
    except NotFound:
        raise EvidenceError(f"{key}: indexed but missing from the store") from None
    if sha256_bytes(data) != rows[0].digest:
        raise EvidenceError(f"{key}: digest does not match the ledger (receipt tampered)")
    return parse_receipt(data)


def write_once_or_existing(backend: Backend, receipt: AnyReceipt) -> AnyReceipt:
    """Idempotent step: if another actor already wrote this receipt, the stored one stands."""
    try:
        write_receipt(backend, receipt)
        return receipt
    except AlreadyExists:
        stored = load_receipt(backend, receipt.run_id, receipt.output, receipt.attempt, receipt.kind)
        if stored is None:  # pragma: no cover - write-once keys are never deleted
            raise EvidenceError(f"{receipt.kind} receipt of {receipt.output} attempt {receipt.attempt} vanished") from None
        return stored


def adopt_unindexed(backend: Backend, run_id: str) -> list[str]:
    """Repair: index every receipt of a run that a crash left stored but not indexed (chain-checked)."""
    indexed = {row.key for row in backend.ledger.receipts(run_id)}
    adopted = []
    for key in backend.store.list_keys(f"receipts/{run_id}/"):
        if key in indexed or not key.endswith(".json"):
            continue
        name = key.rsplit("/", 1)[1]
        if name.startswith("manifest-"):
            index_manifest(backend, key)
        else:
            adopt(backend, key)
        adopted.append(key)
    return adopted


def index_manifest(backend: Backend, key: str) -> RunManifest:
    try:
        manifest = parse_manifest(backend.store.get(key))
    except ValueError as exc:
        raise EvidenceError(f"{key}: not a run manifest ({str(exc).splitlines()[0]})") from None
    _index(backend, _row(manifest, key))
    return manifest


def load_manifest(backend: Backend, key: str) -> RunManifest:
    return parse_manifest(backend.store.get(key))


__all__ = ["EvidenceError", "adopt", "adopt_unindexed", "load_receipt", "output_rows", "sorted_rows",
           "write_once_or_existing", "write_receipt"]
