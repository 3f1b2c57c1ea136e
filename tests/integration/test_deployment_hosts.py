"""Registering a deployment makes the orchestrator fetch what the request names: its guard against
server-side request forgery (docs/orchestrator.md, "Deployment hosts"). Real ``ritornello serve``
processes on SQLite, and a raw socket listener on 127.0.0.1 that counts the connections it gets
and answers each with canned bytes. Every connection goes to 127.0.0.1: a denied address is the
listener's own, denied by the setting, which proves that no connection is made to it.

The default list (link-local and cloud metadata addresses) is checked in
``bad_input_cases.py`` (``deploy-metadata-*``), where nothing is ever fetched either.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import ROOT, Endpoint, Orchestrator, http

SECRET = "SECRET-7f3a-the-endpoint-said-this"


class Listener:
    """A TCP listener on 127.0.0.1 that answers every connection with ``answer`` and closes."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.accepted = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)  # the request (one read is enough for a GET)
                    conn.sendall(self.answer)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def answer(status: str, body: str) -> bytes:
    data = body.encode()
    head = f"HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {len(data)}\r\n"
    return head.encode() + b"connection: close\r\n\r\n" + data


@pytest.fixture
def listener() -> Iterator[Listener]:
    got = Listener(answer("200 OK", '{"services": []}'))
    try:
        yield got
    finally:
        got.close()


def registered(orch: Orchestrator) -> list[object]:
    status, body, _ = http("GET", f"{orch.admin}/deployments")
    assert status == 200, body
    return list(body["deployments"])


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("RITORNELLO_DEPLOYMENT_HOSTS_DENY", "127.0.0.1"),
        ("RITORNELLO_DEPLOYMENT_HOSTS_DENY", "169.254.0.0/16, 127.0.0.0/8"),
        ("RITORNELLO_DEPLOYMENT_HOSTS_ALLOW", "192.0.2.0/24, *.example.com"),
    ],
    ids=["deny-address", "deny-network", "allow-others"],
)
def test_a_host_the_settings_refuse_is_a_400_and_never_connected(
    tmp_path: Path, listener: Listener, setting: str, value: str
) -> None:
    orch = Orchestrator(tmp_path, **{setting: value}).start()
    try:
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": listener.uri})
        assert status == 400, body
        assert "not allowed" in body["detail"] and "127.0.0.1" in body["detail"], body
        time.sleep(0.3)  # a connection the orchestrator made would have been accepted by now
        assert listener.accepted == 0
        assert registered(orch) == []
    finally:
        orch.terminate()


def test_an_allowed_host_registers_and_serves(tmp_path: Path) -> None:
    endpoint = Endpoint(tmp_path, ROOT / "examples", "app").start()
    orch = Orchestrator(
        tmp_path,
        RITORNELLO_DEPLOYMENT_HOSTS_ALLOW="127.0.0.0/8",
        RITORNELLO_DEPLOYMENT_HOSTS_DENY="10.0.0.0/8",
    ).start()
    try:
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, body
        status, body, _ = http("POST", f"{orch.ingress}/restate/call/Greeter/greet", "ada")
        assert (status, body) == (200, "Hello, ada!")
    finally:
        orch.terminate()
        endpoint.terminate()


@pytest.mark.parametrize(
    "status_line", ["404 Not Found", "500 Internal Server Error", "401 Unauthorized"]
)
def test_the_endpoints_answer_is_not_reflected_in_the_502(tmp_path: Path, status_line: str) -> None:
    """A non-200 discovery answer: the 502 says which status came back and no more; the text
    the endpoint sent goes to the orchestrator's log only."""
    listener = Listener(answer(status_line, f"{SECRET}\r\nroot:x:0:0"))
    orch = Orchestrator(tmp_path).start()
    try:
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": listener.uri})
        assert status == 502, body
        detail = body["detail"]
        assert f"HTTP {status_line}" in detail, detail
        assert SECRET not in detail and "root:x" not in detail, detail
        assert listener.accepted == 1
        assert SECRET in orch.output()  # for the operator, in the log
        assert registered(orch) == []
    finally:
        orch.terminate()
        listener.close()
