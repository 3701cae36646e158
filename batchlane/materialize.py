"""The one-shot materializer: read inputs -> transform -> write Parquet -> write-once receipt.

Runs as a subprocess locally and as the AWS Batch job's command:
    python -m batchlane.materialize --spec lane.yaml --run-id R --output O --attempt N
Exit code 0 when the product was written, 1 when the attempt failed (its receipt says why).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from batchlane.evidence import chain_head, load_receipt, write_once_or_existing
from batchlane.inputs import InputError, InputFile, fetch_s3, fingerprint, read_frames, resolve_inputs
from batchlane.plan import memo_key
from batchlane.receipts import FileDigest, InputDigest, MaterializeReceipt, Trigger, staging_prefix, utcnow
from batchlane.spec import LaneSpec, SpecError, load_spec
from batchlane.stores.base import Backend
from batchlane.transforms import TransformError, code_fingerprint, load_transform

if TYPE_CHECKING:  # data libraries load in the job, not in the runner that only records crashes
    import pandas as pd
    import pyarrow as pa

PRODUCT_FILE = "part-0000.parquet"


class MaterializeError(RuntimeError):
    pass


def _run_transform(spec: LaneSpec, output: str, frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    import pandas as pd

    transform = load_transform(spec, output)
    if transform is None:
        (frame,) = frames.values()
        return frame
    dotted = spec.outputs[output].transform
    try:
        result = transform(**frames)
    except Exception as exc:
        raise TransformError(f"transform {dotted} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(result, pd.DataFrame):
        raise TransformError(f"transform {dotted} returned {type(result).__name__}, expected a pandas DataFrame")
    return result


def _local_inputs(
    files: list[InputFile], fingerprinted: list[InputDigest], workdir: Path
) -> tuple[list[InputFile], list[InputDigest]]:
    """S3 inputs are downloaded (their SHA-256 taken on the way); local ones reuse the memo fingerprint's hash."""
    hashed = {digest.uri: digest for group in fingerprinted for digest in group.files}
    local_files, by_name = [], {}
    for item in files:
        if item.local_path is None:
            item, digest = fetch_s3(item, workdir)
        else:
            digest = hashed[item.uri]
        local_files.append(item)
        by_name.setdefault((item.name, item.pattern), []).append(digest)
    return local_files, [InputDigest(name=n, pattern=p, files=d) for (n, p), d in by_name.items()]


def _write_product(backend: Backend, table: pa.Table, key: str, workdir: Path) -> FileDigest:
    import pyarrow.parquet as pq

    staging_file = getattr(backend.store, "staging_file", None)
    path = staging_file(".parquet") if staging_file else workdir / PRODUCT_FILE
    pq.write_table(table, path, compression="snappy", row_group_size=1_000_000)
    stored = backend.store.put_file_once(path, key)
    schema = {field.name: str(field.type) for field in table.schema}
    return stored.model_copy(update={"rows": table.num_rows, "schema_": schema})


def materialize(
    backend: Backend, spec: LaneSpec, run_id: str, output: str, attempt: int, *, job_id: str, trigger: Trigger = "cli"
) -> MaterializeReceipt:
    existing = load_receipt(backend, run_id, output, attempt, "materialize")
    if existing is not None:  # a duplicate job delivery: the first attempt's evidence stands
        assert isinstance(existing, MaterializeReceipt)
        return existing
    started = utcnow()
    inputs: list[InputDigest] = []
    outputs: list[FileDigest] = []
    error, key, fingerprint_ = None, "", ""
    workdir = Path(tempfile.mkdtemp(prefix="lane-materialize-"))
    try:
        import pyarrow as pa

        fingerprint_ = code_fingerprint(spec, output)
        files = resolve_inputs(spec, output)
        fingerprinted = fingerprint(files)
        key = memo_key(spec, output, fingerprinted)
        local_files, inputs = _local_inputs(files, fingerprinted, workdir)
        frame = _run_transform(spec, output, read_frames(local_files))
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise MaterializeError(f"result cannot be written as Parquet: {exc}") from exc
        outputs = [_write_product(backend, table, staging_prefix(run_id, output, attempt) + PRODUCT_FILE, workdir)]
    except (InputError, TransformError, MaterializeError) as exc:
        error = str(exc)
    except Exception as exc:  # fail closed: any crash becomes a failed receipt naming the cause
        error = f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    receipt = MaterializeReceipt(
        lane=spec.lane, run_id=run_id, output=output, attempt=attempt, prev=chain_head(backend, run_id, output),
        job_id=job_id, trigger=trigger, status="failed" if error else "succeeded", inputs=inputs, outputs=outputs,
        code_fingerprint=fingerprint_, spec_digest=spec.output_digest(output), memo_key=key or "unavailable",
        started_at=started, finished_at=utcnow(),
        error=f"output {output}, run {run_id}, attempt {attempt}: {error}" if error else None,
    )
    stored = write_once_or_existing(backend, receipt)
    assert isinstance(stored, MaterializeReceipt)
    return stored


def record_crash(
    backend: Backend, spec: LaneSpec, run_id: str, output: str, attempt: int, *, job_id: str, error: str,
    trigger: Trigger = "cli",
) -> MaterializeReceipt:
    """The job died without leaving a receipt (killed, timed out, non-zero exit): record a failed attempt."""
    existing = load_receipt(backend, run_id, output, attempt, "materialize")
    if existing is not None:
        assert isinstance(existing, MaterializeReceipt)
        return existing
    now = utcnow()
    receipt = MaterializeReceipt(
        lane=spec.lane, run_id=run_id, output=output, attempt=attempt, prev=chain_head(backend, run_id, output),
        job_id=job_id, trigger=trigger, status="failed", code_fingerprint="unknown",
        spec_digest=spec.output_digest(output), memo_key="unavailable", started_at=now, finished_at=now,
        error=f"output {output}, run {run_id}, attempt {attempt}: job {job_id} ended without a receipt: {error}",
    )
    stored = write_once_or_existing(backend, receipt)
    assert isinstance(stored, MaterializeReceipt)
    return stored


def main(argv: list[str] | None = None) -> int:
    from batchlane.backends import BackendConfigError, backend_from_env

    parser = argparse.ArgumentParser(prog="python -m batchlane.materialize", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", required=True, help="lane spec YAML (LANE_SPEC in the container)")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--attempt", required=True, type=int)
    parser.add_argument("--job-id", default="local", help="Batch job id or local process id, for the receipt")
    parser.add_argument("--trigger", default="cli")
    args = parser.parse_args(argv)
    try:
        spec = load_spec(args.spec)
        if args.output not in spec.outputs:
            raise SpecError(f"lane {spec.lane!r} has no output {args.output!r}")
        backend = backend_from_env()
    except (SpecError, BackendConfigError) as exc:
        print(f"materialize: {exc}", file=sys.stderr)
        return 2
    receipt = materialize(backend, spec, args.run_id, args.output, args.attempt, job_id=args.job_id,
                          trigger=args.trigger)
    if receipt.error:
        print(receipt.error, file=sys.stderr)
    return 0 if receipt.status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
