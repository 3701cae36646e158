"""Killing `lane run` stops its materializers and leaves their attempts failed, not running.

The transform writes its pid to a file, then sleeps; the test kills the runner (SIGTERM, Ctrl-C, SIGKILL of
the whole process group, SIGKILL of the runner alone) and checks that the job is gone, status says the
attempt failed (interrupted), and `lane rerun --failed` then certifies the output.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from batchlane.backends import local_backend
from batchlane.state import run_closures

CLI = "import sys; from batchlane.cli import main; sys.exit(main(sys.argv[1:]))"
SLOW = '''import os, time
from pathlib import Path

def slow(items):
    marker = Path(os.environ["LANE_TEST_MARKER"])
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(60)
    return items
'''


def make_lane(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "transforms.py").write_text(SLOW)
    (folder / "items.csv").write_text("id\n1\n2\n")
    spec = {"lane": "slow", "outputs": {"items_clean": {"inputs": {"items": "items.csv"}, "transform": "transforms:slow",
                                                        "contract": {"row_count": {"min": 1}}}}}
    (folder / "lane.yaml").write_text(yaml.safe_dump(spec))
    return folder / "lane.yaml"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "SIGKILL-group", "SIGKILL-runner"])
def test_killing_the_runner_stops_its_job_and_leaves_the_attempt_failed(tmp_path, how):
    spec, home, marker = make_lane(tmp_path / "lane"), tmp_path / "home", tmp_path / "job.pid"
    env = {**os.environ, "LANE_HOME": str(home), "LANE_BACKEND": "local", "LANE_TEST_MARKER": str(marker)}
    runner = subprocess.Popen([sys.executable, "-c", CLI, "run", str(spec)], env=env, start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: marker.exists() and marker.read_text().strip())
        job = int(marker.read_text())
        if how == "SIGKILL-group":
            os.killpg(runner.pid, signal.SIGKILL)
        elif how == "SIGKILL-runner":
            runner.send_signal(signal.SIGKILL)
        else:
            runner.send_signal(getattr(signal, how))
        _, stderr = runner.communicate(timeout=60)
        _wait_for(lambda: not _alive(job), timeout=30)  # the job does not outlive its runner
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
    if how in ("SIGTERM", "SIGINT"):  # a graceful stop records the attempt itself and closes the run
        assert runner.returncode == 128 + getattr(signal, how), stderr
        assert f"interrupted by {how}" in stderr
    backend = local_backend(home)
    (run,) = backend.ledger.list_runs()
    closure = run_closures(backend, run.run_id, run.outputs)["items_clean"]
    assert closure.state == "failed" and "interrupted" in (closure.error or ""), closure
    # the ordinary command reruns it (the marker exists now, so the transform returns at once)
    rerun = subprocess.run([sys.executable, "-c", CLI, "rerun", run.run_id, "--failed"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert run_closures(backend, run.run_id, run.outputs)["items_clean"].state == "certified"


@pytest.mark.parametrize("tied", [True, False])
def test_canary_a_job_outlives_a_killed_parent_unless_tied_to_it(tmp_path, tied):
    """What the runner relies on: a job started with --parent-pid dies with its parent (PR_SET_PDEATHSIG);
    without it, the same job survives its parent's SIGKILL (so the runner test above can fail)."""
    spec, home, marker = make_lane(tmp_path / "lane"), tmp_path / "home", tmp_path / "job.pid"
    env = {**os.environ, "LANE_HOME": str(home), "LANE_BACKEND": "local", "LANE_TEST_MARKER": str(marker)}
    from batchlane.plan import begin_output, plan_run
    from batchlane.spec import load_spec

    backend, lane_spec = local_backend(home), load_spec(spec)
    plan = plan_run(backend, lane_spec)
    start = begin_output(backend, lane_spec, plan.run_id, "items_clean")
    job = [sys.executable, "-m", "batchlane.materialize", "--spec", str(spec), "--run-id", plan.run_id,
           "--output", "items_clean", "--attempt", str(start.attempt)]
    parent_code = ("import os, subprocess, sys, time; job = sys.argv[1:]; "
                   "job += ['--parent-pid', str(os.getpid())] if os.environ['TIED'] == '1' else []; "
                   "subprocess.Popen(job); time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", parent_code, *job], env={**env, "TIED": "1" if tied else "0"},
                              start_new_session=True)
    try:
        _wait_for(lambda: marker.exists() and marker.read_text().strip())
        pid = int(marker.read_text())
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        if tied:
            _wait_for(lambda: not _alive(pid), timeout=30)
        else:
            time.sleep(1.0)
            assert _alive(pid), "an untied job should survive its parent (else the test above proves nothing)"
    finally:
        if marker.exists() and marker.read_text().strip() and _alive(int(marker.read_text())):
            os.kill(int(marker.read_text()), signal.SIGKILL)
