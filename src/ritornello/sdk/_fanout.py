"""Fan-out: ``ctx.map``, ``ctx.parallel`` and ``ctx.child``, each branch in its own context.

Branches run concurrently, so their actions cannot share the handler's sequence of journal
positions: each branch is a child context (module ``_machine``) that replays its own entries in
order, whatever order the branches ran in. The journal shapes, for a fan-out ``NAME`` taken at
index ``p`` of its parent context:

- the parent's entry ``p``: ``{"kind": "run", "name": NAME, "child": "map"|"parallel"|"child",
  "value": {"branches": N}}``, written when the fan-out starts (a replay with another number
  of branches is a journal mismatch);
- branch ``i``'s entries carry ``"ctx": "p/i"`` and end with its result, a ``run`` entry
  named after the branch (``NAME[i]`` for a map) with ``value`` or ``failure``;
- the outcome, once the completion policy decides it: one ``run`` entry named ``NAME`` in
  context ``"p"`` whose value holds every branch's status and result. It is a decision (which
  branches were done when it was taken), so no step starts before it is persisted, and a
  replay that finds it returns it without running any branch again.

Completion policy (as Lambda durable functions'): ``max_concurrency`` branches run at once;
the fan-out ends when every branch finished (``all_completed``), when ``min_successful``
succeeded (``min_successful_reached``), or when failures pass ``tolerated_failures`` or
``tolerated_failure_percentage``, or leave ``min_successful`` out of reach
(``failure_tolerance_exceeded``). Without a tolerance every failure is tolerated: the result
reports it. Branches still running when it ends are dropped (their running steps finish and
are journaled; nothing else they would have done happens).

A cancellation of the invocation raised in a branch that does not catch it ends the whole
fan-out (the other branches are dropped) and is raised where the handler awaits it, so the
handler can compensate; nothing of the fan-out's outcome is journaled then.

A branch that waits on something only the orchestrator can complete parks; when every
running branch is parked the fan-out suspends on all their indices at once (or parks in its
own parent fan-out), so one attempt takes every branch as far as it can go.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeVar, cast

from ritornello.protocol import Failure
from ritornello.sdk._futures import PARK, DurableFuture, ReadyFuture
from ritornello.sdk._machine import BRANCH, Machine
from ritornello.sdk._serde import decode, encode, return_hint
from ritornello.sdk.errors import InvocationCancelled, Suspended, TerminalError

R = TypeVar("R")

SUCCEEDED, FAILED, STARTED, NOT_STARTED = "succeeded", "failed", "started", "not_started"
ALL_COMPLETED = "all_completed"
MIN_SUCCESSFUL_REACHED = "min_successful_reached"
FAILURE_TOLERANCE_EXCEEDED = "failure_tolerance_exceeded"


@dataclass(frozen=True, slots=True)
class BatchItem(Generic[R]):
    """One branch of a map or parallel: ``status`` is ``succeeded`` (``value``), ``failed``
    (``error``), ``started`` (still running when the fan-out ended) or ``not_started``."""

    index: int
    name: str
    status: str
    value: R | None = None
    error: TerminalError | None = None


@dataclass(frozen=True, slots=True)
class BatchResult(Generic[R]):
    """What a map or parallel ended with: every branch, in order, and why it ended
    (``all_completed``, ``min_successful_reached``, ``failure_tolerance_exceeded``)."""

    items: tuple[BatchItem[R], ...]
    reason: str

    def values(self) -> list[R]:
        """The results of the branches that succeeded, in branch order."""
        return [i.value for i in self.items if i.status == SUCCEEDED]  # type: ignore[misc]

    def succeeded(self) -> list[BatchItem[R]]:
        return [i for i in self.items if i.status == SUCCEEDED]

    def failed(self) -> list[BatchItem[R]]:
        return [i for i in self.items if i.status == FAILED]

    @property
    def ok(self) -> bool:
        """No branch failed and the failure tolerance held."""
        return self.reason != FAILURE_TOLERANCE_EXCEEDED and not self.failed()

    def raise_if_failed(self) -> None:
        """Raise the first failed branch's ``TerminalError`` (if the tolerance was exceeded
        without one, a 500 saying so)."""
        for item in self.items:
            if item.error is not None:
                raise item.error
        if self.reason == FAILURE_TOLERANCE_EXCEEDED:
            raise TerminalError("the fan-out's failure tolerance was exceeded")


@dataclass(frozen=True, slots=True)
class Policy:
    """A fan-out's completion policy, checked."""

    max_concurrency: int | None = None
    min_successful: int | None = None
    tolerated_failures: int | None = None
    tolerated_failure_percentage: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_concurrency", "min_successful", "tolerated_failures"):
            value = getattr(self, name)
            if value is not None and (
                type(value) is not int or value < (name != "tolerated_failures")
            ):
                raise ValueError(
                    f"{name} must be a whole number >= {int(name != 'tolerated_failures')}"
                )
        pct = self.tolerated_failure_percentage
        if pct is not None and (
            isinstance(pct, bool) or not isinstance(pct, (int, float)) or not 0 <= pct <= 100
        ):
            raise ValueError("tolerated_failure_percentage must be a number from 0 to 100")

    def reason(self, total: int, succeeded: int, failed: int) -> str | None:
        """Why the fan-out ends now, or None if it goes on."""
        if self.tolerated_failures is not None and failed > self.tolerated_failures:
            return FAILURE_TOLERANCE_EXCEEDED
        pct = self.tolerated_failure_percentage
        if pct is not None and total and failed * 100 > pct * total:
            return FAILURE_TOLERANCE_EXCEEDED
        if self.min_successful is not None:
            if succeeded >= self.min_successful:
                return MIN_SUCCESSFUL_REACHED
            if total - failed < self.min_successful:
                return FAILURE_TOLERANCE_EXCEEDED
        if succeeded + failed == total:
            return ALL_COMPLETED
        return None


@dataclass(frozen=True, slots=True)
class _Outcome:
    value: Any = None
    failure: Failure | None = None


class ChildFuture(DurableFuture[R]):
    """A fan-out running in this attempt (an asyncio task that journals its outcome)."""

    __slots__ = ("_task",)

    def __init__(self, machine: Machine, index: int, task: asyncio.Task[R]) -> None:
        super().__init__(machine, index)
        self._task = task

    def done(self) -> bool:
        return self._task.done()

    def executing(self) -> asyncio.Task[Any] | None:
        return None if self._task.done() else self._task

    def failed(self) -> bool:
        return (
            self._task.done()
            and not self._task.cancelled()
            and isinstance(self._task.exception(), TerminalError)
        )

    async def _resolve(self) -> R:
        try:
            return await asyncio.shield(self._task)
        except Suspended:
            raise self._machine.signal() from None


Branch = Callable[[], Awaitable[Any]]


class FanOut:
    """One map, parallel or child: starts its branches, applies the policy, journals the
    outcome. ``kind`` is ``map``, ``parallel`` or ``child`` (one branch whose failure is
    raised, and whose outcome is its result alone)."""

    def __init__(
        self,
        machine: Machine,
        name: str,
        kind: str,
        branches: Sequence[tuple[str, Branch]],
        policy: Policy,
        hint: Any,
        serde: Any = None,
    ) -> None:
        self._machine = machine
        self._name = name
        self._kind = kind
        self._branches = branches
        self._policy = policy
        self._hint = hint
        self._serde = serde
        self._parked: dict[int, tuple[int, ...]] = {}
        self._changed = asyncio.Event()
        self._context = ""

    def start(self, children: set[asyncio.Task[Any]]) -> DurableFuture[Any]:
        """Take the fan-out's entry and start it (or return its journaled outcome)."""
        machine = self._machine
        size = {"branches": len(self._branches)}
        index, journaled = machine.record(
            {"kind": "run", "name": self._name, "child": self._kind, "value": size}
        )
        if journaled is not None and (
            journaled.get("child") != self._kind or journaled.get("value") != size
        ):
            raise machine.diverge(
                index,
                f"the journal's {journaled.get('child')} {self._name!r} had "
                f"{(journaled.get('value') or {}).get('branches')} branches, the handler's "
                f"{self._kind} has {len(self._branches)}",
            )
        self._context = _child_path(str(index))
        done = machine.journaled_in(self._context)
        if done:
            token = BRANCH.set(self._context)
            try:
                _, entry = machine.record({"kind": "run", "name": self._name})
            finally:
                BRANCH.reset(token)
            entry = entry or done[0]
            if "failure" in entry:
                return ReadyFuture(machine, index, None, entry["failure"])
            return ReadyFuture(machine, index, self._decode_outcome(entry.get("value")))
        task = asyncio.create_task(self._run())
        children.add(task)
        task.add_done_callback(children.discard)
        return ChildFuture(machine, index, task)

    # -- running -----------------------------------------------------------------------------

    async def _run(self) -> Any:
        machine = self._machine
        outer_park = PARK.get()
        pending = deque(range(len(self._branches)))
        running: dict[asyncio.Task[_Outcome], int] = {}
        outcomes: dict[int, _Outcome] = {}
        limit = self._policy.max_concurrency

        def start_more() -> None:
            while pending and (limit is None or len(running) < limit):
                i = pending.popleft()
                running[asyncio.create_task(self._branch(i))] = i

        start_more()
        try:
            while (reason := self._decide(outcomes)) is None:
                active = [t for t, i in running.items() if i not in self._parked]
                if not active:
                    waiting = sorted({x for w in self._parked.values() for x in w})
                    await _cancel(running)
                    if outer_park is not None:
                        await outer_park(waiting)
                    raise machine.suspend(waiting)
                self._changed.clear()
                changed = asyncio.ensure_future(self._changed.wait())
                done, _ = await asyncio.wait(
                    [*active, changed], return_when=asyncio.FIRST_COMPLETED
                )
                changed.cancel()
                for task in done:
                    if task is changed:
                        continue
                    branch = cast("asyncio.Task[_Outcome]", task)
                    # a branch's bug, or the attempt's end, is raised here
                    outcomes[running.pop(branch)] = branch.result()
                if self._decide(outcomes) is None:
                    start_more()  # only while the policy is not met: none started to drop
        finally:
            await _cancel(running)
        started = set(running.values()) | set(self._parked)
        return self._finish(reason, outcomes, started)

    async def _branch(self, i: int) -> _Outcome:
        name, body = self._branches[i]
        BRANCH.set(f"{self._context}/{i}")
        PARK.set(lambda waiting: self._park(i, waiting))
        try:
            value = await body()
            encoded = encode(value, self._hint, self._serde)
        except InvocationCancelled:
            raise  # not the branch's failure: the whole fan-out ends with it
        except TerminalError as exc:
            failure: Failure = {"code": exc.status_code, "message": exc.message}
            self._machine.record({"kind": "run", "name": name, "failure": failure})
            return _Outcome(failure=failure)
        self._machine.record({"kind": "run", "name": name, "value": encoded})
        return _Outcome(value=encoded)

    async def _park(self, i: int, waiting: Sequence[int]) -> NoReturn:
        self._parked[i] = tuple(waiting)
        self._changed.set()
        await asyncio.Future()  # never set: the fan-out cancels this branch
        raise AssertionError("unreachable")

    def _decide(self, outcomes: dict[int, _Outcome]) -> str | None:
        failed = sum(1 for o in outcomes.values() if o.failure is not None)
        return self._policy.reason(len(self._branches), len(outcomes) - failed, failed)

    def _finish(self, reason: str, outcomes: dict[int, _Outcome], started: set[int]) -> Any:
        machine = self._machine
        if self._kind == "child":
            only = outcomes[0]
            entry: dict[str, Any] = (
                {"failure": only.failure} if only.failure is not None else {"value": only.value}
            )
        else:
            items: list[dict[str, Any]] = []
            for i in range(len(self._branches)):
                outcome = outcomes.get(i)
                if outcome is None:
                    items.append({"status": STARTED if i in started else NOT_STARTED})
                elif outcome.failure is not None:
                    items.append({"status": FAILED, "failure": outcome.failure})
                else:
                    items.append({"status": SUCCEEDED, "value": outcome.value})
            entry = {"value": {"reason": reason, "items": items}}
        token = BRANCH.set(self._context)
        try:
            index, _ = machine.record({"kind": "run", "name": self._name, **entry})  # type: ignore[typeddict-item]
        finally:
            BRANCH.reset(token)
        machine.decided(index)  # which branches were done is a decision: persist it first
        if "failure" in entry:
            failure = entry["failure"]
            raise TerminalError(failure["message"], status_code=failure["code"])
        return self._decode_outcome(entry["value"])

    def _decode_outcome(self, value: Any) -> Any:
        if self._kind == "child":
            return decode(value, self._hint, self._serde)
        items: list[BatchItem[Any]] = []
        for i, raw in enumerate((value or {}).get("items") or []):
            status = raw.get("status")
            name = self._branches[i][0] if i < len(self._branches) else str(i)
            failure = raw.get("failure")
            items.append(
                BatchItem(
                    index=i,
                    name=name,
                    status=status,
                    value=decode(raw.get("value"), self._hint, self._serde)
                    if status == SUCCEEDED
                    else None,
                    error=TerminalError(failure["message"], failure["code"]) if failure else None,
                )
            )
        return BatchResult(tuple(items), str((value or {}).get("reason")))


def _child_path(index: str) -> str:
    """A fan-out's context: its parent's path and its entry's index."""
    parent = BRANCH.get()
    return f"{parent}/{index}" if parent else index


async def _cancel(running: dict[asyncio.Task[_Outcome], int]) -> None:
    """Drop the branches still running or parked (their steps go on and are journaled)."""
    tasks = list(running)
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except BaseException:
            pass


def map_branches(
    name: str, items: Iterable[Any], fn: Callable[..., Awaitable[Any]], ctx: Any
) -> list[tuple[str, Branch]]:
    """A map's branches: ``fn(ctx, item)`` for each item, named ``NAME[i]``."""

    def branch(item: Any) -> Branch:
        return lambda: fn(ctx, item)

    return [(f"{name}[{i}]", branch(item)) for i, item in enumerate(items)]


def parallel_branches(
    branches: Sequence[Callable[..., Awaitable[Any]]], ctx: Any
) -> list[tuple[str, Branch]]:
    """A parallel's branches: ``fn(ctx)`` each, named ``i:fn_name``."""

    def branch(fn: Callable[..., Awaitable[Any]]) -> Branch:
        return lambda: fn(ctx)

    return [
        (f"{i}:{getattr(fn, '__name__', 'branch')}", branch(fn)) for i, fn in enumerate(branches)
    ]


def branch_hint(fns: Sequence[Callable[..., Any]]) -> Any:
    """The branches' common return type, if they all declare the same one."""
    hints = {repr(return_hint(fn)): return_hint(fn) for fn in fns}
    return next(iter(hints.values())) if len(hints) == 1 else None
