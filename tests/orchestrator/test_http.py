"""The orchestrator's HTTP client (``HttpPool``) against real servers on loopback: uvicorn serving
a raw ASGI app, and raw asyncio servers for the nasty cases (stale keep-alive sockets, answers cut
short, late answers)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from ritornello.orchestrator.invokers import HostPolicy, HttpInvoker, InvokerError
from ritornello.orchestrator.invokers._client_errors import HttpClientError
from ritornello.orchestrator.invokers._pool import HttpPool
from tests.procs import uvicorn_thread


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- uvicorn with a raw ASGI app


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    path: str = scope["path"]
    chunks = []
    more = True
    while more:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        more = msg.get("more_body", False)
    body = b"".join(chunks)
    query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if p)
    if "sleep" in query:
        await asyncio.sleep(int(query["sleep"]) / 1000)
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/octet-stream")]
    status = 200
    if path == "/echo":
        out = body
    elif path == "/port":
        out = str(scope["client"][1]).encode()
    elif path == "/headers":
        out = json.dumps({k.decode(): v.decode() for k, v in scope["headers"]}).encode()
    elif path == "/status":
        status, out = int(query["code"]), b"x" * 500
    elif path == "/close":
        out, headers = b"bye", [*headers, (b"connection", b"close")]
    elif path == "/chunked":  # no content-length and several body messages: chunked encoding
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(5):
            await send({"type": "http.response.body", "body": b"part%d;" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    else:
        status, out = 404, b"no such path"
    headers.append((b"content-length", str(len(out)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": out})


@pytest.fixture(scope="module")
def uv() -> Iterator[str]:
    with uvicorn_thread(app, http="httptools", loop="asyncio") as url:
        yield url


async def eventually(check: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(coro, 10)

    return asyncio.run(main())


# ---------------------------------------------------------------- a raw server we control


class RawServer:
    """An asyncio server on loopback whose connection handler is the test's ``behave``."""

    def __init__(
        self,
        behave: Callable[[RawServer, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.behave = behave
        self.tls = tls
        self.connections = 0
        self.requests = 0
        self.eofs = 0  # connections the client closed
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.behave(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        """One request's body, or None at EOF."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            self.eofs += 1
            return None
        self.requests += 1
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return await reader.readexactly(length)


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def serve_forever(srv: RawServer, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    while (body := await srv.read_request(r)) is not None:
        w.write(ok(b"answer:" + body))
        await w.drain()


# ---------------------------------------------------------------- against uvicorn


def test_keep_alive_reuses_one_connection(uv: str) -> None:
    async def main() -> set[bytes]:
        pool = HttpPool(uv)
        try:
            ports = set()
            for _ in range(100):
                status, headers, body = await pool.request("GET", "/port", None)
                assert status == 200
                assert headers["content-type"] == "application/octet-stream"
                ports.add(body)
            # With three idle connections, sequential requests keep using the warmest (LIFO).
            await asyncio.gather(*(pool.request("GET", "/port?sleep=5", None) for _ in range(3)))
            assert len(pool._idle) == 3
            warm = {(await pool.request("GET", "/port", None))[2] for _ in range(10)}
            assert len(warm) == 1
            return ports
        finally:
            await pool.close()

    assert len(run(main())) == 1


def test_concurrency_limit_is_respected(uv: str) -> None:
    async def main() -> set[bytes]:
        pool = HttpPool(uv, limit=4)
        try:
            results = await asyncio.gather(
                *(pool.request("GET", "/port?sleep=20", None) for _ in range(50))
            )
            assert all(status == 200 for status, _, _ in results)
            assert pool._slots <= 4 and len(pool._idle) == 4
            return {body for _, _, body in results}
        finally:
            await pool.close()

    ports = run(main())
    assert 1 < len(ports) <= 4


def test_echo_headers_status_and_path_prefix(uv: str) -> None:
    async def main() -> None:
        pool = HttpPool(uv + "/", headers={"content-type": "application/json"})
        try:
            status, _, body = await pool.request("POST", "/echo", b'{"a": 1}')
            assert (status, body) == (200, b'{"a": 1}')
            status, _, body = await pool.request("POST", "/echo", b"")
            assert (status, body) == (200, b"")
            status, _, body = await pool.request("GET", "/headers", None, {"x-extra": "yes"})
            seen = json.loads(body)
            assert seen["host"] == uv.removeprefix("http://")
            assert seen["content-type"] == "application/json"
            assert seen["x-extra"] == "yes"
            assert seen["content-length"] == "0"
            status, _, body = await pool.request("GET", "/status?code=503", None)
            assert (status, body) == (503, b"x" * 500)
            status, _, _ = await pool.request("GET", "/nothing", None)
            assert status == 404
        finally:
            await pool.close()
        # A path under the base URL's path.
        pool = HttpPool(uv + "/sub")
        try:
            assert (await pool.request("GET", "/echo", None))[0] == 404  # /sub/echo
        finally:
            await pool.close()

    run(main())


def test_chunked_response(uv: str) -> None:
    async def main() -> None:
        pool = HttpPool(uv)
        try:
            for _ in range(3):  # and the connection stays usable after it
                status, headers, body = await pool.request("GET", "/chunked", None)
                assert headers["transfer-encoding"] == "chunked"
                assert (status, body) == (200, b"part0;part1;part2;part3;part4;")
            assert pool._slots == 1
        finally:
            await pool.close()

    run(main())


def test_connection_close_response(uv: str) -> None:
    async def main() -> None:
        pool = HttpPool(uv)
        try:
            ports = set()
            for _ in range(3):
                status, headers, body = await pool.request("GET", "/close", None)
                assert (status, body, headers["connection"]) == (200, b"bye", "close")
                assert pool._slots == 0 and not pool._idle  # not kept
                ports.add((await pool.request("GET", "/port", None))[2])
            assert len(ports) == 3  # a new connection after each close
        finally:
            await pool.close()

    run(main())


def test_large_bodies_both_ways(uv: str) -> None:
    big = bytes(range(256)) * (5 * 1024 * 1024 // 256)

    async def main() -> None:
        pool = HttpPool(uv)
        try:
            for _ in range(2):
                status, _, body = await pool.request("POST", "/echo", big)
                assert status == 200 and len(body) == len(big) and body == big
        finally:
            await pool.close()

    run(main())


def test_invoker_over_the_pool(uv: str, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        inv = HttpInvoker(uv)
        try:
            # invoke POSTs to /invoke/{service}/{handler}: uvicorn's app answers 404 there. The
            # error names the status line; what the endpoint said goes to the log only.
            with pytest.raises(InvokerError, match=r"^endpoint answered HTTP 404 Not Found$"):
                await inv.invoke("Svc", "h", b"{}")
            assert "HTTP 404 Not Found: 'no such path'" in caplog.text
        finally:
            await inv.close()
        inv = HttpInvoker(f"http://127.0.0.1:{free_port()}")
        try:
            with pytest.raises(InvokerError, match="unreachable"):
                await inv.invoke("Svc", "h", b"{}")
        finally:
            await inv.close()

    run(main())


# ---------------------------------------------------------------- nasty cases, raw servers


def test_connection_refused_is_fast() -> None:
    async def main() -> None:
        pool = HttpPool(f"http://127.0.0.1:{free_port()}")
        t0 = time.monotonic()
        with pytest.raises(HttpClientError, match="cannot connect"):
            await pool.request("GET", "/", None)
        assert time.monotonic() - t0 < 1
        assert pool._slots == 0
        await pool.close()

    run(main())


def test_bad_urls() -> None:
    for url in ("ftp://x/", "http://", "http://u:p@host/", "http://host/?q=1"):
        with pytest.raises(ValueError):
            HttpPool(url)
    with pytest.raises(ValueError):
        HttpPool("http://host", headers={"x": "a\r\nb: c"})


def test_idle_socket_closed_by_server_is_retried_once() -> None:
    """The server reads the second request on a kept-alive connection and hangs up without an
    answer (what a keep-alive timeout looks like when it races the request): the client sends it
    again on a fresh connection, transparently."""

    async def behave(srv: RawServer, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        body = await srv.read_request(r)
        w.write(ok(b"first:" + (body or b"")))
        await w.drain()
        if srv.connections == 1:
            await srv.read_request(r)  # read it, then hang up: no answer byte
            return
        await serve_forever(srv, r, w)

    async def main() -> None:
        async with RawServer(behave) as srv:
            pool = HttpPool(srv.url)
            try:
                assert (await pool.request("POST", "/", b"a"))[2] == b"first:a"
                assert (await pool.request("POST", "/", b"b"))[2] == b"first:b"
                assert (srv.connections, srv.requests) == (2, 3)
                assert (await pool.request("POST", "/", b"c"))[2] == b"answer:c"
                assert srv.connections == 2
            finally:
                await pool.close()

    run(main())


def test_idle_socket_closed_while_idle() -> None:
    async def behave(srv: RawServer, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        body = await srv.read_request(r)
        w.write(ok(body or b""))  # keep-alive answer, then hang up anyway

    async def main() -> None:
        async with RawServer(behave) as srv:
            pool = HttpPool(srv.url)
            try:
                for i in range(3):
                    assert (await pool.request("POST", "/", b"%d" % i))[2] == b"%d" % i
                    # The FIN arrives while idle: the connection leaves the pool.
                    await eventually(lambda: not pool._idle and pool._slots == 0)
                assert srv.connections == 3
            finally:
                await pool.close()

    run(main())


def test_fresh_connection_closed_before_answer_is_an_error() -> None:
    async def behave(srv: RawServer, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await srv.read_request(r)

    async def main() -> None:
        async with RawServer(behave) as srv:
            pool = HttpPool(srv.url)
            try:
                with pytest.raises(HttpClientError, match="closed before an answer"):
                    await pool.request("POST", "/", b"x")
                assert srv.connections == 1  # not retried: nothing suggests a stale socket
                assert pool._slots == 0
            finally:
                await pool.close()

    run(main())


def test_close_mid_response_is_an_error_not_retried() -> None:
    async def behave(srv: RawServer, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await srv.read_request(r)
        w.write(ok(b"fine"))
        await srv.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b")
        await w.drain()

    async def main() -> None:
        async with RawServer(behave) as srv:
            pool = HttpPool(srv.url)
            try:
                assert (await pool.request("POST", "/", b"1"))[2] == b"fine"
                with pytest.raises(HttpClientError, match="mid-response"):
                    await pool.request("POST", "/", b"2")  # on the reused connection
                assert (srv.connections, srv.requests) == (1, 2)
                assert pool._slots == 0
            finally:
                await pool.close()

    run(main())


def test_malformed_response_is_an_error() -> None:
    async def behave(srv: RawServer, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await srv.read_request(r)
        w.write(b"NOT HTTP AT ALL\r\n\r\n")
        await w.drain()
        await r.read()

    async def main() -> None:
        async with RawServer(behave) as srv:
            pool = HttpPool(srv.url)
            try:
                with pytest.raises(HttpClientError, match="malformed"):
                    await pool.request("GET", "/", None)
                assert pool._slots == 0
            finally:
                await pool.close()

    run(main())


def test_body_until_eof_and_interim_answer() -> None:
    async def behave(srv: RawServer, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await srv.read_request(r)
        w.write(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nx-a: 1\r\nx-a: 2\r\n\r\nto the end"
        )
        await w.drain()

    async def main() -> None:
        async with RawServer(behave) as srv:
            pool = HttpPool(srv.url)
            try:
                status, headers, body = await pool.request("GET", "/", None)
                assert (status, headers["x-a"], body) == (200, "1, 2", b"to the end")
                assert pool._slots == 0
            finally:
                await pool.close()

    run(main())


def test_cancelled_request_discards_its_connection() -> None:
    """A request timed out by its caller: its connection is closed, so its late answer can't
    be read as the next request's answer."""

    async def behave(srv: RawServer, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while (body := await srv.read_request(r)) is not None:
            if body == b"slow":
                await asyncio.sleep(0.2)
            w.write(ok(b"answer:" + body))
            await w.drain()

    async def main() -> None:
        async with RawServer(behave) as srv:
            pool = HttpPool(srv.url, limit=1)
            try:
                assert (await pool.request("POST", "/", b"warm"))[2] == b"answer:warm"
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(pool.request("POST", "/", b"slow"), 0.05)
                assert pool._slots == 0 and not pool._idle
                assert (await pool.request("POST", "/", b"next"))[2] == b"answer:next"
                await asyncio.sleep(0.3)  # the late answer would have come by now
                assert (await pool.request("POST", "/", b"again"))[2] == b"answer:again"
                assert srv.connections == 2
            finally:
                await pool.close()

    run(main())


def test_cancelled_waiter_and_queue_order() -> None:
    async def main() -> None:
        async with RawServer(serve_forever) as srv:
            pool = HttpPool(srv.url, limit=1)
            try:
                first = asyncio.ensure_future(pool.request("POST", "/", b"1"))
                queued = asyncio.ensure_future(pool.request("POST", "/", b"2"))
                last = asyncio.ensure_future(pool.request("POST", "/", b"3"))
                await asyncio.sleep(0)
                queued.cancel()
                assert (await first)[2] == b"answer:1"
                assert (await last)[2] == b"answer:3"
                assert queued.cancelled()
                assert srv.connections == 1 and pool._slots == 1
            finally:
                await pool.close()

    run(main())


def test_idle_timeout_closes_idle_connections() -> None:
    async def main() -> None:
        async with RawServer(serve_forever) as srv:
            pool = HttpPool(srv.url, idle_timeout=0.1)
            try:
                await asyncio.gather(*(pool.request("POST", "/", b"x") for _ in range(3)))
                assert len(pool._idle) == 3
                await asyncio.sleep(0.05)
                assert len(pool._idle) == 3  # not yet
                await eventually(lambda: not pool._idle and pool._slots == 0)
                await eventually(lambda: srv.eofs == 3)  # the server saw them closed
                assert (await pool.request("POST", "/", b"y"))[2] == b"answer:y"
            finally:
                await pool.close()

    run(main())


def test_close_closes_everything() -> None:
    async def behave(srv: RawServer, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while (body := await srv.read_request(r)) is not None:
            if body == b"hang":
                await r.read()  # never answer
                srv.eofs += 1
                return
            w.write(ok(body))
            await w.drain()

    async def main() -> None:
        async with RawServer(behave) as srv:
            pool = HttpPool(srv.url, limit=3)
            await asyncio.gather(*(pool.request("POST", "/", b"x") for _ in range(2)))
            hanging = [asyncio.ensure_future(pool.request("POST", "/", b"hang")) for _ in range(3)]
            queued = asyncio.ensure_future(pool.request("POST", "/", b"q"))
            await eventually(lambda: srv.requests == 5)
            await pool.close()
            for fut in [*hanging, queued]:
                with pytest.raises(HttpClientError):
                    await fut
            await eventually(lambda: srv.eofs == 3)
            with pytest.raises(HttpClientError, match="closed"):
                await pool.request("GET", "/", None)
            await pool.close()  # idempotent

    run(main())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
@pytest.mark.parametrize("checked", [False, True], ids=["loop-resolves", "policy-on-uvloop"])
def test_https(tmp_path: Path, checked: bool) -> None:
    """Also with the deployment host policy's resolver (a socket connected first, TLS on top
    with the URL's host for SNI and the certificate) on uvloop, as ``serve`` runs it."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))

    async def main() -> None:
        async with RawServer(serve_forever, server_ctx) as srv:
            url = srv.url.replace("http:", "https:")
            resolve = HostPolicy().resolve if checked else None
            pool = HttpPool(url, ssl=client_ctx, resolve=resolve)
            try:
                for i in range(3):
                    assert (await pool.request("POST", "/", b"%d" % i))[2] == b"answer:%d" % i
                assert srv.connections == 1
            finally:
                await pool.close()
            untrusted = HttpPool(url, resolve=resolve)
            with pytest.raises(HttpClientError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusted.request("GET", "/", None)
            await untrusted.close()

    if checked:
        uvloop.run(asyncio.wait_for(main(), 10))
    else:
        run(main())
