"""Registering a deployment makes the orchestrator fetch what the request names: what comes back
must not reach the caller (docs/orchestrator.md, "Deployment hosts"). Real ``ritornello serve``
processes on SQLite, and a raw socket listener on 127.0.0.1 that counts the connections it gets
and answers each with canned bytes.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from tests.procs import Orchestrator, http

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


def registered(orch: Orchestrator) -> list[object]:
    status, body, _ = http("GET", f"{orch.admin}/deployments")
    assert status == 200, body
    return list(body["deployments"])


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
