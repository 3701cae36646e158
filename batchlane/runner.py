"""Local one-shot executor: each materialize is a fresh process (the Batch job's entrypoint), then check, then gate.

Each job is a fork of a warm zygote that preloaded the data libraries (``batchlane.forkserver``), or, without
one (``LANE_FORKSERVER=0``, not Linux, the zygote failed), a ``python -m batchlane.materialize`` subprocess.

Bounded parallelism; an output that references another waits for it; the run is closed
with a RunManifest whatever happened, so the evidence always says how it ended.

Jobs die with the runner: each job gets SIGKILL when the runner dies (``PR_SET_PDEATHSIG``), and SIGTERM
or Ctrl-C of the runner stops its jobs, records those attempts as failed ("interrupted"), starts nothing
new and closes the run. While it works on an output the runner holds that output's lease
(``batchlane.joblocks``), shared with the job, so repair can tell a dead attempt from a running one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from batchlane.backends import backend_env
from batchlane.forkserver import ForkedJob, ForkServer, wanted
from batchlane.gate import check, close_run, decide
from batchlane.joblocks import note_job, output_lease
from batchlane.plan import RunPlan, begin_output
from batchlane.receipts import CheckReceipt, RunManifest
from batchlane.recording import record_crash
from batchlane.spec import LaneSpec
from batchlane.stores.base import Backend

PLAIN_JOBS_BEFORE_FORKING = 2  # the fork server launches with a run's 2nd job; from the 3rd on, jobs are forked


_CHECKER_LOADED = threading.Lock()


def _preload_checker() -> None:
    """Import the checking engine and pandas (pyarrow imports it on first use) in the first worker thread that
    waits for a job, so the run's first check does not pay the imports after its job. The others go on at once;
    a check that starts meanwhile waits on the import lock, as any import would."""
    if not _CHECKER_LOADED.acquire(blocking=False):
        return
    import importlib

    for name in ("pandas", "batchlane.checking.engine"):
        importlib.import_module(name)


@dataclass
class OutputProgress:
    output: str
    phase: str = "queued"      # queued | materializing | checking | deciding | certified | rejected | failed | memoized | blocked
    attempt: int | None = None
    rows: int | None = None
    seconds: float | None = None
    failing_rules: list[str] = field(default_factory=list)
    error: str | None = None
    started: float | None = None


@dataclass
class RunResult:
    plan: RunPlan
    manifest: RunManifest
    progress: dict[str, OutputProgress]

    interrupted: str | None = None   # the signal that stopped the run early (SIGTERM, SIGINT)

    @property
    def ok(self) -> bool:
        return self.manifest.verdict == "PASS" and self.interrupted is None


class LocalRunner:
    def __init__(self, backend: Backend, spec: LaneSpec, *, jobs: int | None = None, force: bool = False,
                 job_timeout: float | None = None, on_update: Callable[[OutputProgress], None] | None = None,
                 fork_server: bool | ForkServer | None = None):
        if spec.source_path is None:
            raise ValueError("the local runner needs a spec loaded from a file (the job subprocess reads it)")
        self.backend, self.spec, self.force = backend, spec, force
        self.jobs = max(1, jobs or os.cpu_count() or 1)
        self.job_timeout = job_timeout
        self.on_update = on_update or (lambda progress: None)
        self.interrupted: str | None = None
        self._children: set[subprocess.Popen | ForkedJob] = set()
        self._lock = threading.Lock()
        # jobs fork from a warm zygote (batchlane.forkserver) unless fork_server=False, LANE_FORKSERVER=0 or
        # unsupported. Starting it costs about one cold job, so a run's first job does not start it (a run of one
        # job gains nothing), the second launches it in the background, both take the plain path, and from the
        # third on jobs wait for it (launched one job earlier). A given server (`lane run` launches one before it
        # loads and plans, so the zygote's imports overlap that work) is waited for by every job, the first included.
        self._fork_server = fork_server if isinstance(fork_server, ForkServer) else (
            ForkServer() if wanted(fork_server) else None)
        self._server_given = isinstance(fork_server, ForkServer)
        self._job_requests = 0

    def _update(self, progress: OutputProgress, **changes) -> None:
        for name, value in changes.items():
            setattr(progress, name, value)
        self.on_update(progress)

    def _start_job(self, arguments: list[str], env: dict[str, str],
                   lease: int | None) -> subprocess.Popen | ForkedJob:
        """A fork of the warm zygote, or (no fork server, or it failed) a fresh `python -m batchlane.materialize`."""
        pass_fds = (lease,) if lease is not None else ()
        if self._fork_server is not None:  # the forked child ties itself to the zygote, which dies with us
            job = self._fork_server.spawn("batchlane.materialize", arguments, env=env, cwd=os.getcwd(),
                                          pass_fds=pass_fds)
            if job is not None:
                return job
        command = [sys.executable, "-m", "batchlane.materialize", *arguments, "--parent-pid", str(os.getpid())]
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                pass_fds=pass_fds)

    def _materialize_job(self, plan: RunPlan, output: str, attempt: int, lease: int | None) -> None:
        job_id = f"local-{plan.run_id}-{output}-{attempt}"
        arguments = ["--spec", str(self.spec.source_path), "--run-id", plan.run_id, "--output", output,
                     "--attempt", str(attempt), "--job-id", job_id]
        env = {**os.environ, **backend_env(self.backend)}
        process: subprocess.Popen | ForkedJob | None
        if self._fork_server is not None and not self.interrupted:  # outside the lock: interrupts never wait
            with self._lock:
                self._job_requests += 1
                requests = self._job_requests
            if requests >= PLAIN_JOBS_BEFORE_FORKING or self._fork_server.launched:
                self._fork_server.start(wait=requests > PLAIN_JOBS_BEFORE_FORKING or self._server_given)
        with self._lock:
            if self.interrupted:
                code, detail = -1, f"interrupted by {self.interrupted} before the job started"
                process = None
            else:
                process = self._start_job(arguments, env, lease)
                note_job(lease, process.pid)
                self._children.add(process)
        if process is not None:
            _preload_checker()  # while the job runs in its own process
            try:
                _, stderr = process.communicate(timeout=self.job_timeout)
                code = process.returncode if process.returncode is not None else -1
                detail = (stderr.strip().splitlines() or [""])[-1]
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                code, detail = -1, f"timed out after {self.job_timeout}s"
            finally:
                with self._lock:
                    self._children.discard(process)
            if self.interrupted and code != 0:
                detail = f"interrupted by {self.interrupted}"
        if code != 0:  # no-op when the job left its own failed report: that reason is recorded instead
            record_crash(self.backend, self.spec, plan.run_id, output, attempt, job_id=job_id,
                         error=f"exit code {code}: {detail}", trigger=plan.trigger)

    def _one(self, plan: RunPlan, progress: OutputProgress) -> None:
        output = progress.output
        self._update(progress, phase="planning", started=time.perf_counter())
        with output_lease(self.backend, plan.run_id, output) as lease:
            start = begin_output(self.backend, self.spec, plan.run_id, output, force=self.force,
                                 trigger=plan.trigger)
            if start.action in ("memoized", "blocked"):
                self._update(progress, phase=start.action, attempt=start.attempt, error=start.error,
                             seconds=time.perf_counter() - (progress.started or 0.0))
                return
            self._update(progress, phase="materializing", attempt=start.attempt)
            if start.action == "materialize":
                self._materialize_job(plan, output, start.attempt, lease)
            self._update(progress, phase="checking")
            checked: CheckReceipt = check(self.backend, self.spec, plan.run_id, output, start.attempt)
            self._update(progress, phase="deciding", rows=checked.rows)
            gate = decide(self.backend, self.spec, plan.run_id, output, start.attempt)
        failed_job = checked.error is not None and not checked.rules
        self._update(
            progress,
            phase="certified" if gate.decision == "certified" else ("failed" if failed_job else "rejected"),
            failing_rules=[rule.label for rule in checked.failing_rules], error=checked.error,
            seconds=time.perf_counter() - (progress.started or 0.0),
        )

    def interrupt(self, name: str) -> None:
        """Stop the run: terminate running jobs (their attempts are recorded failed) and start nothing new."""
        with self._lock:
            self.interrupted = self.interrupted or name
            children = list(self._children)
        for child in children:
            child.terminate()

    def _signals(self) -> dict[signal.Signals, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[signal.Signals, Any] = {}
        for number in (signal.SIGTERM, signal.SIGINT):
            previous[number] = signal.signal(number, lambda signum, _frame: self.interrupt(signal.Signals(signum).name))
        return previous

    def execute(self, plan: RunPlan) -> RunResult:
        progress = {output: OutputProgress(output) for output in plan.outputs}
        for item in progress.values():
            self.on_update(item)
        waiting = {
            output: {dep for dep in self.spec.upstream(output) if dep in progress}
            for output in plan.outputs
        }
        done: set[str] = set()
        running: dict[Future, str] = {}
        previous = self._signals()
        self._job_requests = 0  # the fork server's launch policy counts a run's jobs
        try:
            self._execute(plan, progress, waiting, done, running)
        finally:
            if self._fork_server is not None:
                self._fork_server.close()
            for number, handler in previous.items():
                signal.signal(number, handler)
        manifest = close_run(self.backend, self.spec, plan.run_id)
        return RunResult(plan=plan, manifest=manifest, progress=progress, interrupted=self.interrupted)

    def _execute(self, plan: RunPlan, progress: dict[str, OutputProgress], waiting: dict[str, set[str]],
                 done: set[str], running: dict[Future, str]) -> None:
        with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="lane-job") as pool:
            while waiting or running:
                if self.interrupted:
                    waiting.clear()
                    if not running:
                        break
                for output in [o for o, deps in waiting.items() if deps <= done]:
                    if len(running) >= self.jobs:
                        break
                    del waiting[output]
                    running[pool.submit(self._one, plan, progress[output])] = output
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    output = running.pop(future)
                    done.add(output)
                    if future.exception() is not None:  # fail closed: an internal error certifies nothing
                        self._update(progress[output], phase="failed", error=f"{type(future.exception()).__name__}: "
                                     f"{future.exception()}")
