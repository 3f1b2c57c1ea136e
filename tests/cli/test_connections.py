"""``ritornello serve``'s HTTP edge under abuse: connection floods, slow clients, upgrades.

One ``ritornello serve`` on SQLite (the examples' endpoint under uvicorn behind it), started with
an open-file limit it cannot raise (soft = hard = 1,024), so each port holds at most
(1,024 - 256) / 2 = 384 connections, and with short deadlines (idle 1 s, head 1.5 s, body
1.5 s) so that each test takes seconds. Real sockets, on 127.0.0.1 only.

- A flood of 1,100 connections on each port (silent; slowloris: one header byte every 0.3 s;
  slow body: a whole head, then one body byte every 0.3 s) leaves ``/health`` on both ports and
  a call answering at once, and every flood connection is closed by its deadline.
- Under the limit, each kind of slow client (silent, idle after a response, slowloris, slow
  body) is closed after its own deadline, not before.
- A WebSocket upgrade is refused with a 4xx on both ports, and nothing is logged as an error;
  ``HEAD /health`` answers 200 on both ports.
- The open-file limit is raised to the hard limit at start.
"""

from __future__ import annotations

import errno
import json
import resource
import selectors
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPResponse
from pathlib import Path

import pytest

from tests.procs import ROOT, Endpoint, Orchestrator, Proc, http

NOFILE = 1024  # the server's open-file limit, soft and hard
IDLE_S, HEAD_S, BODY_S = 1.0, 1.5, 1.5
FLOOD = 1100  # connections per port
DRIP_S = 0.3  # a slow client's pace: one byte every DRIP_S
SLACK_S = 1.5  # how late a deadline may close a connection (the server checks every 0.25 s)

#: ``python -c`` that sets RLIMIT_NOFILE to (argv[1], argv[2]), then becomes argv[3:] (same pid)
_EXEC_WITH_NOFILE = (
    "import os, resource, sys;"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2])));"
    "os.execv(sys.argv[3], sys.argv[3:])"
)


def with_open_files(proc: Proc, soft: int, hard: int) -> None:
    """Start ``proc`` with an open-file limit of ``soft`` (``hard`` at most)."""
    proc.args = [sys.executable, "-c", _EXEC_WITH_NOFILE, str(soft), str(hard), *proc.args]


def need_open_files(count: int) -> None:
    """Let this test process open ``count`` files (raise its soft limit), or skip."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= count:
        return
    if hard != resource.RLIM_INFINITY and hard < count:
        pytest.skip(f"needs {count} open files, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))


@dataclass
class Edge:
    orch: Orchestrator
    endpoint: Endpoint

    def ports(self) -> tuple[int, int]:
        return self.orch.ingress_port, self.orch.admin_port

    def log_size(self) -> int:
        return self.orch.log.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.orch.log.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    tmp = tmp_path_factory.mktemp("edge")
    endpoint = Endpoint(tmp, ROOT / "examples", "app").start()
    orch = Orchestrator(
        tmp,
        RITORNELLO_IDLE_TIMEOUT_S=str(IDLE_S),
        RITORNELLO_HEADER_TIMEOUT_S=str(HEAD_S),
        RITORNELLO_BODY_TIMEOUT_S=str(BODY_S),
        RITORNELLO_WATCHDOG_INTERVAL_S="0",
    )
    with_open_files(orch, NOFILE, NOFILE)
    try:
        orch.start()
        status, body, _ = http("POST", f"{orch.admin}/deployments", {"uri": endpoint.uri})
        assert status == 201, (body, orch.output())
        yield Edge(orch, endpoint)
    finally:
        orch.terminate()
        endpoint.terminate()


# -- a client ------------------------------------------------------------------------------


def ask(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One request on a fresh connection; its status and body (an error if none in 5 s)."""
    head = f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n".encode()
    if body is not None:
        head += b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head + b"\r\n" + (body or b""))
        resp = HTTPResponse(sock, method=method)
        try:
            resp.begin()
            return resp.status, resp.read()
        finally:
            resp.close()


def assert_serving(edge: Edge, name: str) -> None:
    """/health on both ports and a call answer, each within a second."""
    ingress, admin = edge.ports()
    for port in (ingress, admin):
        started = time.monotonic()
        assert ask(port, "GET", "/health")[0] == 200
        assert time.monotonic() - started < 1.0, port
    started = time.monotonic()
    answer = ask(ingress, "POST", "/restate/call/Greeter/greet", json.dumps(name).encode())
    assert answer == (200, json.dumps(f"Hello, {name}!").encode())
    assert time.monotonic() - started < 1.0


# -- slow clients ----------------------------------------------------------------------------

SLOWLORIS_HEAD = b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: "
#: a body the app reads: a call on the ingress, a deployment on the admin port (ingress first)
SLOW_BODY_HEAD = (
    b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\n"
    b'content-type: application/json\r\ncontent-length: 100000\r\n\r\n{"uri": "'
)
BODY_PATHS = (b"/restate/call/Greeter/greet", b"/deployments")
#: kind -> (bytes sent at once, a byte sent every DRIP_S or None, the deadline that closes it);
#: ``%s`` in the first: one of BODY_PATHS
KINDS: dict[str, tuple[bytes, bytes | None, float]] = {
    "silent": (b"", None, IDLE_S),
    "slowloris": (SLOWLORIS_HEAD, b"a", HEAD_S),
    "slow-body": (SLOW_BODY_HEAD, b"a", BODY_S),
}


class Clients:
    """Many connections, each sending ``first`` at once, then ``drip`` every ``DRIP_S``; when
    the server closed each one (seconds after it was opened). ``ingress``: the ingress's port
    (which of BODY_PATHS a slow body goes to)."""

    def __init__(self, ingress: int) -> None:
        self.ingress = ingress
        self.selector = selectors.DefaultSelector()
        self.opened: dict[socket.socket, float] = {}
        self.drips: dict[socket.socket, bytes | None] = {}
        self.closed: dict[socket.socket, float] = {}
        self._last_drip = time.monotonic()

    def open(self, port: int, count: int, first: bytes, drip: bytes | None) -> None:
        if b"%s" in first:
            first = first % BODY_PATHS[port != self.ingress]
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            if first:
                sock.sendall(first)
            sock.setblocking(False)
            self.opened[sock] = time.monotonic()
            self.drips[sock] = drip
            self.selector.register(sock, selectors.EVENT_READ)

    def add(self, sock: socket.socket, since: float) -> None:
        """A connection opened elsewhere, counted from ``since``."""
        sock.setblocking(False)
        self.opened[sock] = since
        self.drips[sock] = None
        self.selector.register(sock, selectors.EVENT_READ)

    def open_ones(self) -> list[socket.socket]:
        return [s for s in self.opened if s not in self.closed]

    def _mark_closed(self, sock: socket.socket) -> None:
        if sock not in self.closed:
            self.closed[sock] = time.monotonic() - self.opened[sock]
            self.selector.unregister(sock)

    def run(self, seconds: float) -> None:
        """Drip and watch for ``seconds``."""
        end = time.monotonic() + seconds
        while (now := time.monotonic()) < end and self.open_ones():
            if now - self._last_drip >= DRIP_S:
                self._last_drip = now
                for sock in self.open_ones():
                    drip = self.drips[sock]
                    if drip is not None:
                        try:
                            sock.send(drip)
                        except OSError:
                            self._mark_closed(sock)
            for key, _ in self.selector.select(timeout=min(0.05, end - now)):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    if sock.recv(65536) == b"":
                        self._mark_closed(sock)
                except BlockingIOError:
                    pass
                except OSError as exc:
                    assert exc.errno in (errno.ECONNRESET, errno.EPIPE), exc
                    self._mark_closed(sock)

    def close(self) -> None:
        self.selector.close()
        for sock in self.opened:
            sock.close()


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_flood_leaves_health_and_calls_answering_then_is_closed_by_its_deadline(
    edge: Edge, kind: str
) -> None:
    need_open_files(2 * FLOOD + 200)
    first, drip, deadline = KINDS[kind]
    log_at = edge.log_size()
    clients = Clients(edge.orch.ingress_port)
    try:
        for port in edge.ports():
            clients.open(port, FLOOD, first, drip)
        for n in range(3):
            assert_serving(edge, f"{kind}-{n}")
            clients.run(DRIP_S)
        clients.run(deadline + SLACK_S)
        still = clients.open_ones()
        assert not still, f"{len(still)} of {2 * FLOOD} still open"
    finally:
        clients.close()
    assert_serving(edge, f"{kind}-after")
    log = edge.log_since(log_at)
    assert "ERROR" not in log and "Traceback" not in log, log[-3000:]


def test_slow_clients_are_closed_after_their_deadline_not_before(edge: Edge) -> None:
    ingress, admin = edge.ports()
    clients = Clients(edge.orch.ingress_port)
    kinds: dict[socket.socket, str] = {}
    try:
        for name, (first, drip, _) in KINDS.items():
            for port in (ingress, admin):
                clients.open(port, 10, first, drip)
            kinds.update((s, name) for s in clients.opened if s not in kinds)
        for port in (ingress, admin):  # kept alive after an answer, then silent
            for _ in range(10):
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
                resp = HTTPResponse(sock)
                resp.begin()
                assert resp.status == 200 and resp.read()
                resp.close()
                clients.add(sock, time.monotonic())
                kinds[sock] = "kept-alive"
        clients.run(max(IDLE_S, HEAD_S, BODY_S) + SLACK_S)
        assert not clients.open_ones()
        for sock, after in clients.closed.items():
            kind = kinds[sock]
            deadline = IDLE_S if kind == "kept-alive" else KINDS[kind][2]
            assert deadline - 0.1 <= after <= deadline + SLACK_S, (kind, after)
    finally:
        clients.close()


# -- upgrades and HEAD -------------------------------------------------------------------------

WEBSOCKET = (
    b"GET %s HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: Upgrade\r\nupgrade: websocket\r\n"
    b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
)


def test_a_websocket_upgrade_is_refused_with_a_4xx_and_nothing_logged(edge: Edge) -> None:
    log_at = edge.log_size()
    for port in edge.ports():
        for path in (b"/health", b"/restate/call/Greeter/greet", b"/Greeter/greet", b"/nope"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(WEBSOCKET % path)
                resp = HTTPResponse(sock)
                resp.begin()
                assert 400 <= resp.status < 500, (port, path, resp.status)
                resp.read()
                resp.close()
    assert_serving(edge, "after-upgrades")
    time.sleep(0.2)  # anything the server logs about them is in the file by now
    log = edge.log_since(log_at)
    assert "ERROR" not in log and "WARNING" not in log, log[-3000:]


def test_head_health_answers_on_both_ports(edge: Edge) -> None:
    for port in edge.ports():
        assert ask(port, "HEAD", "/health") == (200, b""), port


def test_the_open_file_limit_is_raised_to_the_hard_limit(tmp_path: Path) -> None:
    orch = Orchestrator(tmp_path)
    with_open_files(orch, 512, 2048)
    try:
        orch.start()
        assert orch.proc is not None
        limits = Path(f"/proc/{orch.proc.pid}/limits").read_text()
        (line,) = [x for x in limits.splitlines() if x.startswith("Max open files")]
        assert line.split()[3:5] == ["2048", "2048"], line
    finally:
        orch.terminate()
