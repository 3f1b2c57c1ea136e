"""``Context``: what a handler can do durably (the public API; the implementation is apart).

Every method that waits returns a :class:`DurableFuture`; ``set``, ``clear``, ``clear_all`` and
``send`` take effect at once. Each call is one journal entry, taken in the order the handler
makes them: that order must be the same on every replay.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from ritornello.sdk._futures import DurableFuture

if TYPE_CHECKING:  # random and uuid are imported on first use (the handler's import time)
    import random
    import uuid
    from datetime import timedelta

    from ritornello.sdk._fanout import BatchResult
    from ritornello.sdk._handles import CallHandle, SendHandle
    from ritornello.sdk._serde import Serde

T = TypeVar("T")
U = TypeVar("U")
P = ParamSpec("P")


class Context(ABC):
    """The handle a handler gets as its first argument."""

    __slots__ = ()

    @property
    @abstractmethod
    def invocation_id(self) -> str:
        """This invocation's id (stable across attempts and replays)."""

    @property
    @abstractmethod
    def key(self) -> str | None:
        """The virtual object's key; None for a service."""

    @property
    @abstractmethod
    def attempt(self) -> int:
        """1 on the first attempt, +1 after each failed one (checkpoints do not count)."""

    @property
    @abstractmethod
    def headers(self) -> Mapping[str, str]:
        """The headers of the ingress request that started this invocation (read-only;
        lower-case names), journaled with its input, so the same on every attempt. Headers
        the orchestrator is configured to redact (``authorization``, ``cookie``, ...) hold
        ``"[redacted]"``. Empty for an invocation made by another handler (call, send), a
        schedule, or an old journal. Restate's ``ctx.request().headers``.
        """

    @property
    @abstractmethod
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger that drops what is logged while the handler replays (at every level, on
        every transport), each record carrying ``invocation_id``, ``target``, ``attempt``,
        ``journal_index`` and ``step``. It adapts ``ritornello.handler.<Service>``."""

    # -- steps ---------------------------------------------------------------------------------

    # With run options (one overload per option, that option required, so that a call
    # without any still meets the checked overloads below): the arguments passed on to ``fn``
    # are not checked (a ParamSpec's ``**kwargs`` cannot sit beside keywords of ``run``'s own).
    @overload
    def run(
        self,
        name: str,
        fn: Callable[..., Any],
        /,
        *args: Any,
        type_hint: type[U],
        serde: Serde | None = None,
        max_attempts: int | None = None,
        max_retry_duration: timedelta | float | None = None,
        initial_retry_interval: timedelta | float | None = None,
        max_retry_interval: timedelta | float | None = None,
        retry_interval_factor: float | None = None,
        limit: str | None = None,
        **kwargs: Any,
    ) -> DurableFuture[U]: ...

    @overload
    def run(
        self,
        name: str,
        fn: Callable[..., Coroutine[Any, Any, T]],
        /,
        *args: Any,
        serde: Serde,
        type_hint: Any = None,
        max_attempts: int | None = None,
        max_retry_duration: timedelta | float | None = None,
        initial_retry_interval: timedelta | float | None = None,
        max_retry_interval: timedelta | float | None = None,
        retry_interval_factor: float | None = None,
        limit: str | None = None,
        **kwargs: Any,
    ) -> DurableFuture[T]: ...

    @overload
    def run(
        self,
        name: str,
        fn: Callable[..., T],
        /,
        *args: Any,
        serde: Serde,
        type_hint: Any = None,
        max_attempts: int | None = None,
        max_retry_duration: timedelta | float | None = None,
        initial_retry_interval: timedelta | float | None = None,
        max_retry_interval: timedelta | float | None = None,
        retry_interval_factor: float | None = None,
        limit: str | None = None,
        **kwargs: Any,
    ) -> DurableFuture[T]: ...

    @overload
    def run(
        self,
        name: str,
        fn: Callable[..., Coroutine[Any, Any, T]],
        /,
        *args: Any,
        max_attempts: int,
        type_hint: Any = None,
        serde: Serde | None = None,
        max_retry_duration: timedelta | float | None = None,
        initial_retry_interval: timedelta | float | None = None,
        max_retry_interval: timedelta | float | None = None,
        retry_interval_factor: float | None = None,
        limit: str | None = None,
        **kwargs: Any,
    ) -> DurableFuture[T]: ...

    @overload
    def run(
        self,
        name: str,
        fn: Callable[..., T],
        /,
        *args: Any,
        max_attempts: int,
        type_hint: Any = None,
        serde: Serde | None = None,
        max_retry_duration: timedelta | float | None = None,
        initial_retry_interval: timedelta | float | None = None,
        max_retry_interval: timedelta | float | None = None,
        retry_interval_factor: float | None = None,
        limit: str | None = None,
        **kwargs: Any,
    ) -> DurableFuture[T]: ...

    @overload
    def run(
        self,
        name: str,
        fn: Callable[..., Coroutine[Any, Any, T]],
        /,
        *args: Any,
        max_retry_duration: timedelta | float,
        type_hint: Any = None,
        serde: Serde | None = None,
        max_attempts: int | None = None,
        initial_retry_interval: timedelta | float | None = None,
        max_retry_interval: timedelta | float | None = None,
        retry_interval_factor: float | None = None,
        limit: str | None = None,
        **kwargs: Any,
    ) -> DurableFuture[T]: ...

    @overload
    def run(
        self,
        name: str,
        fn: Callable[..., T],
        /,
        *args: Any,
        max_retry_duration: timedelta | float,
        type_hint: Any = None,
        serde: Serde | None = None,
        max_attempts: int | None = None,
        initial_retry_interval: timedelta | float | None = None,
        max_retry_interval: timedelta | float | None = None,
        retry_interval_factor: float | None = None,
        limit: str | None = None,
        **kwargs: Any,
    ) -> DurableFuture[T]: ...

    @overload
    def run(
        self,
        name: str,
        fn: Callable[..., Coroutine[Any, Any, T]],
        /,
        *args: Any,
        initial_retry_interval: timedelta | float,
        type_hint: Any = None,
        serde: Serde | None = None,
        max_attempts: int | None = None,
        max_retry_duration: timedelta | float | None = None,
        max_retry_interval: timedelta | float | None = None,
        retry_interval_factor: float | None = None,
        limit: str | None = None,
        **kwargs: Any,
    ) -> DurableFuture[T]: ...

    @overload
    def run(
        self,
        name: str,
        fn: Callable[..., T],
        /,
        *args: Any,
        initial_retry_interval: timedelta | float,
        type_hint: Any = None,
        serde: Serde | None = None,
        max_attempts: int | None = None,
        max_retry_duration: timedelta | float | None = None,
        max_retry_interval: timedelta | float | None = None,
        retry_interval_factor: float | None = None,
        limit: str | None = None,
        **kwargs: Any,
    ) -> DurableFuture[T]: ...

    @overload
    def run(
        self,
        name: str,
        fn: Callable[..., Coroutine[Any, Any, T]],
        /,
        *args: Any,
        max_retry_interval: timedelta | float,
        type_hint: Any = None,
        serde: Serde | None = None,
        max_attempts: int | None = None,
        max_retry_duration: timedelta | float | None = None,
        initial_retry_interval: timedelta | float | None = None,
        retry_interval_factor: float | None = None,
        limit: str | None = None,
        **kwargs: Any,
    ) -> DurableFuture[T]: ...

    @overload
    def run(
        self,
        name: str,
        fn: Callable[..., T],
        /,
        *args: Any,
        max_retry_interval: timedelta | float,
        type_hint: Any = None,
        serde: Serde | None = None,
        max_attempts: int | None = None,
        max_retry_duration: timedelta | float | None = None,
        initial_retry_interval: timedelta | float | None = None,
        retry_interval_factor: float | None = None,
        limit: str | None = None,
        **kwargs: Any,
    ) -> DurableFuture[T]: ...

    @overload
    def run(
        self,
        name: str,
        fn: Callable[..., Coroutine[Any, Any, T]],
        /,
        *args: Any,
        retry_interval_factor: float,
        type_hint: Any = None,
        serde: Serde | None = None,
        max_attempts: int | None = None,
        max_retry_duration: timedelta | float | None = None,
        initial_retry_interval: timedelta | float | None = None,
        max_retry_interval: timedelta | float | None = None,
        limit: str | None = None,
        **kwargs: Any,
    ) -> DurableFuture[T]: ...

    @overload
    def run(
        self,
        name: str,
        fn: Callable[..., T],
        /,
        *args: Any,
        retry_interval_factor: float,
        type_hint: Any = None,
        serde: Serde | None = None,
        max_attempts: int | None = None,
        max_retry_duration: timedelta | float | None = None,
        initial_retry_interval: timedelta | float | None = None,
        max_retry_interval: timedelta | float | None = None,
        limit: str | None = None,
        **kwargs: Any,
    ) -> DurableFuture[T]: ...

    @overload
    def run(
        self,
        name: str,
        fn: Callable[..., Coroutine[Any, Any, T]],
        /,
        *args: Any,
        limit: str,
        type_hint: Any = None,
        serde: Serde | None = None,
        max_attempts: int | None = None,
        max_retry_duration: timedelta | float | None = None,
        initial_retry_interval: timedelta | float | None = None,
        max_retry_interval: timedelta | float | None = None,
        retry_interval_factor: float | None = None,
        **kwargs: Any,
    ) -> DurableFuture[T]: ...

    @overload
    def run(
        self,
        name: str,
        fn: Callable[..., T],
        /,
        *args: Any,
        limit: str,
        type_hint: Any = None,
        serde: Serde | None = None,
        max_attempts: int | None = None,
        max_retry_duration: timedelta | float | None = None,
        initial_retry_interval: timedelta | float | None = None,
        max_retry_interval: timedelta | float | None = None,
        retry_interval_factor: float | None = None,
        **kwargs: Any,
    ) -> DurableFuture[T]: ...

    # Without run options the arguments passed on to ``fn`` are checked against it.
    @overload
    def run(
        self,
        name: str,
        fn: Callable[P, Coroutine[Any, Any, T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> DurableFuture[T]: ...

    @overload
    def run(
        self, name: str, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> DurableFuture[T]: ...

    @abstractmethod
    def run(
        self, name: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> DurableFuture[Any]:
        """Execute ``fn(*args, **kwargs)`` once and journal its result under ``name``.

        The step starts now, not when awaited. A sync ``fn`` runs in a worker thread, an async
        one on the event loop. On replay the journaled result is returned and ``fn`` is not
        called. A ``TerminalError`` raised by ``fn`` is journaled and raised to the handler.

        The result is journaled as JSON and handed back typed by ``fn``'s return annotation
        or ``type_hint`` (dataclasses, pydantic models, enums, datetimes, ``Decimal``,
        ``bytes``...), or by ``serde``: the same value on the first run and on every replay.

        Run options (taken by ``run``, not passed to ``fn``): with any of ``max_attempts``,
        ``max_retry_duration``, ``initial_retry_interval`` (default 50 ms),
        ``max_retry_interval`` (default 10 s), ``retry_interval_factor`` (default 2), an
        exception from ``fn`` is retried after a durable timer (the invocation suspends in
        between), and once they are exhausted the step fails with a ``TerminalError`` (500)
        the handler can catch. Without them any other exception fails the attempt, retried
        by the handler's retry policy.

        ``limit="NAME"``: the step waits for a permit of the named limit before it runs
        (suspended meanwhile: on Lambda nothing is billed) and gives it back once its result
        is journaled (docs/limits.md). A limit that is not defined fails the step with a
        ``TerminalError`` (404) before ``fn`` runs.
        """

    # -- fan-out -------------------------------------------------------------------------------

    @abstractmethod
    def child(
        self,
        name: str,
        fn: Callable[..., Coroutine[Any, Any, T]],
        /,
        *args: Any,
        type_hint: Any = None,
        serde: Serde | None = None,
    ) -> DurableFuture[T]:
        """Run ``fn(ctx, *args)`` in a child context: its entries are journaled apart (in
        context ``name``), so it may run beside other work of the handler; its result (or
        ``TerminalError``) is journaled and replayed without running it again."""

    @abstractmethod
    def map(
        self,
        name: str,
        items: Iterable[Any],
        fn: Callable[..., Coroutine[Any, Any, T]],
        /,
        *,
        max_concurrency: int | None = None,
        min_successful: int | None = None,
        tolerated_failures: int | None = None,
        tolerated_failure_percentage: float | None = None,
        type_hint: Any = None,
        serde: Serde | None = None,
    ) -> DurableFuture[BatchResult[T]]:
        """Run ``fn(ctx, item)`` for every item, each in its own child context (``NAME[i]``),
        at most ``max_concurrency`` at once; ends when all finished, when ``min_successful``
        succeeded, or when failures pass ``tolerated_failures`` /
        ``tolerated_failure_percentage`` (docs/sdk.md). Every branch's status and result is
        in the ``BatchResult``; a failed branch does not raise by itself
        (``result.raise_if_failed()``)."""

    @abstractmethod
    def parallel(
        self,
        name: str,
        /,
        *branches: Callable[..., Coroutine[Any, Any, T]],
        max_concurrency: int | None = None,
        min_successful: int | None = None,
        tolerated_failures: int | None = None,
        tolerated_failure_percentage: float | None = None,
        type_hint: Any = None,
        serde: Serde | None = None,
    ) -> DurableFuture[BatchResult[T]]:
        """Run each ``branch(ctx)`` in its own child context, under the same completion
        policy as :meth:`map`."""

    # -- state (virtual objects) ---------------------------------------------------------------

    @abstractmethod
    def get(
        self, key: str, default: Any = None, *, type_hint: Any = None, serde: Serde | None = None
    ) -> DurableFuture[Any]:
        """The value of state ``key`` (``default`` when absent), typed by ``type_hint`` or
        ``serde`` (else plain JSON)."""

    @abstractmethod
    def set(
        self, key: str, value: Any, *, type_hint: Any = None, serde: Serde | None = None
    ) -> None:
        """Set state ``key`` to ``value`` (exclusive handlers only), journaled as JSON (or
        through ``serde``)."""

    @abstractmethod
    def clear(self, key: str) -> None:
        """Remove state ``key`` (exclusive handlers only)."""

    @abstractmethod
    def clear_all(self) -> None:
        """Remove every state key (exclusive handlers only)."""

    @abstractmethod
    def state_keys(self) -> DurableFuture[list[str]]:
        """The sorted state keys."""

    # -- other invocations ---------------------------------------------------------------------

    @overload
    def call(
        self,
        target: Callable[..., Coroutine[Any, Any, T]],
        arg: Any = None,
        key: str | None = None,
        *,
        type_hint: Any = None,
        serde: Serde | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        priority: int | None = None,
        limit_key: str | None = None,
    ) -> CallHandle[T]: ...

    @overload
    def call(
        self,
        target: str,
        arg: Any = None,
        key: str | None = None,
        *,
        type_hint: Any = None,
        serde: Serde | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        priority: int | None = None,
        limit_key: str | None = None,
    ) -> CallHandle[Any]: ...

    @abstractmethod
    def call(
        self,
        target: Callable[..., Any] | str,
        arg: Any = None,
        key: str | None = None,
        *,
        type_hint: Any = None,
        serde: Serde | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        priority: int | None = None,
        limit_key: str | None = None,
    ) -> CallHandle[Any]:
        """Invoke a handler; the handle awaits its result and knows its ``invocation_id``
        (``await handle.cancel()`` cancels it).

        ``target`` is a decorated handler function or ``"Service/handler"``; ``key`` names the
        virtual object. The result is typed by the callee's return annotation (or
        ``type_hint``/``serde``). A callee's TerminalError is raised here as a TerminalError.
        ``idempotency_key``: the callee is the invocation this key already names for that
        target, if there is one. ``headers``: the callee sees them as ``ctx.headers``.
        ``priority`` (0-10, higher first; default 5) and ``limit_key`` (the instance of a
        per-key limit) order and place the callee's waits for permits (docs/limits.md).
        """

    @abstractmethod
    def send(
        self,
        target: Callable[..., Any] | str,
        arg: Any = None,
        key: str | None = None,
        delay: timedelta | float | None = None,
        *,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        priority: int | None = None,
        limit_key: str | None = None,
    ) -> SendHandle:
        """Invoke a handler without waiting (after ``delay``); the handle knows the callee's
        ``invocation_id``, cancels it and attaches to its result. Options as for ``call``."""

    @abstractmethod
    def generic_call(
        self,
        service: str,
        handler: str,
        arg: bytes,
        key: str | None = None,
        *,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> CallHandle[bytes]:
        """Call a handler known only by its names, with a request body as the ingress would
        take it (JSON text for a JSON handler, any bytes for a raw-bytes one): the handle
        awaits the callee's answer body (JSON text, or the raw bytes it returned)."""

    @abstractmethod
    def generic_send(
        self,
        service: str,
        handler: str,
        arg: bytes,
        key: str | None = None,
        delay: timedelta | float | None = None,
        *,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> SendHandle:
        """Send to a handler known only by its names (``arg`` as for :meth:`generic_call`)."""

    @abstractmethod
    def attach(self, invocation_id: str, *, type_hint: Any = None) -> DurableFuture[Any]:
        """The result of the invocation ``invocation_id`` (any invocation, however it
        started), once it finished: its value, or its TerminalError."""

    @abstractmethod
    def cancel(self, invocation_id: str) -> DurableFuture[None]:
        """Cancel the invocation ``invocation_id``: it gets a ``TerminalError`` (409) where
        it waits next, and may compensate. Nothing happens to a finished one. Takes effect
        once this attempt's entries are committed."""

    @abstractmethod
    def sleep(self, duration: timedelta | float) -> DurableFuture[None]:
        """A durable timer: completes ``duration`` (a timedelta or seconds) from now."""

    # -- awakeables ----------------------------------------------------------------------------

    @abstractmethod
    def awakeable(
        self, *, type_hint: Any = None, serde: Serde | None = None
    ) -> tuple[str, DurableFuture[Any]]:
        """An id to hand to the outside world and a future that completes when someone resolves
        (or rejects) that id: another handler through :meth:`resolve_awakeable`, or anyone
        through the ingress (``POST /restate/awakeables/{id}/resolve``). The id is unguessable
        and journaled, so it is the same on every replay."""

    @abstractmethod
    def resolve_awakeable(
        self,
        awakeable_id: str,
        value: Any = None,
        *,
        type_hint: Any = None,
        serde: Serde | None = None,
    ) -> None:
        """Complete an awakeable with ``value`` (takes effect when this step is committed)."""

    @abstractmethod
    def reject_awakeable(self, awakeable_id: str, reason: str) -> None:
        """Fail an awakeable: its waiter gets a TerminalError with ``reason``."""

    # -- workflows -----------------------------------------------------------------------------

    @abstractmethod
    def promise(self, name: str) -> Any:
        """The workflow's durable promise ``name``: ``.value()``, ``.peek()``, ``.resolve(v)``,
        ``.reject(why)`` each return a durable future. Resolvable once, before or after anyone
        waits on it; shared handlers of the workflow may resolve it too."""

    # -- deterministic helpers -----------------------------------------------------------------

    @abstractmethod
    def random(self) -> random.Random:
        """A generator seeded by the invocation id: the same draws on every replay."""

    @abstractmethod
    def uuid(self) -> uuid.UUID:
        """A version-4 UUID drawn from :meth:`random`."""

    @abstractmethod
    def time(self) -> float:
        """The wall clock (Unix seconds), journaled: a replay returns the recorded time."""
