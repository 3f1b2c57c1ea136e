"""Restate SDK endpoints as real processes for the Restate-protocol tests: ``apps/py_app.py``
(written with the Restate Python SDK) served by hypercorn (``apps/serve_py.py``) on a free
loopback port, over HTTP/1.1 (``restate_py_app``: the SDK announces REQUEST_RESPONSE) or h2c
(``restate_py_app_h2``: BIDI_STREAM). One process per test module, stopped by its PID."""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.procs import ROOT, Proc, free_port, wait_port

APPS = Path(__file__).resolve().parent / "apps"


class PyApp:
    """A running ``serve_py.py``: its base ``url`` (what to register), ``counts_path`` (the
    file its ``ctx.run`` closures append ``"{invocation_id} {step}"`` lines to) and ``log``."""

    def __init__(
        self, proc: Proc, port: int, counts_path: Path, http2: bool, *, tls: bool = False
    ) -> None:
        self.proc = proc
        self.port = port
        self.counts_path = counts_path
        self.http2 = http2
        self.tls = tls

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc.proc is not None
        return self.proc.proc.pid

    @property
    def log(self) -> Path:
        return self.proc.log

    def all_counts(self) -> collections.Counter[tuple[str, str]]:
        """How many times each (invocation id, step) ran, over every invocation so far."""
        found: collections.Counter[tuple[str, str]] = collections.Counter()
        with contextlib.suppress(FileNotFoundError):
            for line in self.counts_path.read_text(encoding="utf-8").splitlines():
                invocation_id, _, step = line.partition(" ")
                found[invocation_id, step] += 1
        return found

    def attempts(self, invocation_id: str) -> int:
        """How many times ``Greeter/ten``'s handler ran for ``invocation_id`` (each attempt,
        each replay)."""
        path = self.counts_path.with_name(self.counts_path.name.replace("counts", "attempts"))
        with contextlib.suppress(FileNotFoundError):
            return path.read_text(encoding="utf-8").splitlines().count(invocation_id)
        return 0

    def step_counts(self, invocation_id: str) -> dict[str, int]:
        """Step name -> how many times the invocation ``invocation_id`` ran it."""
        return {s: n for (i, s), n in sorted(self.all_counts().items()) if i == invocation_id}

    def output(self) -> str:
        """The tail of the process's output (hypercorn's and the SDK's logs)."""
        return self.proc.output()


def _healthy(proc: Proc, url: str, timeout: float) -> bool:
    """Wait until ``GET url/health`` answers 200: True, or False if the process exited first."""
    assert proc.proc is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    proc.terminate()
    raise TimeoutError(f"{url}/health did not answer within {timeout} s:\n{proc.output()}")


@contextlib.contextmanager
def py_app(
    tmp: Path,
    *,
    http2: bool = False,
    both: bool = False,
    port: int | None = None,
    tls: tuple[Path, Path] | None = None,
    **env: str,
) -> Iterator[PyApp]:
    """``apps/serve_py.py`` (``--http2`` if ``http2``) as a process on a free loopback port, in
    ``tmp``, with ``env`` added to its environment; yields once ``/health`` answers and stops it
    by PID on exit (``both``: HTTP/1.1 and h2c on one port, as hypercorn serves by default). A
    start that loses its port to another process is retried on a new one
    (unless ``port`` is given: a restart where the last one listened)."""
    name = "py-app-h2" if http2 else "py-app"
    counts = tmp / f"{name}-counts.txt"
    pythonpath = [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    environ = {
        "PYTHONPATH": os.pathsep.join(p for p in pythonpath if p),
        "PYTHONUNBUFFERED": "1",
        "RESTATE_APP_COUNTS": str(counts),
        "RESTATE_APP_ATTEMPTS": str(tmp / f"{name}-attempts.txt"),
        **env,
    }

    def command(port: int) -> list[str]:
        return [
            sys.executable,
            str(APPS / "serve_py.py"),
            str(port),
            *(["--http2"] if http2 else []),
            *(["--both"] if both else []),
            *(["--tls", str(tls[0]), str(tls[1])] if tls else []),
        ]

    # urllib does not trust the test's certificate: over TLS, wait for the port
    with _serve(tmp, name, command, environ, counts, http2, tls=tls is not None, port=port) as app:
        yield app


@contextlib.contextmanager
def _serve(
    tmp: Path,
    name: str,
    command: Callable[[int], list[str]],
    env: dict[str, str],
    counts: Path,
    http2: bool,
    *,
    tls: bool = False,
    port: int | None = None,
    health: bool = True,
) -> Iterator[PyApp]:
    """``command(port)`` as a process on a free loopback port (``port``: that one), logged to
    ``tmp/NAME.log``; yields once it answers ``/health`` (without ``health`` or over ``tls``:
    once its port listens) and stops it by PID on exit. A start that loses its port to another
    process is retried on a new one, three times in all."""
    for _ in range(3):
        at = port or free_port()
        proc = Proc(command(at), tmp / f"{name}.log", env).start()
        app = PyApp(proc, at, counts, http2, tls=tls)
        try:
            if tls or not health:
                wait_port(at, proc.proc, timeout=30)
                break
            if _healthy(proc, app.url, timeout=30):
                break
        except BaseException:
            proc.terminate()
            raise
    else:
        raise RuntimeError(f"{name} did not start:\n{proc.output()}")
    try:
        yield app
    finally:
        proc.terminate()


@pytest.fixture(scope="module")
def restate_py_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PyApp]:
    """The SDK test app over HTTP/1.1 (discovery says REQUEST_RESPONSE; HTTP/2 gets 505)."""
    with py_app(tmp_path_factory.mktemp("restate-py-app")) as app:
        yield app


@pytest.fixture(scope="module")
def restate_py_app_h2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PyApp]:
    """The SDK test app over h2c, prior knowledge (discovery says BIDI_STREAM; HTTP/1.1 gets 505
    but on ``/health``)."""
    with py_app(tmp_path_factory.mktemp("restate-py-app-h2"), http2=True) as app:
        yield app


TS_APP = Path(__file__).resolve().parent / "ts"


@contextlib.contextmanager
def ts_app(tmp: Path, *, http2: bool = False) -> Iterator[PyApp]:
    """``ts/app.mjs`` (the Restate TypeScript SDK, ``@restatedev/restate-sdk`` 1.17.x) under
    ``node`` on a free loopback port: over HTTP/1.1 (``createEndpointHandler`` on Node's
    ``http`` server: REQUEST_RESPONSE), or with ``http2`` over h2c only (Node's ``http2``
    server, as the SDK's ``serve()``: BIDI_STREAM). The same interface as ``py_app``'s apps.
    Without ``node`` or the npm packages (``make install`` runs ``npm ci --prefix
    tests/restate/ts``) the tests are skipped locally and fail in CI (``CI`` set)."""
    import shutil

    node = shutil.which("node") or ""
    why = ""
    if not node:
        why = "node is not installed"
    elif not (TS_APP / "node_modules" / "@restatedev" / "restate-sdk").is_dir():
        why = "the npm packages are missing: npm ci --prefix tests/restate/ts"
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI must have them: make install installs them)")
        pytest.skip(why)
    name = "ts-app-h2" if http2 else "ts-app"
    counts = tmp / f"{name}-counts.txt"

    def command(port: int) -> list[str]:
        return [node, str(TS_APP / "app.mjs"), str(port), *(["--http2"] if http2 else [])]

    # HTTP/1.1 gets nothing from an h2c-only server: then wait for the port
    env = {"RESTATE_APP_COUNTS": str(counts)}
    with _serve(tmp, name, command, env, counts, http2, health=not http2) as app:
        yield app


@pytest.fixture(scope="module")
def restate_ts_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PyApp]:
    """``ts_app`` over HTTP/1.1 (REQUEST_RESPONSE)."""
    with ts_app(tmp_path_factory.mktemp("restate-ts-app")) as app:
        yield app


@pytest.fixture(scope="module")
def restate_ts_app_h2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PyApp]:
    """``ts_app`` over h2c only (BIDI_STREAM), as ``restate.serve()`` serves."""
    with ts_app(tmp_path_factory.mktemp("restate-ts-app-h2"), http2=True) as app:
        yield app
