"""Invocation handles: what ``ctx.call`` and ``ctx.send`` return.

A :class:`CallHandle` is the call's durable future (await it for the callee's result; it takes
part in ``gather``/``select`` like any other) that also knows the callee's invocation id and
can cancel it. A :class:`SendHandle` knows the id, can cancel the callee and attach to its
result.

The callee's id is known when the entry is taken: the SDK derives it from the caller's id and
the entry's index, so it is the same on every replay. One exception: a call or send with an
``idempotency_key`` names an invocation that may exist already, and only the orchestrator
knows which when it commits the entry. Asking such a handle for its id before that ends the
attempt with a checkpoint; the next attempt replays the entry with the id the orchestrator
wrote into it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ritornello.sdk._futures import CompletionFuture, DurableFuture
from ritornello.sdk._machine import Machine

if TYPE_CHECKING:
    from ritornello.sdk._invocation import InvocationContext

T = TypeVar("T")


def _known_id(machine: Machine, invocation_id: str | None) -> str:
    if invocation_id is None:
        # Named by an idempotency key: the orchestrator decides when it commits the entry.
        raise machine.checkpoint()
    return invocation_id


class CallHandle(CompletionFuture[T]):
    """A call in flight: ``await`` it for the callee's result (a callee's ``TerminalError``
    is raised here); ``invocation_id``; ``await handle.cancel()``."""

    __slots__ = ("_ctx", "_id")

    def __init__(
        self,
        ctx: InvocationContext,
        index: int,
        invocation_id: str | None,
        convert: Callable[[Any], T],
    ) -> None:
        super().__init__(ctx._machine, index, convert)
        self._ctx = ctx
        self._id = invocation_id

    @property
    def invocation_id(self) -> str:
        """The callee's invocation id (the same on every replay)."""
        return _known_id(self._machine, self._id)

    def cancel(self) -> DurableFuture[None]:
        """Cancel the callee (``ctx.cancel``): it gets a ``TerminalError`` (409) at its next
        await and may compensate; awaiting this handle then raises it too. Takes effect when
        this attempt's entries are committed; await the result to sequence it."""
        return self._ctx.cancel(self.invocation_id)


class SendHandle:
    """A one-way invocation: ``invocation_id``, ``await handle.cancel()``, and
    ``await handle.attach()`` for its result."""

    __slots__ = ("_ctx", "_id", "_returns")

    def __init__(
        self, ctx: InvocationContext, invocation_id: str | None, returns: Any = None
    ) -> None:
        self._ctx = ctx
        self._id = invocation_id
        self._returns = returns

    def __repr__(self) -> str:
        return f"<SendHandle {self._id or '(id known once committed)'}>"

    @property
    def invocation_id(self) -> str:
        """The callee's invocation id (the same on every replay)."""
        return _known_id(self._ctx._machine, self._id)

    def cancel(self) -> DurableFuture[None]:
        """Cancel the callee (``ctx.cancel``); a delayed send that has not started yet never
        runs its handler."""
        return self._ctx.cancel(self.invocation_id)

    def attach(self, type_hint: Any = None) -> DurableFuture[Any]:
        """The callee's result, once it finished (``ctx.attach``); typed by the callee
        handler's return annotation when the send named a handler function."""
        return self._ctx.attach(self.invocation_id, type_hint=type_hint or self._returns)
