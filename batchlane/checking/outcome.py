"""What a check returns: verdict, per-rule evidence, and the digests of the files judged."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from batchlane.receipts import FileDigest, PartitionCheck, PartitionEvidence, RuleResult


@dataclass(frozen=True)
class CheckOutcome:
    verdict: Literal["PASS", "FAIL"]
    rules: list[RuleResult]
    rows: int
    files: list[FileDigest]      # SHA-256 + size + rows + Arrow schema of each checked file
    seconds: float
    # A partitioned product (``partitions=`` given): per-partition evidence, and what was read or reused.
    partition_evidence: list[PartitionEvidence] = field(default_factory=list)
    partition_check: PartitionCheck | None = None

    @property
    def failing_rules(self) -> list[RuleResult]:
        """Blocking failures (severity error): what makes the verdict FAIL."""
        return [rule for rule in self.rules if rule.blocking]

    @property
    def warnings(self) -> list[RuleResult]:
        """Failures of severity warn: recorded and shown, never blocking."""
        return [rule for rule in self.rules if rule.warning]

    def to_json(self) -> dict:
        document: dict[str, object] = {
            "verdict": self.verdict,
            "rows": self.rows,
            "seconds": self.seconds,
            "files": [f.model_dump(mode="json", by_alias=True, exclude_none=True) for f in self.files],
            "rules": [rule.model_dump(mode="json") for rule in self.rules],
            "warnings": [rule.label for rule in self.warnings],
        }
        if self.partition_check is not None:
            document["partition_check"] = self.partition_check.model_dump(mode="json")
        return document
