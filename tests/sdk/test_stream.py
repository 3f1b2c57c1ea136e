"""Streamed attempts end to end: the SDK's ASGI app behind a real uvicorn on loopback, driven by
the orchestrator's own streaming HTTP client (``HttpPool.stream``, ``HttpInvoker.open_stream``)
playing the orchestrator: it reads answer lines, "commits" a checkpoint by appending it to its
journal, and acknowledges, stops or aborts.

What must hold: a step never starts before the results it follows were acknowledged; after a
stop or an abort no step starts at all; the journal the orchestrator assembles is exactly the
one a replay would produce; the connection goes back to the pool after a clean end.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from ritornello import Context, Endpoint, Service, VirtualObject
from ritornello.orchestrator.invokers import HttpInvoker, InvokerError, _http
from ritornello.orchestrator.invokers._client_errors import HttpClientError
from ritornello.orchestrator.invokers._pool import HttpPool
from ritornello.orchestrator.invokers._stream import HttpStream
from ritornello.protocol import STREAM_ACK, STREAM_HEADER, InvokeRequest, InvokeResponse
from tests.procs import uvicorn_thread

from ..orchestrator.test_http import RawServer

#: (invocation id, step name) of every step body that ran, in order
RAN: list[tuple[str, str]] = []
#: per invocation: how many acks the orchestrator had sent when each step body ran
ACKED: dict[str, int] = {}
SEEN_ACKS: dict[str, list[int]] = {}
#: per invocation: the kinds of the entries acknowledged so far
ACKED_KINDS: dict[str, list[str]] = {}

steps = Service("Steps")
holder = VirtualObject("Holder")


def _record(inv: str, name: str) -> None:
    RAN.append((inv, name))
    SEEN_ACKS.setdefault(inv, []).append(ACKED.get(inv, 0))


@steps.handler()
async def ten(ctx: Context, n: int) -> int:
    total = 0
    for i in range(n):

        async def step(i: int = i) -> int:
            _record(ctx.invocation_id, f"step-{i}")
            return i

        total += await ctx.run(f"step-{i}", step)
    return total


@steps.handler()
async def fan(ctx: Context) -> list[str]:
    """Two steps at once, then one more after the first: the third follows a finished result
    while the second may still run."""

    async def body(name: str, delay: float) -> str:
        await asyncio.sleep(delay)
        _record(ctx.invocation_id, name)
        return name

    a = ctx.run("a", body, "a", 0.0)
    b = ctx.run("b", body, "b", 0.2)
    first = await a
    c = await ctx.run("c", body, "c", 0.0)
    return [first, await b, c]


@steps.handler()
async def leak(ctx: Context) -> str:
    """A step that would leak an awakeable id waits until the id is committed, even when the
    step before it is still running and an earlier checkpoint was acknowledged meanwhile."""

    async def body(name: str, delay: float) -> str:
        await asyncio.sleep(delay)
        _record(ctx.invocation_id, name)
        return name

    await ctx.run("first", body, "first", 0.0)
    running = ctx.run("c", body, "c", 0.3)  # checkpoints "first", then runs for a while
    awakeable_id, _ = ctx.awakeable()
    await asyncio.sleep(0.1)  # the checkpoint of "first" is acknowledged meanwhile

    async def send_id() -> str:
        seen = list(ACKED_KINDS.get(ctx.invocation_id, []))
        _record(ctx.invocation_id, "leak:" + ",".join(seen))
        return awakeable_id

    await ctx.run("e", send_id)
    await running
    return awakeable_id


@steps.handler()
async def paced(ctx: Context, n: int) -> int:
    """``n`` steps of 0.2 s each."""
    for i in range(n):

        async def step(i: int = i) -> int:
            await asyncio.sleep(0.2)
            return i

        await ctx.run(f"paced-{i}", step)
    return n


@holder.handler()
async def keep(ctx: Context, value: int) -> list[Any]:
    ctx.set("a", value)

    async def bump() -> int:
        _record(ctx.invocation_id, "bump")
        return value + 1

    bumped = await ctx.run("bump", bump)
    ctx.set("b", bumped)
    ctx.clear("gone")

    async def look() -> int:
        _record(ctx.invocation_id, "look")
        return bumped * 2

    doubled = await ctx.run("look", look)
    return [await ctx.get("a"), await ctx.get("b"), await ctx.get("gone"), doubled]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with uvicorn_thread(Endpoint([steps, holder]).asgi(), http="httptools") as url:
        yield url


@pytest.fixture(scope="module")
def replay_url() -> Iterator[str]:
    """Always-replay: every new entry ends the attempt, so every step re-runs the handler from
    the journal the stream carried over (``continued``)."""
    endpoint = Endpoint([steps, holder], always_replay=True)
    with uvicorn_thread(endpoint.asgi(), http="httptools") as url:
        yield url


def run(coro: Any) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(coro, 20)

    return asyncio.run(main())


def _request(inv: str, service: str, handler: str, value: Any, **kw: Any) -> InvokeRequest:
    return InvokeRequest(
        inv, service, handler, kw.pop("key", None), 1, [{"kind": "input", "value": value}], **kw
    )


async def _open(pool: HttpPool, request: InvokeRequest) -> HttpStream:
    path = f"/invoke/{request.service}/{request.handler}"
    return await pool.stream("POST", path, request.encode(), {STREAM_HEADER: "1"})


async def _drive(pool: HttpPool, request: InvokeRequest) -> tuple[list[dict[str, Any]], list[str]]:
    """Play the orchestrator to the end: (journal, statuses of every answer)."""
    journal: list[dict[str, Any]] = list(request.journal)
    statuses: list[str] = []
    stream = await _open(pool, request)
    while True:
        answer = InvokeResponse.decode(await stream.next())
        statuses.append(answer.status)
        journal.extend(answer.entries)
        if answer.status != "checkpoint":
            stream.finish()
            return journal, statuses
        ACKED[request.id] = ACKED.get(request.id, 0) + 1
        ACKED_KINDS.setdefault(request.id, []).extend(e["kind"] for e in answer.entries)
        stream.send(STREAM_ACK)


def _drive_once(url: str, request: InvokeRequest) -> tuple[list[dict[str, Any]], list[str]]:
    """``_drive`` on a pool of its own, in a fresh event loop."""

    async def main() -> tuple[list[dict[str, Any]], list[str]]:
        pool = HttpPool(url)
        try:
            return await _drive(pool, request)
        finally:
            await pool.close()

    result: tuple[list[dict[str, Any]], list[str]] = run(main())
    return result


def test_each_step_runs_once_and_only_after_its_predecessor_is_acknowledged(url: str) -> None:
    async def main() -> tuple[list[dict[str, Any]], list[str], int]:
        pool = HttpPool(url)
        try:
            journal, statuses = await _drive(pool, _request("inv_ten", "Steps", "ten", 10))
            await asyncio.sleep(0.05)
            return journal, statuses, len(pool._idle)
        finally:
            await pool.close()

    journal, statuses, idle = run(main())
    assert statuses == ["checkpoint"] * 9 + ["done"]
    assert [e.get("name") for e in journal[1:-1]] == [f"step-{i}" for i in range(10)]
    assert journal[-1] == {"kind": "output", "value": 45}
    assert [name for inv, name in RAN if inv == "inv_ten"] == [f"step-{i}" for i in range(10)]
    # step i ran after exactly i acknowledgements: the result before it was committed first
    assert SEEN_ACKS["inv_ten"] == list(range(10))
    assert idle == 1, "a cleanly ended stream gives its connection back"


def test_always_replay_goes_on_from_the_streamed_journal(replay_url: str) -> None:
    journal, statuses = _drive_once(replay_url, _request("inv_rep", "Steps", "ten", 4))
    assert statuses[-1] == "done" and set(statuses[:-1]) == {"checkpoint"}
    assert journal[-1] == {"kind": "output", "value": 6}
    assert [name for inv, name in RAN if inv == "inv_rep"] == [f"step-{i}" for i in range(4)]


@pytest.mark.parametrize("which", ["url", "replay_url"])
def test_object_state_is_carried_across_checkpoints(which: str, request: Any) -> None:
    base = request.getfixturevalue(which)
    inv = f"inv_keep_{which}"

    req = _request(inv, "Holder", "keep", 5, key="k", state={"gone": 1, "other": 2})
    journal, _ = _drive_once(base, req)
    assert journal[-1] == {"kind": "output", "value": [5, 6, None, 12]}
    assert [name for i, name in RAN if i == inv] == ["bump", "look"]


def test_a_step_beside_a_running_one_goes_on(url: str) -> None:
    journal, _ = _drive_once(url, _request("inv_fan", "Steps", "fan", None))
    assert journal[-1] == {"kind": "output", "value": ["a", "b", "c"]}
    assert sorted(name for inv, name in RAN if inv == "inv_fan") == ["a", "b", "c"]
    kinds = [(e["kind"], e.get("name")) for e in journal]
    assert kinds[1:4] == [("run", "a"), ("run", "b"), ("run", "c")]


@pytest.mark.parametrize("ending", ["finish", "abort", "bad-ack"])
def test_no_step_starts_after_the_orchestrator_stops(url: str, ending: str) -> None:
    inv = f"inv_stop_{ending}"

    async def main() -> tuple[InvokeResponse, str | None, bytes]:
        pool = HttpPool(url)
        try:
            stream = await _open(pool, _request(inv, "Steps", "ten", 10))
            first = InvokeResponse.decode(await stream.next())
            problem = None
            if ending == "finish":
                stream.finish()
            elif ending == "abort":
                stream.abort()
            else:
                stream.send(b'{"type":"nack"}')
                try:
                    await stream.next()
                except HttpClientError as exc:
                    problem = str(exc)
                stream.finish()
            await asyncio.sleep(0.3)  # time for a step that should not run
            _, _, health = await pool.request("GET", "/health", None)
            return first, problem, health
        finally:
            await pool.close()

    first, problem, health = run(main())
    assert first.status == "checkpoint" and [e["name"] for e in first.entries] == ["step-0"]
    assert [name for i, name in RAN if i == inv] == ["step-0"]
    assert json.loads(health) == {"status": "ok"}
    if ending == "bad-ack":
        assert problem is not None and "ended without another line" in problem


def test_invoker_streams_signed_and_refuses_a_wrong_secret() -> None:
    endpoint = Endpoint([steps], signing_secret="s3cret")

    async def main(base: str) -> tuple[str, str]:
        good = HttpInvoker(base, signing_secret="s3cret")
        bad = HttpInvoker(base, signing_secret="wrong")
        try:
            good.offer_stream(True)
            body = _request("inv_sig", "Steps", "ten", 1).encode()
            stream = await good.open_stream("Steps", "ten", body)
            answer = InvokeResponse.decode(await stream.next())
            stream.finish()
            try:
                refused = await bad.open_stream("Steps", "ten", body)
                await refused.next()
                message = "no error"
            except InvokerError as exc:
                message = str(exc)
            return answer.status, message
        finally:
            await good.close()
            await bad.close()

    with uvicorn_thread(endpoint.asgi(), http="httptools") as base:
        status, message = run(main(base))
    assert status == "done"
    assert "HTTP 401" in message


def test_a_buffering_front_turns_streaming_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """A front that holds the request until its body ends (a buffering proxy) never starts a
    streamed answer: the first streamed request fails fast and the deployment stops streaming."""
    monkeypatch.setattr(_http, "STREAM_PROBE_S", 0.3)

    async def buffering(srv: RawServer, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        await r.readuntil(b"0\r\n\r\n")  # the whole chunked body, which never ends
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")

    async def main() -> tuple[str, bool]:
        async with RawServer(buffering) as srv:
            invoker = HttpInvoker(srv.url)
            invoker.offer_stream(True)
            try:
                await invoker.open_stream("Steps", "ten", b'{"x":1}')
                return "no error", invoker.streams
            except InvokerError as exc:
                return str(exc), invoker.streams
            finally:
                await invoker.close()

    message, streams = run(main())
    assert "streaming turned off" in message
    assert streams is False


def test_an_endpoint_with_streaming_off_refuses_and_the_invoker_stops_streaming() -> None:

    async def main(base: str) -> tuple[str, bool, Any]:
        invoker = HttpInvoker(base)
        invoker.offer_stream(True)  # a discovery from before it was turned off
        try:
            body = _request("inv_off", "Steps", "ten", 2).encode()
            try:
                stream = await invoker.open_stream("Steps", "ten", body)
                await stream.next()
                message = "no error"
            except InvokerError as exc:
                message = str(exc)
            answer = InvokeResponse.decode(await invoker.invoke("Steps", "ten", body))
            return message, invoker.streams, answer
        finally:
            await invoker.close()

    with uvicorn_thread(Endpoint([steps], stream=False).asgi(), http="httptools") as base:
        message, streams, answer = run(main(base))
    assert "HTTP 400" in message and "turned off" in message
    assert streams is False
    # plain requests go on working: the first step, then a checkpoint before the second
    assert answer.status == "checkpoint" and [e["name"] for e in answer.entries] == ["step-0"]


def test_a_step_never_sees_an_unpersisted_awakeable_id(url: str) -> None:
    journal, _ = _drive_once(url, _request("inv_leak", "Steps", "leak", None))
    ran = [name for inv, name in RAN if inv == "inv_leak"]
    leaks = [name for name in ran if name.startswith("leak:")]
    assert len(leaks) == 1
    assert "awakeable" in leaks[0].split(":", 1)[1].split(","), ran
    awakeable = next(e for e in journal if e["kind"] == "awakeable")
    assert journal[-1] == {"kind": "output", "value": awakeable["id"]}


def test_function_urls_and_lambda_never_stream() -> None:
    """AWS's front end of a Function URL buffers request bodies, and a Lambda invoke is one
    payload: their invokers ignore a discovery that offers streaming."""
    from ritornello.orchestrator.invokers import FunctionUrlInvoker, LambdaInvoker

    url = FunctionUrlInvoker("https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws")
    url.offer_stream(True)
    arn = "arn:aws:lambda:us-east-1:123456789012:function:f:1"
    fn = LambdaInvoker.from_uri(arn, timeout_s=5.0)
    fn.offer_stream(True)
    assert url.streams is False and fn.streams is False


def test_next_bounds_each_line_by_its_own_timeout(url: str) -> None:
    """``next(timeout)`` bounds every wait anew (one timer per stream, moved forward): six
    steps of 0.2 s each arrive within 1 s of their own request though not of the first; a line
    not due in time raises TimeoutError."""

    async def main() -> tuple[list[str], str]:
        pool = HttpPool(url)
        try:
            stream = await _open(pool, _request("inv_paced", "Steps", "paced", 6))
            statuses = []
            while True:
                answer = InvokeResponse.decode(await stream.next(1.0))
                statuses.append(answer.status)
                if answer.status != "checkpoint":
                    stream.finish()
                    break
                stream.send(STREAM_ACK)
            stream = await _open(pool, _request("inv_paced_late", "Steps", "paced", 2))
            try:
                await stream.next(0.02)
                late = "answered"
            except TimeoutError as exc:
                late = str(exc)
            stream.abort()
            return statuses, late
        finally:
            await pool.close()

    statuses, late = run(main())
    assert statuses == ["checkpoint"] * 5 + ["done"]
    assert "no streamed answer line within 0.02 s" in late


def test_line_reader_joins_split_lines_and_bounds_each() -> None:
    from ritornello.sdk._stream import LineReader, RequestTooLarge

    def reader(pieces: list[bytes], limit: int) -> LineReader:
        messages = iter(pieces)

        async def receive() -> dict[str, Any]:
            piece = next(messages, None)
            if piece is None:
                return {"type": "http.disconnect"}
            return {"type": "http.request", "body": piece, "more_body": True}

        return LineReader(receive, limit)

    async def lines(r: LineReader) -> list[bytes | None]:
        return [await r.line() for _ in range(5)]

    got = run(lines(reader([b"ab", b"c\nde", b"", b"f\n\ng", b"h"], 10)))
    assert got == [b"abc", b"def", b"", b"gh", None]  # the last one unterminated
    exactly = run(lines(reader([b"0123", b"456789\n", b"0123456789\n"], 10)))
    assert exactly[:3] == [b"0123456789", b"0123456789", None]
    for pieces in ([b"0123", b"4567", b"89A"], [b"0123456789A\n"], [b"01234", b"56789A\n"]):
        with pytest.raises(RequestTooLarge, match="larger than 10 bytes"):
            run(reader(pieces, 10).line())
