"""``gather`` and ``select``: waiting on several durable futures at once.

Both take the futures context calls return (steps, calls, sleeps, state reads, awakeables...)
unawaited, and both decide only from what replays identically: the journal and the request's
completions, never a wall-clock race.

- ``await gather(f1, f2, ...)`` -> ``[v1, v2, ...]`` in argument order. It waits for the steps
  among them that are still executing, then walks the futures in argument order: a failure
  raises its ``TerminalError`` (the first one in argument order), an incomplete future ends the
  attempt suspended on every incomplete future's index at once. So a failure is raised only
  once every future before it has its result: later completions can never change which
  failure a replay raises.
- ``await select(a=f1, b=f2, ...)`` -> ``("a", v1)``: among the futures that are done, the one
  with the lowest journal index wins; if none is done it waits for the first of its executing
  steps to finish; if none is executing it suspends on every incomplete index. A replay can
  see more done than the attempt that chose did (a step that was still executing is journaled
  by then, a completion arrived since), so the choice itself is journaled as a ``run`` entry
  named ``select`` whose value is the chosen name, and a replay returns that choice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any

from ritornello.protocol import Failure
from ritornello.sdk._futures import DurableFuture, raise_failure, wait_or_suspend
from ritornello.sdk._invocation import _IN_STEP
from ritornello.sdk._machine import Machine

#: The names of the ``run`` entries that journal a select's, a wait's, an as_completed's choice.
SELECT_ENTRY = "select"
WAIT_ENTRY = "wait"
AS_COMPLETED_ENTRY = "as_completed"
#: ``wait``'s ``return_when``.
FIRST_COMPLETED = "first_completed"
FIRST_ERROR = "first_error"
ALL_COMPLETED = "all_completed"


def gather(*futures: DurableFuture[Any]) -> Coroutine[Any, Any, list[Any]]:
    """Wait for every future; their results in argument order.

    The first failure in argument order raises its ``TerminalError``, as soon as every future
    before it has its result (steps among them still executing are waited for first). While
    one is missing, the attempt suspends on every incomplete future at once.
    """
    machine = _check("gather", [(f"argument {i}", f) for i, f in enumerate(futures)])
    return _gather(machine, futures)


def select(**futures: DurableFuture[Any]) -> Coroutine[Any, Any, tuple[str, Any]]:
    """Wait for the first of the named futures: ``(name, result)``.

    "First" is decided from the journal, never by a race: the done future with the lowest
    journal index; else the first executing step to finish; else the attempt suspends on all
    of them. The choice is journaled (a ``run`` entry named ``select``) and replayed. A chosen
    future that failed raises its ``TerminalError``.
    """
    if not futures:
        raise ValueError("select() needs at least one named future: select(a=f1, b=f2)")
    machine = _check("select", list(futures.items()))
    assert machine is not None
    return _select(machine, dict(futures))


def _check(what: str, labelled: list[tuple[str, object]]) -> Machine | None:
    step = _IN_STEP.get()
    if step is not None:
        raise RuntimeError(f"{what}() is not allowed inside ctx.run (step {step!r})")
    machine: Machine | None = None
    for label, future in labelled:
        if not isinstance(future, DurableFuture):
            raise TypeError(
                f"{what}() takes durable futures (what ctx.run, ctx.call, ctx.sleep, ctx.get... "
                f"return, unawaited), but {label} is {type(future).__name__}"
            )
        if machine is None:
            machine = future._machine
        elif future._machine is not machine:
            raise ValueError(f"{what}(): the futures belong to different attempts")
    return machine


def _executing(futures: Iterable[DurableFuture[Any]]) -> set[asyncio.Task[Any]]:
    """The tasks of the steps and fan-outs among ``futures`` still executing in this
    attempt."""
    return {task for f in futures if (task := f.executing()) is not None}


def _incomplete(futures: Iterable[DurableFuture[Any]]) -> list[int]:
    """The indices only the orchestrator can complete, ascending (called once no step among
    ``futures`` is executing, so every future not done waits on one)."""
    waiting: set[int] = set()
    for future in futures:
        if not future.done():
            index = future.waiting_on()
            if index is None:
                raise RuntimeError(f"{future!r} is neither done, executing, nor waiting")
            waiting.add(index)
    return sorted(waiting)


def _raise_if_cancelled(machine: Machine, waiting: list[int]) -> None:
    """Cancellation is raised where the handler would suspend (at the lowest waiting index)."""
    _raise(machine.cancel_point(min(waiting)) if waiting else None)


def _raise_if_replayed_cancel(machine: Machine, futures: Iterable[DurableFuture[Any]]) -> None:
    """Replay raises a cancellation again where the journal says it was raised, even if the
    futures have results by now."""
    _raise(machine.replayed_cancel(f.index for f in futures))


def _raise(failure: Failure | None) -> None:
    if failure is not None:
        raise_failure(failure)


async def _gather(machine: Machine | None, futures: tuple[DurableFuture[Any], ...]) -> list[Any]:
    if machine is None:
        return []
    machine.check_open()
    _raise_if_replayed_cancel(machine, futures)
    while executing := _executing(futures):
        await asyncio.wait(executing)
    machine.check_open()
    results: list[Any] = []
    for future in futures:
        if not future.done():
            # Whether an earlier failure or this one is raised depends on this future: wait.
            waiting = _incomplete(futures)
            _raise_if_cancelled(machine, waiting)
            await wait_or_suspend(machine, waiting)
        results.append(await future)
    return results


async def _select(machine: Machine, futures: dict[str, DurableFuture[Any]]) -> tuple[str, Any]:
    def first_done(done: list[str]) -> str | None:
        return min(done, key=lambda n: futures[n].index) if done else None

    chosen = await _decision(machine, futures, SELECT_ENTRY, first_done, _one_of(futures))
    return chosen, await futures[chosen]


def _one_of(futures: dict[str, DurableFuture[Any]]) -> Callable[[Any], list[str] | None]:
    """Checks a journaled select or as_completed choice: the names it chose, or None."""
    return lambda chosen: [chosen] if isinstance(chosen, str) and chosen in futures else None


async def _decision(
    machine: Machine,
    futures: dict[str, DurableFuture[Any]],
    entry: str,
    decide: Callable[[list[str]], Any],
    chosen: Callable[[Any], list[str] | None],
) -> Any:
    """Wait until ``decide(names of the done futures, in argument order)`` is not None, and
    journal that decision as a ``run`` entry named ``entry`` (a replay returns the journaled
    one, after checking with ``chosen`` that it names futures that have their results).

    Until then: wait for an executing step or fan-out among them to finish, else suspend (or
    park) on every incomplete one."""
    machine.check_open()
    _raise_if_replayed_cancel(machine, futures.values())
    if machine.replaying:
        index, journaled = machine.record({"kind": "run", "name": entry})
        value = (journaled or {}).get("value")
        names = chosen(value)
        listed = ", ".join(repr(name) for name in futures)
        if names is None:
            raise machine.diverge(
                index, f"the journal's {entry} chose {value!r}, the handler waits on {listed}"
            )
        for name in names:
            if not futures[name].done():
                raise machine.diverge(
                    index,
                    f"the journal's {entry} chose {name!r} (index {futures[name].index}), "
                    "which has no result on replay",
                )
        return value
    while True:
        decision = decide([name for name, f in futures.items() if f.done()])
        if decision is not None:
            break
        executing = _executing(futures.values())
        if executing:
            await asyncio.wait(executing, return_when=asyncio.FIRST_COMPLETED)
            machine.check_open()
            continue
        waiting = _incomplete(futures.values())
        _raise_if_cancelled(machine, waiting)
        await wait_or_suspend(machine, waiting)
    index, _ = machine.record({"kind": "run", "name": entry, "value": decision})
    # A choice made from what arrived is a decision a replay might not reproduce by itself.
    machine.decided(index)
    return decision


def wait(
    *futures: DurableFuture[Any], return_when: str = ALL_COMPLETED
) -> Coroutine[Any, Any, tuple[list[DurableFuture[Any]], list[DurableFuture[Any]]]]:
    """Wait until ``return_when`` holds: ``FIRST_COMPLETED`` (one is done), ``FIRST_ERROR``
    (one failed, or all are done) or ``ALL_COMPLETED``; returns ``(done, pending)``, each in
    argument order. Raises nothing itself: await a done future for its result or error.

    Like ``select``, the decision is taken from the journal, never by a race, and journaled
    (a ``run`` entry named ``wait`` listing the done futures' argument positions)."""
    if return_when not in (FIRST_COMPLETED, FIRST_ERROR, ALL_COMPLETED):
        raise ValueError(
            "return_when must be FIRST_COMPLETED, FIRST_ERROR or ALL_COMPLETED, "
            f"not {return_when!r}"
        )
    machine = _check("wait", [(f"argument {i}", f) for i, f in enumerate(futures)])
    return _wait(machine, futures, return_when)


async def _wait(
    machine: Machine | None, futures: tuple[DurableFuture[Any], ...], return_when: str
) -> tuple[list[DurableFuture[Any]], list[DurableFuture[Any]]]:
    if machine is None:
        return [], []
    named = {str(i): f for i, f in enumerate(futures)}

    def ready(done: list[str]) -> list[int] | None:
        complete = len(done) == len(named)
        if return_when == FIRST_COMPLETED and not done:
            return None
        if return_when == FIRST_ERROR and not complete and not any(named[n].failed() for n in done):
            return None
        if return_when == ALL_COMPLETED and not complete:
            return None
        return sorted(int(n) for n in done)

    def journaled(value: Any) -> list[str] | None:
        if not isinstance(value, list) or not all(
            type(i) is int and 0 <= i < len(futures) for i in value
        ):
            return None
        return [str(i) for i in value]

    positions = await _decision(machine, named, WAIT_ENTRY, ready, journaled)
    done = set(positions)
    return (
        [f for i, f in enumerate(futures) if i in done],
        [f for i, f in enumerate(futures) if i not in done],
    )


async def as_completed(*futures: DurableFuture[Any]) -> AsyncIterator[DurableFuture[Any]]:
    """Yield the futures as they complete (await each for its result or error): the order
    is decided like ``select``'s (the done future with the lowest journal index first) and
    journaled, one ``run`` entry named ``as_completed`` per future."""
    machine = _check("as_completed", [(f"argument {i}", f) for i, f in enumerate(futures)])
    if machine is None:
        return
    remaining = {str(i): f for i, f in enumerate(futures)}
    while remaining:

        def first_done(done: list[str]) -> str | None:
            return min(done, key=lambda n: remaining[n].index) if done else None

        name = await _decision(
            machine, remaining, AS_COMPLETED_ENTRY, first_done, _one_of(remaining)
        )
        yield remaining.pop(name)
