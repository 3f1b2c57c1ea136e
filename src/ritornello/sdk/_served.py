"""``Served``: the endpoint as its transports see it.

The ASGI app (``_asgi``) and the Lambda adapter (``_lambda``) need only these few members of an
endpoint; :class:`~ritornello.sdk.Endpoint` has them. So imports flow one way: ``_endpoint``
imports the transports, they import this interface, and none of them imports ``_endpoint``.
"""

from __future__ import annotations

from typing import Protocol

from ritornello.protocol import DiscoveryResponse, InvokeRequest, InvokeResponse, Verifier
from ritornello.sdk._invocation import Persist
from ritornello.sdk._service import HandlerSpec


class Served(Protocol):
    """What a transport calls on the endpoint it serves."""

    @property
    def verifier(self) -> Verifier | None:
        """Checks the orchestrator's signatures; None: requests are not checked."""

    @property
    def stream(self) -> bool:
        """Streamed attempts are offered and served."""

    @property
    def max_request_bytes(self) -> int:
        """The longest request body (a streamed request: line) read; longer ones get 413."""

    def now(self) -> float:
        """The clock signatures are checked against (Unix seconds)."""

    def discovery(self) -> DiscoveryResponse:
        """What the endpoint serves."""

    def handler(self, service: str, handler: str) -> HandlerSpec | None:
        """The handler ``service/handler``, if served here."""

    async def invoke(
        self, request: InvokeRequest, persist: Persist | None = None
    ) -> InvokeResponse:
        """One attempt of a decoded request; ``persist``: a streamed attempt's checkpoint
        channel."""
