"""Partitioned, incremental products (``partition_by: INPUT``).

Each file matched by the output's ``partition_by`` input is one partition, named by its path relative to the
spec's folder (or its s3 key) and ordered by name. Planning (trusted, when the attempt begins):

- a partition's memo key is the output's memo key without the partition input (spec, code, parameters, the
  other inputs) plus the partition file's digest; the product's memo key is the hash of its partitions' keys,
  so an unchanged set of partitions is memoized as a whole by the ordinary path (``certification.memo_hit``);
- a partition whose key matches a partition of the certification in force, or one built by an earlier attempt
  of this output in this run (``rerun --failed``), is reused by reference after its bytes are re-hashed; every
  other partition is built. Each has an index unique among the files the attempt lists: its file is
  ``part-{index:04d}.parquet`` in the staging prefix of the attempt that built it.

The job (untrusted) builds only the partitions to build: the transform gets that partition's frame as the
partition input and every other input whole. A partition that fails does not stop the others. With
``--partition-index N`` (or ``AWS_BATCH_JOB_ARRAY_INDEX``) the job builds only the Nth partition to build and
writes ``report-{index:04d}.json``, so an array job can build one partition per child. On AWS the gate's Begin
sizes that array (``batch_array_size``: 2 to 10,000 children; 0 or 1 partition to build runs as a plain job) and
fails an attempt with more partitions to build than an array holds (``check_build_limit``).

The recorder (trusted) hashes every built file itself, checks every reused one is still there (its bytes were
re-hashed when the attempt began, and the check hashes every file of the product: a reused file changed in
between fails the check, and the next attempt rebuilds it), and records each partition
(built, reused or failed). Any failed partition fails the attempt, but the partitions built stay recorded and a
rerun reuses them. A succeeded attempt lists every partition file (built and reused) as its outputs, ordered by
partition name, with a Merkle root over (name, sha256) of all of them.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from batchlane.receipts import (
    BeginReceipt,
    FileDigest,
    InputDigest,
    MaterializeReceipt,
    MaterializeReport,
    PartitionPlan,
    PartitionResult,
    ReportedFile,
    ReportedPartition,
    canonical_json,
    product_key,
    receipt_key,
    report_key,
    staging_prefix,
    utcnow,
)
from batchlane.spec import LaneSpec
from batchlane.stores.base import AlreadyExists, Backend, NotFound, ObjectStore, StoreError

if TYPE_CHECKING:
    import pandas as pd

ARRAY_INDEX_VARIABLE = "AWS_BATCH_JOB_ARRAY_INDEX"
# An AWS Batch array job holds 2 to 10,000 child jobs ("Array jobs", AWS Batch User Guide); one child per partition.
BATCH_ARRAY_MIN, BATCH_ARRAY_MAX = 2, 10_000
_PART_FILE = re.compile(r"^part-([0-9]{4,6})\.parquet$")
_SHOWN_FAILURES = 5


class PartitionIndexError(ValueError):
    """``--partition-index`` names no partition to build (bad usage: the job writes nothing)."""


class PartitionsRefused(ValueError):
    """The attempt's partitions cannot be recorded at all; the message is the attempt's error."""


class TooManyPartitions(ValueError):
    """More partitions to build than one attempt may build (AWS: an array job's 10,000 children); the attempt
    fails when it begins, before any job starts."""


def part_file(index: int) -> str:
    return f"part-{index:04d}.parquet"


def partition_report_key(run_id: str, output: str, attempt: int, index: int) -> str:
    """Where a job building one partition (``--partition-index``) writes its report."""
    return staging_prefix(run_id, output, attempt) + f"report-{index:04d}.json"


# ----------------------------------------------------------------------------- keys and digests


def partition_name(spec: LaneSpec, uri: str) -> str:
    """A partition's name: its file's path relative to the spec's folder (absolute if outside), or its s3 key."""
    if uri.startswith("s3://"):
        return uri.removeprefix("s3://").partition("/")[2]
    from batchlane.inputs import _local_path

    path = _local_path(uri)
    try:
        return path.relative_to(spec.base_dir.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def partition_memo_key(base_key: str, source: FileDigest) -> str:
    """The output's key without the partition input, plus this partition file's bytes (or S3 version)."""
    body = ["partition", base_key, source.size, source.sha256, source.version]
    return hashlib.sha256(canonical_json(body)).hexdigest()


def product_memo_key(partitions: list[PartitionPlan]) -> str:
    """The whole product's memo key: its set of partition keys (names and order do not matter)."""
    return hashlib.sha256(canonical_json(["partitioned", sorted(p.memo_key for p in partitions)])).hexdigest()


def merkle_root(entries: list[tuple[str, str]]) -> str:
    """Merkle root over (partition name, file SHA-256), leaves ordered by name; one changed byte of any
    partition, a renamed, added or removed partition, all change the root."""
    level = [hashlib.sha256(b"\x00" + canonical_json([name, sha])).digest() for name, sha in sorted(entries)]
    if not level:
        return hashlib.sha256(b"").hexdigest()
    while len(level) > 1:
        paired = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        level = paired + ([level[-1]] if len(level) % 2 else [])
    return level[0].hex()


# ----------------------------------------------------------------------------- planning (trusted, at begin)


def plan_partitions(backend: Backend, spec: LaneSpec, run_id: str, output: str, attempt: int,
                    digests: list[InputDigest], base_key: str, *, reuse: bool = True) -> list[PartitionPlan]:
    """The attempt's partitions, ordered by name: which to reuse (bytes re-hashed now) and which to build.

    ``base_key`` is the output's memo key over everything but the partition input. ``reuse=False`` (``--force``)
    builds every partition."""
    partition_input = spec.outputs[output].partition_by
    group = next(item for item in digests if item.name == partition_input)
    sources = sorted(((partition_name(spec, file.uri), file) for file in group.files), key=lambda item: item[0])
    candidates = _reusable(backend, spec, run_id, output, attempt) if reuse else {}
    matches: list[tuple[str, int, FileDigest, str]] = []
    for name, source in sources:
        found = candidates.get(partition_memo_key(base_key, source))
        match = _PART_FILE.match(found[0].uri.rsplit("/", 1)[-1]) if found is not None else None
        if found is not None and match:
            matches.append((name, int(match.group(1)), *found))
    chosen: dict[str, tuple[int, FileDigest, str]] = {}
    taken: set[int] = set()
    for (name, index, file, origin), unchanged in zip(matches, _all_unchanged(backend, [m[2] for m in matches]),
                                                      strict=True):
        # file names stay unique within the product (a catalog copies them into one folder)
        if index not in taken and unchanged:
            chosen[name] = (index, file, origin)
            taken.add(index)
    free = (index for index in range(len(sources) + len(taken)) if index not in taken)
    plans = []
    for name, source in sources:
        key = partition_memo_key(base_key, source)
        if name in chosen:
            index, file, origin = chosen[name]
            plans.append(PartitionPlan(name=name, index=index, source=source, memo_key=key, reuse=file,
                                       reuse_from=origin))
        else:
            plans.append(PartitionPlan(name=name, index=next(free), source=source, memo_key=key))
    return plans


def _reusable(backend: Backend, spec: LaneSpec, run_id: str, output: str,
              attempt: int) -> dict[str, tuple[FileDigest, str]]:
    """Partition files by memo key: the certification in force first, then earlier attempts of this run."""
    from batchlane.evidence import EvidenceError, load_receipt

    found: dict[str, tuple[FileDigest, str]] = {}
    sources: list[tuple[str, int]] = []
    pointer = backend.ledger.current(spec.lane, output)
    if pointer is not None and pointer.revoked is None:
        sources.append((pointer.run_id, pointer.attempt))
    sources += [(run_id, earlier) for earlier in range(attempt - 1, 0, -1)]
    for source_run, source_attempt in sources:
        try:
            receipt = load_receipt(backend, source_run, output, source_attempt, "materialize")
        except (EvidenceError, StoreError, ValueError):
            continue  # unreadable evidence is never reused: those partitions are built
        if not isinstance(receipt, MaterializeReceipt):
            continue
        origin = receipt_key(source_run, output, source_attempt, "materialize")
        for partition in receipt.partitions:
            if partition.status != "failed" and partition.file is not None:
                found.setdefault(partition.memo_key, (partition.file, origin))
    return found


def _all_unchanged(backend: Backend, files: list[FileDigest]) -> list[bool]:
    """``_unchanged`` of each file, several at once (local re-hashes release the GIL; S3 HEADs wait on I/O)."""
    if len(files) < 2:
        return [_unchanged(backend, file) for file in files]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(len(files), 8)) as pool:
        return list(pool.map(lambda file: _unchanged(backend, file), files))


def _unchanged(backend: Backend, file: FileDigest) -> bool:
    """The reused file still holds its recorded bytes (re-hashed locally; one HEAD of a pinned S3 version)."""
    try:
        return backend.store.holds(product_key(file.uri), file)
    except (StoreError, ValueError):
        return False


# ----------------------------------------------------------------------------- the job (untrusted)


def to_build(begun: BeginReceipt) -> list[PartitionPlan]:
    """The partitions the job builds, in name order: ``--partition-index N`` picks the Nth of these."""
    return [plan for plan in begun.partitions if plan.reuse is None]


def build_count(backend: Backend, run_id: str, output: str, attempt: int) -> int:
    """How many partitions the attempt builds (an array job's size; 0 when it only reuses). A plain job (no
    index) builds them all, so an orchestrator may use one for a count below 2 (Batch arrays start at 2)."""
    from batchlane.evidence import load_receipt

    begun = load_receipt(backend, run_id, output, attempt, "begin")
    return len(to_build(begun)) if isinstance(begun, BeginReceipt) else 0


def check_build_limit(partitions: list[PartitionPlan], limit: int | None) -> None:
    """Refuse an attempt that would build more than ``limit`` partitions (None: no limit, the local runner)."""
    count = sum(1 for plan in partitions if plan.reuse is None)
    if limit is not None and count > limit:
        raise TooManyPartitions(
            f"{count:,} partitions to build exceed the {limit:,} one attempt may build (an AWS Batch array job "
            f"runs at most {BATCH_ARRAY_MAX:,} child jobs, one per partition): partition by fewer, larger files")


def batch_array_size(partitions_to_build: int | None) -> int:
    """How an attempt's job is submitted on AWS: an array job of this size (child N builds the Nth partition to
    build), or 0 for a plain job that builds what there is (an output that is not partitioned, or 0 or 1
    partition to build: a Batch array holds at least 2 children). Begin refuses more than BATCH_ARRAY_MAX."""
    if partitions_to_build is None or partitions_to_build < BATCH_ARRAY_MIN:
        return 0
    if partitions_to_build > BATCH_ARRAY_MAX:
        raise TooManyPartitions(f"{partitions_to_build:,} partitions to build exceed an AWS Batch array job's "
                                f"{BATCH_ARRAY_MAX:,} child jobs")
    return partitions_to_build


def array_timeout_seconds(array_size: int, single_job_seconds: int, job_seconds: int, slots: int) -> int:
    """How long to wait for an array job of ``array_size`` children when one job gets ``single_job_seconds``
    (RUNNABLE, start, its own timeout): Batch's timeout counts per child, and at most ``slots`` children run at
    once (the compute environment's vCPUs over a job's), so the children run in ceil(size / slots) rounds; each
    round after the first adds one job timeout. A plain job (size 0 or 1) keeps ``single_job_seconds``."""
    if slots < 1:
        raise ValueError(f"job slots must be 1 or more, got {slots}")
    rounds = max(1, -(-array_size // slots))
    return single_job_seconds + (rounds - 1) * job_seconds


@dataclass
class _Built:
    files: list[ReportedFile] = field(default_factory=list)
    partitions: list[ReportedPartition] = field(default_factory=list)
    read: list[FileDigest] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)


def materialize_partitions(store: ObjectStore, spec: LaneSpec, run_id: str, output: str, attempt: int, *,
                           job_id: str, only: int | None = None) -> MaterializeReport:
    """Build the attempt's partitions to build (or only the ``only``-th of them); write their files and the
    report (``report.json``, or ``report-{index:04d}.json`` for one partition)."""
    from batchlane.diagnostics import document
    from batchlane.inputs import InputError, read_pinned
    from batchlane.materialize import MaterializeError, _begin_receipt
    from batchlane.transforms import TransformError, code_fingerprint

    started = utcnow()
    built = _Built()
    error, fingerprint_ = None, ""
    inputs: list[InputDigest] = []
    target = report_key(run_id, output, attempt)
    log: dict[str, str] = {}
    workdir = Path(tempfile.mkdtemp(prefix="lane-partitions-"))
    try:
        begun = _begin_receipt(store, run_id, output, attempt)
        partition_input = spec.outputs[output].partition_by
        if not begun.partitions or partition_input is None or begun.spec_digest != spec.output_digest(output):
            raise MaterializeError("the output's partitioning changed after the attempt began (spec digest differs)")
        fingerprint_ = code_fingerprint(spec, output)
        if fingerprint_ != begun.code_fingerprint:
            raise MaterializeError("the lane's code changed after the attempt began (code fingerprint differs)")
        plans = to_build(begun)
        if only is not None:
            if not 0 <= only < len(plans):
                raise PartitionIndexError(f"partition index {only} is out of range: attempt {attempt} of {output} "
                                          f"builds {len(plans)} partition(s), indexed from 0")
            plans = [plans[only]]
            target = partition_report_key(run_id, output, attempt, plans[0].index)
        others = [group for group in begun.inputs if group.name != partition_input]
        frames, inputs = read_pinned([group for group in others if group.product is None], workdir)
        products = [group for group in others if group.product is not None]
        if products:
            from batchlane.products import read_product_inputs

            product_frames, read = read_product_inputs(store, products, workdir)
            frames, inputs = {**frames, **product_frames}, inputs + read
        pattern = next(group.pattern for group in begun.inputs if group.name == partition_input)
        for plan in plans:
            _build_one(store, spec, begun, plan, frames, partition_input, pattern, workdir, built)
        inputs.append(InputDigest(name=partition_input, pattern=pattern, files=built.read))
    except PartitionIndexError:
        raise
    except (InputError, TransformError, MaterializeError) as exc:
        error = str(exc)
    except Exception as exc:  # fail closed: any crash becomes a failed report naming the cause
        error = f"{type(exc).__name__}: {exc}"
        built.tracebacks.append("".join(traceback.format_exception(exc)).rstrip())
    finally:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    failed = [item for item in built.partitions if item.status == "failed"]
    if error is None and failed:
        error = failure_summary([(item.name, item.error or "") for item in failed])
    diagnostics: Literal["diagnostics.txt"] | None = None
    log["output"] = "\n".join(built.outputs)
    if only is None and (log["output"] or built.tracebacks):
        diagnostics = "diagnostics.txt"
        try:
            store.put_once(staging_prefix(run_id, output, attempt) + diagnostics,
                           document(log["output"], "\n\n".join(built.tracebacks) or None).encode())
        except AlreadyExists:
            pass
    report = MaterializeReport(
        lane=spec.lane, run_id=run_id, output=output, attempt=attempt, job_id=job_id,
        status="failed" if error else "succeeded", files=built.files, inputs=inputs, code_fingerprint=fingerprint_,
        started_at=started, finished_at=utcnow(), error=error, diagnostics=diagnostics, partitions=built.partitions,
    )
    try:
        store.put_once(target, report.canonical())
    except AlreadyExists:  # a duplicate delivery of the same job: the first report stands
        return MaterializeReport.model_validate_json(store.get(target))
    return report


def _build_one(store: ObjectStore, spec: LaneSpec, begun: BeginReceipt, plan: PartitionPlan,
               frames: dict[str, pd.DataFrame], partition_input: str, pattern: str, workdir: Path,
               built: _Built) -> None:
    """One partition: read its pinned file, run the transform, write its part file. Its failure is recorded
    in its report entry and does not stop the others."""
    import pyarrow as pa

    from batchlane.inputs import InputError, read_pinned
    from batchlane.materialize import MaterializeError, _run_transform, _write_product
    from batchlane.transforms import TransformError

    log: dict[str, str] = {}
    try:
        group = InputDigest(name=partition_input, pattern=pattern, files=[plan.source])
        partition_frames, read = read_pinned([group], workdir)
        built.read += read[0].files
        ordered = {group.name: frames[group.name] if group.name != partition_input else partition_frames[group.name]
                   for group in begun.inputs}
        frame = _run_transform(spec, begun.output, ordered, log, begun.params)
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise MaterializeError(f"result cannot be written as Parquet: {exc}") from exc
        key = staging_prefix(begun.run_id, begun.output, begun.attempt) + part_file(plan.index)
        written = _write_product(store, table, key, workdir)
        built.files.append(written)
        built.partitions.append(ReportedPartition(name=plan.name, index=plan.index, status="built",
                                                  file=written.name))
    except (InputError, TransformError, MaterializeError) as exc:
        built.partitions.append(ReportedPartition(name=plan.name, index=plan.index, status="failed", error=str(exc)))
    except Exception as exc:  # fail closed, per partition
        built.partitions.append(ReportedPartition(name=plan.name, index=plan.index, status="failed",
                                                  error=f"{type(exc).__name__}: {exc}"))
        log.setdefault("traceback", "".join(traceback.format_exception(exc)).rstrip())
    finally:
        if log.get("output"):
            built.outputs.append(f"-- partition {plan.name}\n{log['output'].rstrip()}")
        if log.get("traceback"):
            built.tracebacks.append(f"-- partition {plan.name}\n{log['traceback']}")


def failure_summary(failed: list[tuple[str, str]]) -> str:
    shown = "; ".join(f"{name}: {error}" for name, error in failed[:_SHOWN_FAILURES])
    more = f"; and {len(failed) - _SHOWN_FAILURES} more" if len(failed) > _SHOWN_FAILURES else ""
    return f"{len(failed)} partition(s) failed: {shown}{more}"


# ----------------------------------------------------------------------------- recording (trusted)


@dataclass
class RecordedPartitions:
    report: MaterializeReport | None
    partitions: list[PartitionResult]
    outputs: list[FileDigest]
    root: str | None
    error: str | None


def _load_report(backend: Backend, key: str, begun: BeginReceipt) -> MaterializeReport | None:
    try:
        data = backend.store.get(key)
    except NotFound:
        return None
    try:
        report = MaterializeReport.model_validate_json(data)
    except ValueError as exc:
        raise PartitionsRefused(f"the job's report {key} is not valid: {str(exc).splitlines()[0]}") from None
    if (report.lane, report.run_id, report.output, report.attempt) != (begun.lane, begun.run_id, begun.output,
                                                                       begun.attempt):
        raise PartitionsRefused(f"the job's report {key} names another lane, run, output or attempt")
    return report


def _input_key(group: InputDigest) -> set[tuple[Any, ...]]:
    # a product input is pinned by its certified SHA-256; an S3 file input by its version
    remote = group.product is None
    return {(f.uri, f.size, f.version if remote and f.uri.startswith("s3://") else f.sha256) for f in group.files}


def _check_inputs(begun: BeginReceipt, partition_input: str, reports: list[MaterializeReport]) -> None:
    pinned = {group.name: _input_key(group) for group in begun.inputs if group.name != partition_input}
    sources = {(p.source.uri, p.source.size, p.source.version if p.source.uri.startswith("s3://") else p.source.sha256)
               for p in to_build(begun)}
    for report in reports:
        read = {group.name: _input_key(group) for group in report.inputs if group.name != partition_input}
        for name in sorted(set(pinned) | set(read)):
            if pinned.get(name) != read.get(name):
                raise PartitionsRefused(f"input {name!r}: the job read other bytes than the attempt pinned when it "
                                        "began")
        for group in report.inputs:
            if group.name == partition_input and not _input_key(group) <= sources:
                raise PartitionsRefused(f"input {partition_input!r}: the job read other partition files than the "
                                        "attempt pinned when it began")


def record_partitions(backend: Backend, begun: BeginReceipt, partition_input: str, *, job_id: str,
                      job_error: str | None) -> RecordedPartitions:
    """Record every partition of the attempt from the job's report(s): hash built files, find reused ones.

    Raises PartitionsRefused when nothing can be recorded (no report, a report of another attempt, unreported
    files in the staging prefix, other code or inputs than pinned)."""
    prefix = staging_prefix(begun.run_id, begun.output, begun.attempt)
    building = {plan.index: plan for plan in to_build(begun)}
    whole = _load_report(backend, report_key(begun.run_id, begun.output, begun.attempt), begun)
    reports = [whole] if whole is not None else [
        report for index in sorted(building)
        if (report := _load_report(backend, partition_report_key(begun.run_id, begun.output, begun.attempt, index),
                                   begun)) is not None]
    if not reports:
        raise PartitionsRefused(f"job {job_id} ended without a report: {job_error or 'it did not finish'}")
    for report in reports:
        if report.code_fingerprint != begun.code_fingerprint:
            raise PartitionsRefused(report.error if report.status == "failed" and report.error else
                                    "the job ran other code than the attempt fingerprinted when it began")
        if report.status == "failed" and not report.partitions:
            raise PartitionsRefused(report.error or "the job reported a failure without a reason")
    _check_inputs(begun, partition_input, reports)
    from batchlane.products import revoked_since_pinned

    revoked = revoked_since_pinned(backend, begun.inputs)
    if revoked:
        raise PartitionsRefused(revoked)
    reported: dict[int, tuple[ReportedPartition, ReportedFile | None]] = {}
    for report in reports:
        files = {item.name: item for item in report.files}
        for item in report.partitions:
            plan = building.get(item.index)
            if plan is None or plan.name != item.name:
                raise PartitionsRefused(f"the job reported partition {item.name!r} (index {item.index}), which the "
                                        "attempt did not ask it to build")
            if item.status == "built" and (item.file != part_file(item.index) or item.file not in files):
                raise PartitionsRefused(f"partition {item.name!r}: the job reported file {item.file!r}, expected "
                                        f"{part_file(item.index)} among its reported files")
            reported.setdefault(item.index, (item, files.get(item.file) if item.file else None))
    allowed = {prefix + "report.json", prefix + "diagnostics.txt"} | {
        partition_report_key(begun.run_id, begun.output, begun.attempt, index) for index in building}
    expected = {prefix + part_file(index) for index, (item, _) in reported.items() if item.status == "built"}
    unexpected = sorted(set(backend.store.list_keys(prefix)) - allowed - expected)
    if unexpected:
        raise PartitionsRefused(f"the job wrote files it did not report: {', '.join(unexpected)}")
    parent = _array_parent(reports) if whole is None else None
    children = {plan.index: child for child, plan in enumerate(to_build(begun))} if whole is None else {}
    results = [_result(backend, plan, prefix, reported.get(plan.index),
                       _no_report(children, plan.index, parent, job_error)) for plan in begun.partitions]
    results.sort(key=lambda result: result.name)
    failed = [(result.name, result.error or "") for result in results if result.status == "failed"]
    merged = reports[0].model_copy(update={"started_at": min(r.started_at for r in reports),
                                           "finished_at": max(r.finished_at for r in reports),
                                           "job_id": parent or reports[0].job_id})
    if failed:
        return RecordedPartitions(merged, results, [], None, failure_summary(failed))
    outputs = [result.file for result in results if result.file is not None]
    return RecordedPartitions(merged, results, outputs, merkle_root([(r.name, r.file.sha256) for r in results
                                                                     if r.file is not None]), None)


def _array_parent(reports: list[MaterializeReport]) -> str | None:
    """The array job's id when every per-partition report comes from one of its children (``PARENT:N``)."""
    parents = {report.job_id.rpartition(":")[0] for report in reports}
    return parents.pop() if len(parents) == 1 and "" not in parents else None


def _no_report(children: dict[int, int], index: int, parent: str | None, job_error: str | None) -> str | None:
    """Why a partition to build has no entry: with per-partition reports, its array child (the Nth child builds
    the Nth partition to build) wrote none: it crashed or was killed before reporting."""
    if index not in children:
        return job_error
    child = f"{parent}:{children[index]}" if parent else f"number {children[index]}"
    return (f"array child {child} wrote no report-{index:04d}.json (it crashed or was killed before reporting): "
            f"{job_error or 'it did not finish'}")


def _result(backend: Backend, plan: PartitionPlan, prefix: str,
            reported: tuple[ReportedPartition, ReportedFile | None] | None, job_error: str | None) -> PartitionResult:
    def failed(error: str) -> PartitionResult:
        return PartitionResult(name=plan.name, index=plan.index, memo_key=plan.memo_key, status="failed", error=error)

    if plan.reuse is not None:  # its bytes were re-hashed when the attempt began; the check hashes them again
        if not backend.store.exists(product_key(plan.reuse.uri)):
            return failed(f"reused file {plan.reuse.uri} is gone")
        return PartitionResult(name=plan.name, index=plan.index, memo_key=plan.memo_key, status="reused",
                               file=plan.reuse, reused_from=plan.reuse_from)
    if reported is None:
        return failed(f"the job reported nothing for this partition: {job_error or 'it did not finish'}")
    item, file = reported
    if item.status == "failed":
        return failed(item.error or "the job reported a failure without a reason")
    try:
        digest = backend.store.digest(prefix + part_file(plan.index))
    except NotFound:
        return failed(f"reported file {prefix + part_file(plan.index)} is missing")
    rows, schema = (file.rows, file.schema_) if file is not None else (None, None)
    return PartitionResult(name=plan.name, index=plan.index, memo_key=plan.memo_key, status="built",
                           file=digest.model_copy(update={"rows": rows, "schema_": schema}))


def partition_input_digests(spec: LaneSpec, output: str, digests: list[InputDigest]) -> list[InputDigest]:
    """The inputs that make a partition's memo key: every input but the partition input."""
    return [group for group in digests if group.name != spec.outputs[output].partition_by]


__all__ = ["ARRAY_INDEX_VARIABLE", "BATCH_ARRAY_MAX", "BATCH_ARRAY_MIN", "PartitionIndexError", "PartitionsRefused",
           "RecordedPartitions", "TooManyPartitions", "array_timeout_seconds", "batch_array_size", "build_count",
           "check_build_limit", "failure_summary", "materialize_partitions", "merkle_root", "part_file",
           "partition_input_digests", "partition_memo_key", "partition_name", "partition_report_key",
           "plan_partitions", "product_memo_key", "record_partitions", "to_build"]
