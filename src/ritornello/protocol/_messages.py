"""Request and response messages, with strict decoding.

Decoding validates shape and version and raises :class:`ProtocolError` with a message that says
what is wrong; it never returns a half-valid message.
"""

from __future__ import annotations

import json
from typing import Any

from ritornello.protocol._entries import (
    ENTRY_KINDS,
    HANDLER_KINDS,
    SERVICE_KINDS,
    Completion,
    Entry,
)
from ritornello.protocol._record import FrozenRecord, Record
from ritornello.protocol._settings import Settings
from ritornello.protocol._version import (
    MAX_PROTOCOL_VERSION,
    MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
)

RESPONSE_STATUSES = frozenset({"done", "suspended", "checkpoint", "error", "replayed"})

#: Request header asking an HTTP endpoint for a streamed attempt (docs/protocol.md, "Streamed
#: attempts"): the request and the answer bodies are both newline-delimited JSON messages.
STREAM_HEADER = "x-ritornello-stream"
#: The orchestrator's line after it committed a streamed ``checkpoint``: go on.
STREAM_ACK = b'{"type":"ack"}'


class ProtocolError(ValueError):
    """A message does not follow the protocol (wrong version, missing field, bad JSON)."""


def _load(raw: bytes | str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(raw, dict):
        obj: Any = raw
    else:
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"message is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("message is not a JSON object")
    version = obj.get("version")
    if not isinstance(version, int) or not MIN_PROTOCOL_VERSION <= version <= MAX_PROTOCOL_VERSION:
        raise ProtocolError(
            f"unsupported protocol version {version!r}; this side speaks "
            f"{MIN_PROTOCOL_VERSION}..{MAX_PROTOCOL_VERSION}"
        )
    return obj


def _field(obj: dict[str, Any], name: str, typ: type | tuple[type, ...]) -> Any:
    value = obj.get(name)
    if not isinstance(value, typ) or (isinstance(value, bool) and typ is int):
        raise ProtocolError(f"field {name!r} is missing or not {typ}")
    return value


def _entries(raw: Any, what: str) -> list[Entry]:
    if not isinstance(raw, list):
        raise ProtocolError(f"{what} is not a list")
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or entry.get("kind") not in ENTRY_KINDS:
            raise ProtocolError(f"{what}[{i}] is not a journal entry")
    return raw


def dumps(obj: Any) -> bytes:
    """Compact JSON encoding used for every message (UTF-8, no NaN)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


class InvokeRequest(Record):
    """One attempt (or continuation) of an invocation, sent to the endpoint."""

    _fields = (
        "id",
        "service",
        "handler",
        "key",
        "attempt",
        "journal",
        "completions",
        "state",
        "promises",
        "traceparent",
        "tracestate",
        "replay_only",
        "channel",
    )
    __slots__ = _fields
    id: str
    service: str
    handler: str
    key: str | None
    attempt: int
    journal: list[Entry]
    completions: list[Completion]
    state: dict[str, Any] | None
    #: workflows: the promises resolved so far, name -> {"value": ...} or {"failure": ...}
    promises: dict[str, Any] | None
    #: the W3C trace context of this attempt, when the orchestrator traces (docs/tracing.md)
    traceparent: str | None
    tracestate: str | None
    #: Replay only (a dry run, docs/protocol.md): replay the journal and answer ``replayed``
    #: at the first action past it, running nothing new. Sent only to an endpoint whose
    #: discovery says ``replay_only``.
    replay_only: bool
    #: The checkpoint channel of a Lambda attempt (docs/protocol.md, "Checkpoint channel"):
    #: ``{"url": ..., "token": ...}``, where the endpoint may POST its checkpoints and go on.
    #: Sent only to an endpoint whose discovery says ``channel``.
    channel: dict[str, str] | None

    def __init__(
        self,
        id: str,
        service: str,
        handler: str,
        key: str | None,
        attempt: int,
        journal: list[Entry],
        completions: list[Completion] | None = None,
        state: dict[str, Any] | None = None,
        promises: dict[str, Any] | None = None,
        traceparent: str | None = None,
        tracestate: str | None = None,
        replay_only: bool = False,
        channel: dict[str, str] | None = None,
    ) -> None:
        self.id = id
        self.service = service
        self.handler = handler
        self.key = key
        self.attempt = attempt
        self.journal = journal
        self.completions = [] if completions is None else completions
        self.state = state
        self.promises = promises
        self.traceparent = traceparent
        self.tracestate = tracestate
        self.replay_only = replay_only
        self.channel = channel

    def to_dict(self) -> dict[str, Any]:
        out = {
            "version": PROTOCOL_VERSION,
            "type": "invoke",
            "id": self.id,
            "service": self.service,
            "handler": self.handler,
            "key": self.key,
            "attempt": self.attempt,
            "journal": self.journal,
            "completions": self.completions,
            "state": self.state,
        }
        if self.promises is not None:
            out["promises"] = self.promises
        if self.traceparent is not None:
            out["traceparent"] = self.traceparent
        if self.tracestate is not None:
            out["tracestate"] = self.tracestate
        if self.replay_only:
            out["replay_only"] = True
        if self.channel is not None:
            out["channel"] = self.channel
        return out

    def encode(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def decode(cls, raw: bytes | str | dict[str, Any]) -> InvokeRequest:
        obj = _load(raw)
        if obj.get("type") != "invoke":
            raise ProtocolError("not an invoke message")
        journal = _entries(obj.get("journal"), "journal")
        if not journal or journal[0].get("kind") != "input":
            raise ProtocolError("journal must start with an input entry")
        completions = obj.get("completions") or []
        if not isinstance(completions, list) or not all(
            isinstance(c, dict) and isinstance(c.get("index"), int) for c in completions
        ):
            raise ProtocolError("completions must be a list of {index, value|failure}")
        state = obj.get("state")
        if state is not None and not isinstance(state, dict):
            raise ProtocolError("state must be an object or null")
        key = obj.get("key")
        if key is not None and not isinstance(key, str):
            raise ProtocolError("key must be a string or null")
        promises = obj.get("promises")
        if promises is not None and not (
            isinstance(promises, dict)
            and all(
                isinstance(v, dict) and ("value" in v or "failure" in v) for v in promises.values()
            )
        ):
            raise ProtocolError("promises must map names to {value} or {failure}")
        for name in ("traceparent", "tracestate"):
            if obj.get(name) is not None and not isinstance(obj[name], str):
                raise ProtocolError(f"{name} must be a string")
        replay_only = obj.get("replay_only", False)
        if not isinstance(replay_only, bool):
            raise ProtocolError("replay_only must be true or false")
        channel = obj.get("channel")
        if channel is not None and not (
            isinstance(channel, dict)
            and isinstance(channel.get("url"), str)
            and isinstance(channel.get("token"), str)
        ):
            raise ProtocolError("channel must be an object with a url and a token (strings)")
        return cls(
            id=_field(obj, "id", str),
            service=_field(obj, "service", str),
            handler=_field(obj, "handler", str),
            key=key,
            attempt=_field(obj, "attempt", int),
            journal=journal,
            completions=completions,
            state=state,
            promises=promises,
            traceparent=obj.get("traceparent"),
            tracestate=obj.get("tracestate"),
            replay_only=replay_only,
            channel=None if channel is None else {"url": channel["url"], "token": channel["token"]},
        )


class InvokeResponse(Record):
    """The endpoint's answer: new entries plus what happens next."""

    _fields = ("status", "entries", "waiting", "error", "replayed")
    __slots__ = _fields
    status: str
    entries: list[Entry]
    waiting: list[int]
    error: dict[str, str] | None
    #: ``replayed`` only: how many journal entries the replay matched, the input included
    replayed: int

    def __init__(
        self,
        status: str,
        entries: list[Entry] | None = None,
        waiting: list[int] | None = None,
        error: dict[str, str] | None = None,
        replayed: int = 0,
    ) -> None:
        self.status = status
        self.entries = [] if entries is None else entries
        self.waiting = [] if waiting is None else waiting
        self.error = error
        self.replayed = replayed

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": PROTOCOL_VERSION,
            "status": self.status,
            "entries": self.entries,
        }
        if self.waiting:
            out["waiting"] = self.waiting
        if self.status == "replayed":
            out["replayed"] = self.replayed
        if self.error is not None:
            out["error"] = self.error
        return out

    def encode(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def decode(cls, raw: bytes | str | dict[str, Any]) -> InvokeResponse:
        obj = _load(raw)
        status = obj.get("status")
        if status not in RESPONSE_STATUSES:
            raise ProtocolError(f"unknown status {status!r}")
        entries = _entries(obj.get("entries", []), "entries")
        waiting = obj.get("waiting", [])
        if not isinstance(waiting, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in waiting
        ):
            raise ProtocolError("waiting must be a list of entry indices")
        error = obj.get("error")
        if status == "error" and (
            not isinstance(error, dict) or not isinstance(error.get("message"), str)
        ):
            raise ProtocolError("an error answer needs error.message")
        if status == "done" and (not entries or entries[-1].get("kind") != "output"):
            raise ProtocolError("a done answer must end with an output entry")
        if status == "suspended" and not waiting:
            raise ProtocolError("a suspended answer must name what it waits on")
        replayed = 0
        if status == "replayed":
            count = obj.get("replayed")
            if type(count) is not int or count < 1 or entries:
                raise ProtocolError("a replayed answer needs replayed >= 1 and no entries")
            replayed = count
        return cls(status=status, entries=entries, waiting=waiting, error=error, replayed=replayed)


ON_MAX_ATTEMPTS = frozenset({"pause", "kill"})


class RetryPolicy(FrozenRecord):
    """How failed attempts are retried: exponential backoff, then pause or kill.

    A field left None takes the orchestrator's default (50 ms, x2, 60 s cap, 70 attempts,
    pause), so a handler states only what it changes.
    """

    _fields = (
        "initial_interval_ms",
        "factor",
        "max_interval_ms",
        "max_attempts",
        "on_max_attempts",
    )
    __slots__ = _fields
    initial_interval_ms: int | None
    factor: float | None
    max_interval_ms: int | None
    max_attempts: int | None
    on_max_attempts: str | None

    def __init__(
        self,
        initial_interval_ms: int | None = None,
        factor: float | None = None,
        max_interval_ms: int | None = None,
        max_attempts: int | None = None,
        on_max_attempts: str | None = None,
    ) -> None:
        self._init(
            initial_interval_ms=initial_interval_ms,
            factor=factor,
            max_interval_ms=max_interval_ms,
            max_attempts=max_attempts,
            on_max_attempts=on_max_attempts,
        )
        self._check()

    def _check(self) -> None:
        for name in ("initial_interval_ms", "max_interval_ms", "max_attempts"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"retry policy {name} must be a positive integer, not {value!r}")
        if self.factor is not None and not (
            isinstance(self.factor, (int, float)) and self.factor >= 1
        ):
            raise ValueError(f"retry policy factor must be a number >= 1, not {self.factor!r}")
        if self.on_max_attempts is not None and self.on_max_attempts not in ON_MAX_ATTEMPTS:
            raise ValueError(
                f"on_max_attempts must be 'pause' or 'kill', not {self.on_max_attempts!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._fields if getattr(self, k) is not None}

    @classmethod
    def from_dict(cls, raw: Any) -> RetryPolicy:
        if not isinstance(raw, dict) or set(raw) - set(cls._fields):
            raise ProtocolError(f"bad retry policy {raw!r}")
        try:
            return cls(**raw)
        except (TypeError, ValueError) as exc:
            raise ProtocolError(str(exc)) from None

    def merged_over(self, default: RetryPolicy) -> RetryPolicy:
        """This policy with its unset fields taken from ``default``."""
        return RetryPolicy(
            **{
                k: getattr(self, k) if getattr(self, k) is not None else getattr(default, k)
                for k in self._fields
            }
        )


class HandlerInfo(FrozenRecord):
    """A handler as discovery describes it."""

    _fields = (
        "name",
        "kind",
        "retry",
        "limit",
        "input_content_type",
        "output_content_type",
        "settings",
        "input_schema",
        "output_schema",
        "input_required",
    )
    __slots__ = _fields
    name: str
    kind: str
    retry: RetryPolicy | None
    #: The limit every invocation of it holds a permit of while it runs (docs/limits.md).
    limit: str | None
    #: Set when the handler takes raw bytes (journaled as base64 text): their content type.
    #: The ingress then takes any body, as it arrives. None: a JSON input.
    input_content_type: str | None
    #: Set when the handler answers raw bytes (journaled as base64 text): the content type
    #: the ingress answers them with. None: a JSON output.
    output_content_type: str | None
    #: What the handler's code sets of retention, timeouts, visibility, description and
    #: metadata (over its service's); None: nothing.
    settings: Settings | None
    #: The JSON Schema (2020-12) of its JSON input, from its type hints (docs/sdk.md, "JSON
    #: schemas"). None: none known (no input, raw bytes, or an endpoint that did not say).
    input_schema: dict[str, Any] | None
    #: The JSON Schema of its JSON output; None: none known (raw bytes, or not said).
    output_schema: dict[str, Any] | None
    #: Whether a call must carry an input: True: it must; False: it may be left out (an
    #: input with a default, or none at all); None: the endpoint did not say.
    input_required: bool | None

    def __init__(
        self,
        name: str,
        kind: str = "exclusive",
        retry: RetryPolicy | None = None,
        limit: str | None = None,
        input_content_type: str | None = None,
        output_content_type: str | None = None,
        settings: Settings | None = None,
        input_schema: dict[str, Any] | None = None,
        output_schema: dict[str, Any] | None = None,
        input_required: bool | None = None,
    ) -> None:
        self._init(
            name=name,
            kind=kind,
            retry=retry,
            limit=limit,
            input_content_type=input_content_type,
            output_content_type=output_content_type,
            settings=settings,
            input_schema=input_schema,
            output_schema=output_schema,
            input_required=input_required,
        )


class ServiceInfo(FrozenRecord):
    """A service as discovery describes it."""

    _fields = ("name", "kind", "handlers", "limit", "limits", "settings")
    __slots__ = _fields
    name: str
    kind: str
    handlers: tuple[HandlerInfo, ...]
    #: The limit of every handler that names none of its own (docs/limits.md).
    limit: str | None
    #: Limits the code defines: (name, definition as ``PUT /limits/{name}`` takes it).
    limits: tuple[tuple[str, dict[str, Any]], ...]
    #: What the service's code sets of retention, timeouts, visibility, description and
    #: metadata; None: nothing.
    settings: Settings | None

    def __init__(
        self,
        name: str,
        kind: str,
        handlers: tuple[HandlerInfo, ...],
        limit: str | None = None,
        limits: tuple[tuple[str, dict[str, Any]], ...] = (),
        settings: Settings | None = None,
    ) -> None:
        self._init(
            name=name, kind=kind, handlers=handlers, limit=limit, limits=limits, settings=settings
        )

    def handler(self, name: str) -> HandlerInfo | None:
        for h in self.handlers:
            if h.name == name:
                return h
        return None


class DiscoveryResponse(FrozenRecord):
    """What an endpoint serves: its services and handlers."""

    _fields = ("services", "stream", "replay_only", "wire", "wire_info", "channel")
    __slots__ = _fields
    services: tuple[ServiceInfo, ...]
    #: The endpoint answers streamed attempts over HTTP (``x-ritornello-stream: 1``).
    stream: bool
    #: The endpoint honours ``InvokeRequest.replay_only`` (dry runs of restart-as-new).
    replay_only: bool
    #: The wire protocol the endpoint speaks: ``ritornello`` (this module), or ``restate``
    #: (Restate's service protocol, read from its endpoint manifest by the orchestrator).
    wire: str
    #: What the wire protocol keeps about the endpoint beyond services and handlers (for
    #: ``restate``: the negotiated version, the mode and the manifest as served).
    wire_info: dict[str, Any] | None
    #: The endpoint (a Lambda function) takes a checkpoint channel in its ``InvokeRequest``
    #: (docs/protocol.md, "Checkpoint channel").
    channel: bool

    def __init__(
        self,
        services: tuple[ServiceInfo, ...],
        stream: bool = False,
        replay_only: bool = False,
        wire: str = "ritornello",
        wire_info: dict[str, Any] | None = None,
        channel: bool = False,
    ) -> None:
        self._init(
            services=services,
            stream=stream,
            replay_only=replay_only,
            wire=wire,
            wire_info=wire_info,
            channel=channel,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": PROTOCOL_VERSION,
            "protocol": {"min": MIN_PROTOCOL_VERSION, "max": MAX_PROTOCOL_VERSION},
            "services": [_service_dict(s) for s in self.services],
        }
        if self.stream:
            out["stream"] = True
        if self.replay_only:
            out["replay_only"] = True
        if self.channel:
            out["channel"] = True
        if self.wire != "ritornello":
            out["wire"] = self.wire
            out["wire_info"] = self.wire_info or {}
        return out

    def encode(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def decode(cls, raw: bytes | str | dict[str, Any]) -> DiscoveryResponse:
        obj = _load(raw)
        raw_services = obj.get("services")
        if not isinstance(raw_services, list):
            raise ProtocolError("services must be a list")
        services = []
        for s in raw_services:
            if not isinstance(s, dict):
                raise ProtocolError("a service must be an object")
            kind = s.get("kind")
            if kind not in SERVICE_KINDS:
                raise ProtocolError(f"unknown service kind {kind!r}")
            handlers = []
            for h in s.get("handlers") or []:
                if not isinstance(h, dict) or h.get("kind", "exclusive") not in HANDLER_KINDS:
                    raise ProtocolError(f"bad handler in service {s.get('name')!r}")
                retry = h.get("retry")
                handlers.append(
                    HandlerInfo(
                        name=_field(h, "name", str),
                        kind=h.get("kind", "exclusive"),
                        retry=None if retry is None else RetryPolicy.from_dict(retry),
                        limit=_limit_name(h),
                        input_content_type=_content_type(h, "input_content_type"),
                        output_content_type=_content_type(h, "output_content_type"),
                        settings=_settings(h, f"handler {s.get('name')}/{h.get('name')}"),
                        input_schema=_schema(h, "input_schema"),
                        output_schema=_schema(h, "output_schema"),
                        input_required=_flag(h, "input_required"),
                    )
                )
            limits = s.get("limits") or {}
            if not isinstance(limits, dict) or not all(
                isinstance(k, str) and isinstance(v, dict) for k, v in limits.items()
            ):
                raise ProtocolError(
                    f"limits of service {s.get('name')!r} must map names to objects"
                )
            services.append(
                ServiceInfo(
                    name=_field(s, "name", str),
                    kind=kind,
                    handlers=tuple(handlers),
                    limit=_limit_name(s),
                    limits=tuple(limits.items()),
                    settings=_settings(s, f"service {s.get('name')}"),
                )
            )
        wire = obj.get("wire", "ritornello")
        info = obj.get("wire_info")
        if not isinstance(wire, str) or (info is not None and not isinstance(info, dict)):
            raise ProtocolError("wire must be a name and wire_info an object")
        return cls(
            services=tuple(services),
            stream=obj.get("stream") is True,
            replay_only=obj.get("replay_only") is True,
            wire=wire,
            wire_info=info,
            channel=obj.get("channel") is True,
        )


def _handler_dict(h: HandlerInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"name": h.name, "kind": h.kind}
    if h.retry is not None:
        out["retry"] = h.retry.to_dict()
    if h.limit is not None:
        out["limit"] = h.limit
    if h.input_content_type is not None:
        out["input_content_type"] = h.input_content_type
    if h.output_content_type is not None:
        out["output_content_type"] = h.output_content_type
    if h.settings is not None and not h.settings.is_empty():
        out["settings"] = h.settings.to_dict()
    if h.input_schema is not None:
        out["input_schema"] = h.input_schema
    if h.output_schema is not None:
        out["output_schema"] = h.output_schema
    if h.input_required is not None:
        out["input_required"] = h.input_required
    return out


def _service_dict(s: ServiceInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": s.name,
        "kind": s.kind,
        "handlers": [_handler_dict(h) for h in s.handlers],
    }
    if s.limit is not None:
        out["limit"] = s.limit
    if s.limits:
        out["limits"] = dict(s.limits)
    if s.settings is not None and not s.settings.is_empty():
        out["settings"] = s.settings.to_dict()
    return out


def _limit_name(obj: dict[str, Any]) -> str | None:
    limit = obj.get("limit")
    if limit is not None and (not isinstance(limit, str) or not limit):
        raise ProtocolError(f"limit of {obj.get('name')!r} must be a limit's name")
    return limit


def _content_type(h: dict[str, Any], name: str) -> str | None:
    value = h.get(name)
    if value is not None and (
        not isinstance(value, str) or not value.strip() or not _header_text(value)
    ):
        raise ProtocolError(f"{name} of handler {h.get('name')!r} must be a content type")
    return value


def _schema(h: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = h.get(name)
    if value is not None and not isinstance(value, dict):
        raise ProtocolError(f"{name} of handler {h.get('name')!r} must be a JSON Schema object")
    return value


def _flag(h: dict[str, Any], name: str) -> bool | None:
    value = h.get(name)
    if value is not None and not isinstance(value, bool):
        raise ProtocolError(f"{name} of handler {h.get('name')!r} must be true or false")
    return value


def _header_text(value: str) -> bool:
    """Whether ``value`` can be an HTTP header's value: printable ASCII."""
    return value.isascii() and value.isprintable()


def _settings(obj: dict[str, Any], where: str) -> Settings | None:
    try:
        return Settings.from_dict(obj.get("settings"), where)
    except ValueError as exc:
        raise ProtocolError(str(exc)) from None
