"""The handler side of Ritornello: services, the durable context, endpoints.

Standard library only, and it imports nothing of the orchestrator or the store: a handler
Lambda ships this package and the user's code. The wire protocol is ``ritornello.protocol``
(spec: docs/protocol.md); the API is described in docs/sdk.md.
"""

import logging

from ritornello.protocol import RetryPolicy
from ritornello.sdk._asgi import AsgiApp
from ritornello.sdk._combinators import gather, select
from ritornello.sdk._context import Context
from ritornello.sdk._endpoint import Endpoint, InProcessEndpoint
from ritornello.sdk._futures import DurableFuture
from ritornello.sdk._invocation import DurablePromise, step_retry
from ritornello.sdk._service import Limit, Service, VirtualObject, Workflow
from ritornello.sdk.errors import JournalMismatchError, Suspended, TerminalError

# A library logs but never decides where logs go (and prints nothing by default).
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AsgiApp",
    "Context",
    "DurableFuture",
    "DurablePromise",
    "Endpoint",
    "InProcessEndpoint",
    "JournalMismatchError",
    "Limit",
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
