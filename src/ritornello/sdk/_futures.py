"""Durable futures: what every waiting context call returns.

A durable future names the journal entry it stands for (``index``) and can say, without
waiting, where its result will come from: it is ``done()`` when awaiting it now returns or
raises at once; a step still executing is not done but will finish within this attempt; a call
or sleep with no completion ``waiting_on()`` its index, and only the orchestrator can finish it.
That is all a ``gather``/``select`` needs: wait for the running steps, return what is done, and
suspend with every ``waiting_on()`` index when nothing else can progress.

Awaiting a future after the attempt ended re-raises the ending signal.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ritornello.protocol import Failure
from ritornello.sdk._machine import Machine
from ritornello.sdk._serde import json_copy
from ritornello.sdk.errors import TerminalError

T = TypeVar("T")


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

    def __await__(self) -> Generator[Any, None, T]:
        return self._result().__await__()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} index={self._index} done={self.done()}>"

    async def _result(self) -> T:
        self._machine.check_open()
        return await self._resolve()

    @abstractmethod
    async def _resolve(self) -> T: ...


def _raise_failure(failure: Failure) -> None:
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

    async def _resolve(self) -> T:
        if self._failure is not None:
            _raise_failure(self._failure)
        return self._value


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """How a step executed in this attempt ended."""

    value: Any = None
    failure: Failure | None = None
    #: The step raised a retryable exception: the attempt fails.
    crashed: bool = False
    #: The step never ran: its streamed attempt ended before it could (see the machine).
    stopped: bool = False


class StepFuture(DurableFuture[T]):
    """A step executing in this attempt (an asyncio task that journals its own result)."""

    __slots__ = ("_task",)

    def __init__(self, machine: Machine, index: int, task: asyncio.Task[StepOutcome]) -> None:
        super().__init__(machine, index)
        self._task = task

    @property
    def task(self) -> asyncio.Task[StepOutcome]:
        """The task executing the step (for waiting on several at once)."""
        return self._task

    def done(self) -> bool:
        return self._task.done()

    async def _resolve(self) -> T:
        outcome = await asyncio.shield(self._task)
        if outcome.crashed or outcome.stopped or self._machine.ended:
            raise self._machine.signal()
        if outcome.failure is not None:
            _raise_failure(outcome.failure)
        value: T = json_copy(outcome.value)
        return value


class CompletionFuture(DurableFuture[T]):
    """A ``call`` or ``sleep``: complete iff the request carries a completion for its index."""

    __slots__ = ("_convert",)

    def __init__(self, machine: Machine, index: int, convert: Callable[[Any], T]) -> None:
        super().__init__(machine, index)
        self._convert = convert

    def done(self) -> bool:
        return self._machine.completion(self._index) is not None

    def waiting_on(self) -> int | None:
        return None if self.done() else self._index

    async def _resolve(self) -> T:
        cancelled = self._machine.cancel_point(self._index)
        if cancelled is not None:
            _raise_failure(cancelled)
        completion = self._machine.completion(self._index)
        if completion is None:
            raise self._machine.suspend([self._index])
        if "failure" in completion:
            _raise_failure(completion["failure"])
        return self._convert(json_copy(completion.get("value")))
