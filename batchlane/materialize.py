"""The one-shot materializer job: pinned inputs -> transform -> Parquet + report, in its staging prefix only.

Runs as a subprocess locally and as the AWS Batch job's command:
    python -m batchlane.materialize --spec lane.yaml --run-id R --output O --attempt N

The job runs user code over untrusted input, so it is not trusted: it reads the inputs the attempt pinned
when it began (and refuses any whose bytes changed), and writes only ``staging/R/O/NNNN/``: the product
files and ``report.json``. It writes no receipt, no ledger row and no event; trusted code
(``batchlane.recording``) re-hashes what it reports before anything is recorded.
Exit code 0 when the product was written, 1 when the attempt failed (its report says why), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import tempfile
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from batchlane.diagnostics import captured, document, user_first_traceback
from batchlane.inputs import InputError, read_pinned
from batchlane.receipts import (
    BeginReceipt,
    InputDigest,
    MaterializeReport,
    ReportedFile,
    parse_receipt,
    receipt_key,
    report_key,
    staging_prefix,
    utcnow,
)
from batchlane.spec import LaneSpec, SpecError, load_spec
from batchlane.stores.base import AlreadyExists, NotFound, ObjectStore
from batchlane.transforms import TransformError, code_fingerprint, load_transform
from batchlane.writepoints import write_point

if TYPE_CHECKING:  # data libraries load in the job, not in the runner that only records crashes
    import pandas as pd
    import pyarrow as pa

PRODUCT_FILE = "part-0000.parquet"


class MaterializeError(RuntimeError):
    pass


def _accepts_params(function: Any) -> bool:
    import inspect

    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return "params" in parameters


def _run_transform(spec: LaneSpec, output: str, frames: dict[str, pd.DataFrame], log: Any,
                   params: dict[str, str]) -> pd.DataFrame:
    import pandas as pd

    transform = load_transform(spec, output)
    if transform is None:
        (frame,) = frames.values()
        return frame
    dotted = spec.outputs[output].transform
    try:
        with captured() as tail:
            try:
                extra = {"params": dict(params)} if _accepts_params(transform) else {}
                result = transform(**frames, **extra)
            finally:
                log["output"] = tail.text()
    except Exception as exc:
        log["traceback"] = user_first_traceback(exc, spec.base_dir)
        raise TransformError(f"transform {dotted} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(result, pd.DataFrame):
        raise TransformError(f"transform {dotted} returned {type(result).__name__}, expected a pandas DataFrame")
    return result


def _write_product(store: ObjectStore, table: pa.Table, key: str, workdir: Path) -> ReportedFile:
    import pyarrow.parquet as pq

    staging_file = getattr(store, "staging_file", None)
    path = staging_file(".parquet") if staging_file else workdir / PRODUCT_FILE
    try:
        pq.write_table(table, path, compression="snappy", row_group_size=1_000_000)
        write_point("job.product")
        store.put_file_once(path, key)
    finally:
        Path(path).unlink(missing_ok=True)
    return ReportedFile(name=key.rsplit("/", 1)[1], rows=table.num_rows,
                        schema={field.name: str(field.type) for field in table.schema})


def _begin_receipt(store: ObjectStore, run_id: str, output: str, attempt: int) -> BeginReceipt:
    try:
        receipt = parse_receipt(store.get(receipt_key(run_id, output, attempt, "begin")))
    except NotFound:
        raise MaterializeError("the attempt has no begin receipt: it was not started by the gate") from None
    if not isinstance(receipt, BeginReceipt):
        raise MaterializeError("the begin receipt of the attempt is not a begin receipt")
    return receipt


def materialize(
    store: ObjectStore, spec: LaneSpec, run_id: str, output: str, attempt: int, *, job_id: str,
    partition_index: int | None = None,
) -> MaterializeReport:
    """Run the attempt's transform over its pinned inputs; write the product and the report to staging.

    A partitioned output (``partition_by``) builds its partitions to build, or only the ``partition_index``-th
    of them (``batchlane.partitions``)."""
    if spec.outputs[output].partition_by:
        from batchlane.partitions import materialize_partitions

        return materialize_partitions(store, spec, run_id, output, attempt, job_id=job_id, only=partition_index)
    started = utcnow()
    files: list[ReportedFile] = []
    error, fingerprint_ = None, ""
    inputs: list[InputDigest] = []
    log: dict[str, str] = {}
    workdir = Path(tempfile.mkdtemp(prefix="lane-materialize-"))
    try:
        import pyarrow as pa

        begun = _begin_receipt(store, run_id, output, attempt)
        fingerprint_ = code_fingerprint(spec, output)
        if fingerprint_ != begun.code_fingerprint:
            raise MaterializeError("the lane's code changed after the attempt began (code fingerprint differs)")
        frames, inputs = read_pinned([group for group in begun.inputs if group.product is None], workdir)
        products = [group for group in begun.inputs if group.product is not None]
        if products:  # certified products: exactly the pinned bytes, verified as they are copied
            from batchlane.products import read_product_inputs

            product_frames, read = read_product_inputs(store, products, workdir)
            frames, inputs = {**frames, **product_frames}, inputs + read
        frames = {group.name: frames[group.name] for group in begun.inputs}  # the spec's order
        frame = _run_transform(spec, output, frames, log, begun.params)
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise MaterializeError(f"result cannot be written as Parquet: {exc}") from exc
        files = [_write_product(store, table, staging_prefix(run_id, output, attempt) + PRODUCT_FILE, workdir)]
    except (InputError, TransformError, MaterializeError) as exc:
        error = str(exc)
    except Exception as exc:  # fail closed: any crash becomes a failed report naming the cause
        error = f"{type(exc).__name__}: {exc}"
        log.setdefault("traceback", "".join(traceback.format_exception(exc)).rstrip())
    finally:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    diagnostics: Literal["diagnostics.txt"] | None = None
    if log.get("output") or log.get("traceback"):
        diagnostics = "diagnostics.txt"
        try:
            store.put_once(staging_prefix(run_id, output, attempt) + diagnostics,
                           document(log.get("output", ""), log.get("traceback")).encode())
        except AlreadyExists:  # a duplicate delivery: the first job's diagnostics stand
            pass
    report = MaterializeReport(
        lane=spec.lane, run_id=run_id, output=output, attempt=attempt, job_id=job_id,
        status="failed" if error else "succeeded", files=[] if error else files, inputs=inputs,
        code_fingerprint=fingerprint_, started_at=started, finished_at=utcnow(), error=error,
        diagnostics=diagnostics,
    )
    write_point("job.report")
    try:
        store.put_once(report_key(run_id, output, attempt), report.canonical())
    except AlreadyExists:  # a duplicate delivery of the same job: the first report stands
        return MaterializeReport.model_validate_json(store.get(report_key(run_id, output, attempt)))
    return report


def _die_with_parent(parent: int | None) -> None:
    """Linux: the job gets SIGKILL when the runner that started it dies (kill -9 included)."""
    if parent is None or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the runner died before the line above took effect
        os._exit(1)


# Specs parsed by the fork server's zygote before it forks (batchlane.forkserver calls ``prefork``), keyed by the
# spec's resolved path and the SHA-256 of its bytes: a forked job reuses one only if its file is unchanged.
_PARSED_SPECS: dict[tuple[str, str], LaneSpec] = {}


def _spec_key(path: str) -> tuple[str, str] | None:
    import hashlib

    try:
        return str(Path(path).resolve()), hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _argument(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else None


_WARMED: list[bool] = []


def _warm_data_path() -> None:
    """Take each job's data path once over a tiny frame (CSV in, Arrow, Parquet out), so lazy initialisation
    in pandas and pyarrow happens in the zygote. No thread pool starts (reading Parquet back would start one)."""
    import io

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pd.read_csv(io.StringIO("id,value,kind\n1,1.5,a\n2,,b\n"))
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), io.BytesIO(), compression="snappy")


def prefork(argv: list[str]) -> None:
    """Fork-server hook, run in the zygote before it forks a job: work every job of the run would repeat.

    The spec is parsed once (a job reuses it only while the file's bytes are unchanged), the receipt parser is
    built, the code fingerprint's per-tree cache is filled (it re-stats every source file in the job), and the
    data path is warmed. No lane code runs here: the transform is loaded in the child."""
    from batchlane import receipts
    from batchlane.transforms import TransformError

    if not _WARMED:
        _WARMED.append(True)
        adapter = getattr(receipts, "_receipt_adapter", None)
        if callable(adapter):
            adapter()
        _warm_data_path()
    path = _argument(argv, "--spec")
    key = _spec_key(path) if path else None
    if path is None or key is None:
        return
    if key not in _PARSED_SPECS:
        try:
            _PARSED_SPECS[key] = load_spec(path)
        except SpecError:  # the job parses it again and reports the problem
            return
    output = _argument(argv, "--output")
    if output in _PARSED_SPECS[key].outputs:
        try:
            code_fingerprint(_PARSED_SPECS[key], output)
        except (TransformError, OSError):  # the job reports it
            return


def _job_spec(path: str) -> LaneSpec:
    key = _spec_key(path)
    parsed = _PARSED_SPECS.get(key) if key is not None else None
    return parsed if parsed is not None else load_spec(path)


def _partition_index(spec: LaneSpec, output: str, given: int | None) -> int | None:
    """--partition-index, else an array job's index (partitioned outputs only); SpecError when misused."""
    from batchlane.partitions import ARRAY_INDEX_VARIABLE

    partitioned = spec.outputs[output].partition_by is not None
    if given is not None and not partitioned:
        raise SpecError(f"--partition-index: output {output!r} is not partitioned (no partition_by)")
    if given is None and partitioned and os.environ.get(ARRAY_INDEX_VARIABLE, "").strip():
        try:
            given = int(os.environ[ARRAY_INDEX_VARIABLE])
        except ValueError:
            raise SpecError(f"{ARRAY_INDEX_VARIABLE}={os.environ[ARRAY_INDEX_VARIABLE]!r} is not an integer") from None
    if given is not None and given < 0:
        raise SpecError(f"--partition-index must be 0 or more, got {given}")
    return given


def main(argv: list[str] | None = None) -> int:
    from batchlane.backends import BackendConfigError, store_from_env

    parser = argparse.ArgumentParser(prog="python -m batchlane.materialize", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", required=True, help="lane spec YAML (LANE_SPEC in the container)")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--attempt", required=True, type=int)
    parser.add_argument("--job-id", default="local", help="Batch job id or local process id, for the report")
    parser.add_argument("--parent-pid", type=int, default=None, help="local runner: die with this process")
    parser.add_argument("--trigger", default="cli", help=argparse.SUPPRESS)  # accepted for older definitions
    parser.add_argument("--partition-index", type=int, default=None,
                        help="partitioned output: build only the Nth partition to build (0-based; an array job's "
                             "index, AWS_BATCH_JOB_ARRAY_INDEX, when not given)")
    args = parser.parse_args(argv)
    _die_with_parent(args.parent_pid)
    try:
        spec = _job_spec(args.spec)
        if args.output not in spec.outputs:
            raise SpecError(f"lane {spec.lane!r} has no output {args.output!r}")
        store = store_from_env()
        partition_index = _partition_index(spec, args.output, args.partition_index)
    except (SpecError, BackendConfigError) as exc:
        print(f"materialize: {exc}", file=sys.stderr)
        return 2
    from batchlane.partitions import PartitionIndexError

    try:
        report = materialize(store, spec, args.run_id, args.output, args.attempt, job_id=args.job_id,
                             partition_index=partition_index)
    except PartitionIndexError as exc:
        print(f"materialize: {exc}", file=sys.stderr)
        return 2
    if report.error:
        print(report.error.splitlines()[0], file=sys.stderr)
    return 0 if report.status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
