"""`lane plan SPEC`: what a run would do for each output — run, memoized or blocked — and why. Writes nothing.

For every output: resolve and hash its inputs, fingerprint its code, compute the memo key the run would
compute (``batchlane.plan.memo_key``), and compare with the certification in force. When they differ, the
certified attempt's materialize receipt says which part changed: an input (which file, which digest), the
output's spec, or the code. Nothing is imported, no store is created and no receipt is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from batchlane.gate import NotCertified, resolve
from batchlane.inputs import InputError, fingerprint, resolve_inputs
from batchlane.plan import memo_key
from batchlane.products import pin_product_inputs
from batchlane.receipts import InputDigest, MaterializeReceipt, parse_receipt, receipt_key
from batchlane.spec import LaneSpec
from batchlane.stores.base import Backend, CertPointer, NotFound
from batchlane.transforms import TransformError, code_fingerprint

Action = Literal["run", "memoized", "blocked"]


@dataclass
class OutputPreview:
    output: str
    action: Action
    reasons: list[str] = field(default_factory=list)
    certification: dict[str, Any] | None = None   # the certification in force: run_id, attempt, revoked
    waits_for: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "reasons": self.reasons, "certification": self.certification,
                "waits_for": self.waits_for}


def preview(spec: LaneSpec, backend: Backend | None, outputs: list[str] | None = None) -> list[OutputPreview]:
    """One preview per output in run order. ``backend`` None means there is no store yet."""
    chosen = set(outputs or spec.outputs)
    results: dict[str, OutputPreview] = {}
    for name in spec.topological_order():
        if name not in chosen:
            continue
        reads = spec.outputs[name].products_read(spec.lane)
        upstream_runs = [dep for dep in sorted(reads) if dep in results and results[dep].action == "run"]
        item = _one(spec, backend, name, upstream_runs)
        for dependency in sorted(spec.upstream(name)):
            item.waits_for.append(dependency)
            upstream = results.get(dependency)
            if upstream is not None and upstream.action == "blocked" and item.action != "blocked":
                item.action = "blocked"
                item.reasons.insert(0, f"its upstream {dependency} is blocked")
            elif upstream is None and backend is not None and _live(backend, spec.lane, dependency) is None \
                    and item.action != "blocked":
                item.action = "blocked"
                item.reasons.insert(0, f"its upstream {dependency} has no certification and is not in this run "
                                       f"(select +{name} to build it too)")
        results[name] = item
    return list(results.values())


def _live(backend: Backend, lane: str, output: str) -> CertPointer | None:
    pointer = backend.ledger.current(lane, output)
    return pointer if pointer is not None and not pointer.revoked else None


def _one(spec: LaneSpec, backend: Backend | None, name: str, upstream_runs: list[str]) -> OutputPreview:
    try:
        digests = fingerprint(resolve_inputs(spec, name))  # no digest cache: `lane plan` writes nothing
        if upstream_runs:  # what its product inputs will hold is known once the upstream is decided
            return OutputPreview(name, "run", [f"after its upstream {', '.join(upstream_runs)} (memoized then if "
                                               "the bytes it reads do not change)"])
        if backend is not None:
            digests += pin_product_inputs(backend, spec, name)
        elif spec.outputs[name].product_inputs():
            raise InputError("its product inputs have no certification yet (no store)")
    except InputError as exc:
        return OutputPreview(name, "blocked", [str(exc)])
    except Exception as exc:  # noqa: BLE001  # s3:// without credentials, a network error: the run fails too
        return OutputPreview(name, "blocked", [f"inputs cannot be resolved: {type(exc).__name__}: {exc}"])
    try:
        code = code_fingerprint(spec, name)
        key = memo_key(spec, name, digests)
    except TransformError as exc:
        return OutputPreview(name, "blocked", [str(exc)])
    pointer = backend.ledger.current(spec.lane, name) if backend is not None else None
    if pointer is None:
        return OutputPreview(name, "run", ["no certification yet"])
    certification = {"run_id": pointer.run_id, "attempt": pointer.attempt, "revoked": pointer.revoked}
    where = f"run {pointer.run_id} attempt {pointer.attempt}"
    if pointer.revoked:
        return OutputPreview(name, "run", [f"the certification of {where} was revoked ({pointer.revoked})"],
                             certification)
    if pointer.memo_key == key:
        assert backend is not None
        try:
            resolve(backend, spec.lane, name, verify_bytes=True)  # re-hashed: `lane plan` writes no cache
        except NotCertified as exc:
            reason = f"same inputs, spec and code, but the certified product cannot be reused: {exc}"
            return OutputPreview(name, "run", [reason], certification)
        return OutputPreview(name, "memoized", [f"same inputs, spec and code as the certification of {where}"],
                             certification)
    assert backend is not None
    return OutputPreview(name, "run", _changes(backend, spec, name, pointer, digests, code), certification)


def _changes(backend: Backend, spec: LaneSpec, name: str, pointer: CertPointer, digests: list[InputDigest],
             code: str) -> list[str]:
    """What differs from the certified attempt, read from its materialize receipt."""
    key = receipt_key(pointer.run_id, name, pointer.attempt, "materialize")
    try:
        receipt = parse_receipt(backend.store.get(key))
    except (NotFound, ValueError):
        return [f"the memo key differs from the certification's, whose materialize receipt {key} is unreadable"]
    if not isinstance(receipt, MaterializeReceipt):
        return [f"{key} is not a materialize receipt"]
    reasons = []
    if receipt.spec_digest != spec.output_digest(name):
        reasons.append("the output's spec changed (inputs, transform, contract or consumers)")
    if receipt.code_fingerprint != code:
        reasons.append(f"the code changed ({spec.outputs[name].transform or 'core version'})")
    reasons += _input_changes(receipt.inputs, digests)
    return reasons or ["the memo key differs (batchlane version or memoization rules changed)"]


def _short(sha: str) -> str:
    return sha[:12] + "…"


def _input_changes(before: list[InputDigest], now: list[InputDigest]) -> list[str]:
    old = {group.name: {f.uri: f for f in group.files} for group in before}
    new = {group.name: {f.uri: f for f in group.files} for group in now}
    reasons = []
    for name in sorted(set(old) | set(new)):
        if name not in old:
            reasons.append(f"new input {name}")
            continue
        if name not in new:
            reasons.append(f"input {name} was removed")
            continue
        for uri in sorted(set(old[name]) | set(new[name])):
            a, b = old[name].get(uri), new[name].get(uri)
            if a is None:
                reasons.append(f"input {name}: new file {uri}")
            elif b is None:
                reasons.append(f"input {name}: file {uri} is gone")
            elif (a.sha256, a.size, a.version) != (b.sha256, b.size, b.version):
                reasons.append(f"input {name} changed: {uri} (sha256 {_short(a.sha256)} -> {_short(b.sha256)})")
    return reasons
