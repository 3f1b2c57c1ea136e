"""``ritornello lambda-emulator APP.py`` runs each function in worker processes of its own
(cli/_lambda_workers.py), as real processes: a worker that dies mid-invoke is answered as
Lambda answers a runtime exit and replaced; one function's crash or state does not reach
another's; concurrent invokes run in as many workers; no worker outlives the emulator, not
even a ``kill -9``-ed one; an app that does not load stops the command.

The handler (written here) answers with its process id, so a test tells the workers apart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ritornello.cli._lambda_workers import WorkerPool, exit_reason
from tests.procs import ROOT, LambdaEmulatorProcess, http

APP = """
import os, signal, sys, time

COUNT = 0

def lambda_handler(event, context):
    global COUNT
    COUNT += 1
    mode = event.get("mode")
    if mode == "exit":
        os._exit(event.get("code", 1))
    if mode == "sys.exit":
        sys.exit(0)
    if mode == "signal":
        os.kill(os.getpid(), getattr(signal, event["signal"]))
    if mode == "sleep":
        time.sleep(event["s"])
    if mode == "setenv":
        os.environ["SET_BY"] = context.function_name
    return {
        "pid": os.getpid(),
        "count": COUNT,
        "function": context.function_name,
        "set_by": os.environ.get("SET_BY"),
    }
"""

INVOKE = "/2015-03-31/functions/{}/invocations"


def alive(pid: int) -> bool:
    """Whether any thread of process ``pid`` runs (a zombie, dead but not yet reaped, does not;
    its main thread alone can be a zombie while its other threads are still ending)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return False
    for task in tasks:
        try:
            stat = Path(f"/proc/{pid}/task/{task}/stat").read_text()
        except FileNotFoundError:
            continue
        if stat.rpartition(")")[2].split()[0] not in ("Z", "X"):
            return True
    return False


def wait_gone(pids: list[int], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        assert time.monotonic() < deadline, [p for p in pids if alive(p)]
        time.sleep(0.05)


def workers_of(emulator: LambdaEmulatorProcess) -> list[int]:
    """The emulator's worker processes (its children)."""
    assert emulator.proc is not None
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(emulator.proc.pid)], capture_output=True, text=True
    )
    return [int(p) for p in out.stdout.split()]


def invoke(
    emulator: LambdaEmulatorProcess, event: Any, name: str = "orders", timeout: float = 30
) -> tuple[int, Any, dict[str, str]]:
    url = f"http://127.0.0.1:{emulator.port}{INVOKE.format(name)}"
    return http("POST", url, event, timeout=timeout)


def start(tmp: Path) -> LambdaEmulatorProcess:
    (tmp / "app.py").write_text(APP)
    return LambdaEmulatorProcess(tmp, str(tmp / "app.py")).start()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LambdaEmulatorProcess]:
    proc = start(tmp_path_factory.mktemp("workers"))
    try:
        yield proc
    finally:
        proc.terminate()


def test_an_exit_mid_invoke_is_a_runtime_exit_error_and_a_fresh_worker_serves_next(
    emulator: LambdaEmulatorProcess,
) -> None:
    first = invoke(emulator, {}, "crashy")[1]
    other = invoke(emulator, {}, "steady")[1]
    assert invoke(emulator, {}, "crashy")[1]["pid"] == first["pid"]  # warm: the same worker
    status, body, headers = invoke(emulator, {"mode": "exit", "code": 1}, "crashy")
    assert status == 200 and headers["x-amz-function-error"] == "Unhandled", body
    request_id = headers["x-amzn-requestid"]
    assert body == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status 1",
    }
    assert not alive(first["pid"])
    fresh = invoke(emulator, {}, "crashy")[1]
    assert fresh["pid"] != first["pid"] and fresh["count"] == 1  # a cold start: new module state
    # the other function's worker was not touched
    assert invoke(emulator, {}, "steady")[1] == {**other, "count": 2}


def test_signals_and_a_clean_exit_are_worded_as_lambda_words_them(
    emulator: LambdaEmulatorProcess,
) -> None:
    _, body, headers = invoke(emulator, {"mode": "signal", "signal": "SIGKILL"}, "killed")
    assert headers["x-amz-function-error"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert body["errorMessage"].endswith("Error: Runtime exited with error: signal: killed")
    _, body, _ = invoke(emulator, {"mode": "signal", "signal": "SIGSEGV"}, "killed")
    assert body["errorMessage"].endswith("signal: segmentation fault"), body
    _, body, _ = invoke(emulator, {"mode": "sys.exit"}, "killed")
    assert body["errorMessage"].endswith("Error: Runtime exited without providing a reason")
    assert invoke(emulator, {}, "killed")[:2][0] == 200
    assert exit_reason(-signal.SIGTERM) == "signal: terminated"
    assert exit_reason(3) == "exit status 3"


def test_an_idle_worker_killed_from_outside_is_not_used(emulator: LambdaEmulatorProcess) -> None:
    pid = invoke(emulator, {}, "victim")[1]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_gone([pid])
    status, body, headers = invoke(emulator, {}, "victim")
    assert status == 200 and "x-amz-function-error" not in headers, body
    assert body["pid"] != pid and body["count"] == 1


def test_each_function_and_version_has_its_own_sandbox(emulator: LambdaEmulatorProcess) -> None:
    set_by = invoke(emulator, {"mode": "setenv"}, "writer")[1]
    assert set_by["set_by"] == "writer"
    assert invoke(emulator, {}, "writer")[1]["set_by"] == "writer"
    reader = invoke(emulator, {}, "reader")[1]
    assert reader["set_by"] is None and reader["pid"] != set_by["pid"]
    versioned = invoke(emulator, {}, "writer:7")[1]
    assert versioned["set_by"] is None and versioned["pid"] != set_by["pid"]


def test_concurrent_invokes_run_at_once_in_as_many_workers(
    emulator: LambdaEmulatorProcess,
) -> None:
    invoke(emulator, {}, "wide")  # one warm worker
    n = 4
    began = time.monotonic()
    with ThreadPoolExecutor(n) as pool:
        answers = list(
            pool.map(lambda _: invoke(emulator, {"mode": "sleep", "s": 1.5}, "wide"), range(n))
        )
    took = time.monotonic() - began
    assert all(status == 200 for status, _, _ in answers), answers
    pids = {body["pid"] for _, body, _ in answers}
    assert len(pids) == n  # one invoke per worker at a time
    assert took < 1.5 * 2, f"{n} concurrent invokes of 1.5 s took {took:.1f} s"
    # afterwards they are warm: the next invokes reuse them, no new worker
    again = {invoke(emulator, {}, "wide")[1]["pid"] for _ in range(3)}
    assert again <= pids


def test_sigterm_ends_every_worker(tmp_path: Path) -> None:
    emulator = start(tmp_path)
    for name in ("a", "b"):
        invoke(emulator, {}, name)
    workers = workers_of(emulator)
    assert len(workers) == 2
    # uvicorn ends gracefully, then re-raises SIGTERM: the lifelines end the workers either way
    assert emulator.terminate() in (0, -signal.SIGTERM)
    wait_gone(workers)


def kill9_mid_invoke(
    emulator: LambdaEmulatorProcess, busy: Callable[[], Any], workers: int
) -> None:
    """kill -9 of ``emulator`` once ``busy`` (an invoke that outlasts the test) runs and it has
    ``workers`` workers: none of them outlives it, and the invoke's connection ends with it."""
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(busy)
        deadline = time.monotonic() + 10
        while len(workers_of(emulator)) < workers:
            assert time.monotonic() < deadline, workers_of(emulator)
            time.sleep(0.05)
        pids = workers_of(emulator)
        emulator.kill9()
        wait_gone(pids)
        with pytest.raises(OSError):  # the connection ended with the emulator
            running.result(timeout=10)


def test_kill9_of_the_emulator_leaves_no_worker_even_mid_invoke(tmp_path: Path) -> None:
    emulator = start(tmp_path)
    invoke(emulator, {}, "idle")
    kill9_mid_invoke(emulator, lambda: invoke(emulator, {"mode": "sleep", "s": 60}, "busy", 90), 2)


def test_an_app_that_does_not_load_stops_the_command(tmp_path: Path) -> None:
    (tmp_path / "none.py").write_text("x = 1\n")
    (tmp_path / "broken.py").write_text("import no_such_module_here\n")
    for app, said in (
        ("none.py", "define a module-level `lambda_handler` or one Endpoint"),
        ("broken.py", "Unable to import module 'broken': ModuleNotFoundError"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "ritornello", "lambda-emulator", str(tmp_path / app)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
        )
        assert done.returncode == 1 and said in done.stderr, done.stderr


def test_an_invoke_past_the_function_timeout_kills_its_worker(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    pool = WorkerPool(str(tmp_path / "app.py"))
    pool.start()
    try:
        header = {
            "function_name": "slow",
            "function_version": "$LATEST",
            "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:slow",
            "aws_request_id": "r-1",
            "log_group_name": "",
            "log_stream_name": "",
            "timeout_ms": 500,
        }
        ok, out = pool.run(
            ("slow", "$LATEST"), header, json.dumps({"mode": "sleep", "s": 30}).encode(), 0.5
        )
        assert not ok and json.loads(out) == {
            "errorType": "Sandbox.Timedout",
            "errorMessage": "RequestId: r-1 Error: Task timed out after 0.50 seconds",
        }
        assert pool.pids() == []  # killed and forgotten
        ok, out = pool.run(("slow", "$LATEST"), header, b"{}", 5)
        assert ok and json.loads(out)["count"] == 1
        assert pool.started == 2
    finally:
        pids = pool.pids()
        pool.close()
        wait_gone(pids)


def test_idle_workers_past_the_cap_are_ended_oldest_first(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    pool = WorkerPool(str(tmp_path / "app.py"), max_idle=2)
    pool.start()
    header = {
        "function_version": "$LATEST",
        "invoked_function_arn": "arn",
        "aws_request_id": "r",
        "log_group_name": "",
        "log_stream_name": "",
        "timeout_ms": 5000,
    }
    try:
        pid = {}
        for name in ("f1", "f2", "f3"):
            ok, out = pool.run((name, "$LATEST"), {**header, "function_name": name}, b"{}", 5)
            assert ok, out
            pid[name] = json.loads(out)["pid"]
        wait_gone([pid["f1"]])  # the least recently used
        assert sorted(pool.pids()) == sorted([pid["f2"], pid["f3"]])
        _, out = pool.run(("f3", "$LATEST"), {**header, "function_name": "f3"}, b"{}", 5)
        assert json.loads(out)["pid"] == pid["f3"]
    finally:
        pids = pool.pids()
        pool.close()
        wait_gone(pids)
    assert os.environ.get("SET_BY") is None
