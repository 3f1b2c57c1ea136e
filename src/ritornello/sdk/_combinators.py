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
from collections.abc import Coroutine, Iterable
from typing import Any

from ritornello.protocol import Failure
from ritornello.sdk._futures import DurableFuture, StepFuture
from ritornello.sdk._invocation import _IN_STEP
from ritornello.sdk._machine import Machine
from ritornello.sdk.errors import TerminalError

#: The name of the ``run`` entry that journals a select's choice.
SELECT_ENTRY = "select"


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
    """The tasks of the steps among ``futures`` still executing in this attempt."""
    return {f.task for f in futures if isinstance(f, StepFuture) and not f.done()}


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
        raise TerminalError(failure["message"], status_code=failure["code"])


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
            raise machine.suspend(waiting)
        results.append(await future)
    return results


async def _select(machine: Machine, futures: dict[str, DurableFuture[Any]]) -> tuple[str, Any]:
    machine.check_open()
    _raise_if_replayed_cancel(machine, futures.values())
    index = machine.next_index
    if index < machine.journal_length:
        return await _replay_choice(machine, index, futures)
    while True:
        done = [(f.index, i, name) for i, (name, f) in enumerate(futures.items()) if f.done()]
        if done:
            chosen = min(done)[2]
            break
        executing = _executing(futures.values())
        if executing:
            await asyncio.wait(executing, return_when=asyncio.FIRST_COMPLETED)
            machine.check_open()
            continue
        waiting = _incomplete(futures.values())
        _raise_if_cancelled(machine, waiting)
        raise machine.suspend(waiting)
    index, _ = machine.record({"kind": "run", "name": SELECT_ENTRY, "value": chosen})
    # A choice made from what arrived is a decision a replay might not reproduce by itself.
    machine.decided(index)
    return chosen, await futures[chosen]


async def _replay_choice(
    machine: Machine, index: int, futures: dict[str, DurableFuture[Any]]
) -> tuple[str, Any]:
    _, journaled = machine.record({"kind": "run", "name": SELECT_ENTRY})
    chosen = (journaled or {}).get("value")
    names = ", ".join(repr(name) for name in futures)
    if not isinstance(chosen, str) or chosen not in futures:
        raise machine.diverge(
            index, f"the journal's select chose {chosen!r}, the handler selects among {names}"
        )
    future = futures[chosen]
    if not future.done():
        raise machine.diverge(
            index,
            f"the journal's select chose {chosen!r} (index {future.index}), which has no result "
            "on replay",
        )
    return chosen, await future
