"""Durable futures: what every waiting context call returns.

A durable future names the journal entry it stands for (``index``) and can say, without
waiting, where its result will come from: it is ``done()`` when awaiting it now returns or
raises at once; a step still executing is not done but will finish within this attempt; a call
or sleep with no completion ``waiting_on()`` its index, and only the orchestrator can finish it.
That is all a ``gather``/``select`` needs: wait for the running steps, return what is done, and
suspend with every ``waiting_on()`` index when nothing else can progress.

Awaiting a future after the attempt ended re-raises the ending signal.

Inside a fan-out branch (``ctx.map``, ``ctx.parallel``) an await that would suspend the
attempt parks the branch instead (:data:`PARK`): the fan-out suspends once every branch is
parked or finished, on all their indices at once, so one attempt takes every branch as far
as it can go.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Generator, Sequence
from contextvars import ContextVar
from typing import Any, Generic, NoReturn, TypeVar

from ritornello.protocol import Failure
from ritornello.protocol._record import Record
from ritornello.sdk._machine import CANCELLED, Machine
from ritornello.sdk._serde import json_copy
from ritornello.sdk.errors import InvocationCancelled, TerminalError

T = TypeVar("T")

#: Set in a fan-out branch: parks the branch waiting on the given indices (never returns; the
#: fan-out ends the attempt or drops the branch). Unset: the attempt suspends at once.
PARK: ContextVar[Callable[[Sequence[int]], Awaitable[NoReturn]] | None] = ContextVar(
    "ritornello_park", default=None
)


async def wait_or_suspend(machine: Machine, waiting: Sequence[int]) -> NoReturn:
    """Wait on ``waiting`` (indices only the orchestrator can complete): park the current
    branch if in one, else end the attempt suspended on them."""
    park = PARK.get()
    if park is not None:
        await park(waiting)
    raise machine.suspend(waiting)


class DurableFuture(ABC, Generic[T]):
    """The eventual result of a journal entry: ``await`` it."""

    __slots__ = ("_index", "_machine")

    def __init__(self, machine: Machine, index: int) -> None:
        self._machine = machine
        self._index = index

    @property
    def index(self) -> int:
        """The journal index of the entry this future stands for."""
        return self._index

    @abstractmethod
    def done(self) -> bool:
        """Whether awaiting it now gives its result (or its terminal error) at once."""

    def waiting_on(self) -> int | None:
        """The index whose completion only the orchestrator can bring, if not done."""
        return None

    def executing(self) -> asyncio.Task[Any] | None:
        """The task still working on it in this attempt (a step, a fan-out), if any."""
        return None

    def failed(self) -> bool:
        """Done, and awaiting it raises a ``TerminalError``."""
        return False

    def __await__(self) -> Generator[Any, None, T]:
        return self._result().__await__()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} index={self._index} done={self.done()}>"

    async def _result(self) -> T:
        self._machine.check_open()
        return await self._resolve()

    @abstractmethod
    async def _resolve(self) -> T: ...


def raise_failure(failure: Failure) -> None:
    if failure is CANCELLED:
        raise InvocationCancelled()
    raise TerminalError(str(failure.get("message", "")), status_code=int(failure.get("code", 500)))


class ReadyFuture(DurableFuture[T]):
    """A result known when the action was taken: state reads, replayed steps.

    The value is handed out as given: the context passes a copy of anything journaled.
    """

    __slots__ = ("_failure", "_value")

    def __init__(
        self, machine: Machine, index: int, value: T, failure: Failure | None = None
    ) -> None:
        super().__init__(machine, index)
        self._value = value
        self._failure = failure

    def done(self) -> bool:
        return True

    def failed(self) -> bool:
        return self._failure is not None

    async def _resolve(self) -> T:
        if self._failure is not None:
            raise_failure(self._failure)
        return self._value


class StepOutcome(Record):
    """How a step executed in this attempt ended."""

    _fields = ("value", "failure", "crashed", "stopped")
    __slots__ = _fields
    value: Any
    failure: Failure | None
    #: The step raised a retryable exception: the attempt fails.
    crashed: bool
    #: The step never ran: its streamed attempt ended before it could (see the machine).
    stopped: bool

    def __init__(
        self,
        value: Any = None,
        failure: Failure | None = None,
        crashed: bool = False,
        stopped: bool = False,
    ) -> None:
        self.value = value
        self.failure = failure
        self.crashed = crashed
        self.stopped = stopped


class StepFuture(DurableFuture[T]):
    """A step executing in this attempt (an asyncio task that journals its own result);
    ``convert`` turns the journaled JSON value into the handler's value."""

    __slots__ = ("_convert", "_task")

    def __init__(
        self,
        machine: Machine,
        index: int,
        task: asyncio.Task[StepOutcome],
        convert: Callable[[Any], T] = json_copy,
    ) -> None:
        super().__init__(machine, index)
        self._task = task
        self._convert = convert

    @property
    def task(self) -> asyncio.Task[StepOutcome]:
        """The task executing the step (for waiting on several at once)."""
        return self._task

    def done(self) -> bool:
        return self._task.done()

    def executing(self) -> asyncio.Task[Any] | None:
        return None if self._task.done() else self._task

    def failed(self) -> bool:
        return self._task.done() and self._task.result().failure is not None

    async def _resolve(self) -> T:
        outcome = await asyncio.shield(self._task)
        if outcome.crashed or outcome.stopped or self._machine.ended:
            raise self._machine.signal()
        if outcome.failure is not None:
            raise_failure(outcome.failure)
        return self._convert(outcome.value)


class CompletionFuture(DurableFuture[T]):
    """A ``call`` or ``sleep``: complete iff the request carries a completion for its index.
    ``convert`` turns the completion's JSON value (a private copy) into the handler's."""

    __slots__ = ("_convert",)

    def __init__(self, machine: Machine, index: int, convert: Callable[[Any], T]) -> None:
        super().__init__(machine, index)
        self._convert = convert

    def done(self) -> bool:
        return self._machine.completion(self._index) is not None

    def waiting_on(self) -> int | None:
        return None if self.done() else self._index

    def failed(self) -> bool:
        completion = self._machine.completion(self._index)
        return completion is not None and "failure" in completion

    async def _resolve(self) -> T:
        cancelled = self._machine.cancel_point(self._index)
        if cancelled is not None:
            raise_failure(cancelled)
        completion = self._machine.completion(self._index)
        if completion is None:
            await wait_or_suspend(self._machine, [self._index])
        if "failure" in completion:
            raise_failure(completion["failure"])
        return self._convert(completion.get("value"))
