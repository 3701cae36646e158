"""Fork server for the local runner: one warm zygote per run, one fresh forked process per job.

A cold job pays an interpreter start and the pandas/pyarrow imports (about 0.4 s) before it does any work.
The zygote pays that once: `lane run`/`lane rerun` launch it before their own imports (``prelaunch``), so its
imports overlap the command's start-up and planning (a ``LocalRunner`` used from Python launches it with a run's
second job); it imports the data libraries and the materializer (never the lane's own code), then forks one child
per job. Before each fork it prepares what every job would
repeat (``batchlane.materialize.prefork``: the parsed spec, re-verified by digest in the child). Each child is a new process, as isolated as a cold
one: it loads the lane's transform itself, after the fork, and whatever it changes dies with it.

What a forked job keeps from the plain subprocess (``subprocess.Popen`` of ``python -m MODULE``):

- it dies with the runner: the zygote gets SIGKILL when the runner dies and each child gets SIGKILL when the
  zygote dies (``PR_SET_PDEATHSIG``, with a parent check against the race), so ``kill -9`` of the runner
  ends every job; the runner's SIGTERM/Ctrl-C stop reaches each child through its pidfd (no pid reuse race);
- its exit code (negative: the signal that ended it), stderr through a pipe the runner reads, stdout to
  /dev/null, the runner's stdin; the environment, working directory and ``sys.path[0]`` the runner gives it;
- the descriptors it must hold (the output lease), passed with ``SCM_RIGHTS`` and kept at their number;
  every other descriptor of the zygote is closed in the child.

Forking a process with threads is unsafe, so the zygote is single-threaded when it forks: pyarrow's jemalloc
background thread is turned off before it loads, one throw-away fork makes OpenBLAS park its thread pool, and
the zygote checks ``/proc/self/task`` before every fork (with another thread alive it refuses, and the runner
falls back). The runner falls back to the plain subprocess when fork is unavailable (not Linux), when
``LANE_FORKSERVER=0``, when the zygote cannot start, and after the zygote died.

Differences a job can see, by construction: the modules the zygote preloaded are already imported, string
hashing (``PYTHONHASHSEED``) is the zygote's for every child, and interpreter-level start-up options are the
runner's. NumPy's global random state is reseeded in each child (``random`` reseeds itself at fork).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

SWITCH = "LANE_FORKSERVER"
PRELOAD = ("numpy", "pandas", "pyarrow", "pyarrow.parquet", "pyarrow.compute", "pyarrow.pandas_compat",
           "batchlane.materialize", "batchlane.backends", "batchlane.stores.local")
START_TIMEOUT_S = 120.0
_MESSAGE_BYTES = 1 << 20   # one request: module, argv, environment, working directory
_PR_SET_PDEATHSIG = 1
_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def prelaunch() -> ForkServer | None:
    """A fork server launched now, in the background, if jobs will fork (``wanted``); None otherwise, also when
    ``$LANE_FORKSERVER`` is invalid (the command reports that itself, as a usage error). The CLI calls this before
    it imports anything else, so the zygote's imports overlap the command's own start, loading and planning."""
    try:
        if not wanted():
            return None
    except ValueError:
        return None
    server = ForkServer()
    server.start(wait=False)
    return server


def supported() -> str | None:
    """None when this platform can run the fork server, otherwise why not."""
    if not sys.platform.startswith("linux"):
        return f"the fork server needs Linux (PR_SET_PDEATHSIG, pidfd); this is {sys.platform}"
    missing = [name for name, present in (("os.fork", hasattr(os, "fork")), ("os.pidfd_open", hasattr(os, "pidfd_open")),
                                          ("socket.send_fds", hasattr(socket, "send_fds")),
                                          ("signal.pidfd_send_signal", hasattr(signal, "pidfd_send_signal")))
               if not present]
    return f"the fork server needs {', '.join(missing)}" if missing else None


def wanted(setting: bool | None = None) -> bool:
    """Should the runner use a fork server? An explicit setting wins, then ``$LANE_FORKSERVER``, then: if supported."""
    if setting is None:
        raw = os.environ.get(SWITCH, "").strip().lower()
        if raw in _OFF:
            return False
        if raw and raw not in _ON:
            from batchlane.backends import BackendConfigError  # imported late: `lane run` imports this module first

            raise BackendConfigError(f"{SWITCH}={os.environ[SWITCH]!r}: use 1 (fork jobs from a warm process, "
                                     "the default where supported) or 0 (a fresh interpreter per job)")
        setting = True
    return setting and supported() is None


def die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this process when ``parent`` dies; exit at once if it already has."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


# --------------------------------------------------------------------------------------------- runner side


class ForkedJob:
    """A job forked by the zygote, driven like ``subprocess.Popen``: pid, terminate, kill, communicate."""

    def __init__(self, args: list[str], pid: int, pidfd: int, reply: socket.socket, stderr: int, server_pid: int):
        self.args, self.pid = args, pid
        self.returncode: int | None = None
        self._pidfd, self._reply, self._stderr, self._server_pid = pidfd, reply, stderr, server_pid
        self._chunks: list[bytes] = []
        self._stderr_open, self._reply_open = True, True
        self.server_lost = False

    def _signal(self, number: int) -> None:
        if self._pidfd < 0 or self.returncode is not None:
            return
        try:
            signal.pidfd_send_signal(self._pidfd, number)
        except ProcessLookupError:  # already exited
            pass

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[None, str]:
        """Read stderr to its end and wait for the exit code; ``subprocess.TimeoutExpired`` after ``timeout``."""
        import selectors

        deadline = None if timeout is None else time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            if self._stderr_open:
                selector.register(self._stderr, selectors.EVENT_READ, "stderr")
            if self._reply_open:
                selector.register(self._reply, selectors.EVENT_READ, "reply")
            while self._stderr_open or self._reply_open:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
                for key, _ in selector.select(remaining):
                    if key.data == "stderr":
                        chunk = os.read(self._stderr, 65536)
                        if chunk:
                            self._chunks.append(chunk)
                            continue
                        self._stderr_open = False
                    else:
                        self._read_reply()
                        if self._reply_open:
                            continue
                    selector.unregister(key.fileobj)
        self._release()
        text = b"".join(self._chunks).decode(errors="replace")
        if self.server_lost:
            text += (f"\nthe fork server (pid {self._server_pid}) exited while the job ran; "
                     "the job was killed with it\n")
        return None, text

    def _read_reply(self) -> None:
        try:
            message = self._reply.recv(4096)
        except OSError:
            message = b""
        if message:
            self.returncode = int(json.loads(message)["exit"])
        elif self.returncode is None:  # the zygote died: its children got SIGKILL (PR_SET_PDEATHSIG)
            self._signal(signal.SIGKILL)  # (and once more from here, should that have raced)
            self.server_lost, self.returncode = True, -signal.SIGKILL
        self._reply_open = self.returncode is None and bool(message)

    def poll(self) -> int | None:
        return self.returncode

    def _release(self) -> None:
        for fd in (self._pidfd, self._stderr):
            if fd >= 0:
                os.close(fd)
        self._pidfd = self._stderr = -1
        self._reply.close()

    def __del__(self) -> None:  # a job abandoned mid-way (an exception in the runner) leaks no descriptor
        try:
            if self._stderr >= 0 or self._pidfd >= 0:
                self._release()
        except (OSError, AttributeError):
            pass


class ForkServer:
    """The runner's handle on its zygote; thread-safe.

    ``start(wait=False)`` launches the zygote in the background (the runner does that with a run's second job,
    which takes the plain path meanwhile: see ``batchlane.runner``); until it is ready, ``spawn`` returns None. ``spawn`` also returns None when the zygote could not start, died, or refused to fork;
    ``failure`` then says why. ``close`` stops it."""

    def __init__(self, preload: Sequence[str] = PRELOAD, start_timeout: float = START_TIMEOUT_S):
        self.preload, self.start_timeout = tuple(preload), start_timeout
        self.failure: str | None = None
        self.pid: int | None = None
        self._lock = threading.Lock()
        self._control: socket.socket | None = None
        self._process: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None
        self._keeper: threading.Thread | None = None
        self._ready = threading.Event()    # set once the zygote is ready or failed to start
        self._closed = threading.Event()

    def start(self, wait: bool = True) -> bool:
        """Launch the zygote unless launched; with ``wait``, until it is ready. True when jobs can be forked now."""
        with self._lock:
            if self._keeper is None and self.failure is None:
                self._closed.clear()
                self._ready.clear()
                # PR_SET_PDEATHSIG fires when the *thread* that started the zygote exits, so a keeper thread that
                # lives as long as this server starts it (not whichever pool thread asked first)
                self._keeper = threading.Thread(target=self._keep, name="lane-forkserver", daemon=True)
                self._keeper.start()
        if wait:
            self._ready.wait()
        return self.ready

    @property
    def launched(self) -> bool:
        return self._keeper is not None

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self.failure is None and self._control is not None

    def _keep(self) -> None:
        try:
            self._launch()
        except Exception as exc:  # jobs take the plain path; say why
            with self._lock:
                self.failure = self.failure or f"the fork server did not start: {type(exc).__name__}: {exc}"
                self._stop()
        finally:
            self._ready.set()
        self._closed.wait()

    def _launch(self) -> None:
        import tempfile

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        env.setdefault("JE_ARROW_MALLOC_CONF", "background_thread:false")  # no jemalloc thread in the zygote
        command = [sys.executable, "-m", "batchlane.forkserver", "--control-fd", str(theirs.fileno()),
                   "--parent-pid", str(os.getpid()), "--preload", ",".join(self.preload)]
        with self._lock:
            if self._closed.is_set():
                raise RuntimeError("closed before it started")
            self._log = tempfile.TemporaryFile(prefix="lane-forkserver-")
            try:
                self._process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                                 stdout=subprocess.DEVNULL, stderr=self._log,
                                                 pass_fds=(theirs.fileno(),))
            finally:
                theirs.close()
        ours.settimeout(self.start_timeout)
        try:
            message = ours.recv(4096)
        except TimeoutError:
            message, reason = b"", f"not ready after {self.start_timeout:.0f}s"
        except OSError as exc:
            message, reason = b"", str(exc)
        else:
            reason = "it exited while starting"
        ready = json.loads(message) if message else {"error": reason}
        with self._lock:
            if "error" in ready or self._closed.is_set():
                ours.close()
                raise RuntimeError(f"{ready.get('error', 'closed while starting')}{self._log_tail()}")
            ours.settimeout(None)
            self._control, self.pid = ours, int(ready["pid"])

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").strip().splitlines()
        return f" ({lines[-1]})" if lines else ""

    def spawn(self, module: str, argv: list[str], *, env: dict[str, str], cwd: str,
              pass_fds: Sequence[int] = ()) -> ForkedJob | None:
        """Fork ``module.main(argv)`` in a fresh child of the zygote; None: take the plain subprocess path."""
        with self._lock:
            if not self.ready or self._control is None:
                return None
            control, server_pid = self._control, self.pid or 0
            reply, reply_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            stderr_read, stderr_write = os.pipe()
            names, fds = ["reply", "stderr"], [reply_theirs.fileno(), stderr_write]
            if _valid_fd(0):
                names.append("stdin")
                fds.append(0)
            names += [f"keep:{fd}" for fd in pass_fds]
            fds += list(pass_fds)
            request = {"module": module, "argv": argv, "env": env, "cwd": cwd, "fds": names}
            try:
                socket.send_fds(control, [json.dumps(request).encode()], fds)
            except OSError as exc:
                self.failure = f"the fork server stopped taking jobs: {exc}"
                reply.close()
                os.close(stderr_read)
                return None
            finally:
                reply_theirs.close()
                os.close(stderr_write)
        try:
            message, received, _, _ = socket.recv_fds(reply, 4096, 1)
        except OSError:
            message, received = b"", []
        answer = json.loads(message) if message else {"error": "the fork server exited before forking the job"}
        if "error" in answer or not received:
            for fd in received:
                os.close(fd)
            reply.close()
            os.close(stderr_read)
            self.failure = self.failure or str(answer.get("error", "the fork server sent no pidfd"))
            return None
        return ForkedJob([module, *argv], int(answer["pid"]), received[0], reply, stderr_read, server_pid)

    def _stop(self) -> None:
        """Under the lock: end the zygote (still importing: at once) and release what it held."""
        if self._control is not None:
            self._control.close()  # the zygote reads end-of-file and exits
            self._control = None
        if self._process is not None:
            if not self._ready.is_set():
                self._process.kill()  # still importing: nothing to finish
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """Stop the zygote (its running children, if any, get SIGKILL); a later ``start`` launches a new one."""
        with self._lock:
            self._closed.set()
            self._stop()
            keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.join(timeout=30)
        self.pid, self.failure = None, None
        self._ready.clear()


def _valid_fd(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


# ---------------------------------------------------------------------------------------------- zygote side


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _preload(modules: Sequence[str]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional library: the job imports (or misses) it itself
            continue
    # OpenBLAS starts its thread pool at import and parks it before a fork (pthread_atfork); one throw-away
    # fork leaves the zygote with its main thread only.
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _child(request: dict[str, Any], fds: dict[str, int], zygote: int) -> None:
    """In the forked child: become the job's process, run ``module.main(argv)``, exit with its code."""
    import traceback

    code = 1
    try:
        die_with_parent(zygote)
        signal.set_wakeup_fd(-1)
        for number in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(number, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(fds.get("stdin", devnull), 0)
        os.dup2(devnull, 1)
        os.dup2(fds["stderr"], 2)
        _place_kept(fds)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        if sys.path:
            sys.path[0] = request["cwd"]  # what `python -m` puts first
        module = importlib.import_module(request["module"])
        sys.argv = [getattr(module, "__file__", request["module"]), *request["argv"]]
        random = sys.modules.get("numpy.random")
        if random is not None:
            random.seed()  # NumPy's global generator was seeded once, in the zygote
        code = _exit_code(module.main(request["argv"]))
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:  # like a cold interpreter: the traceback, then die of SIGINT
        traceback.print_exc()
        _finish()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:
        traceback.print_exc()
        code = 1
    _finish()
    os._exit(code)


def _place_kept(fds: dict[str, int]) -> None:
    """Move each passed descriptor to the number it has in the runner (``keep:N``); close every other one."""
    import fcntl

    wanted = {int(name[5:]): fd for name, fd in fds.items() if name.startswith("keep:")}
    base = max([*wanted, *wanted.values(), 2]) + 1
    parked = {target: fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, base) for target, fd in wanted.items()}
    for target, fd in parked.items():
        os.dup2(fd, target, inheritable=True)  # like Popen(pass_fds=...): inheritable in the job
    limit = os.sysconf("SC_OPEN_MAX")
    low = 0
    for fd in [*sorted({0, 1, 2, *wanted}), limit if limit > 0 else 1 << 20]:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1


def _finish() -> None:
    """What interpreter shutdown would do: wait for non-daemon threads, run atexit handlers, flush."""
    import traceback

    try:
        shutdown = getattr(threading, "_shutdown", None)
        if shutdown is not None:
            shutdown()
        import atexit

        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass


def _serve(control: socket.socket) -> None:
    import selectors

    zygote = os.getpid()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so SIGCHLD writes to the wakeup pipe
    signal.set_wakeup_fd(wake_write)
    running: dict[int, socket.socket] = {}
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ, "control")
    selector.register(wake_read, selectors.EVENT_READ, "child")
    while True:
        for key, _ in selector.select():
            if key.data == "child":
                try:
                    while os.read(wake_read, 4096):
                        pass
                except BlockingIOError:
                    pass
                _reap(running)
                continue
            message, passed, flags, _ = socket.recv_fds(control, _MESSAGE_BYTES, 64)
            if not message:  # the runner is done (or gone): running children get SIGKILL as we exit
                return
            names = json.loads(message)["fds"] if not flags & socket.MSG_TRUNC else []
            fds = dict(zip(names, passed, strict=False))
            reply = socket.socket(fileno=fds.pop("reply")) if "reply" in fds else None
            if reply is None:
                for fd in passed:
                    os.close(fd)
                continue
            pid = _fork_job(json.loads(message), fds, reply, zygote, running)
            for fd in fds.values():
                os.close(fd)
            if pid is None:
                reply.close()


def _fork_job(request: dict[str, Any], fds: dict[str, int], reply: socket.socket, zygote: int,
              running: dict[int, socket.socket]) -> int | None:
    try:
        module = importlib.import_module(request["module"])
        prefork = getattr(module, "prefork", None)
        if prefork is not None:  # shared, read-only preparation (e.g. the parsed spec, re-verified in the child)
            try:
                prefork(request["argv"])
            except Exception:  # the child does the same work and reports the problem
                pass
        threads = _threads()
        if threads != 1:
            raise RuntimeError(f"the fork server has {threads} threads; forking it would be unsafe")
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
    except Exception as exc:
        _send(reply, {"error": f"{type(exc).__name__}: {exc}"})
        return None
    if pid == 0:
        _child(request, fds, zygote)
    try:
        pidfd = os.pidfd_open(pid)
        try:
            socket.send_fds(reply, [json.dumps({"pid": pid}).encode()], [pidfd])
        finally:
            os.close(pidfd)
    except OSError:  # the runner stopped waiting: nobody would see this job's end
        os.kill(pid, signal.SIGKILL)
    running[pid] = reply
    return pid


def _send(reply: socket.socket, answer: dict[str, Any]) -> None:
    try:
        reply.send(json.dumps(answer).encode())
    except OSError:
        pass


def _reap(running: dict[int, socket.socket]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        reply = running.pop(pid, None)
        if reply is not None:
            _send(reply, {"exit": os.waitstatus_to_exitcode(status)})
            reply.close()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m batchlane.forkserver",
                                     description="The local runner's zygote (started by the runner, not by hand).")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--preload", default=",".join(PRELOAD))
    args = parser.parse_args(argv)
    die_with_parent(args.parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle; it stops the jobs
    control = socket.socket(fileno=args.control_fd)
    try:
        _preload([name for name in args.preload.split(",") if name])
        threads = _threads()
        if threads != 1:
            control.send(json.dumps({"error": f"{threads} threads after preloading; forking would be unsafe"})
                         .encode())
            return 1
        control.send(json.dumps({"pid": os.getpid()}).encode())
    except Exception as exc:
        _send(control, {"error": f"{type(exc).__name__}: {exc}"})
        return 1
    _serve(control)
    return 0


if __name__ == "__main__":
    sys.exit(main())
