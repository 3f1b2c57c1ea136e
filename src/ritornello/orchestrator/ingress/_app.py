"""The ingress app (port 8080): Restate's HTTP ingress paths, as a raw ASGI app (the hot path).

Guarantee 1: a 200/202 is sent only after the invocation's creation is committed. Guarantee 5:
bad input (too many or too large headers, malformed JSON, wrong content type, oversized body,
unknown target, invalid delay) gets a clear 4xx with ``{"message": ...}`` and nothing is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs, unquote

from ritornello.store import StoreError, crashpoints
from ritornello.store.records import InvocationRecord

from .._config import DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADERS, DEFAULT_REDACT_HEADERS
from .._json import dumpb, dumps, loads
from .._keys import key_problem
from ..core import WORKFLOW_RUN, value_result
from ..errors import OrchestratorError, TryAgainError
from ..runtime import Engine
from ._auth import BearerToken, authorization, redact_names, send_unauthorized
from ._channel import ChannelRoute, is_channel_path
from ._durable_api import DurableApi, is_durable_path
from ._headers import HeaderLimits, handler_headers
from ._input import (
    HttpError,
    check_priority,
    idempotency_key,
    json_content_type,
    json_text,
    not_json,
    parse_delay,
    raw_content_type,
    raw_output,
    raw_text,
    read_body,
)
from ._private import refuse_private
from ._status import http_status

log = logging.getLogger("ritornello.ingress")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_JSON = (b"content-type", b"application/json")
_CONTENT_TYPE = b"content-type"
_UNAUTHORIZED = b'{"message":"this ingress requires Authorization: Bearer <ingress token>"}'
_AWAKE = ("resolve", "reject")
_PEEK = ("attach", "output")


class RawBody(bytes):
    """An answer's body that is not JSON: a raw handler's output, with its content type."""

    content_type: bytes

    def __new__(cls, body: bytes, content_type: str) -> RawBody:
        raw = super().__new__(cls, body)
        raw.content_type = content_type.encode("latin-1")
        return raw


class IngressApp:
    """``POST /restate/call|send/...``, the legacy forms, attach and output."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_body_bytes: int = 10 * 1024 * 1024,
        token: str = "",
        redact_headers: str = DEFAULT_REDACT_HEADERS,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_headers: int = DEFAULT_MAX_HEADERS,
    ) -> None:
        self.engine = engine
        self.max_body_bytes = max_body_bytes
        self.header_limits = HeaderLimits(max_header_bytes, max_headers)
        # auth (docs/auth.md): with a token every path needs it; the header carrying it is
        # always redacted from the journaled request headers
        self._token = BearerToken(token) if token else None
        self._durable = DurableApi(
            engine,
            max_body_bytes=max_body_bytes,
            token=self._token,
            ingress_token=token,  # (it may sign forwarded checkpoints: ``_forward``)
        )
        self._channel = ChannelRoute(engine, max_body_bytes=max_body_bytes)
        self._redact = redact_names([*redact_headers.split(","), "authorization"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await asgi_lifespan(receive, send)
            return
        if scope["type"] != "http":
            if scope["type"] == "websocket":  # none served: refused before it is accepted
                await send({"type": "websocket.close", "code": 1008})  # the server says 403
            return
        too_many = self.header_limits.problem(scope.get("headers", ()))
        if too_many is not None:  # before anything reads them: nothing is stored
            await _refuse_headers(send, too_many)
            return
        if is_durable_path(scope):  # Lambda's durable API: its own capabilities and errors
            await self._durable(scope, receive, send)
            return
        if is_channel_path(scope):  # Lambda runs' checkpoints: the run's token is the capability
            await self._channel(scope, receive, send)
            return
        if self._token is not None and not self._token.matches(authorization(scope)):
            await send_unauthorized(send, _UNAUTHORIZED)
            return
        inv_id: str | None = None
        try:
            status, body, inv_id = await self._route(scope, receive)
        except HttpError as exc:
            status, body = exc.status, dumpb({"message": exc.message})
            inv_id = exc.invocation_id
        except OrchestratorError as exc:
            status, body = http_status(exc), dumpb({"message": str(exc)})
            if isinstance(exc, TryAgainError) and exc.invocation_id is not None:
                inv_id = exc.invocation_id
        except StoreError as exc:
            log.warning("store error in ingress: %s", exc)
            status, body = 503, dumpb({"message": f"store unavailable, retry: {exc}"})
        kind = (_CONTENT_TYPE, body.content_type) if isinstance(body, RawBody) else _JSON
        headers = [kind, (b"content-length", str(len(body)).encode())]
        if status == 503:
            headers.append((b"retry-after", b"1"))
        if inv_id is not None:
            headers.append((b"x-restate-id", inv_id.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _route(self, scope: Scope, receive: Receive) -> tuple[int, bytes, str | None]:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.split(b"?", 1)[0].decode("latin-1")
        segs = path.strip("/").split("/")
        if "%" in path:  # percent-encoded segments: decode (strictly: UTF-8 or 400)
            try:
                segs = [unquote(s, errors="strict") for s in segs]
            except UnicodeDecodeError:
                raise HttpError(400, "the path is not valid UTF-8") from None
        method = scope["method"]
        if segs and segs[0] == "restate":
            if len(segs) >= 4 and segs[1] in ("call", "send"):
                return await self._invoke(scope, receive, segs[2:], segs[1] == "send")
            if len(segs) == 3 and segs[1] in ("attach", "output"):
                return await self._result(method, segs[2], wait=segs[1] == "attach")
            if len(segs) == 4 and segs[1] in ("awakeables", "a") and segs[3] in _AWAKE:
                return await self._awakeable(scope, receive, segs[2], segs[3] == "resolve")
            if len(segs) == 4 and segs[1] == "invocation" and segs[3] in ("attach", "output"):
                return await self._result(method, segs[2], wait=segs[3] == "attach")
            if len(segs) in (6, 7) and segs[1] == "invocation" and segs[-1] in _PEEK:
                # .../{service}[/{key}]/{handler}/{idempotencyKey}/attach|output
                key = segs[3] if len(segs) == 7 else None
                inv_id = await self._by_idempotency(segs[2], key, segs[-3], segs[-2])
                return await self._result(method, inv_id, wait=segs[-1] == "attach")
            if len(segs) == 5 and segs[1] == "workflow" and segs[4] in _PEEK:
                inv_id = await self._workflow_run(segs[2], segs[3])
                return await self._result(method, inv_id, wait=segs[4] == "attach")
            if len(segs) == 2 and segs[1] in ("attach", "output", "lookup"):
                return await self._by_target(scope, receive, segs[1])
            raise HttpError(404, f"no ingress route for {path}")
        if segs and segs[0] == "health" and len(segs) == 1:
            return 200, b"{}", None
        if len(segs) >= 2:
            send = segs[-1] == "send" and self._legacy_send(segs)
            return await self._invoke(scope, receive, segs[:-1] if send else segs, send)
        raise HttpError(404, f"no ingress route for {path}")

    def _legacy_send(self, segs: list[str]) -> bool:
        found = self.engine.registry.service(segs[0])
        keyed = found is not None and found[0].kind != "service"
        return len(segs) == (4 if keyed else 3)

    async def _invoke(
        self, scope: Scope, receive: Receive, target: list[str], one_way: bool
    ) -> tuple[int, bytes, str | None]:
        if scope["method"] != "POST":
            raise HttpError(405, "invoke a handler with POST")
        if len(target) not in (2, 3):
            raise HttpError(404, f"no such target {'/'.join(target)}")
        service = target[0]
        # known here (the common case): no coroutine; unknown: find_service may re-read
        found = self.engine.registry.service(service) or await self.engine.find_service(service)
        if found is None:
            raise HttpError(404, f"service {service} not found")
        info = found[0]
        keyed = info.kind != "service"
        if keyed and len(target) == 2:
            kind = "virtual object" if info.kind == "object" else info.kind
            raise HttpError(400, f"{service} is a {kind}: the path needs a key")
        if not keyed and len(target) == 3:
            raise HttpError(
                404, f"handler {target[1]}/{target[2]} not found in {service} (a service: no key)"
            )
        key = target[1] if keyed else None
        if key is not None and (problem := key_problem(key)) is not None:
            raise HttpError(400, problem)
        handler = target[-1]
        resolved = self.engine.registry.resolve(service, handler)
        if resolved is None:
            raise HttpError(404, f"handler {service}/{handler} not found")
        refuse_private(self.engine.registry, resolved.deployment_id, service, handler)
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        raw_input = resolved.handler.input_content_type is not None
        if raw_input:  # raw bytes: any content type, stored as it arrives
            raw_content_type(headers)
        elif not json_content_type(headers):
            raise not_json(headers)
        delay_ms = 0
        raw_query: bytes = scope.get("query_string", b"")
        query = parse_qs(raw_query.decode("latin-1"), keep_blank_values=True) if raw_query else {}
        if "delay" in query:
            if not one_way:
                raise HttpError(400, "delay is only allowed on /send")
            if len(query["delay"]) > 1:
                raise HttpError(400, "delay given more than once")
            delay_ms = parse_delay(query["delay"][0])
        debounce_ms = 0
        if "debounce" in query:
            debounce_ms = _debounce(query, one_way, delay_ms, headers)
        body = await self._read_body(headers, receive)
        input_text = raw_text(body) if raw_input else json_text(body)
        idem = idempotency_key(headers)
        check_priority(headers)
        rec, created = await self.engine.submit(
            resolved,
            key,
            input_text,
            idempotency_key=idem,
            delay_ms=delay_ms,
            headers=handler_headers(headers, self._redact),
            debounce_ms=debounce_ms,
        )
        if crashpoints.ARMED:
            crashpoints.reach("before-ack")
        if one_way:
            status = "Accepted" if created else "PreviouslyAccepted"
            return 202, dumpb({"invocationId": rec.id, "status": status}), rec.id
        try:
            result = await self.engine.wait_result(rec.id, created=rec if created else None)
        except OrchestratorError as exc:
            raise HttpError(http_status(exc), str(exc), rec.id) from None
        except StoreError as exc:  # accepted and durable: attach later for the result
            raise HttpError(503, f"store unavailable, retry: {exc}", rec.id) from None
        return self._answer(result, rec.id, self._output_type(rec))

    async def _awakeable(
        self, scope: Scope, receive: Receive, awakeable_id: str, resolve: bool
    ) -> tuple[int, bytes, str | None]:
        """Resolve (JSON body) or reject (text body: the reason) an awakeable: 202."""
        if scope["method"] != "POST":
            raise HttpError(405, "resolve and reject an awakeable with POST")
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        body = await self._read_body(headers, receive)
        if resolve:
            if not json_content_type(headers):
                raise HttpError(415, "resolve takes a JSON body (content-type: application/json)")
            result = value_result(json_text(body))
        else:
            try:
                reason = body.decode("utf-8")
            except UnicodeDecodeError:
                raise HttpError(400, "the rejection reason is not UTF-8 text") from None
            result = dumps({"failure": {"code": 500, "message": reason or "rejected"}})
        await self.engine.complete_awakeable(awakeable_id, result)
        return 202, b"{}", None

    async def _read_body(self, headers: dict[bytes, bytes], receive: Receive) -> bytes:
        encoding = headers.get(b"content-encoding", b"identity").strip().lower()
        if encoding != b"identity":
            shown = encoding.decode("latin-1")
            raise HttpError(415, f"content-encoding {shown!r} is not supported: send plain JSON")
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            raise HttpError(413, f"body larger than {self.max_body_bytes} bytes")
        limit = self.max_body_bytes
        return await read_body(
            receive,
            limit,
            lambda: HttpError(413, f"body larger than {limit} bytes"),
            lambda: HttpError(400, "client disconnected"),
        )

    async def _by_idempotency(
        self, service: str, key: str | None, handler: str, idempotency_key: str
    ) -> str:
        rec = await self.engine.store.find_idempotent(service, handler, key, idempotency_key)
        if rec is None:
            raise HttpError(404, "not found")
        refuse_private(self.engine.registry, rec.deployment_id, rec.service, rec.handler)
        return rec.id

    async def _workflow_run(self, workflow: str, workflow_id: str) -> str:
        """The run invocation of a workflow id."""
        found = await self.engine.find_service(workflow)
        main = [h for h in found[0].handlers if h.kind == "workflow"] if found else []
        if not main:
            raise HttpError(404, f"workflow {workflow} not found")
        rec = await self.engine.store.find_idempotent(
            workflow, main[0].name, workflow_id, WORKFLOW_RUN
        )
        if rec is None:
            raise HttpError(404, "not found")
        refuse_private(self.engine.registry, rec.deployment_id, rec.service, rec.handler)
        return rec.id

    async def _by_target(
        self, scope: Scope, receive: Receive, what: str
    ) -> tuple[int, bytes, str | None]:
        """``POST /restate/attach|output|lookup`` with a target body (Restate's shapes)."""
        if scope["method"] != "POST":
            raise HttpError(405, f"/restate/{what} takes POST with a target body")
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if not json_content_type(headers):
            raise not_json(headers)
        try:
            target = loads(await self._read_body(headers, receive))
        except ValueError as exc:
            raise HttpError(400, f"invalid JSON body: {exc}") from None
        if not isinstance(target, dict):
            raise HttpError(400, "the body must be a target object")
        kind = target.get("target")
        if kind == "invocation" and isinstance(target.get("invocationId"), str):
            inv_id = target["invocationId"]
        elif kind == "workflow" and all(
            isinstance(target.get(f), str) for f in ("workflowName", "workflowKey")
        ):
            inv_id = await self._workflow_run(target["workflowName"], target["workflowKey"])
        elif kind == "idempotentInvocation" and all(
            isinstance(target.get(f), str) for f in ("service", "handler", "idempotencyKey")
        ):
            key = target.get("key")
            if key is not None and not isinstance(key, str):
                raise HttpError(400, "key must be a string")
            inv_id = await self._by_idempotency(
                target["service"], key, target["handler"], target["idempotencyKey"]
            )
        else:
            raise HttpError(
                400,
                'target must be {"target": "invocation", "invocationId"} or '
                '{"target": "idempotentInvocation", "service", "handler", "idempotencyKey"}',
            )
        if what == "lookup":
            if await self.engine.store.get_invocation(inv_id) is None:
                raise HttpError(404, "not found")
            return 200, dumpb({"invocationId": inv_id}), inv_id
        return await self._result("GET", inv_id, wait=what == "attach")

    async def _result(self, method: str, inv_id: str, *, wait: bool) -> tuple[int, bytes, str]:
        if method != "GET":
            raise HttpError(405, "attach and output use GET")
        if not inv_id.startswith("inv_"):
            raise HttpError(400, f"{inv_id!r} is not an invocation id")
        if self.engine.registry.any_private():  # else no read: the common case
            found = await self.engine.store.get_invocation(inv_id)
            if found is not None:
                refuse_private(
                    self.engine.registry, found.deployment_id, found.service, found.handler
                )
        if wait:
            result = await self.engine.wait_result(inv_id)
            found = await self.engine.store.get_invocation(inv_id)
            return self._answer(result, inv_id, self._output_type(found))
        rec = await self.engine.store.get_invocation(inv_id)
        if rec is None:
            raise HttpError(404, "not found")
        if rec.result is None:
            return 470, dumpb({"message": "not ready"}), inv_id
        return self._answer(rec.result, inv_id, self._output_type(rec))

    def _output_type(self, rec: InvocationRecord | None) -> str | None:
        """The content type of the raw output of the invocation's handler, as declared by
        the deployment it runs on (None: a JSON output)."""
        if rec is None:
            return None
        info = self.engine.registry.handler_info(rec.deployment_id, rec.service, rec.handler)
        return info.output_content_type if info is not None else None

    @staticmethod
    def _answer(
        result_text: str, inv_id: str, content_type: str | None = None
    ) -> tuple[int, bytes, str]:
        """The answer for a result: a failure's status and ``{"message"}``, else the value
        as JSON, or as raw bytes with ``content_type`` for a raw handler."""
        result = loads(result_text)
        if "failure" in result:
            failure = result["failure"]
            code = failure.get("code", 500)
            status = code if isinstance(code, int) and 400 <= code <= 599 else 500
            return status, dumpb({"message": failure.get("message", "")}), inv_id
        if content_type is not None:
            raw = raw_output(result.get("value"))
            if raw is not None:
                return 200, RawBody(raw, content_type), inv_id
        return 200, dumpb(result.get("value")), inv_id


async def _refuse_headers(send: Send, problem: str) -> None:
    """431 with ``{"message": problem}``, closing the connection (its body is not read)."""
    body = dumpb({"message": problem})
    headers = [_JSON, (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 431, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def asgi_lifespan(receive: Receive, send: Send) -> None:
    """Answer an ASGI lifespan scope: nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _debounce(
    query: dict[str, list[str]], one_way: bool, delay_ms: int, headers: dict[bytes, bytes]
) -> int:
    """``?debounce=5s`` (docs/limits.md, "Debounce"): one-way sends with an idempotency key
    only, not with ``delay``; the window, at least 1 ms."""
    if not one_way:
        raise HttpError(400, "debounce is only allowed on /send")
    if len(query["debounce"]) > 1:
        raise HttpError(400, "debounce given more than once")
    if delay_ms:
        raise HttpError(400, "give delay or debounce, not both")
    if b"idempotency-key" not in headers:
        raise HttpError(400, "debounce needs an Idempotency-Key: the sends it keeps the last of")
    window = parse_delay(query["debounce"][0], "debounce")
    if window <= 0:
        raise HttpError(400, "debounce must be longer than 0")
    return window
