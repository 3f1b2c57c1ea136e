"""The seam a wire protocol plugs into: a ``ProtocolAdapter`` turns an endpoint's messages
into core events and the core's requests into messages.

An adapter speaks one protocol over any invoker (the transport: HTTP, Lambda, in-process);
adding a protocol adds an adapter, not branches in the engine. Per driver, an ``Exchange``
keeps what an adapter holds across the attempts of one invocation (an open stream, say); the
driver closes it when it ends.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from ritornello.protocol import DiscoveryResponse

from ..core import Answered, AttemptFailed, Invoke
from ..invokers import Invoker

if TYPE_CHECKING:
    from .._tracing import TraceParent


class Exchange:
    """What an adapter keeps for one driver between its attempts (nothing, by default)."""

    #: Tracing on (docs/tracing.md): the trace context of the coming attempt, sent to the
    #: endpoint; None (always, with tracing off): none is sent.
    trace: TraceParent | None = None

    def close(self) -> None:
        """The driver ends: release whatever is held (an open stream is aborted)."""


class ProtocolAdapter(ABC):
    """One wire protocol, as the runtime uses it."""

    #: The protocol's name, as deployments record it.
    name: str = ""

    @abstractmethod
    def read_discovery(self, raw: bytes) -> DiscoveryResponse:
        """What an endpoint serves, from its raw discovery answer; ``ProtocolError`` or
        ``ValueError`` when it is not one."""

    def new_exchange(self) -> Exchange:
        """The state of one driver's attempts (see ``Exchange``)."""
        return Exchange()

    @abstractmethod
    async def attempt(
        self, invoker: Invoker, invoke: Invoke, exchange: Exchange, timeout_s: float
    ) -> Answered | AttemptFailed:
        """Send one attempt (or go on with one) and return what came of it: a decoded answer,
        or why the attempt failed (transport error, timeout, malformed answer). Answers are due
        within ``timeout_s`` of the request. Cancellation propagates."""
