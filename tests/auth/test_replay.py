"""Captured signed requests cannot be replayed: a handler endpoint with a signing secret under a
real uvicorn on loopback, the orchestrator's own HTTP client (``HttpInvoker``) talking to it
through a recording proxy, and an attacker replaying the bytes the proxy saw.

- a plain request replayed as a stream (``x-ritornello-stream`` and acks added) is refused:
  the signature covers the stream header, so the replay cannot run every remaining step;
- a plain or streamed request replayed unchanged is refused (the endpoint remembers nonces);
- an ack from another exchange, or an ack sent again, ends the stream: no step runs after it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from http.client import HTTPResponse
from pathlib import Path
from typing import Any

import pytest

from ritornello.orchestrator.invokers import HttpInvoker, InvokerError, InvokeStream
from ritornello.protocol import InvokeResponse, Signer
from ritornello.protocol._signing import BINDING_HEADER, NONCE_HEADER
from tests.orchestrator.test_http import RawServer
from tests.procs import Endpoint, http

HERE = Path(__file__).parent
SECRET = "replay-secret-4b7e1c"
PATH = "/invoke/Steps/count"


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    tmp = tmp_path_factory.mktemp("replay")
    proc = Endpoint(tmp, HERE, "authapp", RITORNELLO_SIGNING_SECRET=SECRET).start()
    try:
        yield proc
    finally:
        proc.terminate()


def request(inv: str, n: int) -> bytes:
    return json.dumps(
        {
            "version": 1,
            "type": "invoke",
            "id": inv,
            "service": "Steps",
            "handler": "count",
            "key": None,
            "attempt": 1,
            "journal": [{"kind": "input", "value": n}],
            "completions": [],
            "state": None,
        }
    ).encode()


class Recorder:
    """A TCP proxy on loopback to ``port``: every byte a client sends is kept, per connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sent: list[bytearray] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Recorder:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        record = bytearray()
        self.sent.append(record)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)

        async def pump(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, keep: bytearray | None
        ) -> None:
            try:
                while data := await src.read(65536):
                    if keep is not None:
                        keep.extend(data)
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer, record), pump(up_reader, writer, None))


def chunks(body: bytes) -> list[bytes]:
    """The data of each chunk of a chunked body."""
    out = []
    while body:
        size, _, rest = body.partition(b"\r\n")
        n = int(size.split(b";")[0], 16)
        if n == 0:
            break
        out.append(rest[:n])
        body = rest[n + 2 :]
    return out


def replay(port: int, data: bytes) -> tuple[int, list[dict[str, Any]]]:
    """Send ``data`` as it is to the endpoint: (status, the answer's JSON lines)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(data)
        answer = HTTPResponse(sock)
        answer.begin()
        body = answer.read()
    return answer.status, [json.loads(line) for line in body.splitlines() if line.strip()]


def ran(lines: list[dict[str, Any]]) -> list[str]:
    """The steps an answer's lines journaled."""
    return [e["name"] for line in lines for e in line.get("entries", ()) if e["kind"] == "run"]


def run(coro: Any) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(coro, 30)

    return asyncio.run(main())


async def _drive(live: InvokeStream) -> list[str]:
    """Play the orchestrator to the end of a stream: the statuses it read."""
    statuses = []
    while True:
        answer = InvokeResponse.decode(await live.next(10))
        statuses.append(answer.status)
        if answer.status != "checkpoint":
            live.finish()
            return statuses
        live.ack()


def capture_plain(port: int, inv: str, n: int) -> bytes:
    """A signed plain request as the orchestrator sent it (its answer: the first step)."""

    async def main() -> bytes:
        async with Recorder(port) as proxy:
            invoker = HttpInvoker(proxy.url, signing_secret=SECRET)
            try:
                raw = await invoker.invoke("Steps", "count", request(inv, n))
                assert InvokeResponse.decode(raw).status == "checkpoint"
            finally:
                await invoker.close()
            return bytes(proxy.sent[0])

    data: bytes = run(main())
    return data


def capture_stream(port: int, inv: str, n: int) -> bytes:
    """A whole signed streamed exchange as the orchestrator sent it: head, request line, acks,
    end of the body."""

    async def main() -> bytes:
        async with Recorder(port) as proxy:
            invoker = HttpInvoker(proxy.url, signing_secret=SECRET)
            invoker.offer_stream(True)
            try:
                live = await invoker.open_stream("Steps", "count", request(inv, n))
                assert await _drive(live) == ["checkpoint"] * (n - 1) + ["done"]
                await asyncio.sleep(0.2)  # the end of the body through the proxy
            finally:
                await invoker.close()
            return bytes(proxy.sent[0])

    data: bytes = run(main())
    return data


def test_a_plain_request_replayed_as_a_stream_is_refused(endpoint: Endpoint) -> None:
    captured = capture_plain(endpoint.port, "inv_plain_as_stream", 5)
    head, _, body = captured.partition(b"\r\n\r\n")
    lines = [h for h in head.split(b"\r\n") if not h.lower().startswith(b"content-length")]
    lines += [b"x-ritornello-stream: 1", b"transfer-encoding: chunked"]
    acks = b"".join(b"%x\r\n%s\r\n" % (15, b'{"type":"ack"}\n') for _ in range(10))
    forged = b"\r\n".join(lines) + b"\r\n\r\n" + b"%x\r\n%s\r\n" % (len(body) + 1, body + b"\n")
    status, answer = replay(endpoint.port, forged + acks + b"0\r\n\r\n")
    assert ran(answer) == [] and status == 401, (status, answer)


def test_a_signed_request_replayed_unchanged_is_refused(endpoint: Endpoint) -> None:
    captured = capture_plain(endpoint.port, "inv_plain_again", 3)
    status, answer = replay(endpoint.port, captured)
    assert status == 401, (status, answer)
    assert "replayed" in answer[0]["message"], answer


def test_a_signed_streamed_exchange_replayed_is_refused(endpoint: Endpoint) -> None:
    captured = capture_stream(endpoint.port, "inv_stream_again", 4)
    status, answer = replay(endpoint.port, captured)
    assert ran(answer) == [] and status == 401, (status, answer)
    assert "replayed" in answer[0]["message"], answer


async def _next_or_refusal(live: InvokeStream) -> str:
    """What the endpoint does after a forged line: an answer (it went on) or the error."""
    try:
        return f"went on: {(await live.next(10))!r}"
    except InvokerError as exc:
        return str(exc)


def test_an_ack_from_another_exchange_is_refused(endpoint: Endpoint) -> None:
    captured = capture_stream(endpoint.port, "inv_ack_source", 3)
    head_end = captured.index(b"\r\n\r\n") + 4
    stolen = chunks(captured[head_end:])[1]  # the first ack of that exchange
    framed = b"%x\r\n%s\r\n" % (len(stolen), stolen)

    async def main() -> str:
        invoker = HttpInvoker(endpoint.uri, signing_secret=SECRET)
        invoker.offer_stream(True)
        try:
            live = await invoker.open_stream("Steps", "count", request("inv_ack_target", 3))
            first = InvokeResponse.decode(await live.next(10))
            assert first.status == "checkpoint"
            live._stream.send_framed(framed)  # type: ignore[attr-defined]
            return await _next_or_refusal(live)
        finally:
            await invoker.close()

    outcome = run(main())
    assert "ended without another line" in outcome, outcome


def test_an_ack_sent_again_is_refused(endpoint: Endpoint) -> None:
    async def main() -> str:
        async with Recorder(endpoint.port) as proxy:
            invoker = HttpInvoker(proxy.url, signing_secret=SECRET)
            invoker.offer_stream(True)
            try:
                live = await invoker.open_stream("Steps", "count", request("inv_ack_twice", 4))
                assert InvokeResponse.decode(await live.next(10)).status == "checkpoint"
                live.ack()
                assert InvokeResponse.decode(await live.next(10)).status == "checkpoint"
                sent = bytes(proxy.sent[0])
                ack = chunks(sent[sent.index(b"\r\n\r\n") + 4 :])[1]
                live._stream.send_framed(b"%x\r\n%s\r\n" % (len(ack), ack))  # type: ignore[attr-defined]
                return await _next_or_refusal(live)
            finally:
                await invoker.close()

    outcome = run(main())
    assert "ended without another line" in outcome, outcome


# ---------------------------------------------------------------- version skew


def test_an_older_orchestrators_signature_is_refused_unless_accepted(tmp_path: Path) -> None:
    """Signed v1 only (timestamp and signature, no nonce or binding), as orchestrators from
    before the binding sign: refused with what to do; accepted, as before, by an endpoint told
    to during the upgrade (RITORNELLO_ACCEPT_V1_SIGNATURES=1)."""

    def v1(body: bytes) -> dict[str, str]:
        headers = Signer(SECRET).headers("POST", PATH, body, time.time())
        del headers[NONCE_HEADER], headers[BINDING_HEADER]
        return headers

    strict = Endpoint(tmp_path, HERE, "authapp", RITORNELLO_SIGNING_SECRET=SECRET).start()
    try:
        body = request("inv_v1_strict", 2)
        status, answer, _ = http("POST", f"{strict.uri}{PATH}", raw=body, headers=v1(body))
        assert status == 401, answer
        assert "older than this endpoint's SDK" in answer["message"], answer
        assert "RITORNELLO_ACCEPT_V1_SIGNATURES=1" in answer["message"], answer
    finally:
        strict.terminate()
    lenient = Endpoint(
        tmp_path,
        HERE,
        "authapp",
        RITORNELLO_SIGNING_SECRET=SECRET,
        RITORNELLO_ACCEPT_V1_SIGNATURES="1",
    ).start()
    try:
        body = request("inv_v1_lenient", 2)
        status, answer, _ = http("POST", f"{lenient.uri}{PATH}", raw=body, headers=v1(body))
        assert status == 200 and answer["status"] == "checkpoint", answer
    finally:
        lenient.terminate()


def test_an_endpoint_that_predates_bound_acks_gets_plain_ones() -> None:
    """An endpoint whose SDK predates the binding ignores the new headers (it checks the v1
    signature) and does not say ``x-ritornello-ack: v2``: the orchestrator acks plainly."""
    seen: list[bytes] = []

    async def chunk_of(r: asyncio.StreamReader) -> bytes:
        size = int(await r.readline(), 16)
        return (await r.readexactly(size + 2))[:-2]

    async def old_sdk(srv: RawServer, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = await r.readuntil(b"\r\n\r\n")
        assert b"x-ritornello-binding: v2=" in head  # sent, and ignored here
        await chunk_of(r)  # the request line
        w.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\n")
        w.write(b"transfer-encoding: chunked\r\n\r\n")
        line = b'{"version":1,"status":"checkpoint","entries":[]}\n'
        w.write(b"%x\r\n%s\r\n" % (len(line), line))
        seen.append((await chunk_of(r)).strip())  # the ack, as the old SDK compares it
        line = b'{"version":1,"status":"done","entries":[{"kind":"output","value":1}]}\n'
        w.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(line), line))
        await r.readuntil(b"0\r\n\r\n")

    async def main() -> list[str]:
        async with RawServer(old_sdk) as srv:
            invoker = HttpInvoker(srv.url, signing_secret=SECRET)
            invoker.offer_stream(True)
            try:
                live = await invoker.open_stream("Steps", "count", request("inv_old_sdk", 2))
                return await _drive(live)
            finally:
                await invoker.close()

    assert run(main()) == ["checkpoint", "done"]
    assert seen == [b'{"type":"ack"}']
