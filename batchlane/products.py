"""Products feeding products: an output reads another output only through the gate.

When an attempt begins, the certification in force for each product input is pinned (``pin_product_inputs``):
its receipt digest names the version, its proof (the certified files and their SHA-256) is the input's digest.
The job reads exactly those bytes (``read_product_inputs``, hashing as it copies) or fails without calling the
transform. An output whose upstream in the same run was not certified is not materialized at all: it is
``blocked`` (``run_blockers``). References are checked against a pinned version too (``pin_reference``).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from batchlane.inputs import InputError
from batchlane.reading import (
    NotCertified,
    ResolvedProduct,
    bound_certification,
    fetch_proven,
    read_proven,
    resolve,
)
from batchlane.receipts import FileDigest, InputDigest, PinnedProduct, product_key
from batchlane.spec import LaneSpec
from batchlane.stores.base import Backend, ObjectStore, StoreError

if TYPE_CHECKING:  # data libraries load in the job and the checker only
    import pandas as pd

    from batchlane.checking.references import ReferencedColumn


def pinned(resolved: ResolvedProduct) -> PinnedProduct:
    pointer = resolved.pointer
    return PinnedProduct(lane=pointer.lane, output=pointer.output, run_id=pointer.run_id, attempt=pointer.attempt,
                         certification=pointer.key, certification_digest=pointer.digest)


def pin_product_inputs(backend: Backend, spec: LaneSpec, output: str) -> list[InputDigest]:
    """The certification in force for each product input of ``output``; InputError names the input and why
    it cannot be read (no certification, revoked, or a certification that is not bound to its evidence)."""
    digests = []
    for name, source in spec.outputs[output].product_inputs().items():
        lane, product = source.output_of(spec.lane)
        try:
            resolved = resolve(backend, lane, product, verify_bytes=False)  # the job hashes the bytes as it reads
        except NotCertified as exc:
            raise InputError(f"product input {name!r} ({source.describe(spec.lane)}): {exc}") from None
        digests.append(InputDigest(name=name, pattern=source.describe(spec.lane),
                                   files=list(resolved.certification.proof), product=pinned(resolved)))
    return digests


def revoked_since_pinned(backend: Backend, inputs: Iterable[InputDigest]) -> str | None:
    """Why a pinned product input may no longer be read (its certification was revoked), or None."""
    for group in inputs:
        pin = group.product
        if pin is None:
            continue
        pointer = backend.ledger.current(pin.lane, pin.output)
        if pointer is not None and pointer.key == pin.certification and pointer.revoked is not None:
            return (f"product input {group.name!r} ({group.pattern}): the certification it read "
                    f"({pin.label}) was revoked after the attempt began ({pointer.revoked})")
    return None


def run_blockers(backend: Backend, spec: LaneSpec, run_id: str, run_outputs: Iterable[str],
                 output: str) -> dict[str, str]:
    """Upstream outputs of this run that were not certified, with why: ``output`` must not be materialized.

    Upstreams not part of the run are not blockers: they are read at their certification in force (or the
    attempt fails naming the missing certification)."""
    from batchlane.state import SETTLED, output_closure

    in_run = set(run_outputs)
    blockers = {}
    for upstream in sorted(spec.upstream(output) & in_run):
        closure = output_closure(backend, spec.lane, run_id, upstream)
        if closure.state in SETTLED:
            continue
        why = {"rejected": "was rejected", "failed": "failed", "blocked": "is blocked"}.get(
            closure.state, "has no decision")
        blockers[upstream] = f"upstream {upstream} {why} in this run" + (
            f" (attempt {closure.attempts})" if closure.attempts else "")
    return blockers


# ----------------------------------------------------------------------------- reading pinned bytes


def read_product_inputs(store: ObjectStore, inputs: list[InputDigest], workdir: Path
                        ) -> tuple[dict[str, pd.DataFrame], list[InputDigest]]:
    """The job's side: read each pinned product input, verifying every byte against the pinned proof."""
    frames, read = {}, []
    for group in inputs:
        try:
            table = read_proven(store, f"product input {group.name!r} ({group.pattern})", group.files, workdir)
        except NotCertified as exc:
            raise InputError(f"{exc}: not read") from None
        frames[group.name] = table.to_pandas()
        read.append(group)  # read exactly as pinned: any other byte raised above
    return frames, read


def reference_values(backend: Backend, lane: str, output: str, column: str,
                     pinned_input: InputDigest | None) -> tuple[ReferencedColumn, PinnedProduct, list[FileDigest]]:
    """The values of OUTPUT.COLUMN a ``references`` rule checks against, and the version they come from:
    the version the attempt read as a product input, else the certification in force now.

    The certified files are copied to a temporary directory (verified against their proof as they are
    copied) and read from there batch by batch, never whole: beyond the checker's memory budget the rule
    streams them into a semi-join on disk. The copies are removed when the check releases them (or when
    the column is garbage collected). A store without local paths (S3) is read in place instead: each file
    pinned to its proven version and hashed by one stream, then only the column read by ranged GETs."""
    from batchlane.checking.references import ReferencedColumn

    if pinned_input is not None and pinned_input.product is not None:
        pin, files = pinned_input.product, pinned_input.files
        pointer = backend.ledger.current(pin.lane, pin.output)
        if pointer is not None and pointer.key == pin.certification:
            bound_certification(backend, pointer)  # still bound to its evidence
    else:
        resolved = resolve(backend, lane, output, verify_bytes=False)
        pin, files = pinned(resolved), list(resolved.certification.proof)
    if getattr(backend.store, "s3", None) is not None:  # an S3 store: ranged reads, no copy on disk
        return _referenced_in_place(backend, lane, output, column, files), pin, files
    workdir = Path(tempfile.mkdtemp(prefix="lane-reference-"))
    try:
        local = fetch_proven(backend.store, f"referenced product {lane}/{output}", files, workdir)
        values = ReferencedColumn.from_parquet(local, column)
    except KeyError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise NotCertified(f"referenced product {lane}/{output} has no column {column!r}: {exc.args[0]}") from None
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    values.release = weakref.finalize(values, shutil.rmtree, workdir, True)  # at the latest when collected
    return values, pin, files


def _referenced_in_place(backend: Backend, lane: str, output: str, column: str,
                         files: list[FileDigest]) -> ReferencedColumn:
    """OUTPUT.COLUMN of certified S3 files read by ranged GETs, each first proven by one hash stream."""
    from batchlane.checking.references import ReferencedColumn
    from batchlane.stores.s3_ranged import RangedReadError, proven_source

    where = f"referenced product {lane}/{output}"
    sources = []
    for item in files:
        try:
            sources.append(proven_source(backend.store, product_key(item.uri), version=item.version,
                                         sha256=item.sha256, size=item.size, uri=item.uri))
        except (RangedReadError, StoreError, ValueError) as exc:
            raise NotCertified(f"{where}: {exc}") from None
    try:
        return ReferencedColumn.from_parquet(sources, column)
    except KeyError as exc:
        raise NotCertified(f"{where} has no column {column!r}: {exc.args[0]}") from None
