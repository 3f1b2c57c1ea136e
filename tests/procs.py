"""Real processes on loopback for integration tests: the orchestrator (``ritornello serve``) and
handler endpoints under uvicorn. Every process is started by the test and stopped by PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"process exited with {proc.returncode}:\n{out[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


def http(
    method: str,
    url: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, Any, dict[str, str]]:
    """(status, parsed JSON body or raw text, headers)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    hdrs = {"content-type": "application/json"} if data is not None else {}
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, payload, rh = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        status, payload, rh = exc.code, exc.read(), dict(exc.headers)
    try:
        return status, json.loads(payload) if payload else None, rh
    except ValueError:
        return status, payload.decode("utf-8", "replace"), rh


class Proc:
    """A child process with its output captured to a file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        fh = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.args, stdout=fh, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT
        )
        fh.close()
        return self

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def terminate(self, timeout: float = 15) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]


class Orchestrator(Proc):
    """``ritornello serve`` on free loopback ports."""

    def __init__(self, tmp: Path, store: str | None = None, **env: str) -> None:
        self.ingress_port = free_port()
        self.admin_port = free_port()
        self.store = store or f"sqlite:///{tmp / 'ritornello.db'}"
        args = [
            sys.executable,
            "-m",
            "ritornello",
            "serve",
            "--store",
            self.store,
            "--ingress-port",
            str(self.ingress_port),
            "--admin-port",
            str(self.admin_port),
        ]
        super().__init__(args, tmp / "orchestrator.log", env)

    def start(self) -> Orchestrator:
        super().start()
        wait_port(self.admin_port, self.proc)
        wait_port(self.ingress_port, self.proc)
        return self

    @property
    def ingress(self) -> str:
        return f"http://127.0.0.1:{self.ingress_port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"


class Endpoint(Proc):
    """A handler endpoint: ``uvicorn MODULE:app`` from a directory, on a free port."""

    def __init__(
        self, tmp: Path, app_dir: Path, module: str, *, http: str | None = None, **env: str
    ) -> None:
        """``http``: uvicorn's ``--http`` (a name or ``module:Class``), its default if None."""
        self.port = free_port()
        args = [
            sys.executable,
            "-m",
            "uvicorn",
            f"{module}:app",
            "--app-dir",
            str(app_dir),
            "--port",
            str(self.port),
            "--host",
            "127.0.0.1",
            "--log-level",
            "warning",
            *(["--http", http] if http else []),
        ]
        super().__init__(args, tmp / f"endpoint-{module}.log", env)

    def start(self) -> Endpoint:
        super().start()
        wait_port(self.port, self.proc)
        return self

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class LambdaEmulatorProcess(Proc):
    """``ritornello lambda-emulator APP [FLAGS]`` on a free loopback port (Lambda's Invoke API
    for APP's ``lambda_handler``); ``env`` goes to the function."""

    def __init__(self, tmp: Path, app: str, *flags: str, **env: str) -> None:
        self.port = free_port()
        args = [sys.executable, "-m", "ritornello", "lambda-emulator", app]
        args += ["--port", str(self.port), *flags]
        super().__init__(args, tmp / "lambda-emulator.log", env)

    def start(self) -> Self:
        super().start()
        wait_port(self.port, self.proc)
        return self


def aws_env(port: int, tmp: Path) -> dict[str, str]:
    """What points an orchestrator's boto3 at a Lambda emulator on ``port`` (dummy
    credentials, no AWS config) and keeps its retries short."""
    return {
        "AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "RITORNELLO_RETRY_MAX_MS": "200",
    }


@contextlib.contextmanager
def moto_process(tmp: Path) -> Iterator[dict[str, str]]:
    """moto's server (tests/moto_server.py) as its own process on a free loopback port; yields
    the AWS environment (dummy credentials, endpoints) that points boto3 at it."""
    port = free_port()
    proc = Proc([sys.executable, "-m", "tests.moto_server", str(port)], tmp / "moto.log").start()
    assert proc.proc is not None
    try:
        wait_port(port, proc.proc)
        url = f"http://127.0.0.1:{port}"
        yield {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_DYNAMODB": url,
            "AWS_ENDPOINT_URL_S3": url,
        }
    finally:
        proc.kill9()


def aws_client(service: str, endpoint_url: str, **options: Any) -> Any:
    """A boto3 client of ``service`` at ``endpoint_url`` (moto's server, or an ingress serving
    an AWS API) on loopback, in us-east-1 with the tests' dummy credentials; ``options``: more
    ``boto3.client`` arguments (``config=...``). boto3 is imported here, on first use."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        **options,
    )


def check_store(
    store: str, *flags: str, env: dict[str, str] | None = None, timeout: float = 120
) -> str:
    """``ritornello check [FLAGS] --store STORE`` as its own process (``env``: added to
    this one's, e.g. moto's): it must find the store clean; its report."""
    done = subprocess.run(
        [sys.executable, "-m", "ritornello", "check", *flags, "--store", store],
        env={**os.environ, **env} if env else None,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip()


def orchestrators(
    tmp: Path, store: str, aws: dict[str, str], names: list[str], **env: str
) -> list[Orchestrator]:
    """One ``ritornello serve`` per name on one shared store (``aws``: moto's environment),
    each in ``tmp/NAME`` with that node id, started in turn."""
    started = []
    for name in names:
        home = tmp / name
        home.mkdir()
        orch = Orchestrator(home, store=store, RITORNELLO_NODE_ID=name, **aws, **env)
        started.append(orch.start())
    return started


def cluster_view(orch: Orchestrator) -> dict[str, Any]:
    """``GET /cluster`` of ``orch`` (it must answer 200)."""
    status, body, _ = http("GET", f"{orch.admin}/cluster")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


def wait_until(predicate: Callable[[], object], within_s: float, what: str) -> None:
    """Poll ``predicate`` until it is true; AssertionError naming ``what`` after ``within_s``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"not reached within {within_s} s: {what}")


def store_init(url: str, env: dict[str, str]) -> None:
    """``ritornello store init --store URL`` as a process, with ``env`` (the AWS settings)."""
    done = subprocess.run(
        [sys.executable, "-m", "ritornello", "store", "init", "--store", url],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@contextlib.contextmanager
def uvicorn_thread(app: Any, **config: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a thread of this process, on a free loopback port; yields
    its base URL and stops the server on exit. ``config``: more ``uvicorn.Config`` options."""
    import uvicorn

    port = free_port()
    options: dict[str, Any] = {"log_level": "warning", **config}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


# --- processes by /proc (Linux): a process is (pid, start time), not a reusable number ---


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (state first), or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def identity(pid: int) -> tuple[int, str] | None:
    """(pid, start time) of a running process, or None if there is none."""
    fields = _stat(pid)
    return None if fields is None or fields[0] == "Z" else (pid, fields[19])


def alive(process: tuple[int, str]) -> bool:
    """The process still runs (a zombie is dead: it only waits to be reaped)."""
    return identity(process[0]) == process


def parent_pid(pid: int) -> int | None:
    fields = _stat(pid)
    return None if fields is None else int(fields[1])


def descendants(pid: int) -> list[tuple[int, str]]:
    """Every running process below ``pid`` (children, their children, ...)."""
    by_parent: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[0] != "Z":
                by_parent.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[tuple[int, str]] = []
    todo = [pid]
    while todo:
        for kid in by_parent.get(todo.pop(), ()):
            process = identity(kid)
            if process is not None:
                found.append(process)
                todo.append(kid)
    return found


def sqlite_writers(pid: int) -> list[tuple[int, str]]:
    """The SQLite writer processes (``ritornello.store._sqlite_process``) below ``pid``."""
    found = []
    for process in descendants(pid):
        try:
            cmdline = Path(f"/proc/{process[0]}/cmdline").read_bytes()
        except OSError:
            continue
        if b"ritornello.store._sqlite_process" in cmdline:
            found.append(process)
    return found
