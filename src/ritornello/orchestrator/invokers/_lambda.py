"""Invokers for handler endpoints on AWS Lambda: the Invoke API (boto3) and Function URLs (SigV4).

Wire format (the SDK's ``Endpoint(...).lambda_handler()`` answers exactly this): the orchestrator
calls Lambda's Invoke API, ``InvocationType=RequestResponse``, with the payload

* ``{"ritornello": "discover"}`` for discovery: the function returns the DiscoveryResponse;
* the InvokeRequest itself (``"type": "invoke"``): the function returns the InvokeResponse.

A request whose JSON exceeds 5 MiB (``GZIP_ABOVE``) travels as
``{"ritornello_encoding": "gzip", "data": "<base64 of gzip of the JSON>"}``; if even that exceeds
Lambda's 6 MiB payload limit (``MAX_PAYLOAD``) the attempt fails with ``InvokerError`` (nothing is
ever truncated). An answer may come back in the same envelope and is decoded here, so the engine
always gets plain InvokeResponse bytes, exactly as from HTTP.

With a signing secret (docs/auth.md) the payload, enveloped or not, is wrapped once more in the
signed envelope ``{"ritornello_signed": {"v", "ts", "sig"}, "body": "<payload JSON text>"}``; a
payload whose signed form would pass 6 MiB is gzipped first. A Function URL request carries the
signature in headers, next to SigV4's.

Invariants:

* An answer is read from the Invoke response only up to ``max_answer_bytes`` (discovery:
  ``max_discovery_bytes``), and a gzipped one inflated only up to that: Lambda itself caps
  answers at 6 MiB, but whatever stands at ``AWS_ENDPOINT_URL_LAMBDA`` may not.
* boto3 is synchronous: every ``invoke`` (and the gzip work around it) runs in this invoker's own
  thread pool of ``max_concurrency`` threads, never on the event loop; an ``asyncio.Semaphore``
  admits at most ``max_concurrency`` requests, matching the client's connection pool.
* One client per invoker (botocore clients are thread-safe), made on first use in a worker thread.
  It never retries (``max_attempts: 0``): a failed attempt goes back to the engine, whose retry
  policy and backoff are the only ones.
* Only qualified ARNs are accepted (``...:function:NAME:VERSION`` or ``:ALIAS``): ``$LATEST`` and an
  unqualified name change under a suspended invocation, whose journal must replay on the code that
  wrote it. (An alias moves when it is repointed; a version never does.)
* Deployment records hold one string, so the role to assume travels in the URI:
  ``arn:aws:lambda:us-east-1:123456789012:function:app:7?assume_role_arn=<url-encoded role ARN>``
  and survives restarts with the record.

Restate's service protocol (``carries_others``): a Restate SDK's Lambda handler reads what
Restate's server sends it (``crates/service-client/src/lambda.rs``), an API-Gateway-v1-shaped
event ``{"path", "httpMethod", "headers", "body": "<base64>", "isBase64Encoded": true}``, and
answers ``{"statusCode", "headers", "body", "isBase64Encoded"}``; after ``speak`` each
``invoke_as`` is ``POST /invoke/SERVICE/HANDLER`` in that shape, with the framed protocol bytes as
its body. A ``statusCode`` other than 200 fails the attempt like an HTTP status would; a function
error, throttling or a payload over 6 MiB (the base64 event included) as for Ritornello's payloads.
No compression is negotiated: the SDKs compress an answer (zstd) only when asked to by
``accept-encoding``, which is never sent, so a request larger than about 4.5 MiB of protocol bytes
does not fit and fails the attempt. Such events are not put in Ritornello's signed envelope (no
Restate SDK reads it): the Invoke API's own IAM authorization is what admits them.

Discovery tells the two kinds of function apart without knowing beforehand: it sends Ritornello's
discovery event first; a function that raises on it (a Restate SDK finds no ``httpMethod`` in it)
or answers in API Gateway's shape is then sent Restate's ``GET /discover`` event, carrying the
``accept`` header with the manifest versions (``_http._DISCOVER_HEADERS``), and its manifest's
bytes are the discovery answer. A Ritornello function costs one Invoke as before; a Restate one
two, once, at registration (restarts read the stored record).

Checkpoint channel (docs/protocol.md, ``_channel``): a function whose discovery says
``"channel": true``, once told the orchestrator's ``Channels`` (``offer_channel``) with a URL to
advertise, is invoked as a streamed attempt: ``open_stream`` adds ``"channel": {"url", "token"}``
to the InvokeRequest and returns the run's ``ChannelRun``, which yields the checkpoints the
function POSTs to the ingress and, last, its Invoke answer. Opening one costs a token, so every
attempt of such a function is one (``streams_free``).

Endpoints, regions and credentials come from the standard AWS settings (``AWS_ENDPOINT_URL_LAMBDA``
or ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``..., profiles, instance roles); the client's region is
the ARN's (a function is invoked in its own region).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

import boto3  # type: ignore[import-untyped]
import botocore.session  # type: ignore[import-untyped]
from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.credentials import (  # type: ignore[import-untyped]
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import (  # type: ignore[import-untyped]
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from ritornello.protocol import (
    DISCOVER_EVENT,
    ENCODING_KEY,
    EnvelopeError,
    Signer,
    gzip_envelope,
    inflate_base64,
)

from ._base import (
    MAX_ANSWER_BYTES,
    MAX_DISCOVERY_BYTES,
    FunctionError,
    Invoker,
    InvokerError,
    InvokeStream,
    ThrottledError,
    too_large,
)
from ._channel import ChannelRun, Channels
from ._hosts import HostPolicy
from ._http import _DISCOVER_HEADERS, LOGGED_BYTES, HttpInvoker

__all__ = [
    "GZIP_ABOVE",
    "MAX_PAYLOAD",
    "FunctionArn",
    "FunctionUrlInvoker",
    "GatewayAnswer",
    "LambdaInvoker",
    "decode_payload",
    "encode_payload",
    "gateway_event",
    "is_function_url",
    "lambda_uri",
    "parse_function_arn",
    "read_gateway_answer",
    "sign_payload",
]

log = logging.getLogger("ritornello.invoker")
T = TypeVar("T")

GZIP_ABOVE = 5 * 1024 * 1024  # 5,242,880 bytes: larger requests travel gzipped
MAX_PAYLOAD = 6 * 1024 * 1024  # 6,291,456 bytes: Lambda's synchronous payload limit
MAX_DECODED = 256 * 1024 * 1024  # by default, a gzipped answer may not inflate beyond this
DISCOVER = json.dumps(DISCOVER_EVENT).encode()

_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12})"
    r":function:(?P<name>[A-Za-z0-9_-]{1,64})(?::(?P<qualifier>[^:?/]*))?"
)
_QUALIFIER = re.compile(r"[0-9]+|[A-Za-z0-9_-]{1,128}")
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
_FUNCTION_URL_HOST = re.compile(r"[a-z0-9]+\.lambda-url\.(?P<region>[a-z0-9-]+)\.on\.aws")
_SHAPE = "arn:aws:lambda:REGION:ACCOUNT:function:NAME:VERSION (or :ALIAS)"


@dataclass(frozen=True, slots=True)
class FunctionArn:
    """A qualified Lambda function ARN, and the role to assume when invoking it."""

    arn: str
    region: str
    name: str
    qualifier: str
    assume_role_arn: str | None = None

    @property
    def uri(self) -> str:
        """The deployment URI that stores this target (see the module docstring)."""
        return lambda_uri(self.arn, self.assume_role_arn)


def parse_function_arn(uri: str, assume_role_arn: str | None = None) -> FunctionArn:
    """Parse a deployment URI (``ARN[?assume_role_arn=...]``); ``InvokerError`` says what is wrong.

    ``assume_role_arn`` may be given here or in the URI's query, not both.
    """
    arn, _, query = uri.partition("?")
    params = parse_qs(query, keep_blank_values=True, strict_parsing=False) if query else {}
    unknown = set(params) - {"assume_role_arn"}
    if unknown:
        raise InvokerError(f"unknown parameter(s) {sorted(unknown)} in Lambda deployment {uri!r}")
    if "assume_role_arn" in params:
        if assume_role_arn is not None or len(params["assume_role_arn"]) != 1:
            raise InvokerError(f"assume_role_arn given more than once for {arn!r}")
        assume_role_arn = params["assume_role_arn"][0]
    m = _ARN.fullmatch(arn)
    if m is None:
        raise InvokerError(f"not a Lambda function ARN: {arn!r} (expected {_SHAPE})")
    qualifier = m["qualifier"]
    if qualifier is None:
        raise InvokerError(
            f"Lambda ARN {arn!r} is unqualified: register a published version or an alias "
            f"({_SHAPE}), so that an invocation stays on the code it started on"
        )
    if qualifier == "$LATEST":
        raise InvokerError(
            f"Lambda ARN {arn!r} names $LATEST, which changes under running invocations: "
            f"register a published version or an alias ({_SHAPE})"
        )
    if not _QUALIFIER.fullmatch(qualifier):
        raise InvokerError(f"bad version or alias {qualifier!r} in Lambda ARN {arn!r}")
    if assume_role_arn is not None and not _ROLE_ARN.fullmatch(assume_role_arn):
        raise InvokerError(
            f"assume_role_arn {assume_role_arn!r} is not an IAM role ARN "
            "(arn:aws:iam::ACCOUNT:role/NAME)"
        )
    return FunctionArn(arn, m["region"], m["name"], qualifier, assume_role_arn)


def lambda_uri(arn: str, assume_role_arn: str | None = None) -> str:
    """The deployment URI for a function ARN and an optional role to assume."""
    if assume_role_arn is None:
        return arn
    return f"{arn}?assume_role_arn={quote(assume_role_arn, safe='')}"


# ---------------------------------------------------------------- payload envelope


def encode_payload(body: bytes, *, force_gzip: bool = False) -> bytes:
    """The Invoke payload for a request: as is up to 5 MiB (unless ``force_gzip``), else the
    gzip envelope.

    Raises ``InvokerError`` when even the envelope is over Lambda's 6 MiB limit.
    """
    if len(body) <= GZIP_ABOVE and not force_gzip:
        return body
    payload = gzip_envelope(body)
    if len(payload) > MAX_PAYLOAD:
        raise InvokerError(
            f"request too large for Lambda: {len(body):,} bytes of JSON are still "
            f"{len(payload):,} bytes gzipped, over the {MAX_PAYLOAD:,}-byte payload limit"
        )
    return payload


def sign_payload(signer: Signer, body: bytes, payload: bytes, now_s: float) -> bytes:
    """``payload`` (the encoding of ``body``) in the signed envelope; gzipped first if the
    signed form would pass Lambda's limit (escaping the JSON text into a string grows it)."""
    return sign_payload_bound(signer, body, payload, now_s)[0]


def sign_payload_bound(
    signer: Signer, body: bytes, payload: bytes, now_s: float
) -> tuple[bytes, str]:
    """``sign_payload``, and the envelope's ``bind`` (what a checkpoint channel's acks are
    bound to)."""
    signed, bind = signer.lambda_envelope(payload, now_s)
    if len(signed) > MAX_PAYLOAD and payload is body:
        signed, bind = signer.lambda_envelope(encode_payload(body, force_gzip=True), now_s)
    if len(signed) > MAX_PAYLOAD:
        raise InvokerError(
            f"request too large for Lambda: {len(body):,} bytes of JSON are {len(signed):,} "
            f"bytes signed, over the {MAX_PAYLOAD:,}-byte payload limit"
        )
    return signed, bind


def decode_payload(data: bytes, limit: int = MAX_DECODED, setting: str = "") -> bytes:
    """An answer's JSON bytes, unwrapping the gzip envelope if the function used it (inflated
    up to ``limit`` bytes; ``setting``: the name of that limit, for the message)."""
    marker = f'"{ENCODING_KEY}"'.encode()
    if marker not in data[:128] and marker not in data[-128:]:
        return data
    try:
        obj = json.loads(data)
    except ValueError:
        return data  # not ours to judge: the engine reports a malformed answer
    if not isinstance(obj, dict) or set(obj) != {ENCODING_KEY, "data"}:
        return data
    if obj[ENCODING_KEY] != "gzip" or not isinstance(obj["data"], str):
        raise InvokerError(f"unsupported answer encoding {obj['ritornello_encoding']!r}")
    try:
        out = inflate_base64(obj["data"], limit)
    except EnvelopeError as exc:
        named = f" ({setting})" if setting and "beyond" in str(exc) else ""
        raise InvokerError(f"gzipped answer {exc}{named}") from None
    return out


# ---------------------------------------------------------------- API Gateway's shape (Restate)


@dataclass(frozen=True, slots=True)
class GatewayAnswer:
    """A function's answer in API Gateway's shape: its status, headers and decoded body."""

    status: int
    headers: dict[str, str]
    body: bytes


def gateway_event(method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """The Invoke payload for one HTTP request in API Gateway's (v1) shape, as Restate's server
    sends it: header names lower-case, the body base64 even when empty (``isBase64Encoded`` is
    always true: the Python SDK asserts it).

    Raises ``InvokerError`` when the event is over Lambda's 6 MiB limit.
    """
    event = {
        "path": path,
        "httpMethod": method,
        "headers": {k.lower(): v for k, v in headers.items()},
        "body": base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": True,
    }
    payload = json.dumps(event, separators=(",", ":")).encode()
    if len(payload) > MAX_PAYLOAD:
        raise InvokerError(
            f"request too large for Lambda: {len(body):,} bytes are {len(payload):,} bytes as an "
            f"API Gateway event (base64), over the {MAX_PAYLOAD:,}-byte payload limit"
        )
    return payload


def read_gateway_answer(data: bytes) -> GatewayAnswer | None:
    """The answer in API Gateway's shape (``{"statusCode", "headers", "body",
    "isBase64Encoded"}``), or None if ``data`` is not one; ``InvokerError`` if it is one whose
    body does not decode (not base64, or compressed: Ritornello never asks for that)."""
    if b'"statusCode"' not in data:
        return None
    try:
        obj = json.loads(data)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    status = obj.get("statusCode")
    if not isinstance(status, int) or isinstance(status, bool):
        return None
    given = obj.get("headers")
    headers = {str(k).lower(): str(v) for k, v in given.items()} if isinstance(given, dict) else {}
    body = obj.get("body")
    if body is None:
        raw = b""
    elif not isinstance(body, str):
        raise InvokerError(f"answer in API Gateway's shape with a {type(body).__name__} body")
    elif obj.get("isBase64Encoded") is True:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InvokerError("answer in API Gateway's shape: its body is not base64") from None
    else:
        raw = body.encode()
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise InvokerError(
            f"answer encoded {encoding!r}, which Ritornello does not decode (it never sends "
            "accept-encoding)"
        )
    return GatewayAnswer(status, headers, raw)


# ---------------------------------------------------------------- credentials


class _AssumedRole(CredentialProvider):  # type: ignore[misc]
    """Credentials of an assumed role, refreshed by botocore before they expire."""

    METHOD = "ritornello-assume-role"
    CANONICAL_NAME = "custom-ritornello-assume-role"

    def __init__(self, role_arn: str, region: str) -> None:
        super().__init__()
        self._role_arn = role_arn
        self._region = region

    def load(self) -> Any:
        source = botocore.session.Session()  # the ordinary chain: env, profile, instance role
        credentials = source.get_credentials()
        if credentials is None:
            raise InvokerError(f"no AWS credentials to assume {self._role_arn} with")

        def sts(service: str, **kw: Any) -> Any:
            return source.create_client(service, region_name=self._region, **kw)

        fetcher = AssumeRoleCredentialFetcher(
            client_creator=sts,
            source_credentials=credentials,
            role_arn=self._role_arn,
            extra_args={"RoleSessionName": "ritornello-orchestrator"},
        )
        return DeferredRefreshableCredentials(
            refresh_using=fetcher.fetch_credentials, method=self.METHOD
        )


_LOADER: Any = None  # botocore's model loader, shared: models are parsed once per process


def _session(assume_role_arn: str | None, region: str) -> Any:
    """A boto3 session of its own (credentials are per invoker) over the shared model loader:
    parsing the models holds the GIL for tens of milliseconds, a stall worth paying once."""
    global _LOADER
    session = botocore.session.Session()
    if _LOADER is None:
        _LOADER = session.get_component("data_loader")
    else:
        session.register_component("data_loader", _LOADER)
    if assume_role_arn is not None:
        provider = _AssumedRole(assume_role_arn, region)
        session.register_component("credential_provider", CredentialResolver([provider]))
    return boto3.session.Session(botocore_session=session)


# ---------------------------------------------------------------- the Invoke API


class _FunctionError(FunctionError):
    """The function raised (``X-Amz-Function-Error``): discovery then tries Restate's shape."""


class LambdaInvoker(Invoker):
    """A function behind Lambda's Invoke API, named by a qualified ARN: Ritornello's payloads,
    or Restate's service protocol in API Gateway's shape once told to ``speak`` it."""

    carries_others = True
    streams_free = True

    def __init__(
        self,
        arn: str,
        *,
        assume_role_arn: str | None = None,
        max_concurrency: int = 64,
        timeout_s: float = 300.0,
        signing_secret: str = "",
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        max_discovery_bytes: int = MAX_DISCOVERY_BYTES,
    ) -> None:
        if max_concurrency < 1:
            raise InvokerError("max_concurrency must be at least 1")
        self.max_answer_bytes = max_answer_bytes
        self.max_discovery_bytes = max_discovery_bytes
        self._signer = Signer(signing_secret) if signing_secret else None
        self.target = parse_function_arn(arn, assume_role_arn)
        self.arn = self.target.arn
        self.max_concurrency = max_concurrency
        self._timeout_s = timeout_s
        self._slots = asyncio.Semaphore(max_concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._speaking: dict[str, str] = {}  # headers of another protocol's requests (speak)
        self._channels: Channels | None = None  # offer_channel

    @classmethod
    def from_uri(
        cls,
        uri: str,
        *,
        max_concurrency: int = 64,
        timeout_s: float,
        signing_secret: str = "",
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        max_discovery_bytes: int = MAX_DISCOVERY_BYTES,
    ) -> LambdaInvoker:
        """The invoker for a stored deployment URI (``ARN[?assume_role_arn=...]``)."""
        target = parse_function_arn(uri)
        return cls(
            target.arn,
            assume_role_arn=target.assume_role_arn,
            max_concurrency=max_concurrency,
            timeout_s=timeout_s,
            signing_secret=signing_secret,
            max_answer_bytes=max_answer_bytes,
            max_discovery_bytes=max_discovery_bytes,
        )

    async def discover(self) -> bytes:
        """Ritornello's discovery answer, or else a Restate endpoint's manifest (see the module
        docstring: Ritornello's event first, Restate's ``GET /discover`` when the function
        raised on it or answered in API Gateway's shape)."""
        try:
            data = await self._call(DISCOVER, False, self.max_discovery_bytes, _DISCOVERY)
        except _FunctionError as exc:
            return await self._discover_restate(exc)
        if not await self._run(_in_gateway_shape, data):
            _raise_refusal(self.arn, data)
            return data  # Ritornello's (or garbage: the engine judges it, as before)
        return await self._discover_restate(None)

    async def _discover_restate(self, first: InvokerError | None) -> bytes:
        """Restate's ``GET /discover``; ``first``: how Ritornello's event failed, if it did."""
        try:
            answer = await self._run(
                self._gateway_sync,
                "GET",
                "/discover",
                dict(_DISCOVER_HEADERS),
                b"",
                self.max_discovery_bytes,
                _DISCOVERY,
            )
        except InvokerError as exc:
            if first is None or str(exc) == str(first):
                raise (first or exc) from None
            raise InvokerError(f"{first}; as a Restate endpoint (GET /discover): {exc}") from None
        if answer is None:  # neither kind of event was understood
            if first is not None:
                raise first
            raise InvokerError(
                f"Lambda {self.arn} answered Ritornello's discovery event in API Gateway's shape "
                "but Restate's GET /discover in another: neither kind of endpoint?"
            )
        return self._answer_body(answer, "GET /discover")

    def speak(self, headers: dict[str, str], *, http2: bool = False) -> None:
        """Send ``invoke_as`` requests in API Gateway's shape with ``headers`` (the protocol's
        content type) from now on (never HTTP/2: a Lambda is invoked, not connected to)."""
        if http2:
            raise InvokerError("a Lambda function is not reached over HTTP/2")
        self._speaking = {k.lower(): v for k, v in headers.items()}

    async def invoke_as(
        self, service: str, handler: str, body: bytes, headers: dict[str, str]
    ) -> bytes:
        """One request of the protocol ``speak`` named: ``POST /invoke/SERVICE/HANDLER`` with
        ``body`` as an API Gateway event; the answer's body (``InvokerError`` on a non-200
        ``statusCode``, an answer in another shape, or as ``invoke``)."""
        path = f"/invoke/{quote(service, safe='')}/{quote(handler, safe='')}"
        sent = {**self._speaking, **{k.lower(): v for k, v in headers.items()}}
        answer = await self._run(
            self._gateway_sync, "POST", path, sent, body, self.max_answer_bytes, _ANSWER
        )
        if answer is None:
            raise InvokerError(
                f"Lambda {self.arn} answered POST {path} not in API Gateway's shape "
                "(statusCode, headers, body): not a Restate SDK's Lambda handler?"
            )
        return self._answer_body(answer, f"POST {path}")

    def _answer_body(self, answer: GatewayAnswer, request: str) -> bytes:
        """The body of a 200 answer; else ``InvokerError`` with the status line only (its text
        goes to the log, as ``HttpInvoker`` does: the endpoint's words stay out of errors)."""
        if answer.status == 200:
            return answer.body
        try:
            line = f"HTTP {answer.status} {HTTPStatus(answer.status).phrase}"
        except ValueError:
            line = f"HTTP {answer.status}"
        text = answer.body[:LOGGED_BYTES].decode("utf-8", "replace")
        log.warning("Lambda %s answered %s %s: %r", self.arn, request, line, text)
        raise InvokerError(f"Lambda {self.arn} answered {line} to {request}")

    @property
    def streams(self) -> bool:  # type: ignore[override]
        """Whether attempts go with a checkpoint channel: offered, and a URL to advertise."""
        channels = self._channels
        return channels is not None and bool(channels.url) and not self._speaking

    def offer_channel(self, channels: Channels | None) -> None:
        self._channels = channels

    async def open_stream(
        self, service: str, handler: str, body: bytes, *, invocation_id: str = "", attempt: int = 0
    ) -> InvokeStream:
        """Invoke the function with the InvokeRequest ``body`` and a checkpoint channel."""
        channels = self._channels
        if channels is None or not channels.url or not invocation_id:
            raise InvokerError(f"Lambda {self.arn}: no checkpoint channel")
        run = channels.open(invocation_id, attempt, self._signer)
        channel = json.dumps({"url": channels.url, "token": run.token}, separators=(",", ":"))
        body = body.rstrip()
        if not body.endswith(b"}"):
            raise InvokerError("not an InvokeRequest: it does not end with '}'")
        body = body[:-1] + b',"channel":' + channel.encode() + b"}"
        run.result = asyncio.ensure_future(self._run(self._invoke_channel_sync, body, run))
        return run

    def _invoke_channel_sync(self, body: bytes, run: ChannelRun) -> tuple[bytes, int | None]:
        """``_invoke_sync`` of a request with a channel: the envelope's ``bind`` kept for the
        run's acks before the function can see the request; the answer, and the acks the SDK
        says it received (``channel_acks``; None when it does not say). ``run.per_step`` says
        whether the answer is a checkpoint (the run answered per step: a metric)."""
        payload = encode_payload(body)
        if self._signer is not None:
            payload, run.bind = sign_payload_bound(self._signer, body, payload, time.time())
        limit = self.max_answer_bytes
        answer = decode_payload(self._send(payload, limit, _ANSWER), limit, _ANSWER[1])
        try:
            parsed = json.loads(answer)
            acks = parsed.get("channel_acks")
        except (ValueError, AttributeError):
            return answer, None  # not an answer: the engine judges it
        run.per_step = parsed.get("status") == "checkpoint"  # a metric only, never a decision
        return answer, acks if type(acks) is int else None

    async def invoke(self, service: str, handler: str, body: bytes) -> bytes:
        """Invoke the function with one InvokeRequest; the answer's JSON bytes.

        Cancelling the caller frees its slot at once; the thread finishes (or times out) on its
        own and its answer is dropped, never read by anyone.
        """
        return await self._call(body, True, self.max_answer_bytes, _ANSWER)

    async def invoke_event(self, event: bytes) -> bytes:
        """Invoke the function with ``event`` as it is (no envelope, no signature: an AWS
        durable function's invocation event, ``protocols.aws_durable``); its answer's bytes."""
        return await self._run(self._send, event, self.max_answer_bytes, _ANSWER)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- internals

    async def _call(
        self, payload: bytes, encode: bool, max_bytes: int, what: tuple[str, str]
    ) -> bytes:
        return await self._run(self._invoke_sync, payload, encode, max_bytes, what)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on this invoker's thread pool, holding one of its slots."""
        async with self._slots:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.max_concurrency, thread_name_prefix="ritornello-lambda"
                )
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, fn, *args)

    def _get_client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                config = Config(
                    max_pool_connections=self.max_concurrency,
                    connect_timeout=min(10.0, self._timeout_s),
                    read_timeout=self._timeout_s,
                    retries={"max_attempts": 0},
                    tcp_keepalive=True,  # long invocations over idle NAT paths
                )
                session = _session(self.target.assume_role_arn, self.target.region)
                self._client = session.client(
                    "lambda", region_name=self.target.region, config=config
                )
            return self._client

    def _invoke_sync(
        self, payload: bytes, encode: bool, max_bytes: int, what: tuple[str, str]
    ) -> bytes:
        """One Invoke call with a payload of Ritornello's, on a worker thread: enveloped and
        signed as needed, the answer unwrapped."""
        body = payload
        if encode:
            payload = encode_payload(payload)
        if self._signer is not None:
            payload = sign_payload(self._signer, body, payload, time.time())
        return decode_payload(self._send(payload, max_bytes, what), max_bytes, what[1])

    def _gateway_sync(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        max_bytes: int,
        what: tuple[str, str],
    ) -> GatewayAnswer | None:
        """One Invoke call with an HTTP request in API Gateway's shape, on a worker thread: the
        answer in that shape, or None if it is in another."""
        data = self._send(gateway_event(method, path, headers, body), max_bytes, what)
        return read_gateway_answer(data)

    def _send(self, payload: bytes, max_bytes: int, what: tuple[str, str]) -> bytes:
        """One Invoke call, on a worker thread: the answer's bytes as the function returned
        them. Every failure becomes ``InvokerError`` (``_FunctionError`` when the function
        raised); an answer past ``max_bytes`` is not read further (``what``: its name and
        setting)."""
        arn = self.arn
        try:
            resp = self._get_client().invoke(
                FunctionName=arn, InvocationType="RequestResponse", Payload=payload
            )
            answer = resp["Payload"]
            data: bytes = answer.read(max_bytes + 1)
            if len(data) > max_bytes:
                answer.close()
                refused = too_large(what[0], max_bytes, what[1])
                raise InvokerError(f"Lambda {arn}: {refused}; not read further")
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = err.get("Code") or "ClientError"
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            throttle = code in _THROTTLES or status == 429
            error = ThrottledError if throttle else InvokerError
            how = "throttled" if throttle else "failed"
            raise error(
                f"Lambda {arn} {how}: {code} (HTTP {status}): {err.get('Message', '')}".rstrip()
            ) from None
        except ReadTimeoutError:
            raise InvokerError(
                f"Lambda {arn} did not answer within {self._timeout_s:g} s (read timeout)"
            ) from None
        except (EndpointConnectionError, ConnectTimeoutError) as exc:
            raise InvokerError(f"Lambda endpoint unreachable for {arn}: {exc}") from None
        except InvokerError:
            raise
        except Exception as exc:  # BotoCoreError and anything else: still just a failed attempt
            raise InvokerError(f"Lambda {arn}: {type(exc).__name__}: {exc}") from None
        function_error = resp.get("FunctionError")
        if function_error:
            raise _FunctionError(*_function_error(arn, function_error, data))
        status = resp.get("StatusCode")
        if status != 200:
            raise InvokerError(f"Lambda {arn} answered status {status}")
        return data


_ANSWER = ("answer", "max_answer_bytes")
_DISCOVERY = ("discovery answer", "max_discovery_bytes")
_THROTTLES = frozenset(
    {"TooManyRequestsException", "ThrottlingException", "Throttling", "EC2ThrottledException"}
)


def _in_gateway_shape(data: bytes) -> bool:
    """Whether an answer is in API Gateway's shape (a Restate SDK's), decodable or not."""
    try:
        return read_gateway_answer(data) is not None
    except InvokerError:
        return True


def _raise_refusal(arn: str, data: bytes) -> None:
    """An ``error`` answer where another was due (the SDK refused the request, e.g. its
    signature): ``InvokerError`` with the SDK's message, not a confusing decode error."""
    if b'"error"' not in data[:4096]:
        return
    try:
        obj = json.loads(data)
    except ValueError:
        return
    if not isinstance(obj, dict):
        return
    error = obj.get("error")
    if obj.get("status") == "error" and isinstance(error, dict):
        raise InvokerError(f"Lambda {arn} refused: {error.get('kind')}: {error.get('message')}")


def _function_error(arn: str, kind: str, data: bytes) -> tuple[str, str, str]:
    """The message, error type and error message of an error raised by the function
    (X-Amz-Function-Error)."""
    try:
        obj = json.loads(data)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        etype = str(obj.get("errorType", "Error"))
        emsg = str(obj.get("errorMessage", ""))
        return f"Lambda {arn} function error ({kind}): {etype}: {emsg}", etype, emsg
    text = data[:300].decode("utf-8", "replace")
    return f"Lambda {arn} function error ({kind}): {text}", kind, text


# ---------------------------------------------------------------- Function URLs (AWS_IAM auth)


def is_function_url(uri: str) -> bool:
    """Whether ``uri`` is a Lambda Function URL (``https://ID.lambda-url.REGION.on.aws``)."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    return parts.scheme == "https" and _FUNCTION_URL_HOST.fullmatch(host) is not None


class FunctionUrlInvoker(HttpInvoker):
    """A Function URL with ``AuthType: AWS_IAM``: the HTTP invoker, each request SigV4-signed
    (service ``lambda``, the URL's region) with the ordinary credentials chain; unsigned when
    there are no credentials (an ``AuthType: NONE`` URL needs none).

    Signing runs on a worker thread: fetching or refreshing credentials may do network I/O.
    The content type signed is the one sent: Ritornello's, or another protocol's after ``speak``
    (Restate's: whether the function behind the URL reads its Function URL event, payload
    format 2.0, is up to its SDK; the Python SDK's 1.2 handler reads only API Gateway v1 events
    and fails on it, the TypeScript SDK's reads both).
    """

    can_stream = False  # AWS's front end buffers request bodies: no streamed attempts
    speaks_h2 = False  # nor a BIDI_STREAM exchange: a function gets a whole request

    def __init__(
        self,
        uri: str,
        *,
        limit: int = 256,
        timeout_s: float = 300.0,
        signing_secret: str = "",
        hosts: HostPolicy | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        max_discovery_bytes: int = MAX_DISCOVERY_BYTES,
    ) -> None:
        parts = urlsplit(uri)
        m = _FUNCTION_URL_HOST.fullmatch(parts.hostname or "")
        if parts.scheme != "https" or m is None:
            raise InvokerError(f"not a Lambda Function URL: {uri!r}")
        super().__init__(
            uri,
            limit=limit,
            timeout_s=timeout_s,
            signing_secret=signing_secret,
            hosts=hosts,
            max_answer_bytes=max_answer_bytes,
            max_discovery_bytes=max_discovery_bytes,
        )
        self.region = m["region"]
        self._credentials: Any = None
        self._lock = threading.Lock()

    def signed_headers(self, method: str, path: str, body: bytes | None) -> dict[str, str]:
        """The SigV4 headers for one request (blocking: may fetch credentials)."""
        with self._lock:
            if self._credentials is None:
                self._credentials = botocore.session.Session().get_credentials()
            credentials = self._credentials
        if credentials is None:  # an AuthType NONE URL needs none; AWS_IAM answers 403
            return {}
        content_type = self._fixed_headers.get("content-type", "application/json")
        request = AWSRequest(
            method=method,
            url=self.uri + path,
            data=body or b"",
            headers={"content-type": content_type},
        )
        SigV4Auth(credentials.get_frozen_credentials(), "lambda", self.region).add_auth(request)
        return {
            k.lower(): v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "x-amz-date", "x-amz-security-token")
        }

    async def _headers(
        self, method: str, path: str, body: bytes | None, stream: bool = False
    ) -> dict[str, str] | None:
        headers = await asyncio.to_thread(self.signed_headers, method, path, body)
        return {**headers, **(self._signature(method, path, body, stream) or {})}
