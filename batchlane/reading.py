"""Reading through the gate: no PASS, no read.

A product is readable only through the certification pointer of its lane and output, and only while
the certification it points at is bound to that lane, output and attempt, is supported by its own
check receipt, chains to it, and the SHA-256 of every certified file still matches the proof.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from batchlane.receipts import (
    CheckReceipt,
    FileDigest,
    GateReceipt,
    parse_receipt,
    product_key,
    receipt_key,
    sha256_bytes,
)
from batchlane.stores.base import Backend, CertPointer, NotFound, ObjectStore, StoreError

if TYPE_CHECKING:  # pyarrow loads when data is read, so planning, memoized runs and the CLI start fast
    import pyarrow as pa


class NotCertified(LookupError):
    """A read was refused: no certification, revoked, or the bytes no longer match the proof."""


@dataclass(frozen=True)
class ResolvedProduct:
    pointer: CertPointer
    certification: GateReceipt
    keys: list[str]


def _stored_receipt(backend: Backend, key: str, where: str, what: str) -> tuple[bytes, object]:
    try:
        data = backend.store.get(key)
    except NotFound:
        raise NotCertified(f"{where}: {what} {key} is missing") from None
    except StoreError as exc:
        raise NotCertified(f"{where}: {what} {key} cannot be read: {exc}") from None
    try:
        return data, parse_receipt(data)
    except ValueError:
        raise NotCertified(f"{where}: {what} {key} is not a receipt") from None


def bound_certification(backend: Backend, pointer: CertPointer) -> GateReceipt:
    """The certification the pointer names, refused unless it is bound to the pointer and its evidence.

    Binding: the receipt is the gate receipt of the pointer's lane, output, run and attempt; its digest
    is the pointer's; it certifies; its check receipt (the one it chains to) passed and proves exactly
    the same files. A pointer copied from another output, or a receipt swapped under it, is refused.
    """
    where = f"{pointer.lane}/{pointer.output}"
    expected_key = receipt_key(pointer.run_id, pointer.output, pointer.attempt, "gate")
    if pointer.key != expected_key:
        raise NotCertified(f"{where}: the pointer names {pointer.key}, not the gate receipt of its own attempt")
    data, receipt = _stored_receipt(backend, pointer.key, where, "certification")
    if sha256_bytes(data) != pointer.digest:
        raise NotCertified(f"{where}: certification {pointer.key} was altered (digest mismatch)")
    if not isinstance(receipt, GateReceipt) or receipt.decision != "certified":
        raise NotCertified(f"{where}: {pointer.key} is not a certification")
    bound = (receipt.lane, receipt.output, receipt.run_id, receipt.attempt)
    if bound != (pointer.lane, pointer.output, pointer.run_id, pointer.attempt):
        raise NotCertified(
            f"{where}: certification {pointer.key} belongs to {receipt.lane}/{receipt.output} run {receipt.run_id} "
            f"attempt {receipt.attempt}, not to this pointer: refused"
        )
    check_key = receipt_key(pointer.run_id, pointer.output, pointer.attempt, "check")
    check_data, checked = _stored_receipt(backend, check_key, where, "check receipt")
    if sha256_bytes(check_data) != receipt.check_digest or receipt.prev != receipt.check_digest:
        raise NotCertified(f"{where}: certification {pointer.key} does not chain to its check receipt")
    if not isinstance(checked, CheckReceipt) or checked.verdict != "PASS" or checked.products != receipt.proof:
        raise NotCertified(f"{where}: certification {pointer.key} is not supported by a PASS of the same files")
    return receipt


def _proven(where: str, key: str, proof: FileDigest, hash_of: Callable[[str], FileDigest]) -> None:
    """Hash one certified file (via ``hash_of``); raise NotCertified unless it matches its proof."""
    try:
        actual = hash_of(key)
    except NotFound:
        raise NotCertified(f"{where}: certified file {key} is missing") from None
    except (StoreError, OSError) as exc:
        raise NotCertified(f"{where}: certified file {key} cannot be read: {exc}") from None
    if (actual.sha256, actual.size) != (proof.sha256, proof.size):
        raise NotCertified(
            f"{where}: {key} changed since certification "
            f"(sha256 {actual.sha256[:12]}… != certified {proof.sha256[:12]}…)"
        )


def read_proven(store: ObjectStore, where: str, proof: list[FileDigest], workdir: Path,
                columns: list[str] | None = None) -> pa.Table:
    """Read certified files as one table; the bytes read are the bytes hashed (each file is copied into
    ``workdir`` and verified against its proof in one pass). NotCertified names ``where`` and the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for local in _copies_proven(store, where, proof, workdir):
        tables.append(pq.read_table(local, columns=columns))
        local.unlink(missing_ok=True)
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def fetch_proven(store: ObjectStore, where: str, proof: list[FileDigest], workdir: Path) -> list[Path]:
    """Copy certified files into ``workdir``, each verified against its proof as it is copied (for readers that
    stream them afterwards instead of reading them whole). NotCertified names ``where`` and the file."""
    return list(_copies_proven(store, where, proof, workdir))


def _copies_proven(store: ObjectStore, where: str, proof: list[FileDigest], workdir: Path) -> Iterator[Path]:
    """Each certified file copied into ``workdir`` and verified against its proof, one at a time."""
    if not proof:
        raise NotCertified(f"{where}: the certification proves no file")
    for index, item in enumerate(proof):
        try:
            key = product_key(item.uri)
        except ValueError as exc:
            raise NotCertified(f"{where}: {exc}") from None
        local = workdir / f"{index:06d}.parquet"

        def copy(stored: str, target: Path = local) -> FileDigest:
            return store.fetch(stored, target)

        _proven(where, key, item, copy)
        yield local


def verify_files(backend: Backend, resolved: ResolvedProduct) -> None:
    """Re-hash every certified file; raise NotCertified on any difference from the proof."""
    where = f"{resolved.pointer.lane}/{resolved.pointer.output}"
    for key, proof in zip(resolved.keys, resolved.certification.proof, strict=True):
        _proven(where, key, proof, backend.store.digest)


def still_held(backend: Backend, resolved: ResolvedProduct) -> None:
    """Every certified file still holds its proven bytes, asked of the store (``ObjectStore.holds``: S3, one HEAD
    of the pinned version; local, a re-hash unless the planning cache knows the file unchanged): what a memo hit
    needs before it reuses a product it does not read. NotCertified names the file otherwise."""
    where = f"{resolved.pointer.lane}/{resolved.pointer.output}"
    for key, proof in zip(resolved.keys, resolved.certification.proof, strict=True):
        try:
            held = backend.store.holds(key, proof)
        except (StoreError, OSError) as exc:
            raise NotCertified(f"{where}: certified file {key} cannot be read: {exc}") from None
        if not held:
            raise NotCertified(f"{where}: {key} changed since certification (or is gone)")


def resolve(backend: Backend, lane: str, output: str, *, verify_bytes: bool = True) -> ResolvedProduct:
    pointer = backend.ledger.current(lane, output)
    if pointer is None:
        raise NotCertified(f"{lane}/{output} has no certification: no PASS, no read")
    if pointer.revoked is not None:
        raise NotCertified(f"{lane}/{output}: certification of run {pointer.run_id} was revoked ({pointer.revoked})")
    certification = bound_certification(backend, pointer)
    try:
        keys = [product_key(proof.uri) for proof in certification.proof]
    except ValueError as exc:
        raise NotCertified(f"{lane}/{output}: {exc}") from None
    resolved = ResolvedProduct(pointer=pointer, certification=certification, keys=keys)
    if verify_bytes:
        verify_files(backend, resolved)
    return resolved


def read_table(backend: Backend, lane: str, output: str, columns: list[str] | None = None) -> pa.Table:
    """Read a certified product; the bytes read are the bytes hashed (copied and verified in one pass)."""
    resolved = resolve(backend, lane, output, verify_bytes=False)
    with tempfile.TemporaryDirectory(prefix="lane-read-") as workdir:
        return read_proven(backend.store, f"{lane}/{output}", resolved.certification.proof, Path(workdir), columns)
