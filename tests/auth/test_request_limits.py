"""A handler endpoint reads no body it has not reason to: real uvicorn processes on loopback,
fed by a raw socket playing a hostile client.

- with a signing secret, a request whose signature headers are missing, malformed or stale is
  refused before its body is read (the endpoint's peak RSS, ``VmHWM`` in /proc, stays low);
- any body past the endpoint's ``max_request_bytes`` is refused with 413 as soon as it passes;
- a streamed request line is parsed in time linear in its size (a 50 MB line without a newline
  costs about ten times a 5 MB one, not a hundred).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import Endpoint

HERE = Path(__file__).parent
SECRET = "limits-secret-8d2f6a"
MIB = 1 << 20
PIECE = b"x" * MIB
PATH = "/invoke/Steps/count"


def peak_rss(pid: int) -> int:
    """The process's peak resident set (bytes), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


class Client:
    """A raw HTTP/1.1 client that sends a body a MiB at a time while reading the answer on a
    thread: it notes how much of the body was sent when the answer began."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sent = 0
        self.answered_at: int | None = None  # bytes of body sent when the answer began
        self.answer = b""
        self.reader = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        try:
            while data := self.sock.recv(65536):
                if self.answered_at is None:
                    self.answered_at = self.sent
                self.answer += data
                if self._complete():
                    return
        except OSError:
            pass

    def _complete(self) -> bool:
        """The answer (which has a content-length: the endpoint's refusals do) is all here."""
        head, sep, body = self.answer.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if sep and name.strip().lower() == b"content-length":
                return len(body) >= int(value)
        return False

    def send(self, head: bytes, size: int, *, chunked: bool = False) -> None:
        """``head`` (the request line and headers, without the blank line), then ``size``
        bytes of body without a newline; stops early if the endpoint closes."""
        framing = b"transfer-encoding: chunked" if chunked else b"content-length: %d" % size
        self.reader.start()
        try:
            self.sock.sendall(head + framing + b"\r\n\r\n")
            while self.sent < size:
                piece = PIECE[: min(MIB, size - self.sent)]
                self.sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                self.sent += len(piece)
            if chunked:
                self.sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the endpoint stopped reading and closed: what we want
        self.reader.join(30)
        self.sock.close()

    @property
    def status(self) -> int:
        return int(self.answer.split(b" ", 2)[1]) if self.answer else 0


def head(path: str = PATH, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.fixture(scope="module")
def signed_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    tmp = tmp_path_factory.mktemp("request-limits")
    env = {"RITORNELLO_SIGNING_SECRET": SECRET, "RITORNELLO_MAX_REQUEST_BYTES": str(MIB)}
    proc = Endpoint(tmp, HERE, "authapp", **env).start()
    try:
        yield proc
    finally:
        proc.terminate()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "streamed"])
def test_an_unsigned_300_mb_body_is_refused_before_it_is_read(
    signed_endpoint: Endpoint, chunked: bool
) -> None:
    assert signed_endpoint.proc is not None
    pid = signed_endpoint.proc.pid
    before = peak_rss(pid)
    client = Client(signed_endpoint.port)
    extra = {"x-ritornello-stream": "1"} if chunked else {}
    client.send(head(**extra), 300 * MIB, chunked=chunked)
    grown = peak_rss(pid) - before
    assert grown < 32 * MIB, f"the endpoint's peak RSS grew by {grown / MIB:.0f} MiB"
    assert client.answered_at is not None and client.answered_at < 32 * MIB, client.answered_at
    assert client.status == 401 and b"unsigned request" in client.answer, client.answer[:300]


@pytest.mark.timeout(120)
def test_a_body_past_max_request_bytes_is_refused_with_413(signed_endpoint: Endpoint) -> None:
    """Signature headers that look right (the timestamp is fresh) let the body be read, up to
    the endpoint's limit (1 MiB here): its HMAC is checked over the whole of it."""
    assert signed_endpoint.proc is not None
    pid = signed_endpoint.proc.pid
    before = peak_rss(pid)
    plausible = {
        "x-ritornello-timestamp": str(int(time.time())),
        "x-ritornello-signature": "v1=" + "0" * 64,
        "x-ritornello-nonce": "0123456789abcdef01",
        "x-ritornello-binding": "v2=" + "0" * 64,
    }
    client = Client(signed_endpoint.port)
    client.send(head(**plausible), 64 * MIB)
    grown = peak_rss(pid) - before
    assert grown < 32 * MIB, f"the endpoint's peak RSS grew by {grown / MIB:.0f} MiB"
    assert client.answered_at is not None and client.answered_at < 32 * MIB, client.answered_at
    assert client.status == 413, client.answer[:300]
    assert b"max_request_bytes" in client.answer, client.answer[:300]


@pytest.fixture(scope="module")
def open_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    tmp = tmp_path_factory.mktemp("request-lines")
    proc = Endpoint(tmp, HERE, "authapp", RITORNELLO_SIGNING_SECRET="").start()
    try:
        yield proc
    finally:
        proc.terminate()


def cpu_ticks(pid: int) -> int:
    """The CPU time (user and system, in clock ticks) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def _line_cost(endpoint: Endpoint, size: int) -> int:
    """The endpoint's CPU ticks for a streamed request whose line is ``size`` bytes without a
    newline (it does not decode: 400)."""
    assert endpoint.proc is not None
    before = cpu_ticks(endpoint.proc.pid)
    client = Client(endpoint.port)
    client.send(head(**{"x-ritornello-stream": "1"}), size, chunked=True)
    assert client.status == 400, client.answer[:300]
    return cpu_ticks(endpoint.proc.pid) - before


@pytest.mark.timeout(300)
def test_a_streamed_line_without_a_newline_parses_in_linear_time(open_endpoint: Endpoint) -> None:
    """One 50 MB line costs the endpoint about what ten 5 MB lines cost (linear), not ten times
    as much (quadratic: each piece copied onto all before it and the whole searched again). The
    endpoint's own CPU time, not the wall clock: the client shares the machine."""
    _line_cost(open_endpoint, MIB)  # warm up
    small = sum(_line_cost(open_endpoint, 5 * MIB) for _ in range(10))
    large = sum(_line_cost(open_endpoint, 50 * MIB) for _ in range(2)) / 2
    assert large < 3 * max(small, 1), f"ten 5 MB lines: {small} ticks, one 50 MB line: {large}"
