"""Ritornello: a durable execution engine in Python, built for AWS Lambda.

The top-level package is the handler SDK::

    from ritornello import Context, Endpoint, Service

    greeter = Service("Greeter")

    @greeter.handler()
    async def greet(ctx: Context, name: str) -> str:
        return await ctx.run("format", lambda: f"Hello, {name}!")

    app = Endpoint([greeter]).asgi()

It imports only ``ritornello.sdk`` and ``ritornello.protocol`` (standard library only); the
orchestrator, store, admin API and CLI live in their own subpackages.
"""

from ritornello.sdk import (
    AsgiApp,
    Context,
    DurableFuture,
    DurablePromise,
    Endpoint,
    InProcessEndpoint,
    JournalMismatchError,
    RetryPolicy,
    Service,
    Suspended,
    TerminalError,
    VirtualObject,
    Workflow,
    gather,
    select,
    step_retry,
)

__all__ = [
    "AsgiApp",
    "Context",
    "DurableFuture",
    "DurablePromise",
    "Endpoint",
    "InProcessEndpoint",
    "JournalMismatchError",
    "RetryPolicy",
    "Service",
    "Suspended",
    "TerminalError",
    "VirtualObject",
    "Workflow",
    "gather",
    "select",
    "step_retry",
]
