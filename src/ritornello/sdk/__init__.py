"""The handler side of Ritornello: services, the durable context, endpoints.

Standard library only, and it imports nothing of the orchestrator or the store: a handler
Lambda ships this package and the user's code. The wire protocol is ``ritornello.protocol``
(spec: docs/protocol.md); the API is described in docs/sdk.md.
"""

import logging
from typing import TYPE_CHECKING, Any

from ritornello.protocol import RetryPolicy
from ritornello.sdk._combinators import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_ERROR,
    as_completed,
    gather,
    select,
    wait,
)
from ritornello.sdk._context import Context
from ritornello.sdk._endpoint import Endpoint, InProcessEndpoint
from ritornello.sdk._futures import DurableFuture
from ritornello.sdk._handles import CallHandle, SendHandle
from ritornello.sdk._invocation import DurablePromise
from ritornello.sdk._run_options import step_retry
from ritornello.sdk._serde import BytesSerde, JsonSerde, Serde
from ritornello.sdk._service import Limit, Service, VirtualObject, Workflow
from ritornello.sdk.errors import JournalMismatchError, Suspended, TerminalError

if TYPE_CHECKING:
    from ritornello.sdk._asgi import AsgiApp
    from ritornello.sdk._fanout import BatchItem, BatchResult

#: Names whose module is imported on first use (a handler module that never fans out does not
#: pay for it at import time).
_LAZY = {
    "AsgiApp": "ritornello.sdk._asgi",
    "BatchItem": "ritornello.sdk._fanout",
    "BatchResult": "ritornello.sdk._fanout",
}

# A library logs but never decides where logs go (and prints nothing by default).
logging.getLogger(__name__).addHandler(logging.NullHandler())

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
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
