"""``InvocationContext``: the Context of one attempt, reporting every action to the machine.

It owns what the machine must not touch: the asyncio tasks that execute steps (sync functions
in worker threads, so the event loop never blocks), the wall clock, and the local copy of the
object's state (the request's eager state, kept current by this attempt's sets and clears).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from datetime import timedelta
from types import MappingProxyType
from typing import Any, TypeVar

from ritornello.protocol import (
    Entry,
    Failure,
    InvokeRequest,
    RetryPolicy,
    derive_id,
    new_awakeable_id,
    parse_awakeable_id,
)
from ritornello.sdk._context import Context
from ritornello.sdk._futures import (
    CompletionFuture,
    DurableFuture,
    ReadyFuture,
    StepFuture,
    StepOutcome,
)
from ritornello.sdk._machine import Machine
from ritornello.sdk._serde import from_json, json_copy, to_json
from ritornello.sdk._service import HandlerSpec, handler_spec
from ritornello.sdk.errors import TerminalError

logger = logging.getLogger("ritornello.sdk")

_IN_STEP: ContextVar[str | None] = ContextVar("ritornello_in_step", default=None)
#: The journal index of the step running in this context (for log records), if any.
STEP_INDEX: ContextVar[int | None] = ContextVar("ritornello_step_index", default=None)
#: The machine of the attempt running in this context (for log records), if any.
CURRENT_MACHINE: ContextVar[Machine | None] = ContextVar("ritornello_machine", default=None)

#: A streamed attempt's way to persist new entries mid-attempt: sends them as a checkpoint and
#: returns True once the orchestrator acknowledged them as committed, False if it stopped.
Persist = Callable[[list[Entry]], Awaitable[bool]]


def _wall_clock() -> float:
    """Unix seconds. The only clock the SDK reads (tests replace it)."""
    return time.time()


def _millis(duration: timedelta | float, what: str) -> int:
    if isinstance(duration, timedelta):
        ms = round(duration.total_seconds() * 1000)
    elif isinstance(duration, (int, float)) and not isinstance(duration, bool):
        ms = round(duration * 1000)
    else:
        raise TypeError(f"{what} must be a timedelta or seconds, not {type(duration).__name__}")
    if ms < 0:
        raise ValueError(f"{what} must not be negative")
    return ms


STEP_RETRY_ATTR = "__ritornello_step_retry__"
F = TypeVar("F", bound=Callable[..., Any])


def step_retry(policy: RetryPolicy) -> Callable[[F], F]:
    """Retry a step function in place: ``ctx.run`` calls it up to ``policy.max_attempts``
    times with exponential backoff, then journals a TerminalError (500) the handler can catch.
    Without it a failing step fails the whole attempt, retried by the handler's policy."""
    if not isinstance(policy, RetryPolicy) or policy.max_attempts is None:
        raise ValueError("step_retry needs a RetryPolicy with max_attempts")

    def mark(fn: F) -> F:
        setattr(fn, STEP_RETRY_ATTR, policy)
        return fn

    return mark


def _step_backoff_s(policy: RetryPolicy, failed_attempt: int) -> float:
    initial = policy.initial_interval_ms or 50
    cap = policy.max_interval_ms or 60_000
    return min(cap, initial * (policy.factor or 2.0) ** (failed_attempt - 1)) / 1000


class DurablePromise:
    """A workflow's named promise: resolvable once, before or after anyone waits on it."""

    __slots__ = ("_ctx", "name")

    def __init__(self, ctx: InvocationContext, name: str) -> None:
        self._ctx = ctx
        self.name = name

    def value(self) -> DurableFuture[Any]:
        """Wait until the promise is resolved (its value) or rejected (a TerminalError)."""
        return self._ctx._promise_get(self.name)

    def peek(self) -> DurableFuture[Any]:
        """The value now, or None if not resolved yet (a rejection raises TerminalError)."""
        return self._ctx._promise_peek(self.name)

    def resolve(self, value: Any = None) -> DurableFuture[None]:
        """Resolve it; awaiting raises TerminalError (409) if it was already completed."""
        return self._ctx._promise_complete(self.name, {"value": to_json(value)})

    def reject(self, reason: str) -> DurableFuture[None]:
        """Reject it: waiters get a TerminalError with ``reason``."""
        failure = {"code": 500, "message": str(reason)}
        return self._ctx._promise_complete(self.name, {"failure": failure})


class InvocationContext(Context):
    """The Context handed to the handler for one attempt."""

    def __init__(
        self,
        request: InvokeRequest,
        spec: HandlerSpec,
        machine: Machine,
        *,
        step_checkpoints: bool,
        persist: Persist | None = None,
    ) -> None:
        self._request = request
        self._spec = spec
        self._machine = machine
        self._step_checkpoints = step_checkpoints
        self._persist = persist
        self._persisting = asyncio.Lock() if persist is not None else None
        self._state: dict[str, Any] = dict(request.state or {})
        #: steps started in this attempt whose results are not known persisted, by index
        self._steps: dict[int, asyncio.Task[StepOutcome]] = {}
        self._random: random.Random | None = None

    @property
    def invocation_id(self) -> str:
        return self._request.id

    @property
    def key(self) -> str | None:
        return self._request.key

    @property
    def attempt(self) -> int:
        return self._request.attempt

    @property
    def headers(self) -> Mapping[str, str]:
        headers = self._request.journal[0].get("headers")
        return MappingProxyType(headers if isinstance(headers, dict) else {})

    async def wait_for_steps(self) -> None:
        """Wait until every step started in this attempt has finished (and journaled)."""
        while pending := [t for t in self._steps.values() if not t.done()]:
            await asyncio.wait(pending)

    def _enter(self) -> None:
        step = _IN_STEP.get()
        if step is not None:
            raise RuntimeError(f"context calls are not allowed inside ctx.run (step {step!r})")
        self._machine.check_open()

    # -- steps ---------------------------------------------------------------------------------

    def run(
        self, name: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> DurableFuture[Any]:
        self._enter()
        limit = kwargs.pop("limit", None)
        if not isinstance(name, str) or not callable(fn):
            raise TypeError("ctx.run(name, fn, *args, **kwargs): name a str, fn a callable")
        if limit is not None:
            refused = self._permit(limit)
            if refused is not None:
                return refused
        first = (
            self._step_checkpoints
            and self._machine.next_index >= self._machine.journal_length
            and (self._machine.unpersisted_decision or any(t.done() for t in self._steps.values()))
        )
        if first and self._persist is None:
            # Durability "step": a step's side effects never start while an earlier step's
            # result is unpersisted. Checkpoint first; the next attempt replays up to here.
            raise self._machine.checkpoint()
        index, journaled = self._machine.reserve({"kind": "run", "name": name})
        if journaled is not None:
            return ReadyFuture(
                self._machine, index, json_copy(journaled.get("value")), journaled.get("failure")
            )
        # A streamed attempt persists first inside the step's task and goes on from there.
        task = asyncio.create_task(
            self._execute(index, name, fn, args, kwargs, persist=first, limit=limit)
        )
        self._steps[index] = task
        self._machine.after_new_entry()
        return StepFuture(self._machine, index, task)

    def _permit(self, limit: object) -> DurableFuture[Any] | None:
        """Journal the ``permit`` entry a limited step waits on (docs/limits.md). None: the
        permit is granted and the step may run (its ``run`` entry comes right after). A
        refused permit (the limit is not defined) or a cancellation while waiting: the
        step's future fails with it. Not granted yet: the attempt suspends here, at once, so
        nothing after the step takes a position before the step has one."""
        if not isinstance(limit, str) or not limit:
            raise TypeError("ctx.run(..., limit=NAME): the limit's name is a non-empty str")
        machine = self._machine
        index, _ = machine.record({"kind": "permit", "name": limit})
        cancelled = machine.cancel_point(index)
        if cancelled is not None:
            return ReadyFuture(machine, index, None, cancelled)
        granted = machine.completion(index)
        if granted is None:
            raise machine.suspend([index])
        failure = granted.get("failure")
        if failure is not None:
            return ReadyFuture(machine, index, None, failure)
        return None

    async def _execute(
        self,
        index: int,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        persist: bool = False,
        limit: str | None = None,
    ) -> StepOutcome:
        if persist and not await self._persist_before(index):
            return StepOutcome(stopped=True)
        _IN_STEP.set(name)
        STEP_INDEX.set(index)
        policy: RetryPolicy | None = getattr(fn, STEP_RETRY_ATTR, None)
        attempt = 1
        try:
            while True:
                try:
                    if inspect.iscoroutinefunction(fn):
                        result = await fn(*args, **kwargs)
                    else:
                        result = await asyncio.to_thread(fn, *args, **kwargs)
                        if inspect.isawaitable(result):
                            result = await result
                    break
                except TerminalError:
                    raise
                except Exception as exc:
                    if policy is None or policy.max_attempts is None:
                        raise  # the invocation's retry policy decides
                    if attempt >= policy.max_attempts:
                        raise TerminalError(
                            f"step {name!r} failed {attempt} times: {type(exc).__name__}: {exc}",
                            status_code=500,
                        ) from exc
                    logger.info("step %r attempt %d failed: %r; retrying", name, attempt, exc)
                    await asyncio.sleep(_step_backoff_s(policy, attempt))
                    attempt += 1
            value = to_json(result)
        except TerminalError as exc:
            failure: Failure = {"code": exc.status_code, "message": exc.message}
            self._machine.fill(index, _step_entry(name, limit, failure=failure))
            return StepOutcome(failure=failure)
        except Exception as exc:
            logger.warning("step %r of %s failed", name, self.invocation_id, exc_info=True)
            self._machine.fail_step(f"{type(exc).__name__}: {exc}")
            return StepOutcome(crashed=True)
        self._machine.fill(index, _step_entry(name, limit, value=value))
        return StepOutcome(value=value)

    async def _persist_before(self, index: int) -> bool:
        """Streamed attempts: persist what the step at ``index`` must follow (the new entries
        before it, which hold every finished step's result and any unpersisted decision),
        waiting for the orchestrator's ack. False — the step must not run — if the
        orchestrator stopped the stream, or an entry before it cannot be sent yet (a step
        before it still executes while a result after that one is finished): the attempt then
        ends with a checkpoint, as without a stream."""
        assert self._persist is not None and self._persisting is not None
        machine = self._machine
        async with self._persisting:
            if not machine.reserved(index):
                return False  # an earlier step was abandoned: its position is gone
            entries = machine.unsent(index)
            if entries is None:
                machine.abandon(index)
                return False
            if entries:
                if not await self._persist(entries):
                    machine.abandon(index)
                    return False
                machine.persisted(len(entries))
                self._steps = {i: t for i, t in self._steps.items() if i > index or not t.done()}
            return True

    # -- state ---------------------------------------------------------------------------------

    def _require_state(self, op: str, *, write: bool) -> None:
        spec = self._spec
        if spec.service_kind not in ("object", "workflow"):
            raise TerminalError(
                f"{spec.target}: ctx.{op} needs state, and a {spec.service_kind} has none "
                "(use a VirtualObject or a Workflow)"
            )
        if write and spec.kind == "shared":
            raise TerminalError(f"{spec.target} is a shared handler: it may read state, not {op}")

    @staticmethod
    def _check_key(key: object) -> None:
        if not isinstance(key, str):
            raise TypeError(f"a state key is a str, not {type(key).__name__}")
        if key.startswith("\x00"):
            raise ValueError("state keys starting with NUL are reserved for the engine")

    # -- promises (workflows) --------------------------------------------------------------------

    def promise(self, name: str) -> DurablePromise:
        self._enter()
        if self._spec.service_kind != "workflow":
            raise TerminalError(f"{self._spec.target}: durable promises belong to workflows")
        if not isinstance(name, str) or not name:
            raise TypeError("a promise name is a non-empty str")
        return DurablePromise(self, name)

    def _promise_get(self, name: str) -> DurableFuture[Any]:
        self._enter()
        index, _ = self._machine.record({"kind": "promise_get", "name": name})
        known = (self._request.promises or {}).get(name)
        if known is not None and self._machine.completion(index) is None:
            # Resolved before this attempt: the orchestrator completes the entry when it
            # commits it; until then the result comes from the request.
            return ReadyFuture(
                self._machine, index, json_copy(known.get("value")), known.get("failure")
            )
        return CompletionFuture(self._machine, index, lambda v: v)

    def _promise_peek(self, name: str) -> DurableFuture[Any]:
        self._enter()
        known = (self._request.promises or {}).get(name)
        entry: Entry = {"kind": "promise_peek", "name": name, "value": known}
        index, journaled = self._machine.record(entry)
        found = (journaled or entry).get("value")
        if isinstance(found, dict) and "failure" in found:
            return ReadyFuture(self._machine, index, None, found["failure"])
        value = found.get("value") if isinstance(found, dict) else None
        return ReadyFuture(self._machine, index, json_copy(value))

    def _promise_complete(self, name: str, result: dict[str, Any]) -> DurableFuture[None]:
        self._enter()
        entry: Entry = {"kind": "promise_complete", "name": name}
        entry.update(result)  # type: ignore[typeddict-item]
        index, _ = self._machine.record(entry)
        return CompletionFuture(self._machine, index, lambda _: None)

    def get(self, key: str, default: Any = None) -> DurableFuture[Any]:
        self._enter()
        self._check_key(key)
        self._require_state("get", write=False)
        index, journaled = self._machine.record(
            {"kind": "get", "name": key, "value": self._state.get(key)}
        )
        value = journaled.get("value") if journaled is not None else self._state.get(key)
        return ReadyFuture(self._machine, index, default if value is None else json_copy(value))

    def set(self, key: str, value: Any) -> None:
        self._enter()
        self._check_key(key)
        self._require_state("set", write=True)
        encoded = to_json(value)
        _, journaled = self._machine.record({"kind": "set", "name": key, "value": encoded})
        if journaled is None:
            self._state[key] = encoded

    def clear(self, key: str) -> None:
        self._enter()
        self._check_key(key)
        self._require_state("clear", write=True)
        _, journaled = self._machine.record({"kind": "clear", "name": key})
        if journaled is None:
            self._state.pop(key, None)

    def clear_all(self) -> None:
        self._enter()
        self._require_state("clear_all", write=True)
        _, journaled = self._machine.record({"kind": "clear_all"})
        if journaled is None:
            self._state.clear()

    def state_keys(self) -> DurableFuture[list[str]]:
        self._enter()
        self._require_state("state_keys", write=False)
        keys = sorted(self._state)
        index, journaled = self._machine.record({"kind": "keys", "value": keys})
        if journaled is not None:
            keys = list(journaled.get("value") or [])
        return ReadyFuture(self._machine, index, list(keys))

    # -- other invocations ---------------------------------------------------------------------

    def _target(
        self, target: Callable[..., Any] | str, key: str | None
    ) -> tuple[str, Callable[[Any], Any]]:
        if key is not None and not isinstance(key, str):
            raise TypeError(f"key must be a str or None, not {type(key).__name__}")
        if isinstance(target, str):
            service, sep, handler = target.partition("/")
            if not (sep and service and handler) or "/" in handler:
                raise ValueError(f"target {target!r} is not 'Service/handler'")
            return target, lambda v: v
        spec = handler_spec(target)
        if spec is None:
            raise TypeError(f"{target!r} is not a handler: decorate it, or pass 'Service/handler'")
        keyed = spec.service_kind in ("object", "workflow")
        if keyed and key is None:
            raise ValueError(f"{spec.target} is a {spec.service_kind} handler: pass key=")
        if not keyed and key is not None:
            raise ValueError(f"{spec.target} belongs to a {spec.service_kind}: it takes no key")
        returns = spec.hints.get("return", Any)
        return spec.target, lambda v: from_json(v, returns)

    def call(
        self,
        target: Callable[..., Any] | str,
        arg: Any = None,
        key: str | None = None,
        *,
        priority: int | None = None,
        limit_key: str | None = None,
    ) -> DurableFuture[Any]:
        self._enter()
        name, convert = self._target(target, key)
        entry: Entry = {
            "kind": "call",
            "name": name,
            "key": key,
            "input": to_json(arg),
            "id": derive_id(self.invocation_id, self._machine.next_index),
        }
        _flow(entry, priority, limit_key)
        index, _ = self._machine.record(entry)
        return CompletionFuture(self._machine, index, convert)

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
        self._enter()
        name, _ = self._target(target, key)
        entry: Entry = {
            "kind": "send",
            "name": name,
            "key": key,
            "input": to_json(arg),
            "id": derive_id(self.invocation_id, self._machine.next_index),
            "delay_ms": 0 if delay is None else _millis(delay, "delay"),
        }
        _flow(entry, priority, limit_key)
        _, journaled = self._machine.record(entry)
        return str((journaled or entry).get("id"))

    def sleep(self, duration: timedelta | float) -> DurableFuture[None]:
        self._enter()
        # The orchestrator starts the timer on its own clock when it commits the entry (and
        # stamps wake_at on it), so clock skew between endpoint and orchestrator cannot matter.
        millis = _millis(duration, "duration")
        index, _ = self._machine.record({"kind": "sleep", "name": "", "duration_ms": millis})
        return CompletionFuture(self._machine, index, lambda _: None)

    # -- awakeables ----------------------------------------------------------------------------

    def awakeable(self) -> tuple[str, DurableFuture[Any]]:
        self._enter()
        fresh = new_awakeable_id(self.invocation_id, self._machine.next_index)
        index, journaled = self._machine.record({"kind": "awakeable", "name": "", "id": fresh})
        if journaled is None:
            # A new id exists only in this attempt until committed: no step may run (and leak
            # it) before it is persisted.
            self._machine.decided(index)
        awakeable_id = str((journaled or {}).get("id", fresh))
        return awakeable_id, CompletionFuture(self._machine, index, lambda v: v)

    def resolve_awakeable(self, awakeable_id: str, value: Any = None) -> None:
        self._complete_awakeable(awakeable_id, {"value": to_json(value)})

    def reject_awakeable(self, awakeable_id: str, reason: str) -> None:
        self._complete_awakeable(awakeable_id, {"failure": {"code": 500, "message": str(reason)}})

    def _complete_awakeable(self, awakeable_id: str, result: dict[str, Any]) -> None:
        self._enter()
        if not isinstance(awakeable_id, str) or parse_awakeable_id(awakeable_id) is None:
            raise TerminalError(f"{awakeable_id!r} is not an awakeable id", status_code=400)
        entry: Entry = {"kind": "complete_awakeable", "name": "", "id": awakeable_id}
        entry.update(result)  # type: ignore[typeddict-item]
        self._machine.record(entry)

    # -- deterministic helpers -----------------------------------------------------------------

    def random(self) -> random.Random:
        if self._random is None:
            self._random = random.Random(self.invocation_id)
        return self._random

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.random().getrandbits(128), version=4)

    def time(self) -> float:
        self._enter()
        now = _wall_clock()
        _, journaled = self._machine.record({"kind": "run", "name": "ctx.time", "value": now})
        return float(journaled.get("value", now)) if journaled is not None else now


def _step_entry(name: str, limit: str | None, **result: Any) -> Entry:
    """A step's ``run`` entry; ``limit`` names the limit whose permit it held."""
    entry: Entry = {"kind": "run", "name": name, **result}  # type: ignore[typeddict-item]
    if limit is not None:
        entry["limit"] = limit
    return entry


def _flow(entry: Entry, priority: int | None, limit_key: str | None) -> None:
    """A call's or send's flow control (docs/limits.md): the callee's priority (0-10, higher
    first) and limit key, as if the ingress had sent them as headers."""
    if priority is not None:
        if type(priority) is not int or not 0 <= priority <= 10:
            raise ValueError("priority must be a whole number from 0 to 10 (default 5)")
        entry["priority"] = priority
    if limit_key is not None:
        if not isinstance(limit_key, str):
            raise TypeError("limit_key must be a str")
        entry["limit_key"] = limit_key
