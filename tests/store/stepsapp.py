"""A handler of plain steps only (``ctx.run`` after ``ctx.run``: each checkpoint appends one
entry and changes nothing else), for tests/store/test_dynamodb_takeover.py.

Every execution of a step's side effect appends ``invocation step token`` to the file named by
RITORNELLO_TEST_LEDGER (one ``os.write`` on an ``O_APPEND`` descriptor: lines never interleave
and survive a kill -9), and the step journals its token, so the test tells which execution was
committed and whether one ran after it.
"""

import asyncio
import os
import uuid

from ritornello import Context, Endpoint, Service

steps = Service("Steps")
LEDGER = os.environ.get("RITORNELLO_TEST_LEDGER", "/dev/null")


async def _effect(invocation_id: str, step: str, step_ms: int) -> str:
    token = uuid.uuid4().hex
    fd = os.open(LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{invocation_id} {step} {token}\n".encode())
    finally:
        os.close(fd)
    await asyncio.sleep(step_ms / 1000)
    return token


@steps.handler()
async def ten(ctx: Context, step_ms: int) -> int:
    for i in range(10):
        await ctx.run(f"step-{i}", _effect, ctx.invocation_id, f"step-{i}", step_ms)
    return 10


app = Endpoint([steps]).asgi()
