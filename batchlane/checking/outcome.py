"""What a check returns: verdict, per-rule evidence, and the digests of the files judged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from batchlane.receipts import FileDigest, RuleResult


@dataclass(frozen=True)
class CheckOutcome:
    verdict: Literal["PASS", "FAIL"]
    rules: list[RuleResult]
    rows: int
    files: list[FileDigest]      # SHA-256 + size + rows + Arrow schema of each checked file
    seconds: float

    def to_json(self) -> dict:
        return {
            "verdict": self.verdict,
            "rows": self.rows,
            "seconds": self.seconds,
            "files": [f.model_dump(mode="json", by_alias=True, exclude_none=True) for f in self.files],
            "rules": [rule.model_dump(mode="json") for rule in self.rules],
        }
