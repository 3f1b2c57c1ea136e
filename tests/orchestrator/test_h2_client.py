"""``H2Client`` (``invokers/_h2``, HTTP/2 on hyper-h2) against real servers on loopback:

- hypercorn in its own process serving ``app`` below (this file run as a script), over h2c and
  over TLS with ALPN: a full-duplex echo, bodies of several MB both ways, 404s, concurrency;
  killed with SIGKILL for the connection-loss cases;
- ``RawH2Server``: an asyncio server speaking HTTP/2 with h2 (server side), for what an ASGI app
  cannot make hypercorn do: reset a stream, refuse one, send GOAWAY, allow only a few streams;
- the Restate Python SDK endpoint (``tests/restate``) over h2c: its discovery over this client.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import json
import os
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import hyperframe.frame
import pytest
import uvloop

from ritornello.orchestrator.invokers import HostDeniedError, HostPolicy
from ritornello.orchestrator.invokers._client_errors import AnswerTooLarge, HttpClientError
from ritornello.orchestrator.invokers._h2 import (
    H2Client,
    H2Error,
    H2GoAway,
    H2StreamReset,
    H2Timeout,
)
from tests.procs import ROOT, Proc, free_port

MB = 1 << 20


def pattern(n: int) -> bytes:
    """``n`` bytes that are not all the same (a misplaced chunk shows)."""
    block = bytes(range(256)) * 256 + b"!"  # 65,537: not a multiple of any frame size
    return (block * (n // len(block) + 1))[:n]


# ------------------------------------------------------------------ the ASGI app (hypercorn)

_inflight = 0
_peak = 0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/echo``: every request body chunk sent back as it arrives (full duplex);
    ``/big?n=N``: N bytes of ``pattern``; ``/upload``: the request body's length and SHA-256;
    ``/who?ms=M``: the client's port, after M ms; ``/peak``: the most ``/who`` requests that
    were in progress at once (then reset); anything else: 404."""
    global _inflight, _peak
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if p)
    port = str(scope["client"][1]).encode()
    head = [(b"content-type", b"application/octet-stream"), (b"x-client-port", port)]

    async def answer(status: int, body: bytes) -> None:
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body})

    if path == "/echo":
        await send({"type": "http.response.start", "status": 200, "headers": head})
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            if message.get("body"):
                await send(
                    {"type": "http.response.body", "body": message["body"], "more_body": True}
                )
            if not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b""})
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if path == "/big":
        n = int(query["n"])
        await send({"type": "http.response.start", "status": 200, "headers": head})
        data = pattern(n)
        step = 100_000
        for i in range(0, n, step):
            await send(
                {"type": "http.response.body", "body": data[i : i + step], "more_body": True}
            )
        await send({"type": "http.response.body", "body": b""})
    elif path == "/upload":
        digest = hashlib.sha256(body).hexdigest()
        await answer(200, json.dumps({"n": len(body), "sha256": digest}).encode())
    elif path == "/who":
        _inflight += 1
        _peak = max(_peak, _inflight)
        try:
            await asyncio.sleep(int(query.get("ms", "0")) / 1000)
        finally:
            _inflight -= 1
        await answer(200, port)
    elif path == "/peak":
        peak, _peak = _peak, 0
        await answer(200, str(peak).encode())
    else:
        await answer(404, b"no such thing: " + path.encode())


def _serve(port: int, certfile: str | None, keyfile: str | None) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = "-"
    config.loglevel = "WARNING"
    config.graceful_timeout = 1.0
    config.keep_alive_timeout = 3600
    if certfile and keyfile:
        config.certfile = certfile
        config.keyfile = keyfile
    asyncio.run(serve(app, config, mode="asgi"))  # type: ignore[arg-type]


class Hypercorn:
    """This file's ``app`` under hypercorn, in its own process on ``port``."""

    def __init__(self, tmp: Path, port: int | None = None, tls: tuple[Path, Path] | None = None):
        self.port = port or free_port()
        self.tls = tls
        self.tmp = tmp
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> Hypercorn:
        args = [sys.executable, "-m", "tests.orchestrator.test_h2_client", str(self.port)]
        if self.tls:
            args += [str(self.tls[0]), str(self.tls[1])]
        pythonpath = [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]
        env = {"PYTHONPATH": os.pathsep.join(p for p in pythonpath if p)}
        self.proc = Proc(args, self.tmp / f"hypercorn-{self.port}.log", env).start()
        assert self.proc.proc is not None
        deadline = time.monotonic() + 20
        while True:
            if self.proc.proc.poll() is not None:
                raise RuntimeError(f"hypercorn exited:\n{self.proc.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                assert time.monotonic() < deadline, (
                    f"hypercorn did not start:\n{self.proc.output()}"
                )
                time.sleep(0.05)

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.kill9()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()


@contextmanager
def hypercorn(tmp: Path, **kwargs: Any) -> Iterator[Hypercorn]:
    server = Hypercorn(tmp, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def h2c(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a hypercorn serving ``app`` over h2c, shared by this module's tests."""
    with hypercorn(tmp_path_factory.mktemp("h2c")) as server:
        yield server.url


def run(coro: Callable[[], Awaitable[Any]], *, loop: str = "asyncio", limit: float = 30) -> Any:
    """``coro()`` on a fresh event loop (asyncio's or uvloop's), within ``limit`` seconds."""

    async def main() -> Any:
        return await asyncio.wait_for(coro(), limit)

    if loop == "uvloop":
        return uvloop.run(main())
    return asyncio.run(main())


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# ------------------------------------------------------------------ hypercorn: the basics


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_full_duplex_echo_before_the_request_ends(h2c: str, loop: str) -> None:
    """Each chunk written comes back before the next is written, the request still open: the
    answer streams while the request does (what BIDI_STREAM needs)."""

    async def main() -> None:
        client = H2Client(h2c)
        try:
            async with await client.open("POST", "/echo", {"x-test": "duplex"}) as ex:
                status, headers = await ex.head(5)
                assert status == 200
                assert headers["content-type"] == "application/octet-stream"
                for i in range(5):
                    chunk = b"chunk %d " % i * (i * 1000 + 1)
                    ex.write(chunk)
                    await ex.drain(5)
                    got = b""
                    while len(got) < len(chunk):
                        got += await ex.read(5)
                    assert got == chunk
                ex.end()
                assert await ex.read(5) == b""
                await eventually(lambda: ex.closed)
            assert client.active == 0
        finally:
            await client.close()

    run(main, loop=loop)


def test_a_plain_request_and_a_404(h2c: str) -> None:
    async def main() -> None:
        client = H2Client(h2c + "/")
        try:
            status, headers, body = await client.request("GET", "/nowhere", {"accept": "*/*"})
            assert (status, body) == (404, b"no such thing: /nowhere")
            assert headers["x-client-port"].isdigit()
            status, _, body = await client.request("POST", "/upload", body=b"hello")
            assert status == 200
            assert json.loads(body) == {"n": 5, "sha256": hashlib.sha256(b"hello").hexdigest()}
            assert client.active == 0
        finally:
            await client.close()

    run(main)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_several_megabytes_each_way(h2c: str, loop: str) -> None:
    """8 MB down (our 256 KiB stream window reopened as it is read) and 8 MB up (hypercorn's
    64 KiB windows: sent as its WINDOW_UPDATEs come), also with both on one connection."""
    n = 8 * MB
    data = pattern(n)

    async def main() -> None:
        client = H2Client(h2c)
        try:
            status, _, body = await client.request("GET", f"/big?n={n}", timeout_s=20)
            assert status == 200
            assert body == data

            status, _, body = await client.request("POST", "/upload", body=data, timeout_s=20)
            assert json.loads(body) == {"n": n, "sha256": hashlib.sha256(data).hexdigest()}

            # streamed up with drains between writes, while another stream downloads
            async def upload() -> dict[str, Any]:
                ex = await client.open("POST", "/upload")
                for i in range(0, n, 100_000):
                    ex.write(data[i : i + 100_000])
                    assert ex.buffered <= 100_000 + len(data[:100_000])
                    await ex.drain(10)
                ex.end()
                await ex.drain(10)
                assert (await ex.head(10))[0] == 200
                out = b""
                while chunk := await ex.read(10):
                    out += chunk
                result: dict[str, Any] = json.loads(out)
                return result

            down, up = await asyncio.gather(
                client.request("GET", f"/big?n={n}", timeout_s=20), upload()
            )
            assert down[2] == data
            assert up == {"n": n, "sha256": hashlib.sha256(data).hexdigest()}
        finally:
            await client.close()

    run(main, loop=loop, limit=60)


def test_a_reader_that_does_not_read_holds_one_window_at_most(h2c: str) -> None:
    """The server may send only what the stream's window allows; the window reopens as the
    data is read."""
    window = 1 << 16

    async def main() -> None:
        client = H2Client(h2c, stream_window=window)
        try:
            ex = await client.open("GET", f"/big?n={4 * MB}", end_stream=True)
            await ex.head(5)
            await asyncio.sleep(0.3)  # the server would send it all if it could
            assert 0 < len(ex._body) <= window
            total = 0
            while chunk := await ex.read(5):
                assert len(chunk) <= window
                total += len(chunk)
            assert total == 4 * MB
        finally:
            await client.close()

    run(main)


def test_fifty_concurrent_exchanges_on_one_connection(h2c: str) -> None:
    async def main() -> None:
        client = H2Client(h2c)
        try:
            await client.request("GET", "/peak")

            async def duplex(i: int) -> str:
                async with await client.open("POST", "/echo") as ex:
                    port = (await ex.head(10))[1]["x-client-port"]
                    for j in range(3):
                        msg = b"%d:%d;" % (i, j) * (1 + i)
                        ex.write(msg)
                        got = b""
                        while len(got) < len(msg):
                            got += await ex.read(10)
                        assert got == msg
                    ex.end()
                    assert await ex.read(10) == b""
                    return port

            async def slow() -> str:
                status, _, body = await client.request("GET", "/who?ms=300")
                assert status == 200
                return body.decode()

            started = time.monotonic()
            ports = await asyncio.gather(*(duplex(i) for i in range(50)))
            ports += await asyncio.gather(*(slow() for _ in range(50)))
            assert len(set(ports)) == 1, "every stream on the one connection"
            assert time.monotonic() - started < 5  # the 50 slow ones ran at once
            _, _, peak = await client.request("GET", "/peak")
            assert int(peak) == 50
            assert client.active == 0
        finally:
            await client.close()

    run(main)


def test_max_bytes_resets_the_stream_not_the_connection(h2c: str) -> None:
    async def main() -> None:
        client = H2Client(h2c)
        try:
            with pytest.raises(AnswerTooLarge, match="larger than 100,000 bytes"):
                await client.request("GET", f"/big?n={MB}", max_bytes=100_000)
            # streamed: what arrived before the limit is dropped, the stream reset
            ex = await client.open("GET", f"/big?n={MB}", max_bytes=300_000, end_stream=True)
            got = 0
            with pytest.raises(AnswerTooLarge):
                while chunk := await ex.read(5):
                    got += len(chunk)
            assert got <= 300_000
            assert ex.closed
            with pytest.raises(AnswerTooLarge):
                ex.write(b"more")
            # exactly at the limit is fine; the connection is the same one
            _, headers, body = await client.request("GET", "/big?n=100000", max_bytes=100_000)
            assert len(body) == 100_000
            _, again, _ = await client.request("GET", "/who")
            assert again["x-client-port"] == headers["x-client-port"]
            assert client.active == 0
        finally:
            await client.close()

    run(main)


def test_abandoned_answers_do_not_starve_the_connection_window(h2c: str) -> None:
    """Answers aborted unread give their bytes back to the connection's window (which here
    holds two streams' worth): the connection keeps working."""

    async def main() -> None:
        client = H2Client(h2c, max_streams=2, stream_window=1 << 16)
        try:
            ports = set()
            for _ in range(10):
                async with await client.open("GET", f"/big?n={MB}", end_stream=True) as ex:
                    ports.add((await ex.head(5))[1]["x-client-port"])
                    await asyncio.sleep(0.05)  # a window's worth arrives, unread
                # aborted on leaving the block
            _, headers, body = await client.request("GET", f"/big?n={MB}", timeout_s=10)
            assert body == pattern(MB)
            ports.add(headers["x-client-port"])
            assert len(ports) == 1
        finally:
            await client.close()

    run(main)


def test_timeouts_leave_the_exchange_usable_and_abort_frees_the_slot(h2c: str) -> None:
    async def main() -> None:
        client = H2Client(h2c)
        try:
            ex = await client.open("POST", "/echo")
            await ex.head(5)
            with pytest.raises(H2Timeout, match=r"no answer data on HTTP/2 stream 1 .* 0.1 s"):
                await ex.read(0.1)
            ex.write(b"still here")
            assert await ex.read(5) == b"still here"
            assert client.active == 1
            ex.abort()
            ex.abort()  # idempotent
            assert ex.closed and client.active == 0
            with pytest.raises(H2Error, match="aborted"):
                await ex.read()
            with pytest.raises(H2Error, match="aborted"):
                ex.write(b"x")
            with pytest.raises(H2Timeout):
                await client.request("GET", "/who?ms=2000", timeout_s=0.2)
            assert client.active == 0
            assert (await client.request("GET", "/who"))[0] == 200
        finally:
            await client.close()

    run(main)


def test_idle_connection_is_closed_and_reopened(h2c: str) -> None:
    async def main() -> None:
        client = H2Client(h2c, idle_timeout=0.2)
        try:
            _, _, first = await client.request("GET", "/who")
            _, _, same = await client.request("GET", "/who")
            assert same == first
            await asyncio.sleep(0.5)
            _, _, later = await client.request("GET", "/who")
            assert later != first
        finally:
            await client.close()

    run(main)


def test_bad_arguments_and_a_closed_client(h2c: str) -> None:
    async def main() -> None:
        client = H2Client(h2c)
        for method, path, headers in [
            ("get", "/", {}),
            ("GET", "nope", {}),
            ("GET", "/a b", {}),
            ("GET", "/", {"connection": "close"}),
            ("GET", "/", {"x-bad": "a\r\nb"}),
            ("GET", "/", {":path": "/x"}),
        ]:
            with pytest.raises(ValueError):
                await client.open(method, path, headers)
        ex = await client.open("POST", "/echo")
        await client.close()
        with pytest.raises(H2Error, match=r"client .* is closed"):
            await ex.read(1)
        with pytest.raises(H2Error, match=r"client .* is closed"):
            await client.request("GET", "/")
        await client.close()

    run(main)
    for url in ["ftp://x", "http://", "http://u:p@h/", "http://h/?q=1"]:
        with pytest.raises(ValueError):
            H2Client(url)


# ------------------------------------------------------------------ the server goes away


def test_server_killed_mid_exchange_then_back(tmp_path: Path) -> None:
    """SIGKILL: the open exchange fails with HttpClientError (connection lost), a request
    while nothing listens fails (cannot connect), the next request after a restart reconnects."""
    server = Hypercorn(tmp_path).start()
    restarted = Hypercorn(tmp_path, port=server.port)
    try:

        async def main() -> None:
            client = H2Client(server.url, connect_timeout=2)
            try:
                _, _, first = await client.request("GET", "/who")
                ex = await client.open("POST", "/echo")
                ex.write(b"ping")
                assert await ex.read(5) == b"ping"
                server.kill9()
                with pytest.raises(HttpClientError, match=r"connection to 127.0.0.1:.* lost"):
                    await ex.read(5)
                with pytest.raises(HttpClientError, match="lost"):
                    ex.write(b"again")
                assert client.active == 0
                with pytest.raises(HttpClientError, match="cannot connect"):
                    await client.request("GET", "/who")
                await asyncio.to_thread(restarted.start)
                status, _, later = await client.request("GET", "/who")
                assert status == 200 and later != first
            finally:
                await client.close()

        run(main)
    finally:
        server.stop()
        restarted.stop()


def test_waiters_survive_a_dead_connection() -> None:
    """Queued ``open`` calls are not failed by the connection's death: they go to the next."""

    async def main() -> None:
        async with RawH2Server() as srv:
            client = H2Client(srv.url, max_streams=1)
            try:
                holding = await client.open("GET", "/never", end_stream=True)
                queued = asyncio.ensure_future(client.request("GET", "/ok"))
                await eventually(lambda: client.waiting == 1)
                srv.drop()
                with pytest.raises(H2Error, match=r"connection to 127.0.0.1:.* lost"):
                    await holding.head(5)
                assert (await queued)[2] == b"ok:2"
                assert client.active == 0 and client.waiting == 0
            finally:
                await client.close()

    run(main)


# ------------------------------------------------------------------ TLS


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with ``cryptography``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_tls_with_alpn_h2(tmp_path: Path, loop: str) -> None:
    pytest.importorskip("cryptography")
    cert, key = self_signed(tmp_path)
    with hypercorn(tmp_path, tls=(cert, key)) as server:
        assert server.url.startswith("https://")

        async def main() -> None:
            trusted = ssl.create_default_context(cafile=str(cert))
            trusted.set_alpn_protocols(["h2"])
            client = H2Client(server.url, ssl=trusted, resolve=HostPolicy().resolve)
            try:
                status, _, body = await client.request("GET", "/who")
                assert status == 200
                ex = await client.open("POST", "/echo")
                ex.write(b"over tls")
                assert await ex.read(5) == b"over tls"
                ex.end()
                assert await ex.read(5) == b""
                n = 3 * MB
                _, _, big = await client.request("GET", f"/big?n={n}", timeout_s=20)
                assert big == pattern(n)
                _, _, again = await client.request("GET", "/who")
                assert again == body  # one connection
            finally:
                await client.close()

            # a context that does not offer h2: the server picks HTTP/1.1, the client refuses
            http1 = ssl.create_default_context(cafile=str(cert))
            http1.set_alpn_protocols(["http/1.1"])
            client = H2Client(server.url, ssl=http1)
            with pytest.raises(HttpClientError, match=r"did not select HTTP/2 .* 'http/1.1'"):
                await client.request("GET", "/who")
            await client.close()

            # the default context does not trust a self-signed certificate
            client = H2Client(server.url)
            with pytest.raises(HttpClientError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.request("GET", "/who")
            await client.close()

        run(main, loop=loop)


# ------------------------------------------------------------------ a raw HTTP/2 server


class RawH2Server:
    """An HTTP/2 server on loopback made of h2 (server side), one asyncio.Protocol per
    connection, answering by path:

    ``/ok``: 200 "ok:<connection number>"; ``/reset``: a head, some data, then RST_STREAM
    ENHANCE_YOUR_CALM; ``/refuse-once``: REFUSED_STREAM the first time, then as ``/ok``;
    ``/sink``: the request body's length once it ended, its window given back only after
    ``open_sinks``; ``/never``: no answer; ``/goaway``: GOAWAY naming the stream before this
    one as the last; ``/hold``: answered after 100 ms; ``/flood``: DATA beyond the windows it
    was given.
    """

    def __init__(self, max_streams: int | None = None) -> None:
        self.max_streams = max_streams
        self.connections = 0
        self.inflight = 0
        self.peak = 0
        self.refused = 0
        self.sink_open = False  # ``/sink`` streams get window updates
        self.live: set[_RawConn] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> RawH2Server:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _RawConn(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def open_sinks(self) -> None:
        """From now on, give ``/sink`` streams their window back (and what they took so far)."""
        self.sink_open = True
        for conn in self.live:
            for sid, n in conn.held.items():
                conn.conn.acknowledge_received_data(n, sid)
            conn.held.clear()
            conn.flush()

    def drop(self) -> None:
        """Cut every connection (TCP reset), as a crash would."""
        for conn in list(self.live):
            if conn.transport is not None:
                conn.transport.abort()

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        self.drop()
        await self.server.wait_closed()


class _RawConn(asyncio.Protocol):
    def __init__(self, server: RawH2Server) -> None:
        self.server = server
        server.connections += 1
        self.number = server.connections
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self.transport: asyncio.Transport | None = None
        self.sinks: dict[int, int] = {}  # ``/sink`` stream -> bytes received
        self.held: dict[int, int] = {}  # ``/sink`` stream -> bytes not acknowledged

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.live.add(self)
        if self.server.max_streams is not None:
            codes = h2.settings.SettingCodes
            self.conn.local_settings = h2.settings.Settings(
                client=False, initial_values={codes.MAX_CONCURRENT_STREAMS: self.server.max_streams}
            )
        self.conn.initiate_connection()
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.live.discard(self)

    def flush(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                path = dict(event.headers)[b":path"]
                self.request(event.stream_id, path.decode())
            elif isinstance(event, h2.events.DataReceived):
                sid, n = event.stream_id, event.flow_controlled_length
                if sid in self.sinks:
                    self.sinks[sid] += len(event.data)
                    if not self.server.sink_open:
                        self.held[sid] = self.held.get(sid, 0) + n
                        continue
                self.conn.acknowledge_received_data(n, sid)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id in self.sinks:
                self.answer(event.stream_id, b"%d" % self.sinks.pop(event.stream_id))
        self.flush()

    def answer(self, sid: int, body: bytes) -> None:
        self.conn.send_headers(sid, [(b":status", b"200")])
        self.conn.send_data(sid, body, end_stream=True)
        self.flush()

    def request(self, sid: int, path: str) -> None:
        server = self.server
        if path == "/ok":
            self.answer(sid, b"ok:%d" % self.number)
        elif path == "/reset":
            self.conn.send_headers(sid, [(b":status", b"200")])
            self.conn.send_data(sid, b"partial")
            self.conn.reset_stream(sid, h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
        elif path == "/refuse-once":
            if server.refused == 0:
                server.refused += 1
                self.conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
            else:
                self.answer(sid, b"ok:%d" % self.number)
        elif path == "/goaway":
            # framed by hand: h2 cannot name stream 0 as the last one processed
            frame = hyperframe.frame.GoAwayFrame(0, last_stream_id=max(sid - 2, 0), error_code=0)
            self.flush()
            assert self.transport is not None
            self.transport.write(frame.serialize())
            self.transport.close()
        elif path == "/sink":
            self.sinks[sid] = 0  # answered with the body's length once it ended
        elif path == "/never":
            pass  # no answer
        elif path == "/hold":
            server.inflight += 1
            server.peak = max(server.peak, server.inflight)

            def later() -> None:
                server.inflight -= 1
                self.answer(sid, b"held")

            asyncio.get_running_loop().call_later(0.1, later)
        elif path == "/flood":
            self.conn.send_headers(sid, [(b":status", b"200")])
            self.flush()
            # a DATA frame past the stream's window, framed by hand (h2 would refuse to)
            payload = b"x" * 16_000
            header = len(payload).to_bytes(3, "big") + b"\x00\x00" + sid.to_bytes(4, "big")
            assert self.transport is not None
            for _ in range(10):
                self.transport.write(header + payload)
        self.flush()


def test_a_stream_reset_by_the_server() -> None:
    async def main() -> None:
        async with RawH2Server() as srv:
            client = H2Client(srv.url)
            try:
                ex = await client.open("GET", "/reset", end_stream=True)
                assert (await ex.head(5))[0] == 200
                assert await ex.read(5) == b"partial"  # what came before the reset
                with pytest.raises(
                    H2StreamReset, match="reset by the server: ENHANCE_YOUR_CALM"
                ) as e:
                    await ex.read(5)
                assert e.value.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
                assert not e.value.unprocessed
                assert client.active == 0
                with pytest.raises(H2StreamReset):
                    await client.request("GET", "/reset")
                # refused: never processed, so ``request`` sends it again, once
                status, _, body = await client.request("GET", "/refuse-once")
                assert (status, body) == (200, b"ok:1")
                assert srv.refused == 1 and srv.connections == 1
            finally:
                await client.close()

    run(main)


def test_goaway_fails_the_stream_and_the_next_request_reconnects() -> None:
    async def main() -> None:
        async with RawH2Server() as srv:
            client = H2Client(srv.url)
            try:
                assert (await client.request("GET", "/ok"))[2] == b"ok:1"
                ex = await client.open("GET", "/goaway", end_stream=True)
                with pytest.raises(H2GoAway, match=r"went away \(GOAWAY NO_ERROR") as e:
                    await ex.head(5)
                assert e.value.unprocessed and e.value.last_stream_id == ex.stream_id - 2
                assert client.active == 0
                assert (await client.request("GET", "/ok"))[2] == b"ok:2"
                # ``request`` sends what the server did not process once more, on a new
                # connection; this server says GOAWAY again: then it gives up
                with pytest.raises(H2GoAway) as again:
                    await client.request("GET", "/goaway")
                assert again.value.unprocessed and srv.connections == 3
            finally:
                await client.close()

    run(main)


def test_writes_wait_for_the_servers_window() -> None:
    """A server that does not give the window back: what does not fit stays queued with the
    exchange, ``drain`` waits (here: times out); once the window reopens, it all goes."""

    async def main() -> None:
        async with RawH2Server() as srv:
            client = H2Client(srv.url)
            try:
                ex = await client.open("POST", "/sink")
                ex.write(pattern(MB))
                # the server's initial window is 65,535 bytes: the rest waits
                await eventually(lambda: ex.buffered == MB - 65_535)
                with pytest.raises(H2Timeout, match="request body to go out"):
                    await ex.drain(0.2)
                ex.end()
                srv.open_sinks()
                await ex.drain(5)
                assert ex.buffered == 0
                assert await ex.head(5) == (200, {})
                assert await ex.read(5) == b"%d" % MB
                assert await ex.read(5) == b""
                assert ex.closed and client.active == 0
            finally:
                await client.close()

    run(main)


def test_the_servers_max_concurrent_streams_is_respected() -> None:
    async def main() -> None:
        async with RawH2Server(max_streams=3) as srv:
            client = H2Client(srv.url, max_streams=50)
            try:
                answers = await asyncio.gather(*(client.request("GET", "/hold") for _ in range(20)))
                assert {a[2] for a in answers} == {b"held"}
                assert srv.peak == 3
                assert srv.connections == 1
                assert client.active == 0 and client.waiting == 0
            finally:
                await client.close()
        async with RawH2Server() as srv:
            client = H2Client(srv.url, max_streams=4)  # our own limit
            try:
                await asyncio.gather(*(client.request("GET", "/hold") for _ in range(12)))
                assert srv.peak == 4
            finally:
                await client.close()

    run(main)


def test_a_cancelled_waiter_gives_its_slot_on() -> None:
    async def main() -> None:
        async with RawH2Server() as srv:
            client = H2Client(srv.url, max_streams=1)
            try:
                first = await client.open("GET", "/hold", end_stream=True)
                cancelled = asyncio.ensure_future(client.request("GET", "/ok"))
                queued = asyncio.ensure_future(client.request("GET", "/ok"))
                await eventually(lambda: client.waiting == 2)
                cancelled.cancel()
                assert (await first.head(5))[0] == 200
                assert await first.read(5) == b"held"
                assert await first.read(5) == b""
                assert (await queued)[2] == b"ok:1"
                assert cancelled.cancelled()
                assert client.active == 0 and client.waiting == 0
            finally:
                await client.close()

    run(main)


def test_a_server_breaking_flow_control_loses_the_connection() -> None:
    async def main() -> None:
        async with RawH2Server() as srv:
            client = H2Client(srv.url, stream_window=1 << 16)
            try:
                ex = await client.open("GET", "/flood", end_stream=True)
                with pytest.raises(H2Error, match="broke the HTTP/2 protocol"):
                    while await ex.read(5):
                        pass
                assert (await client.request("GET", "/ok"))[2] == b"ok:2"
            finally:
                await client.close()

    run(main)


def test_not_an_http2_server() -> None:
    """A server that answers the preface with HTTP/1.1: a clear error, nothing hangs."""

    async def main() -> None:
        async def http1(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await r.read(100)
            w.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            await w.drain()
            w.close()

        server = await asyncio.start_server(http1, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = H2Client(f"http://127.0.0.1:{port}")
        try:
            with pytest.raises(HttpClientError, match="did not open an HTTP/2 connection"):
                await client.request("GET", "/")
        finally:
            await client.close()
            server.close()
            await server.wait_closed()

    run(main)


def test_close_while_connecting_and_a_silent_server() -> None:
    """A server that accepts but never sends its SETTINGS: ``connect_timeout``; closing the
    client while it connects fails the caller with HttpClientError, not a cancellation."""

    async def main() -> None:
        async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await r.read()
            w.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            client = H2Client(url, connect_timeout=0.2)
            with pytest.raises(HttpClientError, match=r"timed out after 0.2 s"):
                await client.request("GET", "/")
            await client.close()
            client = H2Client(url)
            opening = asyncio.ensure_future(client.open("GET", "/"))
            await asyncio.sleep(0.1)
            await client.close()
            with pytest.raises(HttpClientError, match="is closed"):
                await opening
        finally:
            server.close()
            await server.wait_closed()

    run(main)


def test_resolve_hook_decides_where_to_connect() -> None:
    """The host policy's hook: a name nobody resolves reaches the address it gives; a denied
    host is refused before any connection."""

    async def main() -> None:
        async with RawH2Server() as srv:
            asked: list[tuple[str, int]] = []

            async def resolve(host: str, port: int) -> list[tuple[int, Any]]:
                asked.append((host, port))
                return [(socket.AF_INET, ("127.0.0.1", srv.port))]

            client = H2Client("http://endpoint.invalid:8080", resolve=resolve)
            try:
                assert (await client.request("GET", "/ok"))[2] == b"ok:1"
                assert asked == [("endpoint.invalid", 8080)]
            finally:
                await client.close()

            denied = H2Client(srv.url, resolve=HostPolicy(deny="127.0.0.0/8").resolve)
            try:
                with pytest.raises(HostDeniedError):
                    await denied.request("GET", "/ok")
                assert srv.connections == 1
            finally:
                await denied.close()

    run(main)


# ------------------------------------------------------------------ the Restate Python SDK


def test_restate_sdk_discovery_over_h2c(tmp_path: Path) -> None:
    """The SDK endpoint over h2c (prior knowledge) answers discovery with BIDI_STREAM."""
    from tests.restate.conftest import py_app

    with py_app(tmp_path, http2=True) as endpoint:

        async def main() -> None:
            client = H2Client(endpoint.url)
            try:
                status, headers, body = await client.request(
                    "GET",
                    "/discover",
                    {"accept": "application/vnd.restate.endpointmanifest.v4+json"},
                    max_bytes=1 << 20,
                    timeout_s=10,
                )
                assert status == 200, body
                assert headers["content-type"].startswith(
                    "application/vnd.restate.endpointmanifest.v4+json"
                )
                manifest = json.loads(body)
                assert manifest["protocolMode"] == "BIDI_STREAM"
                assert manifest["services"]
            finally:
                await client.close()

        run(main)


if __name__ == "__main__":  # hypercorn serving ``app``: PORT [CERTFILE KEYFILE]
    _serve(
        int(sys.argv[1]),
        sys.argv[2] if len(sys.argv) > 2 else None,
        sys.argv[3] if len(sys.argv) > 3 else None,
    )
