"""Starting ``ritornello serve``: the plain start without typer, what still goes through typer,
and the admin app built on first use."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from ritornello.cli import plain_serve
from ritornello.cli._serve import AdminApp
from tests.procs import ROOT, Orchestrator, free_port, http


def test_plain_serve_takes_only_serves_own_options() -> None:
    assert plain_serve(["serve"]) == {}
    assert plain_serve(
        ["serve", "--store", "sqlite:///x.db", "--ingress-port=8081", "--admin-port", "9071"]
    ) == {"store": "sqlite:///x.db", "ingress_port": 8081, "admin_port": 9071}
    assert plain_serve(["serve", "--config", "r.toml", "--host=0.0.0.0"]) == {
        "config_file": "r.toml",
        "host": "0.0.0.0",
    }
    for args in (
        [],
        ["dev", "app.py"],
        ["serve", "--help"],
        ["serve", "--stor", "x"],  # no abbreviations
        ["serve", "--store"],  # no value
        ["serve", "--store", "--host", "h"],  # a value that looks like an option
        ["serve", "--store="],
        ["serve", "--ingress-port", "80a"],
        ["serve", "--ingress-port", "٣"],  # a digit, but not an ASCII one
        ["serve", "extra"],
    ):
        assert plain_serve(args) is None, args


def _ritornello(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ritornello", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def test_what_the_plain_start_does_not_take_typer_reports() -> None:
    bad_option = _ritornello("serve", "--bogus", "1")
    assert bad_option.returncode == 2 and "No such option" in bad_option.stderr
    bad_setting = _ritornello("serve", env={"RITORNELLO_LEASE_S": "soon"})
    assert bad_setting.returncode == 2
    assert "lease_s" in bad_setting.stderr and "is not a float" in bad_setting.stderr


def test_a_store_in_use_is_one_line_and_status_1(tmp_path: Path) -> None:
    first = Orchestrator(tmp_path).start()
    try:
        assert http("GET", f"{first.admin}/health")[0] == 200
        second = _ritornello(
            "serve", "--store", first.store, "--ingress-port", "0", "--admin-port", "0"
        )
        assert second.returncode == 1
        assert second.stderr.startswith("error: ") and "in use" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.terminate()


def _serve_until_exit(*args: str, within_s: float = 20) -> tuple[int | None, str]:
    """``ritornello serve ARGS`` on free ports: its exit status and output, or (None, output)
    if it is still running after ``within_s`` (then stopped, by its pid)."""
    ports = ["--ingress-port", str(free_port()), "--admin-port", str(free_port())]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ritornello", "serve", *args, *ports],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    try:
        out, _ = proc.communicate(timeout=within_s)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        return None, out


def test_a_store_in_use_through_a_symlink_is_refused(tmp_path: Path) -> None:
    """A second server on the same SQLite file through another path (a symlink to the file
    or to its directory) is refused like one through the same path, naming the file."""
    first = Orchestrator(tmp_path).start()
    (tmp_path / "link.db").symlink_to(tmp_path / "ritornello.db")
    (tmp_path / "linkdir").symlink_to(tmp_path)
    try:
        assert http("GET", f"{first.admin}/health")[0] == 200
        for other in (tmp_path / "link.db", tmp_path / "linkdir" / "ritornello.db"):
            status, out = _serve_until_exit("--store", f"sqlite:///{other}")
            assert status == 1, out
            assert out.startswith("error: ") and "in use by another process" in out, out
            assert str((tmp_path / "ritornello.db").resolve()) in out, out
            assert "Traceback" not in out
        assert http("GET", f"{first.admin}/health")[0] == 200
    finally:
        first.terminate()


WARNING = "without a token"


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        ({"RITORNELLO_HOST": "0.0.0.0"}, ["ingress", "admin"]),
        ({"RITORNELLO_HOST": "0.0.0.0", "RITORNELLO_ADMIN_TOKEN": "t" * 32}, ["ingress"]),
        (
            {
                "RITORNELLO_HOST": "0.0.0.0",
                "RITORNELLO_ADMIN_TOKEN": "t" * 32,
                "RITORNELLO_INGRESS_TOKEN": "i" * 32,
            },
            [],
        ),
        ({}, []),  # 127.0.0.1: only this machine can reach it
        ({"RITORNELLO_HOST": "localhost"}, []),
    ],
    ids=["open", "admin-token", "both-tokens", "loopback", "localhost"],
)
def test_serving_beyond_loopback_without_tokens_is_warned_about(
    tmp_path: Path, env: dict[str, str], warned: list[str]
) -> None:
    """Bound to 0.0.0.0 (every address of this machine); requests only ever go to 127.0.0.1."""
    orch = Orchestrator(tmp_path, **env).start()
    try:
        assert http("GET", f"{orch.admin}/health")[0] == 200
        lines = [line for line in orch.output().splitlines() if WARNING in line]
        assert len(lines) == len(warned), lines
        for line, which in zip(lines, warned, strict=True):
            assert "WARNING" in line and which in line and "0.0.0.0" in line, line
            variable = f"RITORNELLO_{which.upper()}_TOKEN"
            assert variable in line, line
    finally:
        orch.terminate()


async def _request(app: AdminApp, path: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "path": path}, receive, send)
    return sent


def test_admin_app_is_built_once_off_the_loop_on_first_use() -> None:
    builds: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "path": scope["path"]})

    def build() -> Any:
        builds.append(threading.current_thread().name)
        return inner

    async def body() -> None:
        app = AdminApp(build)
        await asyncio.sleep(0.05)
        assert builds == []  # nothing before the first request
        one, two = await asyncio.gather(_request(app, "/a"), _request(app, "/b"))
        assert [m["path"] for m in one + two] == ["/a", "/b"]
        assert await _request(app, "/c") == [
            {"type": "http.response.start", "status": 200, "path": "/c"}
        ]
        assert builds == ["ritornello-http-setup"]  # once, and not on the loop's thread

    asyncio.run(body())


def test_admin_app_built_now_is_not_built_again() -> None:
    builds: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204})

    def build() -> Any:
        builds.append(threading.current_thread().name)
        return inner

    async def body() -> None:
        app = AdminApp(build)
        app.build_now()
        assert await app.start() is inner  # the delayed build finds it done
        assert await _request(app, "/x") == [{"type": "http.response.start", "status": 204}]

    asyncio.run(body())
    assert builds == ["MainThread"]


def test_admin_app_that_cannot_be_built_fails_its_requests(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def build() -> Any:
        raise RuntimeError("no admin today")

    async def body() -> None:
        app = AdminApp(build)
        with pytest.raises(RuntimeError, match="no admin today"):
            await _request(app, "/health")
        with pytest.raises(RuntimeError, match="no admin today"):
            await _request(app, "/health")

    asyncio.run(body())
    assert "the admin API could not be built" in caplog.text
