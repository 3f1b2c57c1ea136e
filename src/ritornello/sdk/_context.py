"""``Context``: what a handler can do durably (the public API; the implementation is apart).

Every method that waits returns a :class:`DurableFuture`; ``set``, ``clear``, ``clear_all`` and
``send`` take effect at once. Each call is one journal entry, taken in the order the handler
makes them: that order must be the same on every replay.
"""

from __future__ import annotations

import random
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Mapping
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar, overload

from ritornello.sdk._futures import DurableFuture

T = TypeVar("T")
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

    # -- steps ---------------------------------------------------------------------------------

    # With run options (``limit=``): the arguments passed on to ``fn`` are not checked
    # (a ParamSpec's ``**kwargs`` cannot sit beside a keyword of ``run``'s own).
    @overload
    def run(
        self,
        name: str,
        fn: Callable[..., Coroutine[Any, Any, T]],
        /,
        *args: Any,
        limit: str,
        **kwargs: Any,
    ) -> DurableFuture[T]: ...

    @overload
    def run(
        self, name: str, fn: Callable[..., T], /, *args: Any, limit: str, **kwargs: Any
    ) -> DurableFuture[T]: ...

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
        called. A ``TerminalError`` raised by ``fn`` is journaled and raised to the handler;
        any other exception fails the attempt (retried). The result must be JSON.

        ``limit="NAME"`` (taken by ``run``, not passed to ``fn``): the step waits for a permit
        of the named limit before it runs (suspended meanwhile: on Lambda nothing is billed)
        and gives it back once its result is journaled (docs/limits.md). A limit that is not
        defined fails the step with a ``TerminalError`` (404) before ``fn`` runs.
        """

    # -- state (virtual objects) ---------------------------------------------------------------

    @abstractmethod
    def get(self, key: str, default: Any = None) -> DurableFuture[Any]:
        """The value of state ``key`` (``default`` when absent)."""

    @abstractmethod
    def set(self, key: str, value: Any) -> None:
        """Set state ``key`` to the JSON value ``value`` (exclusive handlers only)."""

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
        priority: int | None = None,
        limit_key: str | None = None,
    ) -> DurableFuture[T]: ...

    @overload
    def call(
        self,
        target: str,
        arg: Any = None,
        key: str | None = None,
        *,
        priority: int | None = None,
        limit_key: str | None = None,
    ) -> DurableFuture[Any]: ...

    @abstractmethod
    def call(
        self,
        target: Callable[..., Any] | str,
        arg: Any = None,
        key: str | None = None,
        *,
        priority: int | None = None,
        limit_key: str | None = None,
    ) -> DurableFuture[Any]:
        """Invoke a handler and wait for its result.

        ``target`` is a decorated handler function or ``"Service/handler"``; ``key`` names the
        virtual object. A callee's TerminalError is raised here as a TerminalError.
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
        priority: int | None = None,
        limit_key: str | None = None,
    ) -> str:
        """Invoke a handler without waiting (after ``delay``); returns the callee's id.
        ``priority`` and ``limit_key`` as for ``call``."""

    @abstractmethod
    def sleep(self, duration: timedelta | float) -> DurableFuture[None]:
        """A durable timer: completes ``duration`` (a timedelta or seconds) from now."""

    # -- awakeables ----------------------------------------------------------------------------

    @abstractmethod
    def awakeable(self) -> tuple[str, DurableFuture[Any]]:
        """An id to hand to the outside world and a future that completes when someone resolves
        (or rejects) that id: another handler through :meth:`resolve_awakeable`, or anyone
        through the ingress (``POST /restate/awakeables/{id}/resolve``). The id is unguessable
        and journaled, so it is the same on every replay."""

    @abstractmethod
    def resolve_awakeable(self, awakeable_id: str, value: Any = None) -> None:
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
