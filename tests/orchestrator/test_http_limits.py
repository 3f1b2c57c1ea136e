"""The answer limits of our HTTP client and of every invoker, against raw servers on loopback
that write as much as they like: past ``max_bytes`` the connection is aborted (the server's
writes fail soon after) and the exchange fails naming the limit; a stream's limit bounds what it
holds, not how much it carries over its life."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ritornello.orchestrator.invokers import HttpInvoker, InProcessInvoker, InvokerError
from ritornello.orchestrator.invokers._client_errors import AnswerTooLarge
from ritornello.orchestrator.invokers._pool import HttpPool
from ritornello.orchestrator.invokers._stream import chunk

from .test_http import RawServer, ok, run

MIB = 1 << 20
PIECE = 64 * 1024


class Flood:
    """A server that answers every request with ``head`` then writes ``piece`` until ``total``
    bytes are out or the client goes away; it counts what it wrote."""

    def __init__(self, head: bytes, piece: bytes, total: int = 256 * MIB) -> None:
        self.head, self.piece, self.total = head, piece, total
        self.written = 0
        self.broken = False

    async def __call__(
        self, srv: RawServer, r: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(self.head)
        try:
            while self.written < self.total:
                w.write(self.piece)
                await w.drain()
                self.written += len(self.piece)
        except ConnectionError:
            self.broken = True
            raise


CHUNKED = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
NDJSON = CHUNKED.replace(b"\r\n\r\n", b"\r\ncontent-type: application/x-ndjson\r\n\r\n")


@pytest.mark.parametrize(
    ("head", "piece"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (256 * MIB), b"x" * PIECE),
        (CHUNKED, chunk(b"x" * PIECE)),
        (CHUNKED, chunk(b"x") * 4096),  # tiny chunks: what holding each piece costs counts too
        (b"HTTP/1.1 200 OK\r\n", b"x-pad: " + b"x" * PIECE + b"\r\n"),  # headers without end
    ],
    ids=["content-length", "chunked", "tiny-chunks", "headers"],
)
def test_an_answer_past_max_bytes_aborts_the_connection(head: bytes, piece: bytes) -> None:
    flood = Flood(head, piece)

    async def main() -> None:
        async with RawServer(flood) as srv:
            pool = HttpPool(srv.url)
            try:
                with pytest.raises(AnswerTooLarge, match="1,048,576 bytes"):
                    await pool.request("GET", "/", None, max_bytes=MIB)
                await asyncio.sleep(0.2)
                assert flood.broken and not pool._conns
                # the pool goes on with a fresh connection
                with pytest.raises(AnswerTooLarge):
                    await pool.request("GET", "/", None, max_bytes=MIB)
            finally:
                await pool.close()

    run(main())
    # what the kernel's socket buffers took before the abort, and no more
    assert flood.written < 32 * MIB, flood.written


def test_an_answer_within_max_bytes_is_read_as_before() -> None:
    async def answer(srv: RawServer, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while (body := await srv.read_request(r)) is not None:
            w.write(ok(b"y" * int(body)))
            await w.drain()

    async def main() -> None:
        async with RawServer(answer) as srv:
            pool = HttpPool(srv.url)
            try:
                # the limit counts headers, framing and pieces too: a few KiB of slack
                size = MIB - 16 * 1024
                for _ in range(3):  # one connection, reused: each answer counted on its own
                    _, _, body = await pool.request("POST", "/", b"%d" % size, max_bytes=MIB)
                    assert len(body) == size
                assert srv.connections == 1
            finally:
                await pool.close()

    run(main())


def test_a_streamed_line_past_the_limit_fails_naming_max_answer_bytes() -> None:
    flood = Flood(NDJSON, chunk(b"x" * PIECE))

    async def main() -> str:
        async with RawServer(flood) as srv:
            invoker = HttpInvoker(srv.url, max_answer_bytes=MIB)
            invoker.offer_stream(True)
            try:
                live = await invoker.open_stream("S", "h", b'{"x":1}')
                with pytest.raises(InvokerError) as info:
                    await live.next(10)
                live.abort()
                await asyncio.sleep(0.2)
                return str(info.value)
            finally:
                await invoker.close()

    message = run(main())
    assert "streamed answer line larger than the max_answer_bytes limit (1,048,576" in message
    assert flood.broken and flood.written < 32 * MIB, flood.written


def test_lines_piling_up_unread_count_against_the_limit() -> None:
    """Short lines the orchestrator has not asked for (it reads one per acknowledgement) are
    held, so they count: past the limit the stream is aborted."""
    flood = Flood(NDJSON, chunk(b'{"n":1}\n' * 8192))

    async def main() -> None:
        async with RawServer(flood) as srv:
            pool = HttpPool(srv.url)
            try:
                stream = await pool.stream("POST", "/", b"{}", max_bytes=MIB)
                await asyncio.sleep(0.5)
                with pytest.raises(AnswerTooLarge):
                    while True:
                        await stream.next(5)
                stream.abort()
            finally:
                await pool.close()

    run(main())
    assert flood.broken and flood.written < 32 * MIB, flood.written


def test_a_stream_may_carry_more_than_its_limit_line_by_line() -> None:
    """The limit bounds what is held since the last line taken: a long exchange of lines, each
    read as it comes, carries many times the limit."""
    line = b"z" * (MIB // 2 - 1) + b"\n"

    async def lines(srv: RawServer, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(NDJSON)
        for _ in range(20):
            await r.readuntil(b"go\n")  # one line per request line, as acks pace a stream
            w.write(chunk(line))
            await w.drain()
        w.write(b"0\r\n\r\n")

    async def main() -> int:
        async with RawServer(lines) as srv:
            pool = HttpPool(srv.url)
            try:
                stream = await pool.stream("POST", "/", b"{}", max_bytes=MIB)
                got = 0
                for _ in range(20):
                    stream.send(b"go")
                    got += len(await stream.next(5)) + 1
                stream.abort()
                return got
            finally:
                await pool.close()

    assert run(main()) == 20 * len(line)


class _Target:
    def __init__(self, size: int) -> None:
        self.size = size

    async def discover(self) -> bytes:
        return b"d" * self.size

    async def invoke(self, body: bytes) -> bytes:
        return b"a" * self.size


@pytest.mark.parametrize("size", [1000, 1001])
def test_in_process_answers_are_held_to_the_same_limits(size: int) -> None:
    invoker = InProcessInvoker(_Target(size), max_answer_bytes=1000, max_discovery_bytes=1000)

    async def main() -> Any:
        results = []
        for call in (invoker.discover(), invoker.invoke("S", "h", b"{}")):
            try:
                results.append(len(await call))
            except InvokerError as exc:
                results.append(str(exc))
        return results

    discovered, answered = run(main())
    if size == 1000:
        assert discovered == answered == 1000
    else:
        assert "larger than the max_discovery_bytes limit (1,000 bytes" in discovered
        assert "larger than the max_answer_bytes limit (1,000 bytes" in answered
