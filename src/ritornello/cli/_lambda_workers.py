"""The emulator's sandboxes: a worker process per function (``_lambda_worker``), as Lambda runs
each function in execution environments of its own.

* **One invoke per worker at a time.** An invoke of function F (its name and version) takes an
  idle worker of F, or else starts a new one (a cold start: a fresh ``python -m
  ritornello.cli._lambda_worker APP.py`` importing the app), so concurrent invokes of F run in
  as many workers, as Lambda scales out, and never queue behind each other. A worker that
  served F serves only F (its module state, its ``os.environ``, are F's).
* **A worker that dies mid-invoke** (``os._exit``, ``SystemExit``, a segfault, a kill) is
  forgotten, and the invoke is answered as Lambda answers a runtime exit: a
  ``Runtime.ExitError`` function error ("RequestId: ID Error: Runtime exited with error: exit
  status 1"; "signal: killed" for a signal, as Lambda's Go-written runtime interface names it).
  The next invoke of F gets another worker. One found gone before the request reached it
  (killed while idle) is forgotten and the invoke runs on another. An invoke past the function
  timeout kills its worker and is a ``Sandbox.Timedout`` function error.
* **Idle workers** are kept warm, at most ``max_idle`` of them over all functions: past that
  the least recently used one is ended (as Lambda reclaims idle environments).
* **The first worker** is started by ``start()`` before the emulator serves: the app is
  imported once up front, so an app that does not load stops the command with its error; that
  worker is then the first cold start's, whichever function needs one first.
* **No orphans.** Each worker's socket is its lifeline: when the emulator closes it
  (``close()``, on SIGTERM/SIGINT) or dies (``kill -9``: the kernel closes it), the worker's
  reader thread sees EOF and ends the worker at once, mid-invoke too. The emulator's end of
  each socket is not inherited by other children.

Everything here is blocking, called on the emulator's invoke threads; one lock guards the idle
lists.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from collections import OrderedDict
from typing import Any

from ritornello.cli._lambda_runtime import runtime_error
from ritornello.cli._lambda_worker import recv_frame, send_frame

#: A function's sandbox identity: (function name, version or alias).
FunctionKey = tuple[str, str]

#: Signal names as Lambda's runtime interface (Go's os/exec) prints them in a runtime exit.
_SIGNALS = {
    signal.SIGKILL: "killed",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGTERM: "terminated",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "bus error",
    signal.SIGINT: "interrupt",
    signal.SIGHUP: "hangup",
    signal.SIGILL: "illegal instruction",
    signal.SIGFPE: "floating point exception",
    signal.SIGPIPE: "broken pipe",
    signal.SIGQUIT: "quit",
}


class WorkerInitError(Exception):
    """A worker could not load the app (``kind``: Lambda's errorType for it)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def exit_reason(returncode: int) -> str:
    """How Lambda words a runtime's exit status in a ``Runtime.ExitError``."""
    if returncode < 0:
        try:
            name = _SIGNALS.get(signal.Signals(-returncode)) or f"signal {-returncode}"
        except ValueError:
            name = f"signal {-returncode}"
        return f"signal: {name}"
    return f"exit status {returncode}"


class Worker:
    """One worker process and the emulator's end of its socket."""

    def __init__(self, app_path: str) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ritornello.cli._lambda_worker",
                    app_path,
                    str(theirs.fileno()),
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        self.key: FunctionKey | None = None

    def ready(self) -> None:
        """Wait until the app is imported; ``WorkerInitError`` if it did not load."""
        frame = recv_frame(self.sock)
        if frame is None:
            code = self.proc.wait()
            raise WorkerInitError(
                "Runtime.ExitError", f"Runtime exited with error: {exit_reason(code)}"
            )
        header, _ = frame
        if "init_error" in header:
            self.close()
            raise WorkerInitError(str(header.get("type")), str(header["init_error"]))

    def invoke(
        self, header: dict[str, Any], body: bytes, timeout_s: float
    ) -> tuple[bool, bytes, bool] | None:
        """Run one invoke: (succeeded, the answer's bytes, whether the worker is still usable);
        None if the worker was gone before the request reached it (another one can run it)."""
        request_id = header["aws_request_id"]
        try:
            send_frame(self.sock, header, body)
        except OSError:
            self.kill()
            return None
        try:
            self.sock.settimeout(timeout_s)
            frame = recv_frame(self.sock)
        except TimeoutError:
            self.kill()
            message = f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds"
            return False, runtime_error("Sandbox.Timedout", message), False
        except OSError:  # the worker died, the connection with it reset
            frame = None
        finally:
            if self.sock.fileno() >= 0:
                self.sock.settimeout(None)
        if frame is None:
            code = self.proc.wait()
            reason = (
                "Runtime exited without providing a reason"
                if code == 0
                else f"Runtime exited with error: {exit_reason(code)}"
            )
            self.sock.close()
            return (
                False,
                runtime_error("Runtime.ExitError", f"RequestId: {request_id} Error: {reason}"),
                False,
            )
        answer, out = frame
        return bool(answer.get("ok")), out, True

    def close(self, wait_s: float = 2.0) -> None:
        """End the worker: close its lifeline (it exits at EOF), kill it if it lingers."""
        self.sock.close()
        try:
            self.proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.sock.close()


class WorkerPool:
    """The workers of every function of one app (see the module docstring)."""

    def __init__(self, app_path: str, *, max_idle: int = 16) -> None:
        self.app_path = app_path
        self.max_idle = max_idle
        #: cold starts so far (workers started for an invoke, the first one included)
        self.started = 0
        self._lock = threading.Lock()
        self._idle: dict[FunctionKey, list[Worker]] = {}
        self._lru: OrderedDict[Worker, None] = OrderedDict()  # every idle worker, oldest first
        self._spare: Worker | None = None
        self._live: set[Worker] = set()
        self._closed = False

    def start(self) -> None:
        """Start the first worker (the app imported): ``WorkerInitError`` if it does not load."""
        worker = self._new()
        worker.ready()
        with self._lock:
            self._spare = worker

    def pids(self) -> list[int]:
        """The live workers' process ids."""
        with self._lock:
            return [w.proc.pid for w in self._live]

    def run(
        self, key: FunctionKey, header: dict[str, Any], body: bytes, timeout_s: float
    ) -> tuple[bool, bytes]:
        """One invoke of function ``key`` on a worker of its own: (succeeded, answer bytes)."""
        while True:
            try:
                worker = self._take(key)
            except WorkerInitError as exc:
                return False, runtime_error(exc.kind, exc.message)
            answer = worker.invoke(header, body, timeout_s)
            if answer is not None and answer[2]:
                self._give_back(worker)
            else:
                with self._lock:
                    self._live.discard(worker)
            if answer is not None:
                return answer[0], answer[1]

    def close(self) -> None:
        """End every worker (those mid-invoke too); the pool serves no more."""
        with self._lock:
            self._closed = True
            workers = list(self._live)
            self._live.clear()
            self._idle.clear()
            self._lru.clear()
            self._spare = None
        for worker in workers:  # all at once: each exits at EOF (an invoke waiting on one
            try:  # wakes up to it too)
                worker.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for worker in workers:
            worker.close()

    def _new(self) -> Worker:
        worker = Worker(self.app_path)
        with self._lock:
            if self._closed:
                worker.kill()
                raise WorkerInitError("Runtime.ExitError", "the emulator is shutting down")
            self._live.add(worker)
        return worker

    def _take(self, key: FunctionKey) -> Worker:
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                worker = idle.pop()
                del self._lru[worker]
                if worker.proc.poll() is None:
                    return worker
                self._live.discard(worker)  # it died idle (killed from outside): not used
            if self._spare is not None:
                worker, self._spare = self._spare, None
                worker.key = key
                self.started += 1
                return worker
        worker = self._new()
        try:
            worker.ready()
        except WorkerInitError:
            with self._lock:
                self._live.discard(worker)
            raise
        worker.key = key
        with self._lock:
            self.started += 1
        return worker

    def _give_back(self, worker: Worker) -> None:
        evicted: list[Worker] = []
        with self._lock:
            if self._closed:
                evicted.append(worker)
            else:
                assert worker.key is not None
                self._idle.setdefault(worker.key, []).append(worker)
                self._lru[worker] = None
                while len(self._lru) > self.max_idle:
                    oldest, _ = self._lru.popitem(last=False)
                    assert oldest.key is not None
                    self._idle[oldest.key].remove(oldest)
                    self._live.discard(oldest)
                    evicted.append(oldest)
        for old in evicted:
            old.close()
