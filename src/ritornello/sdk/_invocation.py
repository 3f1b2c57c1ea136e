"""``InvocationContext``: the Context of one attempt, reporting every action to the machine.

It owns what the machine must not touch: the asyncio tasks that execute steps (sync functions
in worker threads, so the event loop never blocks), the wall clock, and the local copy of the
object's state (the request's eager state, kept current by this attempt's sets and clears).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ritornello.protocol import (
    Entry,
    Failure,
    InvokeRequest,
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
from ritornello.sdk._handles import CallHandle, SendHandle

if TYPE_CHECKING:  # these are imported on first use (the handler's import time)
    import random
    import uuid
    from datetime import timedelta

    from ritornello.sdk._fanout import BatchResult, Branch, Policy
    from ritornello.sdk._logger import ReplayAwareLogger
    from ritornello.sdk._tracing import StepTracer
from ritornello.sdk._machine import Machine
from ritornello.sdk._run_options import (
    ERROR_CHARS,
    RUN_OPTIONS,
    StepRetry,
    is_retry_timer,
    millis,
    step_retry_of,
)
from ritornello.sdk._serde import decode, encode, return_hint
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


def _wall_ms() -> int:
    return int(_wall_clock() * 1000)


class DurablePromise:
    """A workflow's named promise: resolvable once, before or after anyone waits on it."""

    __slots__ = ("_ctx", "name")

    def __init__(self, ctx: InvocationContext, name: str) -> None:
        self._ctx = ctx
        self.name = name

    def value(self, type_hint: Any = None, serde: Any = None) -> DurableFuture[Any]:
        """Wait until the promise is resolved (its value, typed by ``type_hint`` or
        ``serde``) or rejected (a TerminalError)."""
        return self._ctx._promise_get(self.name, type_hint, serde)

    def peek(self, type_hint: Any = None, serde: Any = None) -> DurableFuture[Any]:
        """The value now, or None if not resolved yet (a rejection raises TerminalError)."""
        return self._ctx._promise_peek(self.name, type_hint, serde)

    def resolve(
        self, value: Any = None, type_hint: Any = None, serde: Any = None
    ) -> DurableFuture[None]:
        """Resolve it; awaiting raises TerminalError (409) if it was already completed."""
        encoded = encode(value, type_hint, serde)
        return self._ctx._promise_complete(self.name, {"value": encoded})

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
        self._logger: ReplayAwareLogger | None = None
        #: fan-outs running in this attempt (dropped when the attempt ends)
        self._children: set[asyncio.Task[Any]] = set()
        #: step spans (docs/tracing.md): (tracer, parent context) when the request carries a
        #: trace context and opentelemetry is importable; else None (one check per step)
        self._tracing: tuple[StepTracer, Any] | None = None
        if request.traceparent is not None:
            from ritornello.sdk._tracing import step_tracer  # imports opentelemetry

            tracer = step_tracer()
            if tracer is not None:
                self._tracing = (tracer, tracer.parent(request.traceparent, request.tracestate))

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

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        if self._logger is None:
            from ritornello.sdk._logger import LOGGER_PREFIX, ReplayAwareLogger  # on first use

            spec = self._spec
            fields = {
                "invocation_id": self.invocation_id,
                "target": spec.target,
                "attempt": self.attempt,
            }
            base = logging.getLogger(f"{LOGGER_PREFIX}.{spec.service}")
            self._logger = ReplayAwareLogger(
                base, self._machine, fields, lambda: (_IN_STEP.get(), STEP_INDEX.get())
            )
        return self._logger

    async def wait_for_steps(self) -> None:
        """Drop the fan-outs still running (the handler ended without awaiting them), then
        wait until every step started in this attempt has finished (and journaled)."""
        children = list(self._children)
        for task in children:
            task.cancel()
        for task in children:
            with contextlib.suppress(BaseException):
                await task
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
        options = {k: kwargs.pop(k) for k in RUN_OPTIONS if k in kwargs} if kwargs else {}
        if not isinstance(name, str) or not callable(fn):
            raise TypeError("ctx.run(name, fn, *args, **kwargs): name a str, fn a callable")
        limit = options.get("limit")
        if limit is not None and (not isinstance(limit, str) or not limit):
            raise TypeError("ctx.run(..., limit=NAME): the limit's name is a non-empty str")
        retry = step_retry_of(options, fn)
        hint = options.get("type_hint")
        hint = return_hint(fn) if hint is None else hint
        serde = options.get("serde")
        machine = self._machine

        def convert(value: Any) -> Any:
            return _decoded(value, hint, serde, f"step {name!r}")

        failed, since, permit = 0, None, None
        # past the permits and retry timers of earlier attempts of this step (a new step
        # without a limit has none: the usual case skips the loop)
        while limit is not None or machine.replaying:
            if limit is not None:
                permit, refused = self._permit(limit)
                if refused is not None:
                    return refused
            timer = machine.peek()
            if timer is None or timer.get("kind") != "sleep" or not is_retry_timer(timer, name):
                break
            index, journaled = machine.record({"kind": "sleep", "name": name})
            info = (journaled or {}).get("retry") or {}
            failed = int(info.get("attempt", failed + 1))
            since = since if since is not None else info.get("since")
            cancelled = machine.cancel_point(index)
            if cancelled is not None:
                return ReadyFuture(machine, index, None, cancelled)
            if machine.completion(index) is None:
                raise machine.suspend([index])
        first = (
            self._step_checkpoints
            and not machine.replaying
            and (machine.unpersisted_decision or any(t.done() for t in self._steps.values()))
        )
        if first and self._persist is None:
            # Durability "step": a step's side effects never start while an earlier step's
            # result is unpersisted. Checkpoint first; the next attempt replays up to here.
            raise machine.checkpoint()
        index, journaled = machine.reserve({"kind": "run", "name": name})
        if journaled is not None:
            failure = journaled.get("failure")
            value = None if failure is not None else convert(journaled.get("value"))
            return ReadyFuture(machine, index, value, failure)
        step = _Step(
            index, name, fn, args, kwargs, limit, permit, retry, hint, serde, failed, since
        )
        # A streamed attempt persists first inside the step's task and goes on from there.
        execute = self._execute(step, persist=first)
        if self._tracing is not None:
            execute = self._traced(execute, name, index)
        task = asyncio.create_task(execute)
        self._steps[index] = task
        machine.after_new_entry()
        return StepFuture(machine, index, task, convert)

    def _traced(
        self, execute: Coroutine[Any, Any, StepOutcome], name: str, index: int
    ) -> Coroutine[Any, Any, StepOutcome]:
        """``execute`` inside its step span (docs/tracing.md)."""
        assert self._tracing is not None
        tracer, parent = self._tracing
        spec = self._spec
        attributes = {
            "ritornello.invocation_id": self.invocation_id,
            "ritornello.service": spec.service,
            "ritornello.handler": spec.name,
            "ritornello.attempt": self.attempt,
            "ritornello.entry_index": index,
        }
        return tracer.traced(execute, name, parent, attributes)

    def _permit(self, limit: str) -> tuple[int, DurableFuture[Any] | None]:
        """Journal the ``permit`` entry a limited step waits on (docs/limits.md): its index,
        and None when the permit is granted and the step may run. A refused permit (the limit
        is not defined) or a cancellation while waiting: a future failing with it. Not
        granted yet: the attempt suspends here, at once, so nothing after the step takes a
        position before the step has one."""
        machine = self._machine
        index, _ = machine.record({"kind": "permit", "name": limit})
        cancelled = machine.cancel_point(index)
        if cancelled is not None:
            return index, ReadyFuture(machine, index, None, cancelled)
        granted = machine.completion(index)
        if granted is None:
            raise machine.suspend([index])
        failure = granted.get("failure")
        if failure is not None:
            return index, ReadyFuture(machine, index, None, failure)
        return index, None

    async def _execute(self, step: _Step, *, persist: bool = False) -> StepOutcome:
        index, name = step.index, step.name
        if persist and not await self._persist_before(index):
            return StepOutcome(stopped=True)
        _IN_STEP.set(name)
        STEP_INDEX.set(index)
        started_ms = _wall_ms()
        fn = step.fn
        try:
            if inspect.iscoroutinefunction(fn):
                result = await fn(*step.args, **step.kwargs)
            else:
                result = await asyncio.to_thread(fn, *step.args, **step.kwargs)
                if inspect.isawaitable(result):
                    result = await result
            value = encode(result, step.hint, step.serde)
        except TerminalError as exc:
            failure: Failure = {"code": exc.status_code, "message": exc.message}
            self._machine.fill(index, step.entry(failure=failure))
            return StepOutcome(failure=failure)
        except Exception as exc:
            if step.retry is not None:
                return self._retry(step, exc, started_ms)
            logger.warning("step %r of %s failed", name, self.invocation_id, exc_info=True)
            self._machine.fail_step(f"{type(exc).__name__}: {exc}")
            return StepOutcome(crashed=True)
        self._machine.fill(index, step.entry(value=value))
        return StepOutcome(value=value)

    def _retry(self, step: _Step, exc: Exception, started_ms: int) -> StepOutcome:
        """A step with run options failed: a durable timer before its next attempt, or, with
        the options exhausted, its failure journaled (module ``_run_options``)."""
        assert step.retry is not None
        failed = step.failed + 1
        since = step.since if isinstance(step.since, int) else started_ms
        error = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
        if step.retry.exhausted(failed, since, _wall_ms()):
            logger.warning("step %r of %s failed %d times", step.name, self.invocation_id, failed)
            message = f"step {step.name!r} failed after {failed} attempt(s): {error}"
            failure: Failure = {"code": 500, "message": message}
            self._machine.fill(step.index, step.entry(failure=failure))
            return StepOutcome(failure=failure)
        logger.info("step %r attempt %d failed: %s; retrying", step.name, failed, error)
        timer: Entry = {
            "kind": "sleep",
            "name": step.name,
            "duration_ms": step.retry.backoff_ms(failed),
            "retry": {"attempt": failed, "since": since, "error": error},
        }
        self._machine.retry_step(step.index, step.released(timer))
        return StepOutcome(stopped=True)

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

    # -- fan-out -------------------------------------------------------------------------------

    def child(
        self,
        name: str,
        fn: Callable[..., Awaitable[Any]],
        /,
        *args: Any,
        type_hint: Any = None,
        serde: Any = None,
    ) -> DurableFuture[Any]:
        from ritornello.sdk._fanout import Policy  # (imported on first use: import time)

        self._enter()
        _check_name(name, "child")
        hint = return_hint(fn) if type_hint is None else type_hint
        branches: list[tuple[str, Branch]] = [(name, lambda: fn(self, *args))]
        return self._fan_out(name, "child", branches, Policy(), hint, serde)

    def map(
        self,
        name: str,
        items: Iterable[Any],
        fn: Callable[..., Awaitable[Any]],
        /,
        *,
        max_concurrency: int | None = None,
        min_successful: int | None = None,
        tolerated_failures: int | None = None,
        tolerated_failure_percentage: float | None = None,
        type_hint: Any = None,
        serde: Any = None,
    ) -> DurableFuture[BatchResult[Any]]:
        from ritornello.sdk._fanout import Policy, map_branches

        self._enter()
        _check_name(name, "map")
        policy = Policy(
            max_concurrency, min_successful, tolerated_failures, tolerated_failure_percentage
        )
        hint = return_hint(fn) if type_hint is None else type_hint
        branches = map_branches(name, list(items), fn, self)
        return self._fan_out(name, "map", branches, policy, hint, serde)

    def parallel(
        self,
        name: str,
        /,
        *branches: Callable[..., Awaitable[Any]],
        max_concurrency: int | None = None,
        min_successful: int | None = None,
        tolerated_failures: int | None = None,
        tolerated_failure_percentage: float | None = None,
        type_hint: Any = None,
        serde: Any = None,
    ) -> DurableFuture[BatchResult[Any]]:
        from ritornello.sdk._fanout import Policy, branch_hint, parallel_branches

        self._enter()
        _check_name(name, "parallel")
        policy = Policy(
            max_concurrency, min_successful, tolerated_failures, tolerated_failure_percentage
        )
        hint = branch_hint(branches) if type_hint is None else type_hint
        named = parallel_branches(branches, self)
        return self._fan_out(name, "parallel", named, policy, hint, serde)

    def _fan_out(
        self,
        name: str,
        kind: str,
        branches: list[tuple[str, Branch]],
        policy: Policy,
        hint: Any,
        serde: Any,
    ) -> DurableFuture[Any]:
        """Take the fan-out's entry and start it (tracked: dropped when the attempt ends)."""
        from ritornello.sdk._fanout import FanOut

        return FanOut(self._machine, name, kind, branches, policy, hint, serde).start(
            self._children
        )

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

    def get(
        self, key: str, default: Any = None, *, type_hint: Any = None, serde: Any = None
    ) -> DurableFuture[Any]:
        self._enter()
        self._check_key(key)
        self._require_state("get", write=False)
        index, journaled = self._machine.record(
            {"kind": "get", "name": key, "value": self._state.get(key)}
        )
        value = journaled.get("value") if journaled is not None else self._state.get(key)
        if value is None:
            return ReadyFuture(self._machine, index, default)
        return ReadyFuture(
            self._machine, index, _decoded(value, type_hint, serde, f"state {key!r}")
        )

    def set(self, key: str, value: Any, *, type_hint: Any = None, serde: Any = None) -> None:
        self._enter()
        self._check_key(key)
        self._require_state("set", write=True)
        encoded = encode(value, type_hint, serde)
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

    # -- promises (workflows) --------------------------------------------------------------------

    def promise(self, name: str) -> DurablePromise:
        self._enter()
        if self._spec.service_kind != "workflow":
            raise TerminalError(f"{self._spec.target}: durable promises belong to workflows")
        if not isinstance(name, str) or not name:
            raise TypeError("a promise name is a non-empty str")
        return DurablePromise(self, name)

    def _promise_get(self, name: str, type_hint: Any, serde: Any) -> DurableFuture[Any]:
        self._enter()
        index, _ = self._machine.record({"kind": "promise_get", "name": name})
        known = (self._request.promises or {}).get(name)

        def convert(value: Any) -> Any:
            return _decoded(value, type_hint, serde, f"promise {name!r}")

        if known is not None and self._machine.completion(index) is None:
            # Resolved before this attempt: the orchestrator completes the entry when it
            # commits it; until then the result comes from the request.
            failure = known.get("failure")
            value = None if failure is not None else convert(known.get("value"))
            return ReadyFuture(self._machine, index, value, failure)
        return CompletionFuture(self._machine, index, convert)

    def _promise_peek(self, name: str, type_hint: Any, serde: Any) -> DurableFuture[Any]:
        self._enter()
        known = (self._request.promises or {}).get(name)
        entry: Entry = {"kind": "promise_peek", "name": name, "value": known}
        index, journaled = self._machine.record(entry)
        found = (journaled or entry).get("value")
        if isinstance(found, dict) and "failure" in found:
            return ReadyFuture(self._machine, index, None, found["failure"])
        value = found.get("value") if isinstance(found, dict) else None
        if value is None:
            return ReadyFuture(self._machine, index, None)
        return ReadyFuture(
            self._machine, index, _decoded(value, type_hint, serde, f"promise {name!r}")
        )

    def _promise_complete(self, name: str, result: dict[str, Any]) -> DurableFuture[None]:
        self._enter()
        entry: Entry = {"kind": "promise_complete", "name": name}
        entry.update(result)  # type: ignore[typeddict-item]
        index, _ = self._machine.record(entry)
        return CompletionFuture(self._machine, index, _none)

    # -- other invocations ---------------------------------------------------------------------

    def _target(self, target: Callable[..., Any] | str, key: str | None) -> tuple[str, Any, Any]:
        """``"Service/handler"``, and the callee's return annotation and output serde."""
        if key is not None and not isinstance(key, str):
            raise TypeError(f"key must be a str or None, not {type(key).__name__}")
        if isinstance(target, str):
            service, sep, handler = target.partition("/")
            if not (sep and service and handler) or "/" in handler:
                raise ValueError(f"target {target!r} is not 'Service/handler'")
            return target, None, None
        spec = handler_spec(target)
        if spec is None:
            raise TypeError(f"{target!r} is not a handler: decorate it, or pass 'Service/handler'")
        keyed = spec.service_kind in ("object", "workflow")
        if keyed and key is None:
            raise ValueError(f"{spec.target} is a {spec.service_kind} handler: pass key=")
        if not keyed and key is not None:
            raise ValueError(f"{spec.target} belongs to a {spec.service_kind}: it takes no key")
        returns = spec.hints.get("return")
        return spec.target, returns, getattr(spec, "output_serde", None)

    def _invoke(
        self,
        kind: str,
        target: Callable[..., Any] | str,
        arg: Any,
        key: str | None,
        flow: dict[str, Any],
    ) -> tuple[int, Entry | None, Entry, Any, Any]:
        self._enter()
        name, returns, out_serde = self._target(target, key)
        spec = None if isinstance(target, str) else handler_spec(target)
        in_hint = spec.hints.get(spec.input_param) if spec and spec.input_param else None
        in_serde = getattr(spec, "input_serde", None) if spec is not None else None
        entry: Entry = {
            "kind": kind,
            "name": name,
            "key": key,
            "input": encode(arg, in_hint, in_serde),
            "id": derive_id(self.invocation_id, self._machine.next_index),
        }
        _flow(entry, **flow)
        index, journaled = self._machine.record(entry)
        return index, journaled, entry, returns, out_serde

    def call(
        self,
        target: Callable[..., Any] | str,
        arg: Any = None,
        key: str | None = None,
        *,
        type_hint: Any = None,
        serde: Any = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        priority: int | None = None,
        limit_key: str | None = None,
    ) -> CallHandle[Any]:
        flow = {
            "idempotency_key": idempotency_key,
            "headers": headers,
            "priority": priority,
            "limit_key": limit_key,
        }
        index, journaled, entry, returns, out_serde = self._invoke("call", target, arg, key, flow)
        hint = returns if type_hint is None else type_hint
        how = out_serde if serde is None else serde

        def convert(value: Any) -> Any:
            return _decoded(value, hint, how, f"the result of {entry['name']}")

        return CallHandle(self, index, _callee_id(journaled, entry), convert)

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
        flow = {
            "idempotency_key": idempotency_key,
            "headers": headers,
            "priority": priority,
            "limit_key": limit_key,
            "delay_ms": 0 if delay is None else millis(delay, "delay"),
        }
        _, journaled, entry, returns, _ = self._invoke("send", target, arg, key, flow)
        return SendHandle(self, _callee_id(journaled, entry), returns)

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
        entry = self._generic("call", service, handler, arg, key)
        _flow(entry, idempotency_key=idempotency_key, headers=headers)
        index, journaled = self._machine.record(entry)

        def convert(value: Any) -> bytes:
            # The orchestrator marks a call to a raw-bytes handler when it commits it; the
            # result only ever arrives in a later attempt, which replays that entry.
            if (journaled or {}).get("output_content_type") is not None:
                raw: bytes = _decoded(value, bytes, None, f"the result of {entry['name']}")
                return raw
            return json.dumps(value, separators=(",", ":")).encode()

        return CallHandle(self, index, _callee_id(journaled, entry), convert)

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
        entry = self._generic("send", service, handler, arg, key)
        entry["delay_ms"] = 0 if delay is None else millis(delay, "delay")
        _flow(entry, idempotency_key=idempotency_key, headers=headers)
        _, journaled = self._machine.record(entry)
        return SendHandle(self, _callee_id(journaled, entry))

    def _generic(self, kind: str, service: str, handler: str, arg: bytes, key: str | None) -> Entry:
        """The entry of a generic call or send: the body as base64, marked ``raw``."""
        self._enter()
        if not isinstance(service, str) or not isinstance(handler, str):
            raise TypeError(f"ctx.generic_{kind}(service, handler, arg: bytes): names are str")
        if not isinstance(arg, (bytes, bytearray)):
            raise TypeError(f"ctx.generic_{kind}: arg is the request body, bytes")
        name, _, _ = self._target(f"{service}/{handler}", key)
        entry: Entry = {
            "kind": kind,
            "name": name,
            "key": key,
            "input": encode(bytes(arg), bytes),
            "raw": True,
            "id": derive_id(self.invocation_id, self._machine.next_index),
        }
        return entry

    def attach(self, invocation_id: str, *, type_hint: Any = None) -> DurableFuture[Any]:
        self._enter()
        _check_invocation_id(invocation_id)
        index, _ = self._machine.record({"kind": "attach", "name": "", "id": invocation_id})

        def convert(value: Any) -> Any:
            return _decoded(value, type_hint, None, f"the result of {invocation_id}")

        return CompletionFuture(self._machine, index, convert)

    def cancel(self, invocation_id: str) -> DurableFuture[None]:
        self._enter()
        _check_invocation_id(invocation_id)
        entry: Entry = {"kind": "signal", "name": "cancel", "id": invocation_id, "signal": 1}
        index, _ = self._machine.record(entry)
        return ReadyFuture(self._machine, index, None)

    def sleep(self, duration: timedelta | float) -> DurableFuture[None]:
        self._enter()
        # The orchestrator starts the timer on its own clock when it commits the entry (and
        # stamps wake_at on it), so clock skew between endpoint and orchestrator cannot matter.
        ms = millis(duration, "duration")
        index, _ = self._machine.record({"kind": "sleep", "name": "", "duration_ms": ms})
        return CompletionFuture(self._machine, index, _none)

    # -- awakeables ----------------------------------------------------------------------------

    def awakeable(
        self, *, type_hint: Any = None, serde: Any = None
    ) -> tuple[str, DurableFuture[Any]]:
        self._enter()
        fresh = new_awakeable_id(self.invocation_id, self._machine.next_index)
        index, journaled = self._machine.record({"kind": "awakeable", "name": "", "id": fresh})
        if journaled is None:
            # A new id exists only in this attempt until committed: no step may run (and leak
            # it) before it is persisted.
            self._machine.decided(index)
        awakeable_id = str((journaled or {}).get("id", fresh))

        def convert(value: Any) -> Any:
            return _decoded(value, type_hint, serde, f"awakeable {awakeable_id}")

        return awakeable_id, CompletionFuture(self._machine, index, convert)

    def resolve_awakeable(
        self, awakeable_id: str, value: Any = None, *, type_hint: Any = None, serde: Any = None
    ) -> None:
        self._complete_awakeable(awakeable_id, {"value": encode(value, type_hint, serde)})

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
            import random

            self._random = random.Random(self.invocation_id)
        return self._random

    def uuid(self) -> uuid.UUID:
        import uuid

        return uuid.UUID(int=self.random().getrandbits(128), version=4)

    def time(self) -> float:
        self._enter()
        now = _wall_clock()
        _, journaled = self._machine.record({"kind": "run", "name": "ctx.time", "value": now})
        return float(journaled.get("value", now)) if journaled is not None else now


class _Step:
    """One attempt of a step: what ``_execute`` runs and how it journals the outcome."""

    __slots__ = (
        "args",
        "failed",
        "fn",
        "hint",
        "index",
        "kwargs",
        "limit",
        "name",
        "permit",
        "retry",
        "serde",
        "since",
    )

    def __init__(
        self,
        index: int,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        limit: str | None,
        permit: int | None,
        retry: StepRetry | None,
        hint: Any,
        serde: Any,
        failed: int,
        since: Any,
    ) -> None:
        self.index, self.name, self.fn, self.args, self.kwargs = index, name, fn, args, kwargs
        self.limit, self.permit, self.retry = limit, permit, retry
        self.hint, self.serde, self.failed, self.since = hint, serde, failed, since

    def entry(self, **result: Any) -> Entry:
        """The step's ``run`` entry with ``result`` (``value`` or ``failure``)."""
        entry: Entry = {"kind": "run", "name": self.name, **result}  # type: ignore[typeddict-item]
        return self.released(entry)

    def released(self, entry: Entry) -> Entry:
        """``entry`` giving back the permit the step held, if limited: ``limit`` names it and
        ``permit`` its entry's index when that is not the entry just before."""
        if self.limit is not None:
            entry["limit"] = self.limit
            if self.permit is not None and self.permit != self.index - 1:
                entry["permit"] = self.permit
        return entry


def _none(_: Any) -> None:
    return None


def _decoded(value: Any, hint: Any, serde: Any, what: str) -> Any:
    """``decode``, with a journaled value that no longer fits its type named clearly."""
    try:
        return decode(value, hint, serde)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what}: the journaled value does not fit {hint!r}: {exc}") from None


def _callee_id(journaled: Entry | None, entry: Entry) -> str | None:
    """The callee's id: the journal's (the orchestrator's word), the derived one for a new
    entry, or None while an idempotency key leaves it to the orchestrator."""
    if journaled is not None:
        return str(journaled.get("id"))
    return None if "idempotency_key" in entry else str(entry["id"])


def _check_name(name: object, what: str) -> None:
    if not isinstance(name, str) or not name:
        raise TypeError(f"ctx.{what}(name, ...): the name is a non-empty str")


def _check_invocation_id(invocation_id: object) -> None:
    if not isinstance(invocation_id, str) or not invocation_id.startswith("inv_"):
        raise ValueError(f"{invocation_id!r} is not an invocation id")


def _flow(
    entry: Entry,
    *,
    priority: int | None = None,
    limit_key: str | None = None,
    idempotency_key: str | None = None,
    headers: Mapping[str, str] | None = None,
    delay_ms: int | None = None,
) -> None:
    """A call's or send's options: the callee's priority (0-10, higher first) and limit key
    (docs/limits.md), its idempotency key, the headers its input carries, a send's delay."""
    if delay_ms is not None:
        entry["delay_ms"] = delay_ms
    if priority is not None:
        if type(priority) is not int or not 0 <= priority <= 10:
            raise ValueError("priority must be a whole number from 0 to 10 (default 5)")
        entry["priority"] = priority
    if limit_key is not None:
        if not isinstance(limit_key, str):
            raise TypeError("limit_key must be a str")
        entry["limit_key"] = limit_key
    if idempotency_key is not None:
        if not isinstance(idempotency_key, str) or not idempotency_key:
            raise ValueError("idempotency_key must be a non-empty str")
        entry["idempotency_key"] = idempotency_key
    if headers:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise TypeError("headers must map str to str")
        entry["headers"] = {k.lower(): v for k, v in headers.items()}
