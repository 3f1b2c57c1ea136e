"""Service definitions: ``Service`` and ``VirtualObject``, and the handler decorator.

The decorator returns the user's function itself, with a :class:`HandlerSpec` attached under
``__ritornello_handler__``; that is how ``ctx.call(greet, "x")`` knows the service and handler.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, TypeVar

from ritornello.protocol import HandlerInfo, RetryPolicy, ServiceInfo, Settings
from ritornello.protocol._record import FrozenRecord
from ritornello.sdk._serde import (
    OCTET_STREAM,
    Serde,
    check_serde,
    content_type_of,
    is_json_serde,
    type_hints,
)
from ritornello.sdk._settings import declared_settings

HANDLER_ATTR = "__ritornello_handler__"

if typing.TYPE_CHECKING:
    from datetime import timedelta

    #: A duration as code may write it: a timedelta, a humantime string, or seconds.
    Duration = timedelta | str | float

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class HandlerSpec(FrozenRecord):
    """One handler: where it lives, its kind, and how its input is passed."""

    _fields = (
        "service",
        "name",
        "kind",
        "service_kind",
        "fn",
        "input_param",
        "input_optional",
        "retry",
        "input_serde",
        "output_serde",
        "settings",
    )
    __slots__ = (*_fields, "_hints")
    service: str
    name: str
    kind: str
    service_kind: str
    fn: Callable[..., Awaitable[Any]]
    #: The name of the input parameter, or None for a handler that takes only ``ctx``.
    input_param: str | None
    #: The input parameter has a default (used when the input is null).
    input_optional: bool
    #: How the orchestrator retries failed attempts (None: its defaults).
    retry: RetryPolicy | None
    #: Decodes the input instead of its annotation (docs/sdk.md, "Types and serdes").
    input_serde: Serde | None
    #: Encodes the output instead of its annotation.
    output_serde: Serde | None
    #: Retention, timeouts, visibility, description and metadata set on the handler.
    settings: Settings | None
    _hints: dict[str, Any] | None  # ``hints`` once resolved

    def __init__(
        self,
        service: str,
        name: str,
        kind: str,
        service_kind: str,
        fn: Callable[..., Awaitable[Any]],
        input_param: str | None,
        input_optional: bool,
        retry: RetryPolicy | None = None,
        input_serde: Serde | None = None,
        output_serde: Serde | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._init(
            service=service,
            name=name,
            kind=kind,
            service_kind=service_kind,
            fn=fn,
            input_param=input_param,
            input_optional=input_optional,
            retry=retry,
            input_serde=input_serde,
            output_serde=output_serde,
            settings=settings,
            _hints=None,
        )

    @property
    def target(self) -> str:
        """``"Service/handler"``, the name a ``call`` entry carries."""
        return f"{self.service}/{self.name}"

    @property
    def hints(self) -> dict[str, Any]:
        """The handler's resolved annotations (resolved on first use: a handler may name types
        defined after it; kept after that)."""
        hints = self._hints
        if hints is None:
            hints = type_hints(self.fn)
            self._init(_hints=hints)
        return hints

    @property
    def input_hint(self) -> Any:
        """The input parameter's annotation (None: untyped, or no input)."""
        return None if self.input_param is None else self.hints.get(self.input_param)

    @property
    def output_hint(self) -> Any:
        """The return annotation (None: untyped)."""
        return self.hints.get("return")

    @property
    def input_content_type(self) -> str | None:
        """The content type of a raw-bytes input (a custom serde, or annotated ``bytes``):
        the ingress takes any body for it, journaled as base64. None: a JSON input."""
        if self.input_param is None:
            return None
        return _raw_content_type(self.input_serde, self.input_hint)

    @property
    def output_content_type(self) -> str | None:
        """The content type of a raw-bytes output (a custom serde, or ``-> bytes``): the
        ingress answers the bytes with it. None: a JSON output."""
        return _raw_content_type(self.output_serde, self.output_hint)


def _raw_content_type(serde: Serde | None, hint: Any) -> str | None:
    if not is_json_serde(serde):
        return content_type_of(serde)
    if serde is None and _strip_annotated(hint) in (bytes, bytearray):
        return OCTET_STREAM
    return None


def _strip_annotated(hint: Any) -> Any:
    while typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    return hint


class Limit(FrozenRecord):
    """A named limit defined in code (docs/limits.md): ``concurrency`` permits out at once,
    and/or ``rate`` grants per ``per`` (``"1s"``, ``"1m"``, ``"1h"``, ``"1d"``) with ``burst``
    at once; ``per_key``: one instance per limit key (the caller's, else the object key).

    Give it to ``Service(..., limits=[...])`` to define it, or as ``limit=`` on a service or
    handler to define and apply it at once. ``ritornello.toml`` and ``PUT /limits/{name}``
    override a definition of the same name; the orchestrator checks the values when it
    registers the endpoint (a bad one refuses the registration)."""

    _fields = ("name", "concurrency", "rate", "per", "burst", "per_key")
    __slots__ = _fields
    name: str
    concurrency: int | None
    rate: float | None
    per: str
    burst: int
    per_key: bool

    def __init__(
        self,
        name: str,
        concurrency: int | None = None,
        rate: float | None = None,
        per: str = "1s",
        burst: int = 1,
        per_key: bool = False,
    ) -> None:
        self._init(
            name=name, concurrency=concurrency, rate=rate, per=per, burst=burst, per_key=per_key
        )
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("a limit needs a name")
        if self.concurrency is None and self.rate is None:
            raise ValueError(f"limit {self.name!r}: give concurrency, rate, or both")

    def definition(self) -> dict[str, Any]:
        """The definition as ``PUT /limits/{name}`` takes it (discovery carries it)."""
        out: dict[str, Any] = {}
        if self.concurrency is not None:
            out["concurrency"] = self.concurrency
        if self.rate is not None:
            out.update(rate=self.rate, per=self.per, burst=self.burst)
        if self.per_key:
            out["per_key"] = True
        return out


def _limit_name(limit: str | Limit | None, defined: dict[str, Limit]) -> str | None:
    """The name of ``limit``; a ``Limit`` is defined too."""
    if limit is None or isinstance(limit, str):
        if limit == "":
            raise ValueError("a limit's name must not be empty")
        return limit
    if not isinstance(limit, Limit):
        raise TypeError("limit must be a limit's name or a ritornello.Limit")
    _define(limit, defined)
    return limit.name


def _define(limit: Limit, defined: dict[str, Limit]) -> None:
    if defined.get(limit.name, limit) != limit:
        raise ValueError(f"limit {limit.name!r} is defined twice, differently")
    defined[limit.name] = limit


def _input_param(fn: Callable[..., Any], where: str) -> tuple[str | None, bool]:
    params = list(inspect.signature(fn).parameters.values())
    positional = [
        p
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    required_kw = [
        p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is p.empty
    ]
    if not positional or required_kw:
        raise TypeError(f"handler {where} must take (ctx) or (ctx, input)")
    extra = [p for p in positional[2:] if p.default is p.empty]
    if extra:
        raise TypeError(f"handler {where} must take (ctx) or (ctx, input), not {len(positional)}")
    if len(positional) == 1:
        return None, True
    return positional[1].name, positional[1].default is not inspect.Parameter.empty


def _is_async(fn: object) -> bool:
    return inspect.iscoroutinefunction(fn)


class ServiceDefinition:
    """What ``Service`` and ``VirtualObject`` share: a name and handlers (an endpoint takes any
    mix of them)."""

    kind: ClassVar[str]
    _handler_kinds: ClassVar[frozenset[str]]
    _default_kind: ClassVar[str] = "exclusive"

    def __init__(
        self,
        name: str,
        *,
        limit: str | Limit | None = None,
        limits: Sequence[Limit] = (),
        journal_retention: Duration | None = None,
        idempotency_retention: Duration | None = None,
        workflow_retention: Duration | None = None,
        inactivity_timeout: Duration | None = None,
        abort_timeout: Duration | None = None,
        ingress_private: bool | None = None,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """``limit``: every handler's invocations hold a permit of it while they run (a
        handler's own ``limit=`` wins); ``limits``: limits this service defines (for its
        handlers, its steps' ``ctx.run(..., limit=)``, anyone's).

        Settings (docs/sdk.md, "Service settings"; unset: the orchestrator's defaults, and
        ``PATCH /services/{service}`` overrides them): how long a finished invocation is kept
        (``journal_retention``, ``idempotency_retention`` for one with an idempotency key,
        ``workflow_retention`` for a workflow's run), how long an attempt may go without an
        answer (``inactivity_timeout`` + ``abort_timeout``), ``ingress_private`` (the
        ingress refuses it; handlers may call it), and ``description``/``metadata`` (shown).
        Durations: a ``timedelta``, a humantime string (``"30d"``, ``"1h 30m"``) or seconds."""
        if not name or "/" in name or name != name.strip():
            raise ValueError(f"bad service name {name!r}: non-empty, no '/', no spaces around")
        self.settings = declared_settings(
            f"service {name}",
            journal_retention=journal_retention,
            idempotency_retention=idempotency_retention,
            workflow_retention=workflow_retention,
            inactivity_timeout=inactivity_timeout,
            abort_timeout=abort_timeout,
            ingress_private=ingress_private,
            description=description,
            metadata=metadata,
        )
        self.name = name
        self._handlers: dict[str, HandlerSpec] = {}
        self._limits: dict[str, Limit] = {}
        for defined in limits:
            if not isinstance(defined, Limit):
                raise TypeError("limits= takes ritornello.Limit definitions")
            _define(defined, self._limits)
        self.limit = _limit_name(limit, self._limits)
        self._handler_limits: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def handler(
        self,
        name: str | None = None,
        *,
        kind: str | None = None,
        retry: RetryPolicy | None = None,
        limit: str | Limit | None = None,
        input_serde: Serde | None = None,
        output_serde: Serde | None = None,
        journal_retention: Duration | None = None,
        idempotency_retention: Duration | None = None,
        workflow_retention: Duration | None = None,
        inactivity_timeout: Duration | None = None,
        abort_timeout: Duration | None = None,
        ingress_private: bool | None = None,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Callable[[F], F]:
        """Register an ``async def handler(ctx)`` or ``(ctx, input)``; returns it unchanged.

        ``retry`` sets how failed attempts are retried (backoff, max attempts, then pause or
        kill); unset fields take the orchestrator's defaults. ``limit``: each invocation
        holds a permit of this limit while it runs (docs/limits.md). ``input_serde`` and
        ``output_serde`` decode the input and encode the output instead of the annotations
        (docs/sdk.md, "Types and serdes"). The settings are the service's (see ``Service``),
        for this handler: set here, they win over the service's."""
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError("retry must be a ritornello.RetryPolicy")
        check_serde(input_serde, "input_serde")
        check_serde(output_serde, "output_serde")
        limit_name = _limit_name(limit, self._limits)
        settings = declared_settings(
            f"a handler of {self.name}",
            journal_retention=journal_retention,
            idempotency_retention=idempotency_retention,
            workflow_retention=workflow_retention,
            inactivity_timeout=inactivity_timeout,
            abort_timeout=abort_timeout,
            ingress_private=ingress_private,
            description=description,
            metadata=metadata,
        )
        kind = kind or self._default_kind
        if kind not in self._handler_kinds:
            raise ValueError(
                f"{self.kind} {self.name!r}: handler kind {kind!r} is not one of "
                f"{sorted(self._handler_kinds)}"
            )

        def register(fn: F) -> F:
            handler_name = name or fn.__name__
            where = f"{self.name}/{handler_name}"
            if not _is_async(fn):
                raise TypeError(f"handler {where} must be an async function")
            if handler_name in self._handlers:
                raise ValueError(
                    f"{self.kind} {self.name!r} already has a handler {handler_name!r}"
                )
            if "/" in handler_name:
                raise ValueError(f"bad handler name {handler_name!r}: no '/'")
            existing = getattr(fn, HANDLER_ATTR, None)
            if isinstance(existing, HandlerSpec):
                raise ValueError(f"{fn.__qualname__} is already the handler {existing.target}")
            param, optional = _input_param(fn, where)
            if param is None and input_serde is not None:
                raise TypeError(f"handler {where} takes no input: it has no use for input_serde")
            spec = HandlerSpec(
                self.name,
                handler_name,
                kind,
                self.kind,
                fn,
                param,
                optional,
                retry,
                input_serde=input_serde,
                output_serde=output_serde,
                settings=settings,
            )
            self._handlers[handler_name] = spec
            if limit_name is not None:
                self._handler_limits[handler_name] = limit_name
            setattr(fn, HANDLER_ATTR, spec)
            return fn

        return register

    @property
    def handlers(self) -> tuple[HandlerSpec, ...]:
        """The registered handlers, in registration order."""
        return tuple(self._handlers.values())

    def get_handler(self, name: str) -> HandlerSpec | None:
        """The handler called ``name``, if any."""
        return self._handlers.get(name)

    def info(self) -> ServiceInfo:
        """This service as discovery describes it (with each handler's JSON schemas, made
        here: the schema module is imported when discovery is first answered, not before)."""
        from ritornello.sdk._json_schema import handler_schemas

        handlers = []
        for h in self._handlers.values():
            input_schema, output_schema, input_required = handler_schemas(h)
            handlers.append(
                HandlerInfo(
                    h.name,
                    h.kind,
                    h.retry,
                    self._handler_limits.get(h.name),
                    input_content_type=h.input_content_type,
                    output_content_type=h.output_content_type,
                    settings=h.settings,
                    input_schema=input_schema,
                    output_schema=output_schema,
                    input_required=input_required,
                )
            )
        return ServiceInfo(
            name=self.name,
            kind=self.kind,
            handlers=tuple(handlers),
            limit=self.limit,
            limits=tuple((n, d.definition()) for n, d in sorted(self._limits.items())),
            settings=self.settings,
        )


class Service(ServiceDefinition):
    """A stateless service: handlers run concurrently, with no keyed state."""

    kind = "service"
    _handler_kinds = frozenset({"exclusive"})


class VirtualObject(ServiceDefinition):
    """A keyed object with durable state: one exclusive handler at a time per key.

    ``handler()`` is exclusive (may write state); ``handler(kind="shared")`` runs beside it and
    may only read.
    """

    kind = "object"
    _handler_kinds = frozenset({"exclusive", "shared"})


class Workflow(ServiceDefinition):
    """A workflow: ``@wf.main()`` runs once per workflow id (the key); ``@wf.handler()``
    handlers are shared: they run beside it, read its state and resolve its promises.
    """

    kind = "workflow"
    _handler_kinds = frozenset({"workflow", "shared"})
    _default_kind = "shared"

    def main(
        self,
        name: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        limit: str | Limit | None = None,
        input_serde: Serde | None = None,
        output_serde: Serde | None = None,
        **settings: Any,
    ) -> Callable[[F], F]:
        """Register the workflow's run handler (one per workflow). ``settings``: as on
        ``handler()`` (``workflow_retention``, ``inactivity_timeout``, ...)."""
        if any(h.kind == "workflow" for h in self._handlers.values()):
            raise ValueError(f"workflow {self.name!r} already has a main handler")
        return self.handler(
            name,
            kind="workflow",
            retry=retry,
            limit=limit,
            input_serde=input_serde,
            output_serde=output_serde,
            **settings,
        )


def handler_spec(target: object) -> HandlerSpec | None:
    """The spec attached to a decorated handler function, or None."""
    spec = getattr(target, HANDLER_ATTR, None)
    return spec if isinstance(spec, HandlerSpec) else None
