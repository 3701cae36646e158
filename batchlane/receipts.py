"""Receipts: the write-once evidence every step leaves, and how they chain.

Every receipt carries ``prev``: the digest of the receipt before it in the same
output's chain for the run (materialize -> check -> gate -> next attempt ...), so a
run's evidence verifies offline. A receipt's digest is SHA-256 over its canonical
JSON (sorted keys, no whitespace) — exactly the bytes that are stored.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Trigger = Literal["cli", "console", "eventbridge", "rerun", "api"]
Verdict = Literal["PASS", "FAIL"]
MaterializeStatus = Literal["succeeded", "failed", "memoized"]
OutputState = Literal["certified", "rejected", "failed", "memoized", "pending"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def canonical_json(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileDigest(_Model):
    """One file: where, how big, its SHA-256; for products also rows and Arrow schema."""

    uri: str
    size: int
    sha256: str
    rows: int | None = None
    schema_: dict[str, str] | None = Field(default=None, alias="schema")
    version: str | None = Field(default=None, description="S3 version id or ETag where known")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True)


class InputDigest(_Model):
    name: str
    pattern: str
    files: list[FileDigest]


class RuleResult(_Model):
    rule: str                      # type, not_null, unique, accepted_values, min, max, max_age, regex, references, row_count
    column: str | None = None      # None for table rules; "a,b" for composite keys
    passed: bool
    expected: Any
    observed: Any
    failing_count: int = 0
    failing_sample: list[Any] = Field(default_factory=list)
    detail: str | None = None

    @property
    def label(self) -> str:
        return f"{self.rule}({self.column})" if self.column else self.rule


class _Receipt(_Model):
    lane: str
    run_id: str
    output: str
    attempt: int = Field(ge=1)
    prev: str | None = None
    created_at: datetime = Field(default_factory=utcnow)

    def canonical(self) -> bytes:
        return canonical_json(self.model_dump(mode="json", by_alias=True))

    def digest(self) -> str:
        return sha256_bytes(self.canonical())


class MaterializeReceipt(_Receipt):
    kind: Literal["materialize"] = "materialize"
    job_id: str
    trigger: Trigger = "cli"
    status: MaterializeStatus
    inputs: list[InputDigest] = Field(default_factory=list)
    outputs: list[FileDigest] = Field(default_factory=list)
    code_fingerprint: str
    spec_digest: str
    memo_key: str
    memoized_from: str | None = Field(default=None, description="certification key reused when memoized")
    started_at: datetime
    finished_at: datetime
    error: str | None = None


class CheckReceipt(_Receipt):
    kind: Literal["check"] = "check"
    verdict: Verdict
    materialize_digest: str
    products: list[FileDigest]
    rules: list[RuleResult]
    rows: int | None = None
    seconds: float
    error: str | None = None

    @property
    def failing_rules(self) -> list[RuleResult]:
        return [rule for rule in self.rules if not rule.passed]


class GateReceipt(_Receipt):
    """The gate's decision. ``decision == 'certified'`` makes it a Certification."""

    kind: Literal["gate"] = "gate"
    decision: Literal["certified", "rejected"]
    check_digest: str
    materialize_digest: str
    proof: list[FileDigest] = Field(default_factory=list, description="the exact bytes certified")
    memo_key: str
    reason: str | None = None


Receipt = Annotated[MaterializeReceipt | CheckReceipt | GateReceipt, Field(discriminator="kind")]
_RECEIPT = TypeAdapter(Receipt)


class OutputClosure(_Model):
    state: OutputState
    attempts: int
    verdict: Verdict | None = None
    certified_attempt: int | None = None
    certification: str | None = Field(default=None, description="key of the certification receipt in force")
    head: str | None = Field(default=None, description="digest of the last receipt of this output in the run")
    failing_rules: list[str] = Field(default_factory=list)
    error: str | None = None


class RunManifest(_Model):
    kind: Literal["manifest"] = "manifest"
    lane: str
    run_id: str
    sequence: int = Field(ge=1, description="1 at first close, +1 at each re-close after a rerun")
    trigger: Trigger
    prev: str | None = None
    closed_at: datetime = Field(default_factory=utcnow)
    outputs: dict[str, OutputClosure]
    verdict: Verdict

    def canonical(self) -> bytes:
        return canonical_json(self.model_dump(mode="json", by_alias=True))

    def digest(self) -> str:
        return sha256_bytes(self.canonical())


def parse_receipt(data: bytes) -> MaterializeReceipt | CheckReceipt | GateReceipt:
    return _RECEIPT.validate_json(data)


def parse_manifest(data: bytes) -> RunManifest:
    return RunManifest.model_validate_json(data)


class LaneEvent(_Model):
    """What goes on the bus / the local event log. Detail carries what a consumer needs to verify."""

    type: Literal["DataProductCertified", "DataProductRejected", "RunClosed"]
    lane: str
    run_id: str
    output: str | None = None
    attempt: int | None = None
    time: datetime = Field(default_factory=utcnow)
    receipt: str | None = Field(default=None, description="key of the gate receipt or run manifest")
    receipt_digest: str | None = None
    proof: list[FileDigest] = Field(default_factory=list)
    verdict: Verdict | None = None
    failing_rules: list[str] = Field(default_factory=list)
    outputs: dict[str, OutputState] | None = None

    def event_id(self) -> str:
        """Stable id: re-publishing the same event yields the same id (consumers dedupe on it)."""
        return sha256_bytes(canonical_json([self.type, self.lane, self.run_id, self.output, self.attempt, self.receipt_digest]))[:32]


# Where receipts live in the object store; one layout for every backend.
def receipt_key(run_id: str, output: str, attempt: int, kind: str) -> str:
    return f"receipts/{run_id}/{output}/{attempt:04d}-{kind}.json"


def manifest_key(run_id: str, sequence: int) -> str:
    return f"receipts/{run_id}/manifest-{sequence:04d}.json"


def staging_prefix(run_id: str, output: str, attempt: int) -> str:
    return f"staging/{run_id}/{output}/{attempt:04d}/"


def product_key(uri: str) -> str:
    """Object key of a staged product from the URI a receipt holds (file:// or s3://)."""
    marker = "/staging/"
    if marker not in uri:
        raise ValueError(f"{uri} is not a staged product")
    return "staging/" + uri.split(marker, 1)[1]
