"""The fork server: each job is a fresh fork of a warm zygote, with every property of a plain subprocess job.

Transforms here write what their process saw (pid, parent, cwd, environment, module state) to a marker
folder; the tests compare that with the runner, the zygote and the plain path (``LANE_FORKSERVER=0``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from batchlane import forkserver
from batchlane.backends import BackendConfigError, local_backend
from batchlane.joblocks import output_busy
from batchlane.plan import plan_run
from batchlane.runner import LocalRunner
from batchlane.spec import load_spec
from batchlane.state import run_closures

pytestmark = pytest.mark.skipif(forkserver.supported() is not None, reason=str(forkserver.supported()))

CLI = "import sys; from batchlane.cli import main; sys.exit(main(sys.argv[1:]))"
TRANSFORMS = '''import json, os, signal, sys, time, types
from pathlib import Path

import pandas as pd

MARKERS = Path(os.environ["LANE_TEST_MARKERS"])


def _note(name, **extra):
    helper = sys.modules.setdefault("_lane_test_state", types.ModuleType("_lane_test_state"))
    helper.__dict__.setdefault("CALLS", []).append(name)  # process-wide state set by the lane's code
    pd.__dict__.setdefault("_lane_test_seen", []).append(name)  # state of a preloaded library
    note = {"pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(), "path0": sys.path[0],
            "env": os.environ.get("LANE_TEST_VALUE"), "helper_calls": list(helper.CALLS),
            "pandas_seen": list(pd._lane_test_seen), "fds": sorted(os.listdir("/proc/self/fd")), **extra}
    (MARKERS / f"{name}.tmp").write_text(json.dumps(note))
    os.replace(MARKERS / f"{name}.tmp", MARKERS / f"{name}.json")  # whole, or not there


def first(rows):
    _note("first")
    return rows


def second(rows):
    _note("second")
    return rows


def third(rows):
    _note("third")
    return rows


def fourth(rows):
    _note("fourth")
    return rows


def crash(rows):
    _note("crash")
    os.kill(os.getpid(), signal.SIGKILL)


def boom(rows):
    raise ValueError("boom: a bad batch")


def slow(rows):
    _note("slow")
    time.sleep(60)
    return rows
'''


def make_lane(folder: Path, transforms: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    (folder / "transforms.py").write_text(TRANSFORMS)
    (folder / "rows.csv").write_text("id,value\n1,1.5\n2,2.5\n")
    outputs = {name: {"inputs": {"rows": "rows.csv"}, "transform": f"transforms:{function}",
                      "contract": {"columns": {"id": {"type": "int64", "unique": True}}, "row_count": {"min": 1}}}
               for name, function in transforms.items()}
    (folder / "lane.yaml").write_text(yaml.safe_dump({"lane": "forks", "outputs": outputs}))
    return folder / "lane.yaml"


@pytest.fixture
def markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "markers"
    folder.mkdir()
    monkeypatch.setenv("LANE_TEST_MARKERS", str(folder))
    monkeypatch.setenv("LANE_TEST_VALUE", "from-the-runner")
    monkeypatch.delenv(forkserver.SWITCH, raising=False)
    return folder


def started() -> forkserver.ForkServer:
    """A fork server that is ready before the first job (by default the first job of a run takes the plain path)."""
    server = forkserver.ForkServer()
    assert server.start(wait=True), server.failure
    return server


def run_lane(tmp_path: Path, transforms: dict[str, str], *, fork_server: bool | None | str = "started",
             jobs: int = 1, timeout: float | None = None):
    """Run the lane in this process; by default with a fork server that is ready before the first job."""
    spec = load_spec(make_lane(tmp_path / "lane", transforms))
    backend = local_backend(tmp_path / "home")
    server = started() if fork_server == "started" else fork_server
    assert not isinstance(server, str)
    runner = LocalRunner(backend, spec, jobs=jobs, fork_server=server, job_timeout=timeout)
    result = runner.execute(plan_run(backend, spec))
    return backend, result


def note(markers: Path, name: str) -> dict:
    return json.loads((markers / f"{name}.json").read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def test_jobs_are_forks_of_one_zygote_and_state_does_not_leak_between_them(tmp_path, markers, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, result = run_lane(tmp_path, {"a_first": "first", "b_second": "second"})
    assert result.ok, result.progress
    first, second = note(markers, "first"), note(markers, "second")
    assert first["pid"] != second["pid"] and first["pid"] != os.getpid()
    assert first["ppid"] == second["ppid"] != os.getpid()  # both children of the zygote, not of the runner
    assert not _alive(first["ppid"])  # the zygote ends with the run
    # the lane's module and a preloaded library start clean in every job
    assert first["helper_calls"] == ["first"] and second["helper_calls"] == ["second"]
    assert first["pandas_seen"] == ["first"] and second["pandas_seen"] == ["second"]
    # what the runner gives a job: its environment, working directory and sys.path[0]
    assert second["env"] == "from-the-runner"
    assert second["cwd"] == str(tmp_path) and second["path0"] == str(tmp_path)


def test_a_runs_first_two_jobs_are_plain_while_the_zygote_starts_and_later_ones_fork(tmp_path, markers):
    transforms = {"a_one": "first", "b_two": "second", "c_three": "third", "d_four": "fourth"}
    _, result = run_lane(tmp_path, transforms, fork_server=True)
    assert result.ok
    parents = [note(markers, name)["ppid"] for name in ("first", "second", "third", "fourth")]
    assert parents[:2] == [os.getpid(), os.getpid()]  # a run of one or two jobs never waits for a zygote
    assert parents[2] == parents[3] != os.getpid()


def test_lane_run_launches_the_zygote_at_start_so_even_its_only_job_forks(tmp_path, markers):
    """`lane run` launches the fork server before it imports, loads and plans: the zygote's imports overlap that
    work and a run of one job forks from it (the runner's own policy alone would take the plain path)."""
    spec = make_lane(tmp_path / "lane", {"a_first": "first"})
    env = {**os.environ, "LANE_HOME": str(tmp_path / "home"), "LANE_BACKEND": "local"}
    cli = subprocess.Popen([sys.executable, "-c", CLI, "run", str(spec), "--json"], env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = cli.communicate(timeout=120)
    assert cli.returncode == 0, stderr
    assert json.loads(stdout)["outputs"]["a_first"]["state"] == "certified"
    first = note(markers, "first")
    assert first["ppid"] != cli.pid  # forked by the zygote, not started by the CLI
    assert not _alive(first["ppid"])  # which ended with the run

    env[forkserver.SWITCH] = "0"  # the canary: switched off, the same run's job is the CLI's own child
    (markers / "first.json").unlink()
    plain = subprocess.Popen([sys.executable, "-c", CLI, "run", str(spec), "--json", "--force"], env=env,
                             text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, stderr = plain.communicate(timeout=120)
    assert plain.returncode == 0, stderr
    assert note(markers, "first")["ppid"] == plain.pid


def test_plain_path_when_switched_off(tmp_path, markers, monkeypatch):
    monkeypatch.setenv(forkserver.SWITCH, "0")
    _, result = run_lane(tmp_path, {"a_first": "first", "b_second": "second"}, fork_server=None)
    assert result.ok
    assert {note(markers, name)["ppid"] for name in ("first", "second")} == {os.getpid()}  # the runner's children


def test_an_explicit_setting_overrides_the_environment(tmp_path, markers, monkeypatch):
    monkeypatch.setenv(forkserver.SWITCH, "1")
    _, result = run_lane(tmp_path, {"a_first": "first"}, fork_server=False)
    assert result.ok and note(markers, "first")["ppid"] == os.getpid()


def test_a_bad_switch_value_is_a_clear_usage_error(tmp_path, markers, monkeypatch):
    monkeypatch.setenv(forkserver.SWITCH, "maybe")
    with pytest.raises(BackendConfigError, match="LANE_FORKSERVER='maybe': use 1"):
        forkserver.wanted()
    spec = make_lane(tmp_path / "lane", {"a_first": "first"})
    env = {**os.environ, "LANE_HOME": str(tmp_path / "home"), "LANE_BACKEND": "local"}
    done = subprocess.run([sys.executable, "-c", CLI, "run", str(spec)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "LANE_FORKSERVER='maybe'" in done.stderr and "Traceback" not in done.stderr


def test_fallback_to_plain_subprocesses_when_the_zygote_cannot_start(tmp_path, markers, monkeypatch):
    def broken(self):
        raise OSError("no zygote today")

    monkeypatch.setattr(forkserver.ForkServer, "_launch", broken)
    _, result = run_lane(tmp_path, {"a_first": "first", "b_second": "second"}, jobs=2, fork_server=True)
    assert result.ok
    assert {note(markers, name)["ppid"] for name in ("first", "second")} == {os.getpid()}


def test_a_crashed_job_fails_its_output_only(tmp_path, markers):
    backend, result = run_lane(tmp_path, {"a_crash": "crash", "b_boom": "boom", "c_second": "second"}, jobs=2)
    closures = run_closures(backend, result.plan.run_id, result.plan.outputs)
    assert closures["a_crash"].state == "failed" and "exit code -9" in (closures["a_crash"].error or "")
    assert closures["b_boom"].state == "failed" and "boom: a bad batch" in (closures["b_boom"].error or "")
    assert closures["c_second"].state == "certified"
    assert note(markers, "crash")["ppid"] == note(markers, "second")["ppid"]  # the zygote outlived the crash


def test_a_job_over_its_timeout_is_killed(tmp_path, markers):
    backend, result = run_lane(tmp_path, {"a_slow": "slow"}, timeout=2)
    closure = run_closures(backend, result.plan.run_id, result.plan.outputs)["a_slow"]
    assert closure.state == "failed" and "timed out after 2" in (closure.error or "")
    assert not _alive(note(markers, "slow")["pid"])


def test_the_child_holds_the_output_lease_and_only_the_descriptors_it_needs(tmp_path, markers):
    spec = load_spec(make_lane(tmp_path / "lane", {"a_slow": "slow"}))
    backend = local_backend(tmp_path / "home")
    plan = plan_run(backend, spec)
    runner = LocalRunner(backend, spec, jobs=1, fork_server=started())
    import threading

    thread = threading.Thread(target=runner.execute, args=(plan,))
    thread.start()
    try:
        _wait_for(lambda: (markers / "slow.json").exists())
        job = note(markers, "slow")
        lease = tmp_path / "home" / ".locks" / plan.run_id / "a_slow.lock"
        held = {os.readlink(f"/proc/{job['pid']}/fd/{fd}") for fd in os.listdir(f"/proc/{job['pid']}/fd")}
        assert str(lease) in held  # the lease descriptor was passed to the forked child
        assert str(job["pid"]) in lease.read_text().split()  # and its pid noted next to the runner's
        assert output_busy(backend, plan.run_id, "a_slow") is True
        # stdin, stdout, stderr, the lease, and what the transform itself opened (the fd listing, the CSV) only
        assert len(job["fds"]) <= 6, job["fds"]
    finally:
        runner.interrupt("SIGTERM")
        thread.join(timeout=60)
    closure = run_closures(backend, plan.run_id, plan.outputs)["a_slow"]
    assert closure.state == "failed" and "interrupted by SIGTERM" in (closure.error or "")
    assert not _alive(job["pid"])


def test_a_job_dies_with_its_zygote_and_the_attempt_says_so(tmp_path, markers):
    spec = load_spec(make_lane(tmp_path / "lane", {"a_slow": "slow", "b_second": "second"}))
    backend = local_backend(tmp_path / "home")
    plan = plan_run(backend, spec)
    runner = LocalRunner(backend, spec, jobs=1, fork_server=started())
    import threading

    thread = threading.Thread(target=runner.execute, args=(plan,))
    thread.start()
    _wait_for(lambda: (markers / "slow.json").exists())
    job = note(markers, "slow")
    os.kill(job["ppid"], signal.SIGKILL)  # the zygote
    thread.join(timeout=120)
    assert not thread.is_alive()
    _wait_for(lambda: not _alive(job["pid"]), timeout=30)
    closures = run_closures(backend, plan.run_id, plan.outputs)
    assert closures["a_slow"].state == "failed" and "fork server" in (closures["a_slow"].error or "")
    assert closures["b_second"].state == "certified"  # the next job took the plain path
    assert note(markers, "second")["ppid"] == os.getpid()


def test_killing_the_runner_kills_the_zygote_and_its_jobs(tmp_path, markers):
    spec = make_lane(tmp_path / "lane", {"a_first": "first", "b_second": "second", "c_slow": "slow"})  # 3rd forks
    env = {**os.environ, "LANE_HOME": str(tmp_path / "home"), "LANE_BACKEND": "local"}
    runner = subprocess.Popen([sys.executable, "-c", CLI, "run", str(spec), "--jobs", "1"], env=env,
                              start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: (markers / "slow.json").exists())
        job = note(markers, "slow")
        assert job["ppid"] != runner.pid
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
        _wait_for(lambda: not _alive(job["ppid"]) and not _alive(job["pid"]), timeout=30)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)


def test_the_zygote_refuses_to_fork_with_threads_and_the_job_runs_plain(tmp_path, markers, monkeypatch):
    server = forkserver.ForkServer(preload=("batchlane.materialize", "_lane_thread_starter"))
    (tmp_path / "_lane_thread_starter.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    try:
        assert server.start() is False
        assert "threads" in (server.failure or "")
        assert server.spawn("batchlane.materialize", ["--help"], env=dict(os.environ), cwd=str(tmp_path)) is None
    finally:
        server.close()


def test_a_forked_job_reports_its_exit_code_and_stderr_like_a_subprocess(tmp_path, monkeypatch):
    (tmp_path / "_lane_exit_job.py").write_text(
        "import sys\n\ndef main(argv):\n    print('last words', argv, file=sys.stderr)\n    return int(argv[0])\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    server = forkserver.ForkServer(preload=("_lane_exit_job",))
    try:
        assert server.start(), server.failure
        for code in (0, 3):
            job = server.spawn("_lane_exit_job", [str(code)], env=dict(os.environ), cwd=str(tmp_path))
            assert job is not None
            _, stderr = job.communicate(timeout=60)
            assert job.returncode == code and stderr == f"last words ['{code}']\n"
    finally:
        server.close()
