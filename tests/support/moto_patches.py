"""Small, named patches that let moto 5.2.5 execute the lane's real state machine without Docker.

Every patch touches a private moto name, so moto is pinned exactly (requirements.txt) and each
patch has a canary test (tests/aws/test_moto_patches.py) that fails loudly when an upgrade moves
the name or makes the patch unnecessary.

1. ``sfn_shape_conversion`` - moto ships the Step Functions interpreter (from LocalStack) with
   ``StateTaskService._normalise_parameters/_normalise_response`` stubbed out, so optimized
   integrations such as ``batch:submitJob.sync`` pass ``JobName`` to botocore, which wants
   ``jobName`` (``States.Runtime``, cause ``'JobName'``). Restored with botocore's shape conversion.
2. ``sfn_redrive_count`` - moto's context object lacks ``$$.Execution.RedriveCount`` (moto has no
   redrive); real AWS sets it to 0 on a first run. The ASL reads it, so it is filled in.
3. ``lambda_in_process`` - moto runs Lambda functions in Docker. ``LambdaFunction._invoke_lambda``
   is replaced by a call to a registered Python handler (our ``functions/*/handler.py``),
   returning Lambda's error payload (``errorType``/``errorMessage``) when it raises.
4. ``batch_subprocess`` - moto runs Batch jobs in Docker. ``batch.models.Job.run`` is replaced by a
   subprocess running the job's command (our materializer entrypoint) with the job's environment.
5. ``batch_exit_code`` - ``DescribeJobs`` lacks ``container.exitCode`` (and the status reason);
   added so the state machine's failure cause names the exit code, as on AWS.
6. ``batch_describe_snapshot`` - ``BatchBackend.describe_jobs`` iterates the live job dict; a
   concurrent ``SubmitJob`` (parallel Map iterations) makes it raise "dictionary changed size during
   iteration", which the interpreter turns into an uncatchable ``States.Runtime``. Iterate a snapshot.
7. ``batch_array_jobs`` - moto's ``SubmitJob`` with ``arrayProperties.size`` N creates the parent and N child
   jobs ``PARENT:0`` .. ``PARENT:N-1`` (each runs, through patch 4), and ``ListJobs(arrayJobId=...)`` lists them;
   but (a) no child gets ``AWS_BATCH_JOB_ARRAY_INDEX``, and (moto's source) every ``environment`` read
   appends ``AWS_BATCH_JOB_ID`` to the override list it returns, which the children share with the parent, so a
   child may read another job's id; (b) the parent only ever leaves SUBMITTED when every child SUCCEEDED: with one child
   FAILED it stays SUBMITTED forever, so ``batch:submitJob.sync`` never ends; (c) a child's DescribeJobs has no
   ``arrayProperties.index``. Patched as AWS documents array jobs (AWS Batch User Guide, "Array jobs"): each
   job's environment is built afresh with its own ``AWS_BATCH_JOB_ID`` and, for a child, its
   ``AWS_BATCH_JOB_ARRAY_INDEX``; the parent is PENDING while children run, then SUCCEEDED when all
   succeeded, else FAILED; a child describes its ``arrayProperties.index``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import botocore.session
from moto.awslambda.models import LambdaFunction
from moto.batch import models as batch_models
from moto.batch.utils import JobStatus
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
    StateTaskService,
)
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.parser.utils import camel_to_snake_case

LOG = logging.getLogger(__name__)
MOTO_VERSION = "5.2.5"

# --------------------------------------------------------------------------------------------
# 1. Step Functions request/response shape conversion

_MODELS = botocore.session.get_session()
_MODEL_LOCK = threading.Lock()


def _operation_model(service: str, action: str) -> Any:
    with _MODEL_LOCK:
        service_model = _MODELS.get_service_model(service)
    wanted = camel_to_snake_case(action)
    for name in service_model.operation_names:
        if camel_to_snake_case(name) == wanted:
            return service_model.operation_model(name)
    raise KeyError(f"{service} has no operation {action}")


def _normalise_parameters(self, parameters, boto_service_name=None, service_action_name=None):  # type: ignore[no-untyped-def]
    service = self._get_boto_service_name(boto_service_name=boto_service_name)
    action = self._get_boto_service_action(service_action_name=service_action_name)
    shape = _operation_model(service, action).input_shape
    if shape is not None:
        self._to_boto_request(parameters, shape)


def _normalise_response(self, response, boto_service_name=None, service_action_name=None):  # type: ignore[no-untyped-def]
    service = self._get_boto_service_name(boto_service_name=boto_service_name)
    action = self._get_boto_service_action(service_action_name=service_action_name)
    shape = _operation_model(service, action).output_shape
    if shape is not None:
        self._from_boto_response(response, shape)


@contextmanager
def sfn_shape_conversion() -> Iterator[None]:
    with mock.patch.object(StateTaskService, "_normalise_parameters", _normalise_parameters), \
         mock.patch.object(StateTaskService, "_normalise_response", _normalise_response):
        yield


# --------------------------------------------------------------------------------------------
# 2. $$.Execution.RedriveCount

_ORIGINAL_ENVIRONMENT = ExecutionWorker._get_evaluation_environment


def _environment_with_redrive_count(self):  # type: ignore[no-untyped-def]
    env = _ORIGINAL_ENVIRONMENT(self)
    env.states.context_object.context_object_data["Execution"].setdefault("RedriveCount", 0)
    return env


@contextmanager
def sfn_redrive_count() -> Iterator[None]:
    with mock.patch.object(ExecutionWorker, "_get_evaluation_environment", _environment_with_redrive_count):
        yield


# --------------------------------------------------------------------------------------------
# 3. Lambda handlers in process

Handler = Callable[[dict, Any], Any]


@dataclass
class LambdaContext:
    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 1024
    deadline: float = field(default_factory=lambda: time.monotonic() + 900)

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.monotonic()) * 1000)


_ENV_LOCK = threading.Lock()


@contextmanager
def lambda_in_process(handlers: dict[str, Handler], principals: dict[str, str] | None = None) -> Iterator[list[dict]]:
    """``handlers`` maps function name -> handler; yields the invocation log (name, event, error).
    ``principals`` (function name -> component) attributes each handler's AWS calls (call_recording)."""
    from support.call_recording import acting_as
    calls: list[dict] = []

    def _invoke(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
        handler = handlers.get(self.function_name)
        if handler is None:
            return json.dumps({"errorType": "HandlerNotRegistered", "errorMessage": self.function_name}), True, ""
        payload = copy.deepcopy(event) if event is not None else {}
        if isinstance(payload, str):
            payload = json.loads(payload or "{}")
        with _ENV_LOCK:  # every function of the lane shares the same LANE_* values: setting them is idempotent
            os.environ.update({k: str(v) for k, v in (self.environment_vars or {}).items()})
        record = {"function": self.function_name, "event": payload}
        calls.append(record)
        try:
            with acting_as((principals or {}).get(self.function_name, f"function:{self.function_name}")):
                result = handler(payload, LambdaContext(self.function_name))
        except Exception as exc:  # noqa: BLE001 - Lambda's error contract: errorType becomes the Step Functions error name
            record["error"] = type(exc).__name__
            body = {"errorType": type(exc).__name__, "errorMessage": str(exc),
                    "stackTrace": traceback.format_exception(exc)[-5:]}
            return json.dumps(body), True, ""
        record["result"] = result
        return json.dumps(result), False, ""

    with mock.patch.object(LambdaFunction, "_invoke_lambda", _invoke):
        yield calls


# --------------------------------------------------------------------------------------------
# 4. Batch jobs as subprocesses   5. exitCode in DescribeJobs

_TICK = 0.02


def _wait_while(job: Any, status: JobStatus) -> None:
    job.advance()
    while job.status == status and not job.stop:
        time.sleep(_TICK)


def _python(argv: list[str], prefixes: dict[str, str]) -> list[str]:
    """``python`` is this interpreter; image paths (``/app/...``) map to the checkout."""
    if argv and argv[0] in ("python", "python3", "python3.11"):
        argv = [sys.executable, *argv[1:]]
    mapped = []
    for arg in argv:
        for image_prefix, local_prefix in prefixes.items():
            if arg.startswith(image_prefix):
                arg = local_prefix + arg[len(image_prefix):]
                break
        mapped.append(arg)
    return mapped


@contextmanager
def batch_subprocess(*, cwd: Path, env: dict[str, str], path_map: dict[str, str] | None = None) -> Iterator[list[dict]]:
    """Run every Batch job's command (``python`` = this interpreter) in ``cwd`` with ``env`` + the job's environment."""
    jobs: list[dict] = []

    def _run(self: Any) -> None:
        record: dict[str, Any] = {"job_id": self.job_id, "name": self.job_name}
        jobs.append(record)
        try:
            for status in (JobStatus.SUBMITTED, JobStatus.PENDING, JobStatus.RUNNABLE):
                _wait_while(self, status)
            self.job_started_at = batch_models.datetime.now()
            self._start_attempt()
            _wait_while(self, JobStatus.STARTING)
            raw = self._add_parameters_to_command(self._get_container_property("command", []))
            command = _python([str(part) for part in raw], path_map or {})
            job_env = {item["name"]: str(item["value"]) for item in self._get_container_property("environment", [])}
            record.update(command=command, environment=job_env)
            timeout = self._get_attempt_duration()
            try:
                completed = subprocess.run(
                    command, cwd=cwd, env={**os.environ, **env, **job_env}, capture_output=True, text=True,
                    timeout=timeout, check=False,
                )
            except subprocess.TimeoutExpired:
                self.exit_code = 137
                self.job_stopped_reason = "Job attempt duration exceeded timeout"
                record.update(exit_code=137, timed_out=True)
                self._mark_stopped(success=False)
                return
            self.exit_code = completed.returncode
            record.update(exit_code=completed.returncode, stdout=completed.stdout[-4000:], stderr=completed.stderr[-4000:])
            if completed.returncode != 0:
                LOG.info("batch job %s exited %s: %s", self.job_name, completed.returncode, completed.stderr[-2000:])
                self.job_stopped_reason = "Essential container in task exited"
            self._mark_stopped(success=completed.returncode == 0 and not self.stop)
        except Exception as exc:  # never leave a job hanging: a crash in the patch fails the job
            record["error"] = repr(exc)
            LOG.exception("batch job %s could not run", self.job_name)
            self.job_stopped_reason = f"moto patch could not run the job: {exc}"
            self._mark_stopped(success=False)

    with mock.patch.object(batch_models.Job, "run", _run):
        yield jobs


_ORIGINAL_DESCRIBE = batch_models.Job.describe


def _describe_with_exit_code(self: Any) -> dict[str, Any]:
    result = _ORIGINAL_DESCRIBE(self)
    if self.job_stopped and self.exit_code is not None and isinstance(result.get("container"), dict):
        result["container"]["exitCode"] = self.exit_code
        if self.job_stopped_reason:
            result["container"].setdefault("reason", self.job_stopped_reason)
    return result


@contextmanager
def batch_exit_code() -> Iterator[None]:
    with mock.patch.object(batch_models.Job, "describe", _describe_with_exit_code):
        yield


def _describe_jobs_snapshot(self: Any, jobs: list[str] | None) -> list[dict[str, Any]]:
    wanted = set(jobs or [])
    return [job.describe() for key, job in list(self._jobs.items())
            if not wanted or key in wanted or job.arn in wanted]


@contextmanager
def batch_describe_snapshot() -> Iterator[None]:
    with mock.patch.object(batch_models.BatchBackend, "describe_jobs", _describe_jobs_snapshot):
        yield


# --------------------------------------------------------------------------------------------
# 7. Array jobs: the child's environment, the parent's status from its children, the child's index

ARRAY_INDEX_VARIABLE = "AWS_BATCH_JOB_ARRAY_INDEX"
_ORIGINAL_CONTAINER_PROPERTY = batch_models.Job._get_container_property
_TERMINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED)


def _child_index(job: Any) -> int | None:
    index = (job.array_properties or {}).get("index")
    return index if isinstance(index, int) and job._child_jobs is None else None


def _container_property(self: Any, name: str, default: Any) -> Any:
    if name != "environment":
        return _ORIGINAL_CONTAINER_PROPERTY(self, name, default)
    overrides = {item["name"]: item["value"] for item in self.container_overrides.get("environment") or []}
    defined = {item["name"]: item["value"] for item in self.job_definition.container_properties.get("environment")
               or []}
    values = {**defined, **overrides, "AWS_BATCH_JOB_ID": self.job_id}   # the overrides win, as on AWS
    index = _child_index(self)
    if index is not None:
        values[ARRAY_INDEX_VARIABLE] = str(index)
    return [{"name": key, "value": value} for key, value in values.items()]


def _describe_array(current: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    def describe(self: Any) -> dict[str, Any]:
        result = current(self)
        if self._child_jobs:
            statuses = [child.status for child in self._child_jobs]
            if all(status in _TERMINAL for status in statuses):
                status = JobStatus.SUCCEEDED if all(s == JobStatus.SUCCEEDED for s in statuses) else JobStatus.FAILED
                if not self.job_stopped:
                    self.job_stopped, self.job_stopped_at = True, batch_models.datetime.now()
                result["stoppedAt"] = batch_models.datetime2int_milliseconds(self.job_stopped_at)
            else:
                status = JobStatus.PENDING
            self.status = status.value
            result["status"] = status.value
        index = _child_index(self)
        if index is not None:
            result["arrayProperties"] = {"index": index}
        return result

    return describe


@contextmanager
def batch_array_jobs() -> Iterator[None]:
    """Enter after ``batch_exit_code`` (it wraps whatever ``Job.describe`` is then)."""
    with mock.patch.object(batch_models.Job, "_get_container_property", _container_property), \
         mock.patch.object(batch_models.Job, "describe", _describe_array(batch_models.Job.describe)):
        yield


# --------------------------------------------------------------------------------------------


@contextmanager
def lane_patches(*, handlers: dict[str, Handler], job_cwd: Path, job_env: dict[str, str],
                 path_map: dict[str, str] | None = None,
                 principals: dict[str, str] | None = None) -> Iterator[dict[str, list]]:
    """All patches at once; yields {"lambda": invocations, "batch": jobs}."""
    with ExitStack() as stack:
        stack.enter_context(sfn_shape_conversion())
        stack.enter_context(sfn_redrive_count())
        stack.enter_context(batch_exit_code())
        stack.enter_context(batch_describe_snapshot())
        stack.enter_context(batch_array_jobs())
        calls = stack.enter_context(lambda_in_process(handlers, principals))
        jobs = stack.enter_context(batch_subprocess(cwd=job_cwd, env=job_env, path_map=path_map))
        yield {"lambda": calls, "batch": jobs}
