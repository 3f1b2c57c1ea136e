"""The orchestrator's HTTP servers join the writes of one loop iteration (``_listen.py``): one
write per answer, in order, nothing lost at close, nothing sent after an abort; and a real
server built by ``_listen.server`` still answers keep-alive, pipelined and closing requests."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ritornello.cli import _listen
from tests.procs import free_port


class Recording(asyncio.Transport):
    """A real transport's stand-in that records what reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.events.append("close")
        self.closing = True

    def abort(self) -> None:
        self.events.append("abort")
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


def test_the_writes_of_one_iteration_reach_the_transport_as_one() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        real = Recording()
        shim = _listen.CoalescingTransport(real, loop)
        shim.write(b"HTTP/1.1 200 OK\r\n\r\n")
        shim.write(b"{}")
        assert real.writes == []  # not yet: at the end of this iteration
        await asyncio.sleep(0)
        assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
        shim.write(b"a")
        shim.write(b"b")
        shim.close()  # what is buffered goes first
        assert real.writes[1:] == [b"ab"] and real.events == ["close"]
        await asyncio.sleep(0)  # the scheduled flush finds nothing more to send
        assert real.writes[1:] == [b"ab"]
        assert shim.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest: the real one's

        aborted = Recording()
        shim = _listen.CoalescingTransport(aborted, loop)
        shim.write(b"lost")
        shim.abort()
        await asyncio.sleep(0)
        assert aborted.writes == [] and aborted.events == ["abort"]

    asyncio.run(main())


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    body = scope["path"].encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def port() -> Iterator[int]:
    port = free_port()
    server = _listen.server(_app, "127.0.0.1", port)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def _read_until(sock: socket.socket, count: int) -> bytes:
    """Read until ``count`` answers (each ends with its path as the body) have arrived."""
    data = b""
    while data.count(b"HTTP/1.1 200 OK") < count or not data.endswith(b"/last"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_a_real_server_answers_keep_alive_pipelined_and_closing_requests(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /one HTTP/1.1\r\nhost: x\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 OK\r\n") and first.endswith(b"\r\n\r\n/one")
        pipelined = b"".join(
            f"GET /{p} HTTP/1.1\r\nhost: x\r\n\r\n".encode() for p in ("two", "three", "last")
        )
        sock.sendall(pipelined)
        data = _read_until(sock, 3)
        bodies = [part.rsplit(b"\r\n\r\n", 1)[-1] for part in data.split(b"HTTP/1.1 ")[1:]]
        assert bodies == [b"/two", b"/three", b"/last"]  # in order, none lost
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /last HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):  # the server closes after its answer
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"\r\n\r\n/last")
