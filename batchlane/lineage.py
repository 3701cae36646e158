"""Lineage of one output: where its data comes from and where it goes, with the certified versions in force.

Pure logic over the spec (the graph of product inputs and ``references``) and, when there is one, the store
(certification pointers and the receipts they name). Read-only: nothing is written, no store is created, and
product bytes are not re-hashed (``lane verify`` and every read do that); a certification whose receipt is
missing, altered or unbound is reported ``broken: WHY`` rather than trusted.

- upstream: every product the output reads or references, transitively (another lane's product inputs too),
  in topological order;
- the output itself, with its file and product inputs and what its certification in force pinned for each;
- downstream: every output of the lane that reads or references it, transitively, in topological order;
- for each product: its certification in force (run, attempt, certified time, files with SHA-256, revoked or
  not) and its declared consumers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from batchlane.receipts import (
    CheckReceipt,
    InputDigest,
    MaterializeReceipt,
    PinnedProduct,
    parse_receipt,
    receipt_key,
    sha256_bytes,
)
from batchlane.selection import SelectionError, unknown_output_message
from batchlane.spec import LaneSpec
from batchlane.stores.base import Backend, CertPointer, NotFound, StoreError

_R = TypeVar("_R", MaterializeReceipt, CheckReceipt)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LineageFile(_Model):
    uri: str
    size: int
    sha256: str
    rows: int | None = None


class Certified(_Model):
    """The certification in force of one product (possibly revoked or broken: ``status`` says)."""

    run_id: str
    attempt: int
    certification: str        # key of the gate receipt
    certified_at: str         # ISO 8601 UTC
    status: str               # in force | revoked: REASON | broken: WHY
    revoked: str | None       # the reason, when revoked
    files: list[LineageFile]  # the certified bytes (the proof); empty when broken


class PinnedInput(_Model):
    """One input of a product as the spec declares it, and what its certification in force read."""

    name: str
    pattern: str                        # as written; product:OUTPUT (or product:LANE/OUTPUT) for a product
    product: str | None                 # OUTPUT (or LANE/OUTPUT) for a product input
    pinned: PinnedProduct | None        # the upstream certification the certified attempt read
    pinned_is_in_force: bool | None     # is that still the upstream's certification in force? (None: unknown)
    files: list[LineageFile] | None     # files pinned by the certification in force; None when not known


class CheckedReference(_Model):
    """The version of a referenced product the certification in force was checked against (its check receipt)."""

    output: str
    pinned: PinnedProduct
    pinned_is_in_force: bool | None


class ProductLineage(_Model):
    lane: str
    output: str
    reads: list[str]             # product inputs: OUTPUT, or LANE/OUTPUT for another lane
    references: list[str]        # outputs its `references` rules check against
    consumers: list[str] | None  # None: another lane's product (its spec is not at hand)
    certification: Certified | None
    inputs: list[PinnedInput] | None  # None: another lane's product
    checked_against: list[CheckedReference] | None  # references as checked; None when not known
    note: str | None = None      # why pinned inputs are not shown, when they are not


class Lineage(_Model):
    lane: str
    output: str
    spec: str | None
    store: bool
    product: ProductLineage
    upstream: list[ProductLineage]
    downstream: list[ProductLineage]

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _iso(moment: datetime) -> str:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _name(lane: str, output: str, home_lane: str) -> str:
    return output if lane == home_lane else f"{lane}/{output}"


def lineage(spec: LaneSpec, output: str, backend: Backend | None) -> Lineage:
    """The lineage of ``output``; ``backend`` None means there is no store yet (nothing is certified).

    Raises SelectionError (exit 2) when the lane has no such output."""
    if output not in spec.outputs:
        raise SelectionError(unknown_output_message(spec, output))
    upstream_names = spec.upstream_closure(output)
    downstream_names = spec.downstream_closure(output)
    order = spec.topological_order()
    pointers = _Pointers(backend)
    external = sorted({source.output_of(spec.lane) for name in (*upstream_names, output)
                       for source in spec.outputs[name].product_inputs().values()
                       if source.lane not in (None, spec.lane)})
    upstream = [_external(lane, name, pointers) for lane, name in external]
    upstream += [_product(spec, name, pointers) for name in order if name in upstream_names]
    return Lineage(
        lane=spec.lane, output=output, spec=str(spec.source_path) if spec.source_path else None,
        store=backend is not None, product=_product(spec, output, pointers), upstream=upstream,
        downstream=[_product(spec, name, pointers) for name in order if name in downstream_names],
    )


class _Pointers:
    """Certification pointers read once each (a product may appear as an upstream and as a pinned input)."""

    def __init__(self, backend: Backend | None) -> None:
        self.backend = backend
        self._seen: dict[tuple[str, str], CertPointer | None] = {}

    def current(self, lane: str, output: str) -> CertPointer | None:
        if self.backend is None:
            return None
        if (lane, output) not in self._seen:
            self._seen[(lane, output)] = self.backend.ledger.current(lane, output)
        return self._seen[(lane, output)]


def _external(lane: str, output: str, pointers: _Pointers) -> ProductLineage:
    certification, _evidence, _note = _certified(pointers, lane, output)
    return ProductLineage(lane=lane, output=output, reads=[], references=[], consumers=None,
                          certification=certification, inputs=None, checked_against=None,
                          note=f"a product of lane {lane}: its own spec holds its inputs and consumers")


def _product(spec: LaneSpec, output: str, pointers: _Pointers) -> ProductLineage:
    declared = spec.outputs[output]
    certification, evidence, note = _certified(pointers, spec.lane, output)
    materialized, checked = evidence
    recorded = {item.name: item for item in materialized.inputs} if materialized is not None else {}
    if materialized is not None and set(recorded) != set(declared.inputs):
        note = (f"the spec's inputs changed since this certification, which recorded "
                f"{', '.join(sorted(recorded)) or 'none'}")
    inputs = []
    for name, source in declared.inputs.items():
        item = recorded.get(name)
        if isinstance(source, str):
            inputs.append(PinnedInput(name=name, pattern=source, product=None, pinned=None, pinned_is_in_force=None,
                                      files=_files(item)))
            continue
        lane, product = source.output_of(spec.lane)
        pinned = item.product if item is not None else None
        inputs.append(PinnedInput(name=name, pattern=source.describe(spec.lane), product=_name(lane, product, spec.lane),
                                  pinned=pinned, pinned_is_in_force=_in_force(pointers, pinned), files=_files(item)))
    checked_against = None if checked is None else [
        CheckedReference(output=ref.output, pinned=ref.pinned, pinned_is_in_force=_in_force(pointers, ref.pinned))
        for ref in checked.references]
    return ProductLineage(
        lane=spec.lane, output=output,
        reads=[_name(*source.output_of(spec.lane), spec.lane) for source in declared.product_inputs().values()],
        references=sorted({target for target, _column in declared.contract.references().values()}),
        consumers=list(declared.consumers), certification=certification, inputs=inputs,
        checked_against=checked_against, note=note,
    )


def _in_force(pointers: _Pointers, pinned: PinnedProduct | None) -> bool | None:
    """Is the pinned certification still the one in force (not revoked, not replaced)? None: not known."""
    if pinned is None or pointers.backend is None:
        return None
    pointer = pointers.current(pinned.lane, pinned.output)
    return pointer is not None and pointer.live and pointer.key == pinned.certification


def _files(item: InputDigest | None) -> list[LineageFile] | None:
    if item is None:
        return None
    return [LineageFile(uri=file.uri, size=file.size, sha256=file.sha256, rows=file.rows) for file in item.files]


_Evidence = tuple[MaterializeReceipt | None, CheckReceipt | None]


def _certified(pointers: _Pointers, lane: str, output: str) -> tuple[Certified | None, _Evidence, str | None]:
    """The certification in force, the materialize and check receipts it certifies (None when they cannot be
    read and bound to it), and a note saying why the pinned inputs are not known."""
    from batchlane.reading import NotCertified, bound_certification

    pointer = pointers.current(lane, output)
    if pointer is None:
        return None, (None, None), "no certification yet: nothing pinned"
    assert pointers.backend is not None  # a pointer comes from a store
    backend = pointers.backend
    status = f"revoked: {pointer.revoked}" if pointer.revoked else "in force"
    files: list[LineageFile] = []
    materialized: MaterializeReceipt | None = None
    checked: CheckReceipt | None = None
    note: str | None = None
    try:
        receipt = bound_certification(backend, pointer)
        files = [LineageFile(uri=p.uri, size=p.size, sha256=p.sha256, rows=p.rows) for p in receipt.proof]
        materialized, note = _bound(backend, pointer, "materialize", receipt.materialize_digest, MaterializeReceipt)
        checked, _check_note = _bound(backend, pointer, "check", receipt.check_digest, CheckReceipt)
    except NotCertified as exc:
        status = f"broken: {exc}"
        note = "the certification is broken: its pinned inputs are not trusted"
    certification = Certified(run_id=pointer.run_id, attempt=pointer.attempt, certification=pointer.key,
                              certified_at=_iso(pointer.certified_at), status=status, revoked=pointer.revoked,
                              files=files)
    return certification, (materialized, checked), note


def _bound(backend: Backend, pointer: CertPointer, kind: str, digest: str, model: type[_R]) -> tuple[_R | None, str | None]:
    """The ``kind`` receipt of the certified attempt, bound by the digest the certification holds; else None and
    why."""
    key = receipt_key(pointer.run_id, pointer.output, pointer.attempt, kind)
    try:
        data = backend.store.get(key)
    except (NotFound, StoreError) as exc:
        return None, f"{kind} receipt {key} cannot be read: {exc}"
    if sha256_bytes(data) != digest:
        return None, f"{kind} receipt {key} does not match its certification (digest mismatch)"
    try:
        receipt = parse_receipt(data)
    except ValueError:
        return None, f"{key} is not a receipt"
    if not isinstance(receipt, model):
        return None, f"{key} is not a {kind} receipt"
    return receipt, None
