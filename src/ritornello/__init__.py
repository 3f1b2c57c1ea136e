"""Ritornello: a durable execution engine in Python, built for AWS Lambda.

The top-level package is the handler SDK::

    from ritornello import Context, Endpoint, Service

    greeter = Service("Greeter")

    @greeter.handler()
    async def greet(ctx: Context, name: str) -> str:
        return await ctx.run("format", lambda: f"Hello, {name}!")

    app = Endpoint([greeter]).asgi()

It imports only ``ritornello.sdk`` and ``ritornello.protocol`` (standard library only), and
those on first use of one of its names: ``python -m ritornello serve`` imports this package
first and has no use for the SDK. The orchestrator, store, admin API and CLI live in their own
subpackages.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ritornello.sdk import (
        ALL_COMPLETED,
        FIRST_COMPLETED,
        FIRST_ERROR,
        AsgiApp,
        BatchItem,
        BatchResult,
        BytesSerde,
        CallHandle,
        Context,
        DurableFuture,
        DurablePromise,
        Endpoint,
        InProcessEndpoint,
        JournalMismatchError,
        JsonSerde,
        Limit,
        RetryPolicy,
        SendHandle,
        Serde,
        Service,
        Suspended,
        TerminalError,
        VirtualObject,
        Workflow,
        as_completed,
        gather,
        select,
        step_retry,
        wait,
    )

__all__ = [
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_ERROR",
    "AsgiApp",
    "BatchItem",
    "BatchResult",
    "BytesSerde",
    "CallHandle",
    "Context",
    "DurableFuture",
    "DurablePromise",
    "Endpoint",
    "InProcessEndpoint",
    "JournalMismatchError",
    "JsonSerde",
    "Limit",
    "RetryPolicy",
    "SendHandle",
    "Serde",
    "Service",
    "Suspended",
    "TerminalError",
    "VirtualObject",
    "Workflow",
    "as_completed",
    "gather",
    "select",
    "step_retry",
    "wait",
]


def __getattr__(name: str) -> Any:
    if name in __all__:  # an SDK name, imported on first use
        from ritornello import sdk

        value = getattr(sdk, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
