"""AWS Lambda durable functions as a ``ProtocolAdapter``: an ``@durable_execution`` handler
(AWS's SDK, unmodified) is the one handler, ``run``, of a Ritornello service.

An attempt invokes the function with the durable invocation event the SDK reads
(``DurableExecutionArn``, ``CheckpointToken``, ``InitialExecutionState`` with every operation
so far) and waits for either of:

* a checkpoint request from the function (through the API on the ingress, ``Runs``): its updates
  are returned to the core as a ``checkpoint`` answer of journal entries (``_operations``); once
  the core committed them (the next ``attempt`` call finds them in the journal) the request is
  answered (the new state of the operations it touched) and the attempt waits again; entries
  the core refused are never acknowledged (the run is retired, the SDK re-drives). So a
  checkpoint is acknowledged only once it is durable, and every stretch is one answer of the
  core's: durability and fencing are those of any attempt.
* the function's answer: ``SUCCEEDED`` / ``FAILED`` end the invocation with its result;
  ``PENDING`` suspends it on the timers, callbacks and calls its operations wait for, and the
  attempt that follows their completion invokes the function again (a replay from the
  operations).

A run that ends any other way (timeout, function error, the driver stopping) is retired: its
checkpoint token is refused from then on. A function error (the function ran and failed: a
runtime exit, say) is a failed attempt, retried after backoff, whose run is journaled as an
``invocation_completed`` marker with the error (the history's InvocationCompleted with
``Error``, as Lambda records it before invoking the function again). A cancelled invocation
ends failed (409) without invoking the function again. A function registered with an execution
timeout journals its deadline's timer before the first run and ends TIMED_OUT past it
(``_deadline``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ritornello.protocol import (
    DiscoveryResponse,
    Entry,
    HandlerInfo,
    InvokeResponse,
    ServiceInfo,
)
from ritornello.protocol._entries import CANCEL_INDEX

from ..._json import dumpb, dumps, loads
from ...core import Answered, AttemptFailed, Invocation, Invoke
from ...errors import StateConflictError
from ...invokers import FunctionError, Invoker, InvokerError, throttled
from .._base import Exchange, ProtocolAdapter
from ._callbacks import decide, due, heartbeat_of, timeout_result
from ._deadline import (
    FIELD,
    Deadline,
    deadline_entry,
    deadline_of,
    needs_deadline,
    timed_out_result,
    with_deadline,
)
from ._fold import Fold, check_types
from ._operations import UpdateError, ends, entries_of, to_wire, waiting
from ._runs import INVALID_TOKEN, Checkpoint, Run, Runs

log = logging.getLogger("ritornello.aws_durable")

WIRE = "aws-durable"
#: The one handler of a durable function's service.
HANDLER = "run"


def discovery(service: str, execution_timeout_s: int | None = None) -> DiscoveryResponse:
    """What a durable function serves: service ``service`` with one handler, ``run``; its
    ``wire_info`` keeps the registration's options (``execution_timeout_s``: ``_deadline``)."""
    info = {} if execution_timeout_s is None else {FIELD: execution_timeout_s}
    return DiscoveryResponse(
        services=(ServiceInfo(name=service, kind="service", handlers=(HandlerInfo(HANDLER),)),),
        wire=WIRE,
        wire_info=info,
    )


def execution_timeout_of(found: DiscoveryResponse) -> int | None:
    """The execution timeout a durable function's stored discovery keeps (None: none)."""
    value = (found.wire_info or {}).get(FIELD)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def execution_arn(function_arn: str, invocation_id: str) -> str:
    """The durable execution ARN of an invocation (its last part is the EXECUTION operation's
    id, which the SDK reads)."""
    return f"{function_arn}/durable-execution/{invocation_id}/{invocation_id}"


def invocation_of(arn: str) -> str | None:
    """The invocation an execution ARN names (None: not one of ours)."""
    head, _, last = arn.rpartition("/")
    if "/durable-execution/" not in arn or not last.startswith("inv_"):
        return None
    return last if head.endswith("/" + last) else None


class _Exchange(Exchange):
    """The run an attempt left open by a checkpoint, and the checkpoint awaiting its commit."""

    __slots__ = (
        "call",
        "committed_len",
        "deadline",
        "final",
        "fold",
        "pending",
        "run",
        "runs",
        "seen",
        "started_ms",
        "touched",
    )

    def __init__(self, runs: Runs) -> None:
        self.runs = runs
        self.run: Run | None = None
        self.call: asyncio.Task[bytes] | None = None
        self.pending: Checkpoint | None = None
        self.touched: list[str] = []
        #: the journal's length once the pending checkpoint is committed
        self.committed_len = 0
        #: the completions the run started with
        self.seen: set[int] = set()
        #: the pending checkpoint ends the execution (its result checkpointed)
        self.final = False
        #: when the run's Lambda invoke was made (Unix ms)
        self.started_ms = 0
        #: the execution's deadline (``_deadline``), read when the run starts
        self.deadline: Deadline | None = None
        #: the run's operations, folded as its checkpoints are committed (``_fold``)
        self.fold: Fold | None = None

    def close(self) -> None:
        if self.final and self.pending is not None and not self.pending.reply.done():
            # The driver ends after the commit of the result's "done" answer: the execution
            # is over, which an answer without a token says. Had the commit failed, the
            # invocation is re-driven and the function run again (its answer here dropped).
            self.pending.reply.set_result((200, None, {"NewExecutionState": {"Operations": []}}))
        self.final = False
        if self.pending is not None and not self.pending.reply.done():
            # committed or not, this process no longer drives it: the SDK re-drives
            self.pending.reply.set_result(
                (500, "ServiceException", {"message": "the attempt ended; retry"})
            )
        self.pending = None
        if self.call is not None:
            self.call.cancel()  # the Lambda's answer is dropped; its token refused below
            self.call = None
        if self.run is not None:
            self.runs.end(self.run)
            self.run = None


class AwsDurableProtocol(ProtocolAdapter):
    """AWS's durable execution protocol over Lambda's Invoke API."""

    name = WIRE

    def __init__(
        self, runs: Runs, function_arn: str, execution_timeout_s: int | None = None
    ) -> None:
        self.runs = runs
        self.function_arn = function_arn
        #: the registration's execution timeout (``_deadline``): None, none
        self.execution_timeout_s = execution_timeout_s

    def read_discovery(self, raw: bytes) -> DiscoveryResponse:
        return DiscoveryResponse.decode(raw)

    def new_exchange(self) -> Exchange:
        return _Exchange(self.runs)

    async def attempt(
        self, invoker: Invoker, invoke: Invoke, exchange: Exchange, timeout_s: float
    ) -> Answered | AttemptFailed:
        assert isinstance(exchange, _Exchange)
        inv = invoke.invocation
        rec = inv.rec
        if exchange.pending is not None and len(inv.entries) != exchange.committed_len:
            # the core refused the checkpoint's entries (or they did not land): never acked
            exchange.close()
        if exchange.pending is not None and exchange.run is not None:
            # the checkpoint handed to the core was committed: answer it, go on with the run
            run, done = exchange.run, exchange.pending
            exchange.pending = None
            assert exchange.fold is not None  # set with the run
            ops = run.operations = exchange.fold.update(inv.entries, inv.completions)
            state = [to_wire(ops[i]) for i in dict.fromkeys(exchange.touched) if i in ops]
            body = {"CheckpointToken": run.token, "NewExecutionState": {"Operations": state}}
            if not done.reply.done():
                done.reply.set_result((200, None, body))
        else:
            exchange.close()  # a new attempt: whatever ran before is superseded
            if CANCEL_INDEX in inv.completions:
                return _done(rec.id, failure={"code": 409, "message": "cancelled"})
            seconds = self.execution_timeout_s
            if seconds is not None and needs_deadline(inv.entries, seconds):  # before any run
                entry: Any = deadline_entry(seconds, int(time.time() * 1000))
                return Answered(rec.id, InvokeResponse("checkpoint", [entry]))
            exchange.deadline = deadline_of(inv.entries)
            if _past(exchange.deadline, inv.completions):  # decided, not invoked
                return _timed_out(rec.id, exchange)
            if due(inv.entries, inv.completions):  # callback timers: decided, not invoked
                return await self._callback_timers(inv)
            idle = rec.waiting and not any(i in inv.completions for i in rec.waiting)
            if rec.status == "suspended" and idle:
                # woken by nothing it waits on (a finished callback's timer): suspended again
                return Answered(rec.id, InvokeResponse("suspended", [], list(rec.waiting)))
            if not hasattr(invoker, "invoke_event"):
                return AttemptFailed(rec.id, "aws-durable: the deployment is not a Lambda ARN")
            exchange.seen = set(inv.completions)
            run = exchange.run = self.runs.start(rec.id, rec.attempt)
            exchange.fold = Fold(rec.id, rec.created_at)  # a new run folds from scratch
            ops = run.operations = exchange.fold.update(inv.entries, inv.completions)
            event = {
                "DurableExecutionArn": execution_arn(self.function_arn, rec.id),
                "CheckpointToken": run.token,
                "InitialExecutionState": {"Operations": list(ops.values())},
            }
            exchange.started_ms = int(time.time() * 1000)
            exchange.call = asyncio.ensure_future(invoker.invoke_event(dumpb(event)))
        return await self._wait(exchange, run, inv, timeout_s)

    async def _callback_timers(self, inv: Invocation) -> Answered | AttemptFailed:
        """Decide what the completed timers of open callbacks come to (``_callbacks``): new
        heartbeat timers, journaled, and timeouts, committed as the awakeables' completions
        through the engine's path (fresh: a completion that came first wins). Then suspended
        on those awakeables (completed now: the core invokes the function at once) and on
        what else the operations wait for."""
        rec = inv.rec
        stored: dict[int, str] = {}
        fired = [d for d in due(inv.entries, inv.completions) if d.heartbeat]
        if any(heartbeat_of(inv.completions.get(d.index)) is None for d in fired):
            if self.runs.read_journal is None:
                return AttemptFailed(rec.id, "aws-durable: no store to read heartbeats from")
            _, texts = await self.runs.read_journal(rec.id)
            stored = {int(loads(t)["index"]): t for t in texts}
        now = int(time.time() * 1000)
        renewed, expire = decide(inv.entries, inv.completions, stored, rec.id, now)
        for of, heartbeat in expire.items():
            if self.runs.complete_awakeable is None:
                return AttemptFailed(rec.id, "aws-durable: no engine to time callbacks out")
            aid = str(loads(inv.entries[of]).get("id"))
            try:
                await self.runs.complete_awakeable(aid, timeout_result(heartbeat, now))
            except StateConflictError:
                log.info("callback %s completed before its timeout", aid)
        after = [*inv.entries, *map(dumps, renewed)]
        wait_on = sorted({*waiting(after, inv.completions), *expire})
        wait_on = with_deadline(wait_on, deadline_of(inv.entries))
        timers: list[Entry] = renewed  # type: ignore[assignment]
        return Answered(rec.id, InvokeResponse("suspended", timers, wait_on))

    async def _wait(
        self, exchange: _Exchange, run: Run, inv: Invocation, timeout_s: float
    ) -> Answered | AttemptFailed:
        """The run's next checkpoint (as a ``checkpoint`` answer) or its final answer."""
        rec = inv.rec
        call = exchange.call
        assert call is not None
        loop = asyncio.get_running_loop()
        due = wake = loop.time() + timeout_s
        if exchange.deadline is not None:  # woken at the deadline too
            left_s = exchange.deadline.at_ms / 1000 - time.time()
            wake = min(due, loop.time() + max(0.0, left_s) + 0.001)
        while True:
            if _past(exchange.deadline, {}):  # the run is retired: nothing it sends is taken
                return _timed_out(rec.id, exchange)
            if run.inbox.empty() and not call.done():
                getting = asyncio.ensure_future(run.inbox.get())
                try:
                    await asyncio.wait(
                        {getting, call},
                        timeout=max(0.0, wake - loop.time()),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    if not getting.done():
                        getting.cancel()
                if getting.done() and not getting.cancelled():
                    run.inbox.put_nowait(getting.result())  # back in order: read below
            if not run.inbox.empty():
                checkpoint = run.inbox.get_nowait()
                try:
                    if exchange.fold is not None:  # the operations of every earlier checkpoint
                        check_types(checkpoint.updates, exchange.fold.operations, rec.id)
                    entries = entries_of(
                        checkpoint.updates,
                        rec.id,
                        len(inv.entries),
                        int(time.time() * 1000),
                        self.runs.target_of,
                    )
                except UpdateError as exc:  # validated at the API: a target that is not
                    # there, or an operation's type changed
                    checkpoint.reply.set_result(
                        (400, "InvalidParameterValueException", {"message": str(exc)})
                    )
                    continue
                exchange.pending = checkpoint
                exchange.committed_len = len(inv.entries) + len(entries)
                exchange.touched = [u["Id"] for u in checkpoint.updates]
                if ends(checkpoint.updates):  # answered (without a token) once committed
                    exchange.final = True
                    return Answered(rec.id, InvokeResponse("done", entries))
                return Answered(rec.id, InvokeResponse("checkpoint", entries))
            if call.done():
                exchange.call = None
                self.runs.end(run)
                exchange.run = None
                return self._final(inv, call, exchange.seen, exchange.started_ms)
            if loop.time() >= due:
                return AttemptFailed(rec.id, f"transport: attempt timed out after {timeout_s:g} s")

    def _final(
        self, inv: Invocation, call: asyncio.Task[bytes], seen: set[int], started_ms: int
    ) -> Answered | AttemptFailed:
        """What the function's answer comes to (``seen``: the completions its run started
        with). An answer that ends or suspends the invocation journals the run's
        ``invocation_completed`` marker first (the history's InvocationCompleted event)."""
        rec = inv.rec
        marker = completed_marker(started_ms, int(time.time() * 1000))
        exc = call.exception()
        if exc is not None:
            if isinstance(exc, FunctionError):  # it ran and failed: its run is history
                error = {"ErrorType": exc.error_type, "ErrorMessage": exc.error_message}
                marker = completed_marker(started_ms, int(time.time() * 1000), error)
                failed = {"kind": "transport", "message": str(exc)}
                return Answered(rec.id, InvokeResponse("error", [marker], error=failed))
            if isinstance(exc, InvokerError):
                return AttemptFailed(rec.id, f"transport: {exc}", throttled(exc))
            return AttemptFailed(rec.id, f"aws-durable: the invoke failed: {exc!r}")
        try:
            answer = loads(call.result())
        except ValueError as exc:
            return AttemptFailed(rec.id, f"aws-durable: the answer is not JSON: {exc}")
        status = answer.get("Status") if isinstance(answer, dict) else None
        if status == "SUCCEEDED":
            result = answer.get("Result")
            if not isinstance(result, str) or not result:
                return _done(rec.id, marker, value=None)
            try:
                return _done(rec.id, marker, value=loads(result))
            except ValueError:
                return _done(rec.id, marker, value=result)
        if status == "FAILED":
            error = answer.get("Error") if isinstance(answer.get("Error"), dict) else {}
            kind, message = error.get("ErrorType"), error.get("ErrorMessage")
            text = ": ".join(str(p) for p in (kind, message) if p) or "the execution failed"
            failure = {"code": 500, "message": text, "aws": error}  # aws: the history's
            return _done(rec.id, marker, failure=failure)
        if status == "PENDING":
            # a callback timer that completed while it ran: decided by the next attempt, at once
            wait_on = [d.index for d in due(inv.entries, inv.completions)]
            wait_on += waiting(inv.entries, inv.completions)
            if not wait_on:
                # What it waited on completed while it ran (a quick callee, say): suspended on
                # that, the core invokes it again at once.
                wait_on = [i for i in waiting(inv.entries, {}) if i not in seen]
                wait_on = [i for i in wait_on if i in inv.completions]
            if not wait_on:
                return AttemptFailed(rec.id, "aws-durable: PENDING with nothing to wait on")
            wait_on = with_deadline(wait_on, deadline_of(inv.entries))
            return Answered(rec.id, InvokeResponse("suspended", [marker], wait_on))
        shown = str(status)[:100]
        return AttemptFailed(rec.id, f"aws-durable: the function answered status {shown}")


def completed_marker(started_ms: int, ended_ms: int, error: dict[str, str] | None = None) -> Entry:
    """The journal entry marking that a run (one Lambda invocation) ended: no operation (it
    has no ``aws`` update, so the fold skips it), its times for the history, and the error of
    a run that failed (``ErrorType``, ``ErrorMessage``)."""
    run: dict[str, Any] = {"start": started_ms, "end": ended_ms}
    if error is not None:
        run["error"] = error
    marker: dict[str, Any] = {
        "kind": "run",
        "name": "INVOCATION COMPLETED",
        "invocation_completed": run,
        "at": ended_ms,
    }
    return marker  # type: ignore[return-value]


def _past(deadline: Deadline | None, completions: dict[int, str]) -> bool:
    """Whether the execution's deadline has come (its timer completed, or the clock says so)."""
    if deadline is None:
        return False
    return deadline.index in completions or time.time() * 1000 >= deadline.at_ms


def _timed_out(invocation_id: str, exchange: _Exchange) -> Answered:
    """End the execution TIMED_OUT (``_deadline``): its run retired first, a checkpoint
    waiting for it refused, its answer dropped."""
    run, deadline = exchange.run, exchange.deadline
    assert deadline is not None
    while run is not None and not run.inbox.empty():
        waiting_checkpoint = run.inbox.get_nowait()
        if not waiting_checkpoint.reply.done():
            message = f"{INVALID_TOKEN}: the execution timed out"
            waiting_checkpoint.reply.set_result(
                (400, "InvalidParameterValueException", {"message": message})
            )
    exchange.close()
    return _done(invocation_id, failure=timed_out_result(deadline.seconds))


def _done(invocation_id: str, *before: Entry, **result: Any) -> Answered:
    entry: dict[str, Any] = {"kind": "output", **result}
    entries = [*before, entry]
    return Answered(invocation_id, InvokeResponse("done", entries))  # type: ignore[arg-type]
