"""The ingress route of Lambda runs' checkpoint channels (docs/protocol.md, "Checkpoint channel").

``POST /ritornello/v1/lambda/checkpoint`` with ``x-ritornello-channel-token: TOKEN`` and a body
that is one ``checkpoint`` ``InvokeResponse`` (the line a streamed attempt would write). The
path has four segments, the last not ``send``: none of Restate's ingress paths nor their legacy
forms (``/{Service}/{handler}``, ``/{Object}/{key}/{handler}[/send]``) nor the durable API's
(``/2025-12-01/...``) can be it.

=====  =======================================================================================
200    the ack line (``{"type":"ack"}``, or ``{"type":"ack","n","mac"}`` when requests are
       signed): the entries are committed, the run goes on
400    the body is not a checkpoint answer (not JSON, not an object, another status, a bad
       entry, an integer past 64 bits); nothing is committed
401    no token
403    a token this process did not make (forged, altered, or from before a restart)
405    another method
409    the run is not live here (its attempt finished, was superseded or stopped), or it was
       stopped after this checkpoint was committed (something reached the invocation)
413    the body is larger than ``max_body_bytes``
=====  =======================================================================================

Each POST is counted in the engine's counters (``GET /metrics``:
``ritornello_engine_events_total{event="channel_..."}``): ``channel_acked`` (committed, 200),
``channel_stopped`` (taken by the run, then answered 409: the run was stopped or ended while it
waited), and ``channel_refused_WHY`` for a refusal: ``malformed`` (400), ``no_token`` (401),
``forged`` (403), ``method`` (405), ``stale`` (409: no live run), ``too_large`` (413),
``undecided`` (409: not decided in time).

The route carries its own capability (the token, sent inside the signed or IAM-authorized
``InvokeRequest``), so the ingress token is not asked for, as with the durable API's checkpoints.
Nothing but the token's MAC is looked at before the body is read; a body is decoded and checked
before it reaches the run, so a malformed one never reaches the engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..invokers import CHANNEL_PATH, TOKEN_HEADER
from ..protocols import decode_answer
from ..runtime import Engine
from ._input import read_body

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

log = logging.getLogger("ritornello.ingress")

_TOKEN = TOKEN_HEADER.encode()
#: How long a checkpoint waits for the engine's decision before the run is stopped (409).
DECISION_WAIT_S = 300.0


_WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]", "*"})


def advertised_url(advertise_url: str, host: str, ingress_port: int) -> str:
    """The base URL Lambda functions reach this ingress at (settings ``advertise_url``; else
    ``http://{host}:{ingress_port}``); "" when it cannot be told: a wildcard host or port 0
    (then no channel is offered, and Lambda attempts answer each checkpoint)."""
    if advertise_url:
        return advertise_url.rstrip("/")
    if host in _WILDCARDS or ingress_port == 0:
        return ""
    return f"http://{'[' + host + ']' if ':' in host else host}:{ingress_port}"


def is_channel_path(scope: Scope) -> bool:
    """Whether the request is for this route (checked before the ingress's own routes)."""
    return scope.get("path") == CHANNEL_PATH


#: The counter of each refusal, by status (``channel_refused_WHY``); the 409 of a checkpoint
#: not decided in time is ``undecided``.
_REFUSED = {
    400: "malformed",
    401: "no_token",
    403: "forged",
    405: "method",
    409: "stale",
    413: "too_large",
}


class _Refused(Exception):
    def __init__(self, status: int, message: str, why: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.why = why or _REFUSED[status]


class ChannelRoute:
    """``POST /ritornello/v1/lambda/checkpoint`` over one engine."""

    def __init__(self, engine: Engine, *, max_body_bytes: int) -> None:
        self.engine = engine
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
        try:
            status, body = await self._route(scope, receive)
            self.engine.counters["channel_acked" if status == 200 else "channel_stopped"] += 1
        except _Refused as exc:
            self.engine.counters["channel_refused_" + exc.why] += 1
            status = exc.status
            body = _message(str(exc))
            if status == 405:
                headers.append((b"allow", b"POST"))
            if status in (401, 403, 405, 413):
                headers.append((b"connection", b"close"))  # the body may be unread
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _route(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        if scope["method"] != "POST":
            raise _Refused(405, f"{scope['method']} not allowed on {CHANNEL_PATH}")
        token = next((v for k, v in scope.get("headers", ()) if k == _TOKEN), None)
        if token is None:
            raise _Refused(401, f"a checkpoint channel request needs {TOKEN_HEADER}")
        text = token.decode("latin-1")
        channels = self.engine.deployments.lambda_channels
        if not channels.genuine(text):
            log.warning("refused a checkpoint channel request: a token not made here")
            raise _Refused(403, "invalid checkpoint channel token (not made by this orchestrator)")
        body = await self._body(receive)
        answer = decode_answer(body)
        if isinstance(answer, str):
            raise _Refused(400, answer)
        if answer.status != "checkpoint":
            raise _Refused(
                400, f"a checkpoint channel takes checkpoint answers, not {answer.status}"
            )
        run = channels.live(text)
        if run is None:
            log.warning("refused a checkpoint of a run that is not live here (a zombie Lambda)")
            raise _Refused(409, "this run is not live here: its attempt is over; start nothing")
        reply = run.deliver(body)
        try:
            return await asyncio.wait_for(asyncio.shield(reply), DECISION_WAIT_S)
        except TimeoutError:
            run.spoil("a checkpoint was not decided in time")
            raise _Refused(
                409, "the checkpoint was not decided in time: start nothing", "undecided"
            ) from None

    async def _body(self, receive: Receive) -> bytes:
        limit = self.max_body_bytes
        return await read_body(
            receive,
            limit,
            lambda: _Refused(413, f"the checkpoint is larger than {limit:,} bytes"),
            lambda: _Refused(400, "the client went away"),
        )


def _message(text: str) -> bytes:
    import json

    return json.dumps({"message": text}).encode()
