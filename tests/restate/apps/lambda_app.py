"""A Restate Python SDK (``restate-sdk`` 1.2.x) endpoint as an AWS Lambda function, for
``tests/restate/test_lambda.py``: ``ritornello lambda-emulator tests/restate/apps/lambda_app.py``
serves Lambda's Invoke API for its ``lambda_handler``, and Ritornello registers it by ARN.

``lambda_handler`` is exactly what a Lambda deployment of the SDK exports: ``restate.app(...)``
returns a Lambda handler (API Gateway v1 events in and out, the body base64) instead of an ASGI
app when ``AWS_LAMBDA_FUNCTION_NAME`` is set at import, as it is on Lambda; the test sets it in
the emulator's environment. Nothing here knows about Ritornello.

Step counting (as ``py_app.py``): each ``ctx.run`` closure appends ``"{invocation_id} {step}"``
to the file named by ``RESTATE_APP_COUNTS``, so a test sees that each step ran exactly once
however many Lambda invocations replayed the handler.
"""

import os
from datetime import timedelta

import restate
from restate import Context, ObjectContext, ObjectSharedContext

COUNTS_ENV = "RESTATE_APP_COUNTS"


def count(ctx: Context, step: str) -> None:
    """Record one execution of ``step`` by this invocation (inside a ``ctx.run`` closure)."""
    path = os.environ.get(COUNTS_ENV)
    if not path:
        return
    line = f"{ctx.request().id} {step}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one small O_APPEND write: whole lines, even across threads
    finally:
        os.close(fd)


greeter = restate.Service("Greeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    def step() -> str:
        count(ctx, "greet")
        return f"Hello {name}!"

    return await ctx.run("greet", step)


@greeter.handler()
async def ten(ctx: Context, name: str) -> int:
    def step(i: int) -> int:
        count(ctx, f"step-{i}")
        return i

    total = 0
    for i in range(10):
        total += await ctx.run(f"step-{i}", step, args=(i,))
    return total


counter = restate.VirtualObject("Counter")


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    value = (await ctx.get("count") or 0) + delta
    ctx.set("count", value)
    return value


@counter.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    return await ctx.get("count") or 0


sleeper = restate.Service("Sleeper")


@sleeper.handler()
async def sleep(ctx: Context, ms: int) -> str:
    def before() -> str:
        count(ctx, "before")
        return "before"

    def after() -> str:
        count(ctx, "after")
        return "after"

    first = await ctx.run("before", before)
    await ctx.sleep(timedelta(milliseconds=ms))
    second = await ctx.run("after", after)
    return f"{first} {ms} ms {second}"


caller = restate.Service("Caller")


@caller.handler()
async def call_greet(ctx: Context, name: str) -> str:
    """Greeter.greet(name), called durably: another Lambda invocation."""
    return await ctx.service_call(greet, name)


lambda_handler = restate.app(services=[greeter, counter, sleeper, caller])
