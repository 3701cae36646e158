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
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Trigger = Literal["cli", "console", "eventbridge", "rerun", "api"]
Verdict = Literal["PASS", "FAIL"]
MaterializeStatus = Literal["succeeded", "failed", "memoized", "blocked"]
OutputState = Literal["certified", "rejected", "failed", "memoized", "pending", "blocked"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def canonical_json(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Model(BaseModel):
    # defer_build: a model's validator is built on first use, so a command that never touches a receipt kind
    # (most never see a RevokeReceipt or a MaterializeReport) does not pay for it at start-up.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class FileDigest(_Model):
    """One file: where, how big, its SHA-256; for products also rows and Arrow schema."""

    uri: str
    size: int
    sha256: str
    rows: int | None = None
    schema_: dict[str, str] | None = Field(default=None, alias="schema")
    version: str | None = Field(default=None, description="S3 version id or ETag where known")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True, defer_build=True)


class PinnedProduct(_Model):
    """A certified product version an attempt reads (a product input) or checks against (a reference):
    the certification in force when it was pinned, bound by its receipt digest; the files are its proof."""

    lane: str
    output: str
    run_id: str
    attempt: int
    certification: str = Field(description="key of the gate receipt (the certification) pinned")
    certification_digest: str

    @property
    def label(self) -> str:
        return f"{self.lane}/{self.output}@{self.run_id}#{self.attempt}"


class InputDigest(_Model):
    name: str
    pattern: str = Field(description="path, glob or s3:// URI as written; product:OUTPUT for a product input")
    files: list[FileDigest]
    product: PinnedProduct | None = Field(default=None, description="the certification a product input read")


def _is_none(value: Any) -> bool:
    return value is None


class RuleResult(_Model):
    rule: str                      # type, not_null, unique, accepted_values, min, max, max_age, regex, references,
    #                                row_count, row_count_change, null_fraction_change, expect, extra_columns, ...
    column: str | None = None      # None for table rules; "a,b" for composite keys; the expectation's name for expect
    passed: bool
    expected: Any
    observed: Any
    failing_count: int = 0
    failing_sample: list[Any] = Field(default_factory=list)
    detail: str | None = None
    # Written only when they differ from the defaults, so a receipt of a contract without them is unchanged.
    severity: Literal["error", "warn"] = Field(default="error", exclude_if=lambda value: value == "error",
                                               description="warn: a failure is recorded but does not block")
    tolerance: dict[str, int | float] | None = Field(default=None, exclude_if=_is_none,
                                                      description="max_failing / max_failing_fraction allowed")
    judged: int | None = Field(default=None, exclude_if=_is_none,
                               description="rows (or non-null values) the rule judged: failing_fraction's denominator")
    failing_fraction: float | None = Field(default=None, exclude_if=_is_none)

    @property
    def label(self) -> str:
        return f"{self.rule}({self.column})" if self.column else self.rule

    @property
    def blocking(self) -> bool:
        """A failure that blocks certification (severity error)."""
        return not self.passed and self.severity == "error"

    @property
    def warning(self) -> bool:
        """A failure recorded with severity warn: shown, evented, not blocking."""
        return not self.passed and self.severity == "warn"


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


def _empty(value: Any) -> bool:
    return not value


class PartitionPlan(_Model):
    """One partition of a partitioned output (``partition_by``), as pinned when the attempt began: its input
    file, its own memo key, and the certified (or earlier-built) file it reuses, if any."""

    name: str = Field(description="the partition file's path relative to the spec, or its s3 key")
    index: int = Field(ge=0, description="its file is part-{index:04d}.parquet")
    source: FileDigest
    memo_key: str
    reuse: FileDigest | None = Field(default=None, description="the file reused instead of building it")
    reuse_from: str | None = Field(default=None, description="the receipt whose file is reused")


class PartitionResult(_Model):
    """How one partition of an attempt ended (trusted: files hashed by the recorder)."""

    name: str
    index: int = Field(ge=0)
    memo_key: str
    status: Literal["built", "reused", "failed"]
    file: FileDigest | None = None
    reused_from: str | None = None
    error: str | None = None


class ReportedPartition(_Model):
    """A partition as the (untrusted) job reports it."""

    name: str
    index: int = Field(ge=0)
    status: Literal["built", "failed"]
    file: str | None = Field(default=None, pattern=r"^part-[0-9]{4,6}\.parquet$")
    error: str | None = None


class BeginReceipt(_Receipt):
    """Trusted: an attempt begins. Pins the inputs (and code) the job must read, before any user code runs."""

    kind: Literal["begin"] = "begin"
    trigger: Trigger = "cli"
    inputs: list[InputDigest] = Field(default_factory=list)
    code_fingerprint: str
    spec_digest: str
    memo_key: str
    memo_note: str | None = Field(default=None, description="why a certification with this memo key was not reused")
    params: dict[str, str] = Field(default_factory=dict, description="run parameters the transform receives")
    partitions: list[PartitionPlan] = Field(default_factory=list, exclude_if=_empty,
                                            description="partitioned output: each partition, built or reused")


class ReportedFile(_Model):
    """A product file as the (untrusted) job reports it; trusted code hashes it before recording."""

    name: str = Field(pattern=r"^part-[0-9]{4,6}\.parquet$")
    rows: int | None = None
    schema_: dict[str, str] | None = Field(default=None, alias="schema")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True, defer_build=True)


class MaterializeReport(_Model):
    """What the materializer job writes next to its product files (``staging/RUN/OUTPUT/NNNN/report.json``).

    The job runs user code over untrusted input, so nothing here is trusted: the recorder re-hashes every
    file, compares the inputs with the ones pinned when the attempt began, and only then writes a receipt.
    """

    kind: Literal["report"] = "report"
    lane: str
    run_id: str
    output: str
    attempt: int = Field(ge=1)
    job_id: str
    status: Literal["succeeded", "failed"]
    files: list[ReportedFile] = Field(default_factory=list)
    inputs: list[InputDigest] = Field(default_factory=list)
    code_fingerprint: str = ""
    started_at: datetime
    finished_at: datetime
    error: str | None = None
    diagnostics: Literal["diagnostics.txt"] | None = Field(
        default=None, description="the job's captured traceback and output, next to the report")
    partitions: list[ReportedPartition] = Field(default_factory=list, exclude_if=_empty,
                                                description="partitioned output: the partitions this job built")

    def canonical(self) -> bytes:
        return canonical_json(self.model_dump(mode="json", by_alias=True))


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
    memoized_digest: str | None = Field(default=None, description="digest of the certification reused")
    diagnostics: str | None = Field(default=None, description="key of the attempt's traceback and captured output")
    diagnostics_sha256: str | None = None
    blocked_by: list[str] = Field(default_factory=list, description="upstream outputs of the run that were not "
                                  "certified (status blocked: nothing was materialized)")
    partitions: list[PartitionResult] = Field(default_factory=list, exclude_if=_empty,
                                              description="partitioned output: every partition, ordered by name")
    partitions_root: str | None = Field(default=None, exclude_if=_is_none,
                                        description="Merkle root over (name, sha256) of every partition's file")
    started_at: datetime
    finished_at: datetime
    error: str | None = None


class PinnedReference(_Model):
    """The version of a referenced product a ``references`` rule was checked against."""

    output: str
    pinned: PinnedProduct
    files: list[FileDigest]


class KeyRange(_Model):
    """The smallest and largest non-null value of one key column in one partition, computed from its data.
    Two partitions can share a key only if, for every key column, their ranges overlap (same ``type``)."""

    type: str = Field(description="the column's value type as the checker compares it (string, int64, ...)")
    min: Any
    max: Any


class RuleEvidence(_Model):
    """One rule's mergeable summary over one partition (``batchlane.checking.partitionwise``)."""

    key: str = Field(description="the rule's identity: a digest of its kind, column(s) and the settings its "
                     "evidence depends on")
    rule: str
    column: str | None = None
    judged: int | None = Field(default=None, description="rows or non-null values judged in this partition")
    failing: int = Field(default=0, exclude_if=lambda value: value == 0)
    examples: list[Any] = Field(default_factory=list, exclude_if=_empty, description="failing values, or row "
                                "numbers within the partition, in order of appearance")
    state: dict[str, Any] = Field(default_factory=dict, exclude_if=_empty,
                                  description="the rule's other mergeable values (extremes, NaN count, newest value)")
    key_ranges: list[KeyRange | None] | None = Field(default=None, exclude_if=_is_none,
                                                     description="unique: per key column (null: no usable range)")
    broken: str | None = Field(default=None, exclude_if=_is_none,
                               description="why the rule could not evaluate this partition's data")


class PartitionEvidence(_Model):
    """What the checker found in one partition file: its bytes as the checker hashed them, its rows, and per rule a
    summary that merges with the other partitions' (so an unchanged partition need not be read again)."""

    name: str
    uri: str
    sha256: str
    size: int
    rows: int
    read: bool = Field(description="read by this check (false: its evidence was reused, its bytes re-hashed)")
    rules: list[RuleEvidence] = Field(default_factory=list)


class PartitionCheck(_Model):
    """How a partitioned product was checked: which partitions were read, which evidence was reused, and why a
    full read happened when it did."""

    fingerprint: str = Field(description="contract (canonical form, rule options) and checker version the "
                             "evidence depends on; evidence is reused only under the same fingerprint")
    reused_from: str | None = Field(default=None, description="the certification (gate receipt key) whose check's "
                                    "partition evidence was reused")
    read: list[str] = Field(default_factory=list, description="partitions whose data this check read")
    keys_only: list[str] = Field(default_factory=list, description="of those, partitions read only for key columns "
                                 "(their ranges overlap a new partition's)")
    reused: list[str] = Field(default_factory=list, description="partitions not read: evidence reused, bytes re-hashed")
    rules_reused: list[str] = Field(default_factory=list, description="rules whose evidence was reused")
    full_read: list[str] = Field(default_factory=list, description="why rules or partitions were read in full")


class CheckReceipt(_Receipt):
    kind: Literal["check"] = "check"
    verdict: Verdict
    materialize_digest: str
    products: list[FileDigest]
    rules: list[RuleResult]
    references: list[PinnedReference] = Field(default_factory=list,
                                              description="referenced product versions the check read")
    rows: int | None = None
    seconds: float
    error: str | None = None
    partition_evidence: list[PartitionEvidence] = Field(
        default_factory=list, exclude_if=_empty,
        description="partitioned product: per partition, the checker's hash, rows and mergeable rule summaries")
    partition_check: PartitionCheck | None = Field(default=None, exclude_if=_is_none,
                                                   description="partitioned product: what was read and reused")

    @property
    def failing_rules(self) -> list[RuleResult]:
        """The blocking failures (severity error): what made the verdict FAIL."""
        return [rule for rule in self.rules if rule.blocking]

    @property
    def warnings(self) -> list[RuleResult]:
        """Failures of severity warn: recorded and shown, not blocking."""
        return [rule for rule in self.rules if rule.warning]


class GateReceipt(_Receipt):
    """The gate's decision. ``decision == 'certified'`` makes it a Certification."""

    kind: Literal["gate"] = "gate"
    decision: Literal["certified", "rejected"]
    check_digest: str
    materialize_digest: str
    proof: list[FileDigest] = Field(default_factory=list, description="the exact bytes certified")
    memo_key: str
    reason: str | None = None


class RevokeReceipt(_Model):
    """A certification withdrawn: who/why/when, bound to the exact certification it revokes. Write-once."""

    kind: Literal["revoke"] = "revoke"
    lane: str
    output: str
    run_id: str
    attempt: int
    certification: str = Field(description="key of the gate receipt revoked")
    certification_digest: str
    order: str = Field(description="the revoked certification's order")
    reason: str = Field(min_length=1)
    revoked_at: datetime = Field(default_factory=utcnow)

    def canonical(self) -> bytes:
        return canonical_json(self.model_dump(mode="json", by_alias=True))

    def digest(self) -> str:
        return sha256_bytes(self.canonical())


Receipt = Annotated[BeginReceipt | MaterializeReceipt | CheckReceipt | GateReceipt, Field(discriminator="kind")]
@cache
def _receipt_adapter() -> TypeAdapter:
    return TypeAdapter(Receipt)


class OutputClosure(_Model):
    state: OutputState
    attempts: int
    verdict: Verdict | None = None
    certified_attempt: int | None = None
    certification: str | None = Field(default=None, description="key of the certification receipt in force")
    head: str | None = Field(default=None, description="digest of the last receipt of this output in the run")
    failing_rules: list[str] = Field(default_factory=list)
    error: str | None = None
    warnings: list[str] = Field(default_factory=list, exclude_if=lambda value: not value,
                                description="rules of severity warn that failed in the certified attempt")


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


AnyReceipt = BeginReceipt | MaterializeReceipt | CheckReceipt | GateReceipt
KIND_ORDER = {"begin": 0, "materialize": 1, "check": 2, "gate": 3, "manifest": 4}


def parse_receipt(data: bytes) -> AnyReceipt:
    return _receipt_adapter().validate_json(data)


def parse_manifest(data: bytes) -> RunManifest:
    return RunManifest.model_validate_json(data)


class LaneEvent(_Model):
    """What goes on the bus / the local event log. Detail carries what a consumer needs to verify."""

    type: Literal["DataProductCertified", "DataProductRejected", "DataProductRevoked", "DataProductBlocked", "RunClosed"]
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
    consumers: list[str] = Field(default_factory=list, description="consumers the spec declares for this output")
    order: str | None = Field(default=None, description="sortable certification order: newer versions sort higher")
    reason: str | None = Field(default=None, description="why: revocation reason, rejection or blocking cause")
    warnings: list[str] = Field(default_factory=list, exclude_if=lambda value: not value,
                                description="rules of severity warn that failed (the product is certified anyway)")

    def envelope(self) -> dict[str, Any]:
        """The one wire shape, on every bus: the stable id (consumers dedupe on it) plus the event."""
        return {"id": self.event_id(), **self.model_dump(mode="json")}

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


def report_key(run_id: str, output: str, attempt: int) -> str:
    return staging_prefix(run_id, output, attempt) + "report.json"


def diagnostics_key(run_id: str, output: str, attempt: int) -> str:
    return f"receipts/{run_id}/{output}/{attempt:04d}-diagnostics.txt"


def revoke_key(lane: str, output: str, certification_run: str, certification_attempt: int) -> str:
    """One revocation per certification (write-once: a second revoke cannot rewrite the first's reason)."""
    return f"receipts/_revocations/{lane}/{output}/{certification_run}-{certification_attempt:04d}.json"


def product_key(uri: str) -> str:
    """Object key of a staged product from the URI a receipt holds (file:// or s3://)."""
    # staging/RUN/OUTPUT/NNNN/FILE: exactly the last five segments. The store root itself may contain
    # "staging" (LANE_HOME=/data/staging/lane), and so may a run id, so no search for a marker.
    parts = uri.split("/")
    if len(parts) < 6 or parts[-5] != "staging":
        raise ValueError(f"{uri} is not a staged product")
    return "/".join(parts[-5:])
