"""Record every AWS API call a lane component makes, and who made it (the IAM proof's input).

Every botocore client call goes through ``BaseClient._make_api_call``; a presigned URL through
``generate_presigned_url`` (the URL carries its signer's permissions). Both are wrapped once per process.
Each call is recorded with the principal acting at that moment:

* ``acting_as(name)``: a context (thread-local) the moto patches enter around a Lambda handler
  (``gate``, ``check``, ``resolve``) and tests enter for ``operator`` / ``consumer:NAME`` calls;
* ``$LANE_CALL_PRINCIPAL``: a subprocess's principal (the Batch job runs as ``job``);
* work submitted to a thread pool runs as the principal that submitted it;
* a call made from moto's Step Functions interpreter (``moto/stepfunctions/parser`` on the stack) is the
  ``state-machine``'s: the interpreter makes the state machine's own calls (Lambda invoke, Batch submit/describe).

Anything else (test set-up) is recorded as ``harness`` and is not part of the proof. Subprocesses record into
``$LANE_CALL_LOG`` (a directory, one JSONL file per process) through ``recording_site/sitecustomize.py``.

Denials: ``denying(principal, pairs)`` (in process) and ``$LANE_CALL_DENY`` (a subprocess, for its principal)
make a call that needs one of the (IAM action, resource ARN) pairs fail as AWS does, with ``AccessDenied``.
The IAM proof computes the pairs with the real evaluator from a policy missing a statement, so a run under
moto shows what the components do when a permission is missing.
This module imports nothing from the test tree so that sitecustomize can load it by path.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

LOG_ENV = "LANE_CALL_LOG"
PRINCIPAL_ENV = "LANE_CALL_PRINCIPAL"
DENY_ENV = "LANE_CALL_DENY"
HARNESS = "harness"
ACCOUNT = "123456789012"          # moto's default account
STATE_MACHINE = "state-machine"
SITE_DIR = Path(__file__).resolve().parent / "recording_site"

_LOCK = threading.Lock()
_LOCAL = threading.local()
_CALLS: list[dict[str, Any]] = []
_INSTALLED = False
_INTERPRETER_MARK = os.sep.join(("stepfunctions", "parser"))
_DENIED: dict[str, set[tuple[str, str]]] = {}


@contextmanager
def denying(principal: str, pairs: set[tuple[str, str]]) -> Iterator[None]:
    """Calls of ``principal`` needing one of ``pairs`` (IAM action, resource ARN) fail with AccessDenied."""
    with _LOCK:
        previous = _DENIED.get(principal)
        _DENIED[principal] = set(pairs) | (previous or set())
    try:
        yield
    finally:
        with _LOCK:
            if previous is None:
                _DENIED.pop(principal, None)
            else:
                _DENIED[principal] = previous


def _denied_pairs(principal: str) -> set[tuple[str, str]]:
    pairs = set(_DENIED.get(principal, ()))
    if os.environ.get(DENY_ENV) and os.environ.get(PRINCIPAL_ENV) == principal:
        pairs |= {tuple(pair) for pair in json.loads(os.environ[DENY_ENV])}
    return pairs


def _mapping() -> Any:
    """tests/support/iam_requests.py, loaded by path (no test-tree imports in subprocesses)."""
    module = sys.modules.get("lane_iam_requests")
    if module is None:
        import importlib.util

        spec = importlib.util.spec_from_file_location("lane_iam_requests", Path(__file__).resolve().parent / "iam_requests.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["lane_iam_requests"] = module
        spec.loader.exec_module(module)
    return module


def _check_denied(service: str, operation: str, params: dict[str, Any], principal: str) -> None:
    pairs = _denied_pairs(principal)
    if not pairs:
        return
    mapping = _mapping()
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    call = {"principal": principal, "service": service, "operation": operation, "params": _plain(params)}
    try:
        requests = mapping.iam_requests(call, mapping.Names(region=region, account=ACCOUNT))
    except mapping.ProofError:
        return
    for request in requests:
        if (request.action, request.resource) in pairs:
            from botocore.exceptions import ClientError

            message = (f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{principal}/session is not authorized to perform: "
                       f"{request.action} on resource: \"{request.resource}\" because no identity-based policy "
                       f"allows the {request.action} action")
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": message},
                               "ResponseMetadata": {"HTTPStatusCode": 403}}, operation)


@contextmanager
def acting_as(principal: str) -> Iterator[None]:
    previous = getattr(_LOCAL, "principal", None)
    _LOCAL.principal = principal
    try:
        yield
    finally:
        _LOCAL.principal = previous


def current_principal() -> str:
    principal = getattr(_LOCAL, "principal", None)
    if principal:
        return principal
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        if _INTERPRETER_MARK in frame.f_code.co_filename:
            return STATE_MACHINE
        frame = frame.f_back
    return os.environ.get(PRINCIPAL_ENV) or HARNESS


def _plain(value: Any) -> Any:
    """JSON-able parameters without payload bytes (bodies are irrelevant to IAM and large)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items() if key not in ("Body", "Payload")}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, bytes | bytearray) or hasattr(value, "read"):
        return "<bytes>"
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _record(service: str, operation: str, params: dict[str, Any], principal: str) -> None:
    entry = {"principal": principal, "service": service, "operation": operation, "params": _plain(params)}
    log_dir = os.environ.get(LOG_ENV)
    if log_dir and principal != HARNESS and os.environ.get(PRINCIPAL_ENV):   # a subprocess: append to its own file
        path = Path(log_dir) / f"{os.getpid()}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with _LOCK, path.open("a") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
        return
    with _LOCK:
        _CALLS.append(entry)


def install() -> None:
    """Wrap botocore's call path once in this process (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    import botocore.client
    import botocore.signers

    original_call = botocore.client.BaseClient._make_api_call
    original_presign = botocore.signers.generate_presigned_url

    def _make_api_call(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        service, principal = self.meta.service_model.service_name, current_principal()
        _record(service, operation_name, api_params, principal)
        _check_denied(service, operation_name, api_params, principal)
        return original_call(self, operation_name, api_params)

    def generate_presigned_url(self: Any, *args: Any, **kwargs: Any) -> str:
        # botocore's signature: (ClientMethod, Params=None, ExpiresIn=3600, HttpMethod=None)
        method = args[0] if args else kwargs["ClientMethod"]
        params = (args[1] if len(args) > 1 else kwargs.get("Params")) or {}
        operation = self.meta.method_to_api_mapping.get(method, method)
        _record(self.meta.service_model.service_name, operation, dict(params), current_principal())
        return original_presign(self, *args, **kwargs)

    botocore.client.BaseClient._make_api_call = _make_api_call
    botocore.signers.generate_presigned_url = generate_presigned_url  # clients created from now on use it
    _propagate_principal_to_worker_threads()
    _INSTALLED = True


def _propagate_principal_to_worker_threads() -> None:
    """Work a component hands to a thread pool (s3transfer's managed copy/upload, awswrangler's readers) runs
    as that component: without this, those calls would be recorded as ``harness`` and escape the proof."""
    import concurrent.futures

    original_submit = concurrent.futures.ThreadPoolExecutor.submit

    def submit(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        principal = getattr(_LOCAL, "principal", None)
        if principal is None:
            return original_submit(self, fn, *args, **kwargs)

        def as_principal(*inner_args: Any, **inner_kwargs: Any) -> Any:
            with acting_as(principal):
                return fn(*inner_args, **inner_kwargs)

        return original_submit(self, as_principal, *args, **kwargs)

    concurrent.futures.ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]


@contextmanager
def recording(log_dir: Path) -> Iterator[list[dict[str, Any]]]:
    """Calls made while the block runs, in this process and in subprocesses logging to ``log_dir``.

    The yielded list is filled when the block exits (subprocess files included)."""
    install()
    log_dir.mkdir(parents=True, exist_ok=True)
    with _LOCK:
        start = len(_CALLS)
    collected: list[dict[str, Any]] = []
    try:
        yield collected
    finally:
        with _LOCK:
            collected.extend(_CALLS[start:])
        for path in sorted(log_dir.glob("*.jsonl")):
            collected.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())


def subprocess_env(log_dir: Path, principal: str, deny: set[tuple[str, str]] | None = None) -> dict[str, str]:
    """Environment that makes a Python subprocess record its calls as ``principal`` into ``log_dir``
    (and fail the calls needing one of the ``deny`` pairs with AccessDenied)."""
    existing = os.environ.get("PYTHONPATH", "")
    env = {LOG_ENV: str(log_dir), PRINCIPAL_ENV: principal,
           "PYTHONPATH": os.pathsep.join(part for part in (str(SITE_DIR), existing) if part)}
    if deny:
        env[DENY_ENV] = json.dumps(sorted(deny))
    return env
