"""Ritornello's own protocol (docs/protocol.md): the one module that builds every request to
one of its endpoints and reads every answer.

Requests are built from the core's ``Invocation`` as JSON text: journal entries, completions
and state values are stored as JSON text (``core._journal``), so they are spliced in as they
are rather than parsed and encoded again — here and nowhere else. Answers and discovery
documents are decoded with the orchestrator's JSON codec (``_json``, orjson) into the protocol's
types (``InvokeResponse``, ``DiscoveryResponse``), which validate them strictly. An answer
holding an integer beyond 64 bits is refused (orjson would read it as a float).

Streamed attempts: a handler seen answering ``checkpoint`` is invoked streamed when its
endpoint offers it — one exchange per attempt, each checkpoint acknowledged once committed
while the handler waits at its next step. The exchange is ended when a completion arrived for
the invocation since (its request lacks it), or when other requests wait for a connection.
For a handler that answers at once a stream costs more than a plain request, so it is used only
for handlers known to checkpoint — except where it costs nothing more (``streams_free``: a
Lambda's checkpoint channel, ``invokers._channel``), where every attempt is one.
"""

from __future__ import annotations

import asyncio

from ritornello.protocol import (
    PROTOCOL_VERSION,
    DiscoveryResponse,
    InvokeResponse,
    ProtocolError,
)
from ritornello.protocol._entries import INVOCATION_PERMIT

from .._json import IntegerRangeError, check_int64, dumps, loads
from .._tracing import TraceParent
from ..core import Answered, AttemptFailed, Invocation, Invoke
from ..invokers import Invoker, InvokerError, InvokeStream, throttled
from ._base import Exchange, ProtocolAdapter

#: Handlers remembered as checkpointing (bounded: cleared when full).
_STEPWISE_MAX = 4096


def encode_request(
    inv: Invocation, trace: TraceParent | None = None, *, replay_only: bool = False
) -> bytes:
    """The InvokeRequest for ``inv`` as it stands (stored texts spliced as they are), with
    ``trace`` as its ``traceparent`` and ``tracestate`` when given (docs/tracing.md);
    ``replay_only``: a dry run's (docs/protocol.md)."""
    rec = inv.rec
    extra = ""  # optional fields: promises, trace context
    if inv.promises is not None:
        extra = (
            ',"promises":{' + ",".join(dumps(k) + ":" + v for k, v in inv.promises.items()) + "}"
        )
    state = "null"
    if inv.state is not None:
        state = "{" + ",".join(dumps(k) + ":" + v for k, v in inv.state.items()) + "}"
    completions = inv.completions
    if trace is not None:
        extra += ',"traceparent":' + dumps(trace.header())
        if trace.state:
            extra += ',"tracestate":' + dumps(trace.state)
    return "".join(
        (
            '{"version":',
            str(PROTOCOL_VERSION),
            ',"type":"invoke","id":',
            dumps(rec.id),
            ',"service":',
            dumps(rec.service),
            ',"handler":',
            dumps(rec.handler),
            ',"key":',
            dumps(rec.key),
            ',"attempt":',
            str(rec.attempt),
            ',"journal":[',
            ",".join(inv.entries),
            '],"completions":[',
            ",".join(completions[i] for i in sorted(completions) if i != INVOCATION_PERMIT),
            '],"state":',
            state,
            extra,
            ',"replay_only":true}' if replay_only else "}",
        )
    ).encode()


def decode_answer(raw: bytes) -> InvokeResponse | str:
    """An endpoint's answer, or a string saying why it is not one."""
    try:
        message = loads(raw)
    except ValueError as exc:
        return f"protocol: malformed answer: not JSON: {exc}"
    if not isinstance(message, dict):  # a list, a number, null: not a message at all
        return f"protocol: malformed answer: not a JSON object but {type(message).__name__}"
    try:
        check_int64(raw)  # orjson would have read it as a float: refuse, do not store
    except IntegerRangeError as exc:
        return f"protocol: malformed answer: {exc}"
    try:
        return InvokeResponse.decode(message)
    except (ProtocolError, ValueError, TypeError) as exc:
        return f"protocol: malformed answer: {exc}"


def decode_discovery(raw: bytes) -> DiscoveryResponse:
    """An endpoint's discovery answer (``ProtocolError`` when it is not one)."""
    try:
        message = loads(raw)
    except ValueError as exc:
        raise ProtocolError(f"discovery answer is not JSON: {exc}") from None
    return DiscoveryResponse.decode(message if isinstance(message, dict) else raw)


class _Stream(Exchange):
    """A streamed attempt left open by a committed checkpoint."""

    __slots__ = ("live", "seen")

    def __init__(self) -> None:
        self.live: InvokeStream | None = None
        self.seen = 0  # completions the open stream's request had (set when it is opened)

    def close(self) -> None:
        if self.live is not None:
            self.live.abort()
            self.live = None


class RitornelloProtocol(ProtocolAdapter):
    """Ritornello's protocol over any invoker."""

    name = "ritornello"

    def __init__(self) -> None:
        #: (deployment, service, handler) seen answering ``checkpoint``: invoked streamed
        self._stepwise: dict[tuple[str, str, str], bool] = {}

    def read_discovery(self, raw: bytes) -> DiscoveryResponse:
        return decode_discovery(raw)

    def new_exchange(self) -> Exchange:
        return _Stream()

    async def attempt(
        self, invoker: Invoker, invoke: Invoke, exchange: Exchange, timeout_s: float
    ) -> Answered | AttemptFailed:
        assert isinstance(exchange, _Stream)
        inv = invoke.invocation
        rec = inv.rec
        target = (rec.deployment_id, rec.service, rec.handler)
        live, exchange.live = exchange.live, None
        if live is not None and (len(inv.completions) != exchange.seen or invoker.contended):
            # Its request lacks what arrived, or others wait for a connection (a stream holds
            # one across steps): end it; a fresh request queues fairly for a connection.
            live.finish()
            live = None
        try:
            # Each answer is due within ``timeout_s`` of its request: a stream bounds its line
            # waits with one timer of its own (an ``asyncio.timeout`` per step cost ~4% of the
            # loop's time), the rest with a cancellation-safe ``asyncio.timeout``.
            if live is not None:
                live.ack()
                raw = await live.next(timeout_s)
            elif (
                invoke.stream
                and invoker.streams
                and (invoker.streams_free or self._stepwise.get(target))
            ):
                loop = asyncio.get_running_loop()
                due = loop.time() + timeout_s
                async with asyncio.timeout_at(due):
                    # what the stream's request carries: a completion past these (arrived
                    # while a step ran, even one before a checkpoint) ends the stream
                    exchange.seen = len(inv.completions)
                    body = encode_request(inv, exchange.trace)
                    live = await invoker.open_stream(
                        rec.service, rec.handler, body, invocation_id=rec.id, attempt=rec.attempt
                    )
                raw = await live.next(max(0.0, due - loop.time()))
            else:
                async with asyncio.timeout(timeout_s):  # cancellation-safe, unlike wait_for
                    body = encode_request(inv, exchange.trace)
                    raw = await invoker.invoke(rec.service, rec.handler, body)
        except BaseException as exc:
            if live is not None:
                live.abort()
            if isinstance(exc, TimeoutError):
                return AttemptFailed(rec.id, f"transport: attempt timed out after {timeout_s:g} s")
            if isinstance(exc, InvokerError):
                return AttemptFailed(rec.id, f"transport: {exc}", throttled(exc))
            raise
        answer = decode_answer(raw)
        if not isinstance(answer, str) and answer.status == "replayed":
            answer = "protocol: malformed answer: replayed, to a request that was not replay-only"
        if isinstance(answer, str):
            if live is not None:
                live.abort()
            return AttemptFailed(rec.id, answer)
        checkpoint = answer.status == "checkpoint"
        if checkpoint and not self._stepwise.get(target):
            if len(self._stepwise) >= _STEPWISE_MAX:
                self._stepwise.clear()
            self._stepwise[target] = True
        if live is not None:
            if checkpoint and not live.ended:
                exchange.live = live
            else:
                live.finish()
        return Answered(rec.id, answer)
