"""A Lambda app for the throttling tests: each invocation holds the function for a while
(``hold``, a step that sleeps ``HOLD_S``), so the emulator's reserved concurrency binds."""

import time

from ritornello import Context, Endpoint, Service

HOLD_S = 0.2

slow = Service("Slow")


def _hold(tag: str) -> str:
    time.sleep(HOLD_S)
    return tag


@slow.handler()
async def hold(ctx: Context, tag: str) -> str:
    return await ctx.run("hold", _hold, tag)


@slow.handler()
async def hold_limited(ctx: Context, tag: str) -> str:
    """``hold`` with its step under the limit ``lam-step``: waiting, the function is not
    running (the invocation is suspended), and is invoked again once granted."""
    return await ctx.run("hold", _hold, tag, limit="lam-step")


lambda_handler = Endpoint([slow]).lambda_handler()
