"""The Restate service protocol as a ``ProtocolAdapter``: Restate SDK endpoints (any
language), unchanged, run on Ritornello's engine.

One attempt is one request/response exchange (the protocol's REQUEST_RESPONSE mode, which
every SDK serves over HTTP/1.1 and Lambda): Start and the whole journal go in one request
body, the endpoint runs until it needs what it does not have and answers its new commands,
then End, Suspension or Error. What the bytes mean is ``_journal``'s; this module sends them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

from ritornello.protocol import DiscoveryResponse, ProtocolError

from ..._json import loads
from ...core import Answered, AttemptFailed, Invoke
from ...invokers import Duplex, Invoker, InvokerError, throttled
from .._base import Exchange, ProtocolAdapter
from .._ritornello import decode_discovery
from ._bidi import Open
from ._bidi import attempt as bidi_attempt
from ._journal import Refused, decode_answer, encode_request
from ._manifest import content_type, is_manifest, read_manifest
from ._wire import FrameError

log = logging.getLogger("ritornello.restate")

#: The header naming the invocation, as Restate's server sends it.
INVOCATION_ID_HEADER = "x-restate-invocation-id"


def read_discovery(raw: bytes) -> DiscoveryResponse:
    """Either kind of discovery answer: Restate's endpoint manifest, or Ritornello's own."""
    try:
        message = loads(raw)
    except ValueError as exc:
        raise ProtocolError(f"discovery answer is not JSON: {exc}") from None
    if is_manifest(message):
        return read_manifest(message)
    return decode_discovery(raw)


def lazy_handlers(info: dict[str, Any]) -> frozenset[tuple[str, str]]:
    """The (service, handler) pairs whose manifest asks for lazy state."""
    out = set()
    for s in (info.get("manifest") or {}).get("services") or []:
        for h in s.get("handlers") or []:
            if h.get("enableLazyState", s.get("enableLazyState")) is True:
                out.add((s.get("name"), h.get("name")))
    return frozenset(out)


class RestateProtocol(ProtocolAdapter):
    """Restate's service protocol (``version`` as negotiated at discovery) over HTTP."""

    name = "restate"

    def __init__(
        self,
        version: int,
        lazy: frozenset[tuple[str, str]] = frozenset(),
        *,
        http2: bool = False,
        bidi: bool = False,
    ) -> None:
        self.version = version
        self.lazy = lazy
        self.content_type = content_type(version)
        #: the endpoint is reached over HTTP/2 (it serves nothing else)
        self.http2 = http2
        #: and serves BIDI_STREAM: an attempt stays open across its steps (``_bidi``)
        self.bidi = bidi and http2

    @classmethod
    def of(cls, discovery: DiscoveryResponse) -> RestateProtocol:
        """The adapter for a deployment discovered as a Restate endpoint."""
        info = discovery.wire_info or {}
        return cls(
            int(info.get("version", 6)),
            lazy_handlers(info),
            http2=info.get("http2") is True,
            bidi=info.get("mode") == "BIDI_STREAM",
        )

    def headers(self) -> dict[str, str]:
        """What every request to the endpoint carries."""
        return {"content-type": self.content_type, "accept": self.content_type}

    def read_discovery(self, raw: bytes) -> DiscoveryResponse:
        return read_discovery(raw)

    def new_exchange(self) -> Exchange:
        return Open() if self.bidi else Exchange()

    async def attempt(
        self, invoker: Invoker, invoke: Invoke, exchange: Exchange, timeout_s: float
    ) -> Answered | AttemptFailed:
        inv = invoke.invocation
        rec = inv.rec
        if isinstance(exchange, Open):
            return await self._bidi(invoker, invoke, exchange, timeout_s)
        try:
            body = encode_request(inv, self.version, lazy=(rec.service, rec.handler) in self.lazy)
        except Refused as exc:
            return AttemptFailed(rec.id, f"protocol: {exc}")
        except Exception:  # a journal this module cannot read: never the driver's end
            log.exception("invocation %s: its journal could not be sent", rec.id)
            return AttemptFailed(rec.id, "protocol: the journal could not be sent (see the log)")
        try:
            async with asyncio.timeout(timeout_s):
                raw = await invoker.invoke_as(
                    rec.service, rec.handler, body, {INVOCATION_ID_HEADER: rec.id}
                )
            answer = decode_answer(inv, raw, self.version, int(time.time() * 1000))
        except Exception as exc:
            return _failed(rec.id, exc, timeout_s)
        return Answered(rec.id, answer)

    async def _bidi(
        self, invoker: Invoker, invoke: Invoke, exchange: Open, timeout_s: float
    ) -> Answered | AttemptFailed:
        """One stretch of a BIDI_STREAM attempt (``_bidi``)."""
        inv = invoke.invocation
        rec = inv.rec

        def start() -> Awaitable[Duplex]:
            return invoker.open_duplex(rec.service, rec.handler, {INVOCATION_ID_HEADER: rec.id})

        lazy = (rec.service, rec.handler) in self.lazy
        try:
            answer = await bidi_attempt(exchange, start, inv, self.version, lazy, timeout_s)
        except Exception as exc:
            return _failed(rec.id, exc, timeout_s)
        return Answered(rec.id, answer)


def _failed(invocation_id: str, exc: Exception, timeout_s: float) -> AttemptFailed:
    """What an attempt that raised ``exc`` comes to: a failed attempt saying why (whatever
    an endpoint sends, never the end of the driver)."""
    if isinstance(exc, TimeoutError):
        return AttemptFailed(invocation_id, f"transport: attempt timed out after {timeout_s:g} s")
    if isinstance(exc, InvokerError):
        return AttemptFailed(invocation_id, f"transport: {exc}", throttled(exc))
    if isinstance(exc, (Refused, FrameError)):
        return AttemptFailed(invocation_id, f"protocol: {exc}")
    log.error("invocation %s: its answer could not be read", invocation_id, exc_info=exc)
    return AttemptFailed(invocation_id, f"protocol: the answer could not be read: {exc!r}")
