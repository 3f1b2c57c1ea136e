"""The engine's streamed attempts against a real endpoint: uvicorn on loopback serving the SDK's
ASGI app (wrapped to count requests), the engine on a SQLite file.

What must hold: a multi-step invocation is one streamed request whose checkpoints are each
committed before the next step runs; when a completion arrives while a stream is open the
engine does not acknowledge (the endpoint's request lacks it) but starts a fresh request that
carries it; an endpoint that does not offer streaming is invoked as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ritornello import Context, Endpoint, Service, TerminalError
from ritornello.orchestrator import Engine
from ritornello.protocol import RetryPolicy
from ritornello.store import DeploymentRecord
from ritornello.store.sqlite import SqliteStore
from tests.procs import uvicorn_thread

FAST = RetryPolicy(initial_interval_ms=5, factor=2.0, max_interval_ms=50)
flow = Service("Flow")
#: (invocation id, step) of every step body that ran, with the journal length committed then
RAN: list[tuple[str, str, int]] = []
DB: dict[str, Path] = {}


def _committed(inv: str) -> int:
    import sqlite3

    with sqlite3.connect(f"file:{DB['path']}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT COUNT(*) FROM journal WHERE invocation_id = ?", (inv,))
        return int(row.fetchone()[0])


@flow.handler()
async def steps(ctx: Context, n: int) -> int:
    total = 0
    for i in range(n):

        async def body(i: int = i) -> int:
            RAN.append((ctx.invocation_id, f"s{i}", _committed(ctx.invocation_id)))
            return i

        total += await ctx.run(f"s{i}", body)
    return total


@flow.handler()
async def quick(ctx: Context, value: int) -> int:
    return value * 10


@flow.handler()
async def waits(ctx: Context, n: int) -> list[int]:
    """A call left running while steps checkpoint: its completion lands mid-stream."""
    pending = ctx.call(quick, 7)
    total = 0
    for i in range(n):

        async def body(i: int = i) -> int:
            await asyncio.sleep(0.03)
            RAN.append((ctx.invocation_id, f"w{i}", 0))
            return i

        total += await ctx.run(f"w{i}", body)
    return [total, await pending]


class Counting:
    """The endpoint's ASGI app, counting POST /invoke requests (streamed or not) per handler."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.app = endpoint.asgi()
        self.requests: Counter[tuple[str, bool]] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/invoke/"):
            streamed = (b"x-ritornello-stream", b"1") in scope["headers"]
            self.requests[scope["path"].rsplit("/", 1)[1], streamed] += 1
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def _engine(
    tmp_path: Path, url: str, **options: Any
) -> AsyncIterator[tuple[Engine, DeploymentRecord]]:
    """An engine on a fresh SQLite file with the endpoint at ``url`` registered."""
    DB["path"] = tmp_path / "r.db"
    async with SqliteStore(DB["path"]) as store:
        engine = Engine(store, retry=FAST, **options)
        await engine.start()
        try:
            yield engine, await engine.register_deployment(url)
        finally:
            await engine.stop()


async def _call(engine: Engine, target: str, value: Any) -> Any:
    service, handler = target.split("/")
    resolved = engine.registry.resolve(service, handler)
    assert resolved is not None
    rec, _ = await engine.submit(resolved, None, json.dumps(value))
    return rec.id, json.loads(await asyncio.wait_for(engine.wait_result(rec.id), 20))


@pytest.mark.parametrize("stream", [True, False])
def test_steps_commit_before_the_next_runs(tmp_path: Path, stream: bool) -> None:
    counting = Counting(Endpoint([flow], stream=stream))

    async def main(url: str) -> list[tuple[str, Any, Counter[tuple[str, bool]]]]:
        async with _engine(tmp_path, url) as (engine, _):
            out = []
            for _ in range(2):
                inv, result = await _call(engine, "Flow/steps", 6)
                out.append((inv, result, counting.requests.copy()))
            return out

    with uvicorn_thread(counting, http="httptools") as url:
        (first, result1, after1), (second, result2, after2) = asyncio.run(main(url))
    assert result1 == result2 == {"value": 15}
    for inv in (first, second):
        ran = [(step, committed) for i, step, committed in RAN if i == inv]
        # step i runs once, after the input and steps 0..i-1 were committed
        assert ran == [(f"s{i}", 1 + i) for i in range(6)]
    if stream:
        # the first invocation shows the handler checkpoints (one plain request); from
        # then on the whole invocation is one streamed request
        assert after1 == Counter({("steps", False): 1, ("steps", True): 1})
        assert after2 == Counter({("steps", False): 1, ("steps", True): 2})
    else:
        assert after2 == Counter({("steps", False): 12})


def test_a_completion_arriving_mid_stream_starts_a_fresh_request(tmp_path: Path) -> None:
    counting = Counting(Endpoint([flow]))

    async def main(url: str) -> tuple[str, Any]:
        async with _engine(tmp_path, url) as (engine, _):
            return await _call(engine, "Flow/waits", 5)

    with uvicorn_thread(counting, http="httptools") as url:
        inv, result = asyncio.run(main(url))
    assert result == {"value": [10, 70]}
    assert [step for i, step, _ in RAN if i == inv] == [f"w{i}" for i in range(5)]
    # the callee's result landed while the caller streamed: at least one more request
    assert counting.requests[("waits", True)] >= 2, counting.requests


@flow.handler()
async def slow(ctx: Context, n: int) -> int:
    for i in range(n):

        async def body(i: int = i) -> int:
            await asyncio.sleep(0.02)
            RAN.append((ctx.invocation_id, f"slow{i}", 0))
            return i

        await ctx.run(f"slow{i}", body)
    return n


def test_streams_give_their_connection_up_when_others_wait(tmp_path: Path) -> None:
    """A stream holds its connection across steps; with every connection in use it gives it
    up after a step, so invocations take turns instead of the first ones running to the end
    while the rest wait."""
    counting = Counting(Endpoint([flow]))

    async def main(url: str) -> list[str]:
        async with _engine(tmp_path, url) as (engine, dep):
            await _call(engine, "Flow/slow", 2)  # learn that it checkpoints
            engine.deployments.invokers[dep.id]._pool._limit = 2  # type: ignore[attr-defined]
            calls = [_call(engine, "Flow/slow", 4) for _ in range(6)]
            return [inv for inv, _ in await asyncio.gather(*calls)]

    with uvicorn_thread(counting, http="httptools") as url:
        invs = asyncio.run(main(url))
    order = [(i, step) for i, step, _ in RAN if i in invs]
    first_last = min(n for n, (_, step) in enumerate(order) if step == "slow3")
    started = {i for i, step in order[:first_last] if step == "slow0"}
    assert started == set(invs), order
    assert counting.requests[("slow", True)] > 7  # streams were ended and opened again


#: invocations whose step ``t1`` already stalled once
STALLED: set[str] = set()


@flow.handler()
async def stalls(ctx: Context, n: int) -> int:
    """Step t1 of the first attempt that reaches it stalls far past the attempt timeout."""
    total = 0
    for i in range(n):

        async def body(i: int = i) -> int:
            if i == 1 and ctx.invocation_id not in STALLED:
                STALLED.add(ctx.invocation_id)
                RAN.append((ctx.invocation_id, "stall", _committed(ctx.invocation_id)))
                await asyncio.sleep(1.5)  # its attempt is given up meanwhile
                return -1
            RAN.append((ctx.invocation_id, f"t{i}", _committed(ctx.invocation_id)))
            return i

        total += await ctx.run(f"t{i}", body)
    return total


def test_a_stream_that_stalls_mid_way_times_out_and_is_retried(tmp_path: Path) -> None:
    """The attempt timeout bounds every line of a stream (the stream's own timer, not one per
    step): a step that does not answer in time fails the attempt, the retry goes on from the
    committed journal, and a stream whose steps are all in time never times out."""
    counting = Counting(Endpoint([flow]))

    async def main(url: str) -> tuple[Any, Any, str | None]:
        async with _engine(tmp_path, url, attempt_timeout_s=0.5) as (engine, _):
            await _call(engine, "Flow/steps", 2)  # learn that it checkpoints
            _, steady = await _call(engine, "Flow/slow", 40)  # ~0.8 s, each step in time
            inv, result = await _call(engine, "Flow/stalls", 3)
            rec = await engine.store.get_invocation(inv)
            assert rec is not None
            return steady, result, rec.history

    with uvicorn_thread(counting, http="httptools") as url:
        steady, result, history = asyncio.run(main(url))
    assert steady == {"value": 40}
    assert result == {"value": 3}
    assert history is not None and "timed out after 0.5 s" in history
    inv = next(i for i in STALLED)
    ran = [(step, committed) for i, step, committed in RAN if i == inv]
    # t0 committed before the stall; the retry replays it and runs t1 and t2 once each
    assert ran == [("t0", 1), ("stall", 2), ("t1", 2), ("t2", 3)]


@flow.handler()
async def cancellable(ctx: Context, n: int) -> str:
    """Steps of 100 ms, then an awakeable that nobody resolves: only a cancel ends it."""
    _, fut = ctx.awakeable()
    for i in range(n):

        async def body(i: int = i) -> int:
            await asyncio.sleep(0.1)
            RAN.append((ctx.invocation_id, f"c{i}", 0))
            return i

        await ctx.run(f"c{i}", body)
    try:
        await fut
    except TerminalError as exc:
        return f"ended: {exc}"
    return "resolved"


def test_a_cancel_arriving_during_a_streamed_step_reaches_the_handler(tmp_path: Path) -> None:
    # The cancel lands while a step runs, before that step's checkpoint: the stream's request
    # lacks it, so the checkpoint is not acknowledged and a fresh request carries it (once the
    # count was taken at each checkpoint, the stream went on and the invocation suspended on
    # its awakeable for good, the cancel counted as sent).
    counting = Counting(Endpoint([flow]))

    async def main(url: str) -> tuple[str, Any]:
        async with _engine(tmp_path, url) as (engine, _):
            await _call(engine, "Flow/steps", 2)  # the handlers are known to checkpoint
            resolved = engine.registry.resolve("Flow", "cancellable")
            assert resolved is not None
            rec, _ = await engine.submit(resolved, None, json.dumps(6))
            await asyncio.sleep(0.25)
            await engine.cancel(rec.id)
            return rec.id, json.loads(await asyncio.wait_for(engine.wait_result(rec.id), 10))

    with uvicorn_thread(counting, http="httptools") as url:
        inv, result = asyncio.run(main(url))
    assert result == {"value": "ended: cancelled"}, result
    assert [step for i, step, _ in RAN if i == inv] == [f"c{i}" for i in range(6)]
    assert counting.requests[("cancellable", True)] >= 2, counting.requests
