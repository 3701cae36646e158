"""Certify a data product (one or more Parquet files) against its contract.

``check_files`` decides every rule from the data: it streams only the columns the
rules need, one row group at a time, cross-checks each file's footer against the
data it reads (a footer contradicting its data FAILs), and hashes every file on a
background thread while the scan runs. The outcome carries the
verdict, one RuleResult per rule (expected, observed, failing sample) and the
SHA-256/size/rows/schema of each file the verdict is about.

This module is the light public face: the engine (``batchlane.checking.engine``,
which imports pyarrow.compute and NumPy) loads on the first check, so importing
the gate or the `lane` CLI stays cheap for commands that check nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from batchlane.checking.change import Baseline
from batchlane.checking.errors import CheckError, ReferenceUnavailable
from batchlane.checking.filehash import FileSource, ObjectSource, hash_file
from batchlane.checking.outcome import CheckOutcome
from batchlane.checking.reuse import Partitioning, PriorEvidence
from batchlane.spec import Contract

if TYPE_CHECKING:
    import pyarrow as pa

    from batchlane.checking.references import ReferencedColumn

__all__ = ["Baseline", "CheckError", "CheckOutcome", "FileSource", "ObjectSource", "Partitioning", "PriorEvidence",
           "ReferenceUnavailable", "check_files", "hash_file"]


def check_files(
    paths: Sequence[FileSource],
    contract: Contract,
    *,
    uris: Sequence[str] | None = None,
    reference_values: Callable[[str, str], ReferencedColumn | pa.Array] | None = None,
    now: dt.datetime | None = None,
    max_memory: int | None = None,
    baseline: Baseline | None = None,
    partitions: Partitioning | None = None,
    _footer_hints: bool = True,
) -> CheckOutcome:
    """Check the files of one product against ``contract``.

    ``paths`` are local files, or ObjectSources read in place (an S3 object version by ranged GETs,
    ``batchlane.stores.s3_ranged``), hashed over their exact bytes all the same.
    ``uris`` name the files in the evidence (default: the paths). ``reference_values``
    resolves ``references`` rules: (output, column) -> the referenced values (a ``ReferencedColumn``, read in
    batches, or an Arrow array), raising
    ReferenceUnavailable when that product is not certified. ``now`` is the instant
    freshness (max_age) is judged at (default: the current time; naive means UTC). ``baseline`` is what
    change rules (``row_count.max_change``, ``not_null.max_fraction_change``) compare with: the certification
    in force (``batchlane.baseline``); without one they pass and say there was nothing to compare against.
    Rules of severity ``warn`` that fail are recorded but leave the verdict PASS.
    Footer statistics never decide a rule; ``_footer_hints=False`` also stops them from
    choosing algorithms (tests use it to prove hints never change a result). Raises
    CheckError for a file that cannot be read at all; every rule violation is a FAIL
    verdict, never an exception. ``max_memory`` (bytes) bounds what the check holds: key sets
    beyond it spill to disk, with the same evidence (``batchlane.checking.budget``). Inside AWS
    Lambda the function's memory (less headroom) is the default and the ceiling; elsewhere None
    means unbounded. ``partitions`` (one partition name per file, the expected SHA-256s and the evidence of the
    certification in force, ``batchlane.checking.reuse``) checks a partitioned product: the outcome then carries
    per-partition evidence, and unchanged partitions whose evidence holds are not read again
    (``batchlane.checking.partitionwise``), with the same rule results as a full read.
    """
    from batchlane.checking.budget import FLOOR, bounded, default_limit, describe
    from batchlane.checking.engine import run_check

    limit = default_limit()  # inside AWS Lambda: what the function's memory allows, never more
    if max_memory is not None:
        limit = max_memory if limit is None else min(max_memory, limit)
    if limit is not None and limit < FLOOR:
        raise CheckError(f"max_memory {describe(limit)} is below the checker's floor of {describe(FLOOR)}")
    with bounded(limit):
        return run_check(paths, contract, uris=uris, reference_values=reference_values, now=now,
                         footer_hints=_footer_hints, baseline=baseline, partitions=partitions)
