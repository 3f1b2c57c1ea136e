"""The AWS Lambda adapter of an endpoint: ``Endpoint([...]).lambda_handler()``.

One function answers three kinds of event (standard library only):

- ``{"ritornello": "discover"}`` from the orchestrator -> the ``DiscoveryResponse`` dict;
- an ``InvokeRequest`` dict (``"type": "invoke"``) from the orchestrator -> the
  ``InvokeResponse`` dict;
- a Function URL event (payload format 2.0) -> the routes of the ASGI app, served by that very
  app, so the 400/404/405 rules cannot drift apart -> ``{"statusCode", "headers", "body",
  "isBase64Encoded": false}``.

Anything else is answered with an ``error`` of kind ``protocol``; the function never raises for
an event. With a signing secret (docs/auth.md), the orchestrator's two kinds must come in the
signed envelope ``{"ritornello_signed": {...}, "body": "<JSON text>"}``, else the answer is an
``error`` of kind ``unauthorized``; a Function URL request is checked by the ASGI app, from its
headers. Lambda caps a payload at 6 MB each way, so the orchestrator's two kinds may come in
the envelope ``{"ritornello_encoding": "gzip", "data": <base64 of gzip of the JSON>}``, and an
answer whose JSON passes 5 MB goes back in it; one that is still too big compressed becomes an
``error`` answer (never a truncated one).

Checkpoint channel (docs/protocol.md, ``_channel``): discovery says ``"channel": true``
(unless ``RITORNELLO_CHANNEL=0``), and an ``InvokeRequest`` that names a channel is run with it:
each checkpoint of durability "step" is POSTed to the orchestrator, and the run goes on once it
is acknowledged, so a ten-step handler is one Lambda invocation instead of ten.

Lambda runs one invocation at a time per process and keeps the process between them, so the
adapter keeps one event loop for the life of the process (with its worker threads for sync
steps) instead of building one per invocation.

Logging: the SDK logs through ``ritornello.sdk``. With ``aws_lambda_powertools`` importable,
``Logger(service="ritornello")`` takes those records (JSON on stdout); without it they stay with
the standard library. During an invocation each record carries ``invocation_id`` and
``journal_position``. The SDK logs only new work: a replayed step does not run, so it logs
nothing, and a record below WARNING positioned inside the replayed journal is dropped.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import json
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any, TypeVar

from ritornello.protocol import (
    DISCOVER_EVENT,
    ENCODING_KEY,
    EnvelopeError,
    InvokeRequest,
    InvokeResponse,
    ProtocolError,
    SignatureError,
    gzip_base64,
    inflate_base64,
)
from ritornello.protocol._messages import dumps
from ritornello.protocol._record import Record
from ritornello.protocol._signing import AckCheck
from ritornello.sdk._asgi import AsgiApp, Message
from ritornello.sdk._invocation import CURRENT_MACHINE, STEP_INDEX
from ritornello.sdk._machine import error_response
from ritornello.sdk._served import Served
from ritornello.sdk._stream import plain_ack

#: What Lambda's ``handler(event, context)`` is: any JSON event in, a JSON object out.
LambdaFunction = Callable[..., dict[str, Any]]

#: Lambda's limit on a synchronous invocation's request and response payloads.
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024  # 6,291,456 bytes
#: An answer whose JSON passes this goes out gzip-enveloped.
ENVELOPE_THRESHOLD = 5 * 1024 * 1024  # 5,242,880 bytes
#: An enveloped event may not inflate beyond this (as the orchestrator bounds answers).
MAX_INFLATED = 256 * 1024 * 1024
POWERTOOLS_SERVICE = "ritornello"

logger = logging.getLogger("ritornello.sdk")

T = TypeVar("T")


# -- the gzip envelope -----------------------------------------------------------------------


def wire_size(message: dict[str, Any]) -> int:
    """The bytes Lambda counts for ``message``: its JSON as the Python runtime writes it
    (ASCII-escaped, so an upper bound whatever the runtime's settings)."""
    return len(json.dumps(message))


def encode_envelope(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` as ``{"ritornello_encoding": "gzip", "data": ...}``."""
    return {ENCODING_KEY: "gzip", "data": gzip_base64(dumps(message)).decode("ascii")}


def decode_envelope(event: dict[str, Any]) -> dict[str, Any]:
    """The message inside a gzip envelope; :class:`ProtocolError` if it does not decode."""
    encoding = event.get(ENCODING_KEY)
    if encoding != "gzip":
        raise ProtocolError(f"unknown {ENCODING_KEY} {encoding!r}: this endpoint reads 'gzip'")
    data = event.get("data")
    if not isinstance(data, str):
        raise ProtocolError("a gzip envelope needs 'data': the base64 of the gzipped JSON")
    try:
        raw = inflate_base64(data, MAX_INFLATED)
    except EnvelopeError as exc:
        raise ProtocolError(f"the gzip envelope {exc}") from None
    try:
        message = json.loads(raw)
    except ValueError as exc:
        raise ProtocolError(f"the gzip envelope does not hold JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("the gzip envelope does not hold a JSON object")
    return message


def fit_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """``answer`` as it may leave the Lambda: itself, enveloped past 5 MB, or, when even the
    envelope passes 6 MB, an ``error`` answer saying so."""
    size = wire_size(answer)
    if size <= ENVELOPE_THRESHOLD:
        return answer
    envelope = encode_envelope(answer)
    packed = wire_size(envelope)
    if packed <= LAMBDA_PAYLOAD_LIMIT:
        logger.debug("answer of %d bytes sent gzip-enveloped in %d bytes", size, packed)
        return envelope
    message = (
        f"the answer of {size} bytes exceeds Lambda's 6 MB limit ({LAMBDA_PAYLOAD_LIMIT} bytes) "
        f"even compressed ({packed} bytes)"
    )
    logger.warning("%s", message)
    return error_response("protocol", message).to_dict()


# -- one event loop for the process ------------------------------------------------------------


class ProcessLoop:
    """The event loop every invocation of this process runs on, made at first use.

    Lambda never runs two invocations at once in one process. A host that does (an emulator
    calling from several threads) gets a loop of its own for the call that finds this one busy,
    rather than a corrupted one.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy = threading.Lock()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to the end (from a thread with no running event loop, as Lambda's)."""
        if not self._busy.acquire(blocking=False):
            return asyncio.run(coro)
        try:
            if self._loop is None or self._loop.is_closed():
                self._loop = asyncio.new_event_loop()
            return self._loop.run_until_complete(coro)
        finally:
            self._busy.release()

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.close()


PROCESS_LOOP = ProcessLoop()
atexit.register(PROCESS_LOOP.close)


# -- logging -----------------------------------------------------------------------------------


class _Invocation(Record):
    """The invocation whose attempt this process runs, for its log records."""

    _fields = ("id", "journal_length")
    __slots__ = _fields
    id: str
    journal_length: int

    def __init__(self, id: str, journal_length: int) -> None:
        self.id = id
        self.journal_length = journal_length


_CURRENT: ContextVar[_Invocation | None] = ContextVar("ritornello_lambda_invocation", default=None)


def _journal_position() -> int | None:
    """Where the code logging now stands: the index of the step it runs in, else the position
    the handler's next action takes; None outside an attempt."""
    step = STEP_INDEX.get()
    if step is not None:
        return step
    machine = CURRENT_MACHINE.get()
    return None if machine is None else machine.next_index


class InvocationLogFilter(logging.Filter):
    """Stamps the SDK's records with ``invocation_id`` and ``journal_position`` during a Lambda
    invocation, and drops records below WARNING about the replayed part of the journal."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _CURRENT.get()
        if current is None:
            return True
        if not hasattr(record, "journal_position"):
            position = _journal_position()
            if (
                position is not None
                and position < current.journal_length
                and record.levelno < logging.WARNING
            ):
                return False
            record.journal_position = current.journal_length if position is None else position
        if not hasattr(record, "invocation_id"):
            record.invocation_id = current.id
        return True


class SdkLogging:
    """The SDK's logging on Lambda, set up once per process."""

    def __init__(self) -> None:
        self.ready = False
        #: ``aws_lambda_powertools.Logger`` when it is importable
        self.powertools: Any = None

    def setup(self) -> None:
        if self.ready:
            return
        self.ready = True
        if not any(isinstance(f, InvocationLogFilter) for f in logger.filters):
            logger.addFilter(InvocationLogFilter())
        try:
            from aws_lambda_powertools import Logger
        except ImportError:
            return  # standard library logging: records go wherever the app sends them
        # Configures the "ritornello" logger (JSON on stdout, level POWERTOOLS_LOG_LEVEL or
        # INFO); "ritornello.sdk" records reach it by propagation.
        self.powertools = Logger(service=POWERTOOLS_SERVICE)


SDK_LOGGING = SdkLogging()


def _log_answer(request: InvokeRequest, response: InvokeResponse) -> None:
    """One line per answer that carries new work (replays that add nothing log nothing)."""
    first = len(request.journal)
    end = first + len(response.entries)
    where = f"{request.service}/{request.handler} {request.id} attempt {request.attempt}"
    error = response.error or {}
    if response.status == "error" and error.get("kind") != "handler":
        # handler and step failures are logged where they happen, with their traceback
        kind, message = error.get("kind"), error.get("message")
        logger.warning("%s: error (%s): %s", where, kind, message, extra={"journal_position": end})
    elif response.entries:
        span = f"{first}..{end - 1}"
        logger.info(
            "%s: %s, new entries %s", where, response.status, span, extra={"journal_position": end}
        )


# -- events ------------------------------------------------------------------------------------


def _protocol_error(message: str) -> dict[str, Any]:
    return error_response("protocol", message).to_dict()


_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number"}


def _describe(event: Any) -> str:
    if not isinstance(event, dict):
        kind = "null" if event is None else _JSON_TYPES.get(type(event), type(event).__name__)
        return f"a JSON {'boolean' if isinstance(event, bool) else kind}"
    keys = sorted(str(k) for k in event)
    return "an object with keys " + ", ".join(keys[:10]) + (", ..." if len(keys) > 10 else "")


def _is_function_url(event: dict[str, Any]) -> bool:
    context = event.get("requestContext")
    return (
        event.get("version") == "2.0"
        and isinstance(event.get("rawPath"), str)
        and isinstance(context, dict)
        and isinstance(context.get("http"), dict)
        and isinstance(context["http"].get("method"), str)
    )


def _url_answer(status: int, body: str, headers: dict[str, str]) -> dict[str, Any]:
    return {"statusCode": status, "headers": headers, "body": body, "isBase64Encoded": False}


def _url_message(status: int, message: str) -> dict[str, Any]:
    body = json.dumps({"message": message})
    return _url_answer(status, body, {"content-type": "application/json"})


class LambdaAdapter:
    """Answers Lambda events for one endpoint (see the module docstring)."""

    def __init__(self, endpoint: Served) -> None:
        self.endpoint = endpoint
        self.app = AsgiApp(endpoint)
        #: ``RITORNELLO_CHANNEL=0`` turns the checkpoint channel off (not offered, not used)
        self.channel_enabled = channel_enabled()
        self._channel_settings: Any = None  # read at the first request with a channel

    def __call__(self, event: Any, context: Any = None) -> dict[str, Any]:
        return PROCESS_LOOP.run(self.answer(event))

    async def answer(self, event: Any) -> dict[str, Any]:
        """The answer to one event (never raises for a bad one)."""
        if isinstance(event, dict) and _is_function_url(event):
            return await self.function_url(event)
        verifier = self.endpoint.verifier
        acks: AckCheck | None = None
        if verifier is not None:
            try:
                if not isinstance(event, dict):
                    raise SignatureError(f"unsigned Lambda event: got {_describe(event)}")
                event, acks = verifier.open_lambda_acked(event, self.endpoint.now())
            except SignatureError as exc:
                logger.warning("refused a Lambda event: %s", exc)
                return error_response("unauthorized", str(exc)).to_dict()
        if isinstance(event, dict) and ENCODING_KEY in event:
            try:
                event = decode_envelope(event)
            except ProtocolError as exc:
                return _protocol_error(str(exc))
        if isinstance(event, dict) and event.get("ritornello") == "discover":
            discovery = self.endpoint.discovery()
            if self.channel_enabled:
                discovery = discovery.replace(channel=True)
            return fit_answer(discovery.to_dict())
        if isinstance(event, dict) and event.get("type") == "invoke":
            return await self.invoke(event, acks)
        return _protocol_error(
            f"not a Ritornello Lambda event: expected {json.dumps(DISCOVER_EVENT)}, an "
            f'InvokeRequest ("type": "invoke"), a gzip envelope ({ENCODING_KEY}) or a '
            f"Function URL event (payload format 2.0); got {_describe(event)}"
        )

    async def invoke(self, event: dict[str, Any], acks: AckCheck | None = None) -> dict[str, Any]:
        """An ``InvokeRequest`` event -> the ``InvokeResponse`` as it may leave the Lambda;
        ``acks``: the check of its channel's acks, when the event was signed v2."""
        try:
            request = InvokeRequest.decode(event)
        except ProtocolError as exc:
            return _protocol_error(str(exc))
        token = _CURRENT.set(_Invocation(request.id, len(request.journal)))
        seen: int | None = None
        try:
            try:
                response, seen = await self._attempt(request, acks)
            except Exception as exc:
                logger.exception("endpoint failed on %s/%s", request.service, request.handler)
                response = error_response("handler", f"internal endpoint error: {exc!r}")
            else:
                _log_answer(request, response)
            answer = response.to_dict()
            if seen is not None:  # a request that named a channel: how many acks this run saw
                answer["channel_acks"] = seen
            return fit_answer(answer)
        finally:
            _CURRENT.reset(token)

    async def _attempt(
        self, request: InvokeRequest, acks: AckCheck | None
    ) -> tuple[InvokeResponse, int | None]:
        """The attempt of ``request``: on its checkpoint channel when it names one this
        process may use, else as one request; and, when it names one, how many acks the run
        received (the answer's ``channel_acks``: the orchestrator reads the answer only if
        that is every ack it sent, so nothing committed is answered again)."""
        if request.channel is None:
            return await self.endpoint.invoke(request), None
        # imported here: a process that is never given a channel does not load it (cold start)
        from ritornello.sdk._channel import (
            FALLBACK,
            FELL_BACK,
            ChannelSettings,
            LambdaChannel,
            run_on_channel,
        )

        if not self.channel_enabled or request.id in FELL_BACK:
            return await self.endpoint.invoke(request.replace(channel=None)), 0
        if self._channel_settings is None:
            self._channel_settings = ChannelSettings()
        channel = LambdaChannel(request, self._channel_settings, acks or plain_ack)
        response = await run_on_channel(channel, self.endpoint.invoke)
        if channel.outcome is not None:
            logger.warning(
                "%s/%s %s: checkpoint channel closed after %d ack(s) (%s): %s",
                request.service,
                request.handler,
                request.id,
                channel.acks,
                channel.outcome,
                channel.why,
            )
            if channel.outcome == FALLBACK:
                FELL_BACK.add(request.id)
        return response, channel.acks

    async def function_url(self, event: dict[str, Any]) -> dict[str, Any]:
        """A Function URL request, served by the endpoint's ASGI app."""
        # imported here: the orchestrator's events never need it, and it costs a cold start
        # ~2 ms (urllib.parse imports ipaddress)
        from urllib.parse import unquote

        method: str = event["requestContext"]["http"]["method"].upper()
        raw_path: str = event["rawPath"]
        try:
            body = _url_body(event)
        except ValueError as exc:
            return _url_message(400, f"the request body does not decode: {exc}")
        headers = event.get("headers") or {}
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "https",
            "path": unquote(raw_path),
            "raw_path": raw_path.encode(),
            "query_string": str(event.get("rawQueryString") or "").encode(),
            "root_path": "",
            "headers": [(str(k).lower().encode(), str(v).encode()) for k, v in headers.items()],
            "server": None,
            "client": None,
        }
        sent: list[Message] = []
        delivered = False

        async def receive() -> Message:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        start = next((m for m in sent if m["type"] == "http.response.start"), None)
        if start is None:
            return _url_message(500, "the endpoint gave no answer")
        payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        answer_headers = {"content-type": "application/json"}
        for name, value in start.get("headers", []):
            if name.decode().lower() in ("allow", "www-authenticate"):
                answer_headers[name.decode().lower()] = value.decode()
        answer = _url_answer(start["status"], payload.decode(), answer_headers)
        size = wire_size(answer)
        if size > LAMBDA_PAYLOAD_LIMIT:
            message = (
                f"the answer of {size} bytes exceeds Lambda's 6 MB response limit "
                f"({LAMBDA_PAYLOAD_LIMIT} bytes)"
            )
            logger.warning("%s %s: %s", method, raw_path, message)
            return _url_message(500, message)
        return answer


def channel_enabled() -> bool:
    """Whether the checkpoint channel is on: unless ``RITORNELLO_CHANNEL`` is 0/false/no/off."""
    raw = os.environ.get("RITORNELLO_CHANNEL", "1").strip().lower()
    return raw not in ("0", "false", "no", "off")


def _url_body(event: dict[str, Any]) -> bytes:
    body = event.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise ValueError("body is not a string")
    if event.get("isBase64Encoded"):
        return base64.b64decode(body, validate=True)
    return body.encode()


def lambda_handler(endpoint: Served) -> LambdaFunction:
    """The function Lambda calls for ``endpoint``; sets up the SDK's logging (once)."""
    SDK_LOGGING.setup()
    adapter = LambdaAdapter(endpoint)

    def handler(event: Any, context: Any = None) -> dict[str, Any]:
        """A Ritornello endpoint on AWS Lambda: discovery, invoke, Function URL events."""
        return adapter(event, context)

    return handler
