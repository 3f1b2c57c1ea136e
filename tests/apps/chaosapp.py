"""Handlers for the chaos suite (tests/chaos): every execution of a side effect appends
``invocation step token time_ns`` to the ledger named by RITORNELLO_TEST_LEDGER (O_APPEND, one
write per line) and journals its token, so a test can tell which execution was committed, when
it ran, and whether anything ran after it.

``garbage_app`` is a fake endpoint: a correct discovery answer, then garbage to every invoke.
"""

import json
import os
import time
import uuid
from datetime import timedelta
from typing import Any

from _ledger import append

from ritornello import Context, Endpoint, Service, VirtualObject
from ritornello.protocol import DiscoveryResponse, HandlerInfo, ServiceInfo

worker = VirtualObject("ChaosWorker")
adder = Service("ChaosAdder")
counter = VirtualObject("Counter")
faults = Service("Faults")


def _effect(invocation_id: str, step: str, pause_s: float = 0.0) -> str:
    if pause_s:
        time.sleep(pause_s)
    token = uuid.uuid4().hex
    append(invocation_id, step, token, time.time_ns())
    return token


# ---------------------------------------------------------------- ten steps (kill loop)


@adder.handler()
async def add(ctx: Context, pair: list[int]) -> int:
    await ctx.run("effect", _effect, ctx.invocation_id, "add")
    return pair[0] + pair[1]


@worker.handler()
async def work(ctx: Context, plan: list[int]) -> dict[str, int]:
    """``plan`` = [steps, sleep_ms]: steps with a side effect, a call, a state update each, and
    a durable sleep of sleep_ms every third step."""
    steps, sleep_ms = plan
    total = 0
    for i in range(steps):
        await ctx.run(f"step-{i}", _effect, ctx.invocation_id, f"step-{i}")
        total = await ctx.call(add, [total, i])
        ctx.set("progress", i + 1)
        if i % 3 == 0:
            await ctx.sleep(timedelta(milliseconds=sleep_ms))
    ctx.set("total", total)
    return {"total": total, "progress": await ctx.get("progress")}


@worker.handler(kind="shared")
async def status(ctx: Context) -> dict[str, object]:
    return {"progress": await ctx.get("progress"), "total": await ctx.get("total")}


# ---------------------------------------------------------------- one hot key


@counter.handler()
async def bump(ctx: Context, delta: int) -> int:
    """Exclusive read-modify-write with a side effect between the read and the write: lost
    updates or two executions at once on the key show as a wrong total or overlapping
    committed begin..end intervals in the ledger."""
    n = await ctx.get("n") or 0
    await ctx.run("begin", _effect, ctx.invocation_id, "begin", 0.005)
    ctx.set("n", n + delta)
    await ctx.run("end", _effect, ctx.invocation_id, "end")
    return int(n + delta)


@counter.handler(kind="shared")
async def value(ctx: Context) -> int:
    return int(await ctx.get("n") or 0)


# ---------------------------------------------------------------- handler faults


@faults.handler()
async def raises(ctx: Context, failures: int) -> str:
    """Raises on its first ``failures`` attempts (retried), then succeeds."""
    await ctx.run("effect", _effect, ctx.invocation_id, f"raises-{ctx.attempt}")
    if ctx.attempt <= failures:
        raise RuntimeError(f"planned failure on attempt {ctx.attempt}")
    return f"ok on attempt {ctx.attempt}"


@faults.handler()
async def dies(ctx: Context, marker: str) -> str:
    """Journals a step, then kills its own endpoint process mid-step (once: ``marker`` exists
    afterwards), then finishes."""
    before = await ctx.run("before", _effect, ctx.invocation_id, "before")
    inv = ctx.invocation_id

    def die_once() -> str:
        if not os.path.exists(marker):
            with open(marker, "w") as fh:
                fh.write(inv)
            os._exit(3)
        return _effect(inv, "during")

    during = await ctx.run("during", die_once)
    return f"{before}:{during}"


@faults.handler()
async def hangs(ctx: Context, seconds: float) -> str:
    """The first attempt hangs ``seconds`` inside its step, then journals "attempt-1" (too
    late: its answer must be refused); later attempts journal "attempt-N" at once."""
    attempt = ctx.attempt
    inv = ctx.invocation_id

    def effect() -> str:
        if attempt == 1:
            time.sleep(seconds)
        _effect(inv, f"hang-attempt-{attempt}")
        return f"attempt-{attempt}"

    return await ctx.run("v", effect)


endpoint = Endpoint([worker, adder, counter, faults])
app = endpoint.asgi()


# ---------------------------------------------------------------- a garbage endpoint

GARBAGE: dict[str, bytes] = {
    "notjson": b"this is not json {",
    "badstatus": b'{"version":1,"status":"exploded","entries":[]}',
    "badversion": b'{"version":99,"status":"done","entries":[{"kind":"output","value":1}]}',
    "notobject": b"[1, 2, 3]",
}
_DISCOVERY = DiscoveryResponse(
    (ServiceInfo("Junk", "service", tuple(HandlerInfo(h) for h in GARBAGE)),)
).encode()


async def garbage_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Raw ASGI: a correct ``GET /discover`` (and Lambda-style discovery), garbage to invokes."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path: str = scope["path"]
    if path.rstrip("/").endswith("/discover") or (body and _is_discovery(body)):
        status, payload = 200, _DISCOVERY
    else:
        handler = path.rstrip("/").rsplit("/", 1)[-1]
        status, payload = 200, GARBAGE.get(handler, b"\x00\xff garbage")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _is_discovery(body: bytes) -> bool:
    try:
        return bool(json.loads(body) == {"ritornello": "discover"})
    except ValueError:
        return False
