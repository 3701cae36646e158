"""What a check of a partitioned product is told: its partitions, and the evidence it may reuse.

Light on purpose (no pyarrow): the gate builds these before the engine loads. The engine side, which reads the
partitions and merges their evidence, is ``batchlane.checking.partitionwise``.

Evidence is reused only when all of these hold (otherwise the partition, or every partition, is read):

- it comes from the check of the certification in force for the output, which PASSed (``from_check`` refuses a
  FAIL, and the gate finds the check through the certification pointer, bound by digests);
- the contract's canonical form (rule options included) and the checker's evidence version are the same
  (``evidence_fingerprint``);
- the partition has the same name and its file the same SHA-256 (the one the caller expects, and then the one
  the checker computes while it checks: a mismatch discards all reuse and reads everything).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from batchlane import __version__
from batchlane.contract import Contract
from batchlane.receipts import FileDigest, PartitionCheck, PartitionEvidence, RuleResult, canonical_json

# Bump when what a RuleEvidence means changes: evidence of another version is never reused.
EVIDENCE_VERSION = 1


def evidence_fingerprint(contract: Contract) -> str:
    """SHA-256 over the contract's canonical form (rule options included) and the checker's version."""
    body = ["partition-evidence", EVIDENCE_VERSION, __version__, contract.model_dump(mode="json")]
    return hashlib.sha256(canonical_json(body)).hexdigest()


@dataclass(frozen=True)
class PriorEvidence:
    """The partition evidence of the check behind the certification in force (a PASS)."""

    source: str                                  # the certification (gate receipt key) it belongs to
    fingerprint: str
    partitions: Mapping[str, PartitionEvidence]  # by partition name
    clean_keys: frozenset[str]                   # unique keys ("a,b") that check found free of duplicates

    @classmethod
    def from_check(cls, source: str, verdict: str, rules: Sequence[RuleResult], products: Sequence[FileDigest],
                   evidence: Sequence[PartitionEvidence],
                   summary: PartitionCheck | None) -> tuple[PriorEvidence | None, str | None]:
        """The evidence of one check, or (None, why it cannot be reused)."""
        if verdict != "PASS":
            return None, f"the check of {source} did not pass ({verdict}): its evidence is never reused"
        if not evidence or summary is None:
            return None, f"the check of {source} recorded no partition evidence"
        by_name = {entry.name: entry for entry in evidence}
        if len(by_name) != len(evidence):
            return None, f"the partition evidence of {source} names a partition twice"
        proven = {(product.uri, product.sha256, product.size) for product in products}
        if any((entry.uri, entry.sha256, entry.size) not in proven for entry in evidence) \
                or len(proven) != len(evidence):
            return None, f"the partition evidence of {source} does not match the files it certified"
        verdicts: dict[str, bool] = {}
        for rule in rules:
            if rule.rule == "unique" and rule.column is not None:
                clean = rule.passed and rule.failing_count == 0 and rule.observed == 0
                verdicts[rule.column] = verdicts.get(rule.column, True) and clean
        clean_keys = frozenset(label for label, clean in verdicts.items() if clean)
        return cls(source=source, fingerprint=summary.fingerprint, partitions=by_name, clean_keys=clean_keys), None


@dataclass(frozen=True)
class Partitioning:
    """The partitions of the product being checked, one per file and in the files' order."""

    names: Sequence[str]
    # The SHA-256 the caller expects of each file (the recorded materialization): evidence is matched by it before
    # the checker's own hash is known, and that hash must agree afterwards. None: the file is read.
    expected_sha256: Sequence[str | None] | None = None
    prior: PriorEvidence | None = None
    no_prior: str | None = None                  # why there is no prior evidence (shown as the full-read reason)


__all__ = ["EVIDENCE_VERSION", "Partitioning", "PriorEvidence", "evidence_fingerprint"]
