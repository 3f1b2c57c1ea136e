"""Invokers: how the orchestrator reaches a handler endpoint, one adapter per protocol.

==================  ==============================================================================
``_base``           ``Invoker``, ``InvokeStream``, ``InvokerError``: the seam; the answer limits
``_pool``           ``HttpPool``: our own keep-alive HTTP/1.1 client, its connections and queue
``_conn``           ``Conn``: one pooled connection (an asyncio.Protocol, httptools parser)
``_stream``         ``HttpStream``: a streamed exchange, request lines out, answer lines in
``_client_errors``  ``HttpClientError`` and the rest of that client's error tree
``_h2``             ``H2Client``: an HTTP/2 client (hyper-h2), h2c or TLS, full-duplex exchanges
``_connect``        ``connect_first``: a connection through the host policy (both HTTP clients)
``_hosts``          ``HostPolicy``: where HTTP deployments may be reached (checked at connect)
``_http``           ``HttpInvoker``: ``http(s)://`` endpoints, plain and streamed attempts
``_lambda``         ``LambdaInvoker`` (the Invoke API, boto3), ``FunctionUrlInvoker`` (SigV4)
``_channel``        ``Channels``, ``ChannelRun``: checkpoint channels of Lambda runs
``_inprocess``      ``InProcessInvoker``: an ``Endpoint`` in this process (``inproc://NAME``)
``_factory``        ``make_invoker``: the invoker for a deployment URI
``_fake``           ``FakeInvoker``, ``Faults``: scripted answers and seeded faults, for tests
==================  ==============================================================================

Importing this package does not import boto3: the Lambda names load ``_lambda`` on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import (
    MAX_ANSWER_BYTES,
    MAX_DISCOVERY_BYTES,
    Duplex,
    FunctionError,
    Invoker,
    InvokerError,
    InvokeStream,
    RefusedStatus,
    ThrottledError,
    throttled,
)
from ._channel import CHANNEL_PATH, TOKEN_HEADER, ChannelRun, Channels
from ._client_errors import HttpClientError
from ._factory import check_uri_text, make_invoker
from ._fake import FakeInvoker, Faults
from ._hosts import DEFAULT_DENY, HostDeniedError, HostPolicy
from ._http import HttpInvoker
from ._inprocess import InProcessInvoker, InProcessTarget
from ._pool import HttpPool

if TYPE_CHECKING:
    from ._lambda import FunctionUrlInvoker, LambdaInvoker, is_function_url, parse_function_arn

__all__ = [
    "CHANNEL_PATH",
    "DEFAULT_DENY",
    "MAX_ANSWER_BYTES",
    "MAX_DISCOVERY_BYTES",
    "TOKEN_HEADER",
    "ChannelRun",
    "Channels",
    "Duplex",
    "FakeInvoker",
    "Faults",
    "FunctionError",
    "FunctionUrlInvoker",
    "HostDeniedError",
    "HostPolicy",
    "HttpClientError",
    "HttpInvoker",
    "HttpPool",
    "InProcessInvoker",
    "InProcessTarget",
    "InvokeStream",
    "Invoker",
    "InvokerError",
    "LambdaInvoker",
    "RefusedStatus",
    "ThrottledError",
    "check_uri_text",
    "is_function_url",
    "make_invoker",
    "parse_function_arn",
    "throttled",
]

_LAMBDA_NAMES = frozenset(
    {"FunctionUrlInvoker", "LambdaInvoker", "is_function_url", "parse_function_arn"}
)


def __getattr__(name: str) -> Any:
    """The Lambda names, imported on first use (PEP 562): boto3 loads only when needed."""
    if name in _LAMBDA_NAMES:
        from . import _lambda

        return getattr(_lambda, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
