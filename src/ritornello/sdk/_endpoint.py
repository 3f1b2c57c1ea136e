"""``Endpoint``: the services a deployment serves, and its transports.

``Endpoint([...]).asgi()`` serves them over HTTP; ``.inprocess()`` answers the same bytes
without HTTP (dev, tests). Both decode the request, find the handler and hand over to
:func:`run_attempt`.

With a signing secret (``signing_secret=`` or ``RITORNELLO_SIGNING_SECRET``, docs/auth.md) the
HTTP and Lambda transports answer only requests the orchestrator signed with it; without one they
answer everything (local development). The in-process transport is never signed: its caller is
this very process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ritornello.protocol import (
    DiscoveryResponse,
    InvokeRequest,
    InvokeResponse,
    ProtocolError,
    Verifier,
)
from ritornello.protocol._signing import split_secrets
from ritornello.sdk._invocation import Persist
from ritornello.sdk._machine import error_response
from ritornello.sdk._runner import run_attempt
from ritornello.sdk._service import HandlerSpec, ServiceDefinition

if TYPE_CHECKING:
    from ritornello.sdk._asgi import AsgiApp
    from ritornello.sdk._lambda import LambdaFunction

DURABILITY_MODES = frozenset({"step", "batch"})
ALWAYS_REPLAY_ENV = "RITORNELLO_ALWAYS_REPLAY"
#: ``0`` (or false/no/off) turns streamed attempts off (``Endpoint(stream=False)``).
STREAM_ENV = "RITORNELLO_STREAM"
#: One secret, or several separated by commas (rotation: any of them verifies).
SIGNING_SECRET_ENV = "RITORNELLO_SIGNING_SECRET"
#: ``1``: accept requests signed v1 only (``Endpoint(accept_v1_signatures=True)``).
ACCEPT_V1_ENV = "RITORNELLO_ACCEPT_V1_SIGNATURES"
#: The longest request body an HTTP endpoint reads (``Endpoint(max_request_bytes=...)``).
MAX_REQUEST_BYTES_ENV = "RITORNELLO_MAX_REQUEST_BYTES"
#: Its default: 64 MiB, room for a long journal and its state.
MAX_REQUEST_BYTES = 64 * 1024 * 1024


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


class Endpoint:
    """A set of services served together.

    ``durability="step"`` (default) checkpoints each step's result before the handler sees it;
    ``"batch"`` journals steps and sends them at the next suspension or at the end.
    ``always_replay=True`` (or ``RITORNELLO_ALWAYS_REPLAY=1`` when the endpoint is built)
    checkpoints after every new entry, so every handler replays from its journal at each step.
    ``signing_secret`` (one, or several for rotation; default ``RITORNELLO_SIGNING_SECRET`` when
    the endpoint is built; ``""`` for none) makes the HTTP and Lambda transports refuse requests
    the orchestrator did not sign with it, and replays of those it did (docs/auth.md).
    ``accept_v1_signatures=True`` (or ``RITORNELLO_ACCEPT_V1_SIGNATURES=1``) also accepts
    requests signed the v1 way only, as orchestrators from before the binding sign them: for
    the upgrade window only, since such requests can be replayed (as a stream, too).
    ``stream=True`` (default; ``RITORNELLO_STREAM=0`` in the environment turns it off) offers
    streamed attempts over HTTP (docs/protocol.md): each step's checkpoint is acknowledged on
    the open exchange instead of costing a new request and a replay. Turn it off behind a proxy
    that buffers request bodies.
    ``max_request_bytes`` (default ``RITORNELLO_MAX_REQUEST_BYTES`` when the endpoint is built,
    else 64 MiB) bounds the request bodies the HTTP transport reads (a streamed request: each
    line); a longer one is answered 413 as soon as that much of it arrived.
    """

    def __init__(
        self,
        services: Iterable[ServiceDefinition],
        *,
        always_replay: bool = False,
        durability: str = "step",
        signing_secret: str | Iterable[str] | None = None,
        stream: bool = True,
        max_request_bytes: int | None = None,
        accept_v1_signatures: bool = False,
    ) -> None:
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {sorted(DURABILITY_MODES)}")
        if max_request_bytes is None:
            raw = os.environ.get(MAX_REQUEST_BYTES_ENV, "").strip()
            max_request_bytes = int(raw) if raw else MAX_REQUEST_BYTES
        if max_request_bytes < 1:
            raise ValueError("max_request_bytes must be at least 1")
        #: The longest request body (a streamed request: line) the HTTP transport reads.
        self.max_request_bytes = max_request_bytes
        if signing_secret is None:
            signing_secret = os.environ.get(SIGNING_SECRET_ENV)
        secrets = split_secrets(signing_secret)
        #: Checks the orchestrator's signatures; None: requests are not checked (local dev).
        accept_v1 = accept_v1_signatures or _env_flag(ACCEPT_V1_ENV)
        self.verifier: Verifier | None = Verifier(secrets, accept_v1=accept_v1) if secrets else None
        self.durability = durability
        self.always_replay = always_replay or _env_flag(ALWAYS_REPLAY_ENV)
        off = os.environ.get(STREAM_ENV, "").strip().lower() in {"0", "false", "no", "off"}
        #: Streamed attempts are offered in discovery and served by the ASGI app.
        self.stream = stream and not off
        self._services: dict[str, ServiceDefinition] = {}
        for service in services:
            if not isinstance(service, ServiceDefinition):
                raise TypeError(f"{service!r} is not a Service or VirtualObject")
            if service.name in self._services:
                raise ValueError(f"two services named {service.name!r} in one endpoint")
            self._services[service.name] = service

    def __repr__(self) -> str:
        return f"Endpoint({list(self._services.values())!r})"

    def discovery(self) -> DiscoveryResponse:
        """What this endpoint serves."""
        return DiscoveryResponse(
            services=tuple(s.info() for s in self._services.values()),
            stream=self.stream,
            replay_only=True,
        )

    def handler(self, service: str, handler: str) -> HandlerSpec | None:
        """The handler ``service/handler``, if served here."""
        found = self._services.get(service)
        return found.get_handler(handler) if found is not None else None

    async def invoke(
        self, request: InvokeRequest, persist: Persist | None = None
    ) -> InvokeResponse:
        """Run one attempt of a decoded request (unknown handler: a protocol error);
        ``persist``: a streamed attempt's checkpoint channel (see ``_stream``)."""
        spec = self.handler(request.service, request.handler)
        if spec is None:
            return error_response(
                "protocol", f"no handler {request.service}/{request.handler} in this endpoint"
            )
        return await run_attempt(
            spec,
            request,
            durability=self.durability,
            always_replay=self.always_replay,
            persist=persist,
        )

    def now(self) -> float:
        """The clock signatures are checked against (Unix seconds)."""
        return time.time()

    def asgi(self) -> AsgiApp:
        """A raw ASGI app: ``GET /discover``, ``POST /invoke/{service}/{handler}``, ``GET
        /health``."""
        from ritornello.sdk._asgi import AsgiApp  # (each transport's module on first use)

        return AsgiApp(self)

    def lambda_handler(self) -> LambdaFunction:
        """The function AWS Lambda calls, ``handler(event, context) -> dict``: it answers the
        orchestrator's discovery (``{"ritornello": "discover"}``) and ``InvokeRequest`` events
        (gzip-enveloped or not) and Function URL requests (the routes of :meth:`asgi`). One
        event loop serves every invocation of the process. Build it once, at module level."""
        from ritornello.sdk._lambda import lambda_handler

        return lambda_handler(self)

    def inprocess(self) -> InProcessEndpoint:
        """The protocol without HTTP: bytes in, bytes out."""
        return InProcessEndpoint(self)


class InProcessEndpoint:
    """An endpoint called directly, with the bytes an HTTP endpoint would carry."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    async def discover(self) -> bytes:
        """The ``DiscoveryResponse``, encoded."""
        return self.endpoint.discovery().encode()

    async def invoke(self, body: bytes) -> bytes:
        """An encoded ``InvokeRequest`` in, an encoded ``InvokeResponse`` out.

        A body that does not decode is answered as an ``error`` of kind ``protocol`` (over
        HTTP it would be a 400).
        """
        try:
            request = InvokeRequest.decode(body)
        except ProtocolError as exc:
            return error_response("protocol", str(exc)).encode()
        return (await self.endpoint.invoke(request)).encode()
