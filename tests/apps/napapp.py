"""A handler for the timer crash test: a step, a durable sleep, a step.

Each execution of a step appends ``invocation step token ms`` to the ledger named by
RITORNELLO_TEST_LEDGER and journals ``token ms``. The first execution of the step after the
sleep, if the file named by RITORNELLO_TEST_KILL holds a process id, removes that file and
kills the process with SIGKILL first: the orchestrator dies with the woken attempt in flight.
"""

import os
import signal
import time
import uuid
from datetime import timedelta

from _ledger import append

from ritornello import Context, Endpoint, Service

KILL = os.environ.get("RITORNELLO_TEST_KILL", "")

nap = Service("Nap")


def _effect(invocation_id: str, step: str) -> str:
    if step == "after" and KILL and os.path.exists(KILL):
        with open(KILL) as f:
            pid = int(f.read())
        os.unlink(KILL)
        os.kill(pid, signal.SIGKILL)
    token = f"{uuid.uuid4().hex} {time.time_ns() // 1_000_000}"
    append(invocation_id, step, token)
    return token


@nap.handler()
async def sleep(ctx: Context, ms: int) -> dict[str, str]:
    before = await ctx.run("before", _effect, ctx.invocation_id, "before")
    await ctx.sleep(timedelta(milliseconds=ms))
    after = await ctx.run("after", _effect, ctx.invocation_id, "after")
    return {"before": before, "after": after}


app = Endpoint([nap]).asgi()
