"""Writing and reading receipts: write-once in the object store, indexed in the ledger, chained."""

from __future__ import annotations

import time

from batchlane.receipts import (
    CheckReceipt,
    GateReceipt,
    MaterializeReceipt,
    RunManifest,
    parse_manifest,
    parse_receipt,
    receipt_key,
)
from batchlane.stores.base import AlreadyExists, Backend, ReceiptRow

AnyReceipt = MaterializeReceipt | CheckReceipt | GateReceipt
_INDEX_PAUSES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, None)  # ~1.9 s at most


class EvidenceError(RuntimeError):
    """Stored evidence does not match its index (tampered, missing or inconsistent)."""


def status_of(receipt: AnyReceipt) -> str:
    if isinstance(receipt, MaterializeReceipt):
        return receipt.status
    if isinstance(receipt, CheckReceipt):
        return receipt.verdict
    return receipt.decision


def chain_head(backend: Backend, run_id: str, output: str) -> str | None:
    """Digest of the newest receipt of an output in a run: the next receipt's ``prev``."""
    rows = [row for row in backend.ledger.receipts(run_id, output) if row.kind != "manifest"]
    return rows[-1].digest if rows else None


def write_receipt(backend: Backend, receipt: AnyReceipt) -> str:
    """Store once, then index. Returns the key. A second write of the same key raises AlreadyExists."""
    key = receipt_key(receipt.run_id, receipt.output, receipt.attempt, receipt.kind)
    backend.store.put_once(key, receipt.canonical())
    backend.ledger.record_receipt(
        ReceiptRow(
            run_id=receipt.run_id, output=receipt.output, attempt=receipt.attempt, kind=receipt.kind, key=key,
            digest=receipt.digest(), status=status_of(receipt), created_at=receipt.created_at,
        )
    )
    return key


def load_receipt(backend: Backend, run_id: str, output: str, attempt: int, kind: str) -> AnyReceipt | None:
    """The receipt, checked against its ledger digest; None when it was never written."""
    key = receipt_key(run_id, output, attempt, kind)
    # A receipt is stored, then indexed: a concurrent writer may be between the two. Give it a moment
    # before calling an unindexed receipt a partial write or tampering.
    for pause in _INDEX_PAUSES:
        rows = [row for row in backend.ledger.receipts(run_id, output) if row.key == key]
        if rows:
            break
        if not backend.store.exists(key):
            return None
        if pause is None:
            raise EvidenceError(f"{key} exists but is not in the ledger (partial write or tampering)")
        time.sleep(pause)
    data = backend.store.get(key)
    receipt = parse_receipt(data)
    if receipt.digest() != rows[0].digest:
        raise EvidenceError(f"{key}: digest does not match the ledger (receipt tampered)")
    return receipt


def write_once_or_existing(backend: Backend, receipt: AnyReceipt) -> AnyReceipt:
    """Idempotent step: if another actor already wrote this receipt, the stored one stands."""
    try:
        write_receipt(backend, receipt)
        return receipt
    except AlreadyExists:
        key = receipt_key(receipt.run_id, receipt.output, receipt.attempt, receipt.kind)
        stored = parse_receipt(backend.store.get(key))
        try:  # the other actor may not have indexed it yet; indexing the stored bytes is the same row
            backend.ledger.record_receipt(
                ReceiptRow(stored.run_id, stored.output, stored.attempt, stored.kind, key, stored.digest(),
                           status_of(stored), stored.created_at)
            )
        except AlreadyExists:
            pass
        return stored


def load_manifest(backend: Backend, key: str) -> RunManifest:
    return parse_manifest(backend.store.get(key))
