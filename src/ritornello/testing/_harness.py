"""``Harness``: the real engine, in process, on a fake clock, for users' own tests.

The harness runs what ``ritornello serve`` runs — ``Engine`` with its core, drivers, timers and
retries — over an in-memory store, with the user's services behind an in-process endpoint
(``inproc://harness``) and a ``ManualClock``. There is no server and no HTTP: calls go to the
engine's own methods (``submit``, ``describe``, ``complete_awakeable``, ``cancel``, ...), the
ones the ingress and the admin API call.

Invariants:

* Every method that sets something going returns once the engine is idle (``_clock``), so
  results, statuses, state and journals read afterwards are settled.
* Time moves only in ``advance``; nothing waits on real time (sleeps, delayed sends, retry
  backoffs, schedules and retention all run on the fake clock).
* The handler code runs through the real SDK, attempt by attempt, exactly as under ``serve``;
  the harness only cuts answers where a crash plan says (``_crash``) and serves the promise
  handler of workflows (``_promises``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from ritornello.orchestrator import Engine, ManualClock, OrchestratorError, key_problem
from ritornello.protocol import RetryPolicy
from ritornello.sdk import Endpoint
from ritornello.sdk import _invocation as _sdk
from ritornello.sdk._serde import decode, encode
from ritornello.sdk._service import handler_spec
from ritornello.store.memory import MemoryStore

from ._clock import FakeTime
from ._crash import Crash, CrashPlan
from ._endpoint import HarnessEndpoint
from ._history import History
from ._promises import PROMISE_HANDLER, promise_input
from ._replay import run_replay
from ._report import ReplayReport
from ._status import InvocationStatus, utc
from ._targets import Target, Targets, json_text, outcome
from .errors import HarnessError, NotFinished

#: The clock's start unless told otherwise: 2023-11-14 22:13:20 UTC.
DEFAULT_START = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def _ms(duration: timedelta | float) -> int:
    """A timedelta, or seconds, in whole milliseconds."""
    seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
    return round(seconds * 1000)


class Harness:
    """Services under test on the real engine, in process, on a fake clock::

        async with Harness(greeter, counter) as env:
            assert await env.call(greet, "ann") == "Hello, ann!"

    ``services``: the services (``Service``, ``VirtualObject``, ``Workflow``), or one
    ``Endpoint``. ``retry``: the engine's default retry policy for failed attempts (a
    handler's own policy overrides it field by field; default: the orchestrator's, 50 ms
    doubling); backoffs are timers, so a retry happens when ``advance`` reaches it.
    ``start``: the fake clock's first reading (an aware datetime). ``always_replay``: the SDK
    replays every handler from its journal after each new entry (docs/sdk.md, "Durability
    modes"): with an ``Endpoint``, set it there instead. ``retention``: how long finished
    invocations are kept. ``settle_timeout_s``: how long (real time) a call may wait for the
    engine to become idle before it fails.
    """

    def __init__(
        self,
        *services: Any,
        retry: RetryPolicy | None = None,
        start: datetime | None = None,
        always_replay: bool = False,
        retention: timedelta = timedelta(days=1),
        settle_timeout_s: float = 30.0,
    ) -> None:
        if len(services) == 1 and isinstance(services[0], (list, tuple)):
            services = tuple(services[0])  # Harness(SERVICES) as Harness(*SERVICES)
        if len(services) == 1 and isinstance(services[0], Endpoint):
            if always_replay:
                raise HarnessError("always_replay: build the Endpoint with always_replay=True")
            self.endpoint: Endpoint = services[0]
        else:
            self.endpoint = Endpoint(list(services), always_replay=always_replay)
        when = start or DEFAULT_START
        if when.tzinfo is None:
            raise HarnessError("start must be an aware datetime (tzinfo=UTC)")
        self.clock = ManualClock(int(when.timestamp() * 1000))
        self.targets = Targets(self.endpoint)
        self._wire = HarnessEndpoint(self.endpoint)
        self.store = MemoryStore()
        self.engine = Engine(
            self.store,
            clock=self.clock,
            retry=retry,
            inprocess={"harness": self._wire},
            retention_s=retention.total_seconds(),
            watchdog_interval_s=0,
            schedule_interval_s=0,
        )
        self._time = FakeTime(self.engine, self.clock, settle_timeout_s=settle_timeout_s)
        self._sdk_clock: Callable[[], float] | None = None
        self._started = False

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Harness:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Open the store, start the engine and register the services. Until ``stop`` the
        SDK's wall clock (``ctx.time()``, a step's ``max_retry_duration``) is the fake one:
        this process's handlers run in this harness only."""
        self._sdk_clock = _sdk._wall_clock
        _sdk._wall_clock = lambda: self.clock.now_ms() / 1000
        await self.store.open()
        await self.engine.start()
        await self.engine.register_deployment("inproc://harness")
        self._started = True

    async def stop(self) -> None:
        """Stop the engine (attempts in flight are abandoned) and close the store."""
        if self._sdk_clock is not None:
            _sdk._wall_clock, self._sdk_clock = self._sdk_clock, None
        if self._started:
            self._started = False
            await self.engine.stop()
            await self.store.close()

    # ------------------------------------------------------------------ time

    @property
    def now(self) -> datetime:
        """The fake clock (UTC)."""
        return utc(self.clock.now_ms())

    async def advance(self, by: timedelta | float) -> None:
        """Let ``by`` (a timedelta, or seconds) pass on the fake clock: every sleep, delayed
        send, retry and schedule that comes due meanwhile fires at its moment, in order, and
        the engine settles after each. Returns once it is idle at the new time."""
        self._require_started()
        await self._time.advance(_ms(by))

    # ------------------------------------------------------------------ invoking

    async def call(
        self,
        target: Target,
        arg: Any = None,
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
        crash_after: int | None = None,
        crash_before: int | None = None,
    ) -> Any:
        """Invoke ``target`` (a handler function or ``"Service/handler"``) and return its
        output, typed by its return annotation when ``target`` is the handler function (as
        ``ctx.call`` types it; plain JSON for a ``"Service/handler"``). A terminal failure raises
        ``TerminalError``; ``NotFinished`` if it cannot finish until time passes or something
        arrives from outside (then ``advance`` or complete it, and ``result``).
        ``crash_after=N`` / ``crash_before=N``: its attempt dies once, right after entry N is
        committed / after running N but before committing it, and the next one replays
        (``HarnessError`` if it finishes without ever reaching N)."""
        ref = await self.send(
            target,
            arg,
            key=key,
            idempotency_key=idempotency_key,
            headers=headers,
            crash_after=crash_after,
            crash_before=crash_before,
        )
        value = await self.result(ref)
        spec = handler_spec(target)
        if spec is None:
            return value
        try:  # typed as ``ctx.call`` types it: by the handler's return annotation or serde
            return decode(value, spec.output_hint, spec.output_serde)
        except (TypeError, ValueError) as exc:
            raise HarnessError(
                f"the output of {spec.target} does not fit its type: {exc}"
            ) from None

    async def send(
        self,
        target: Target,
        arg: Any = None,
        *,
        key: str | None = None,
        delay: timedelta | float | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
        crash_after: int | None = None,
        crash_before: int | None = None,
    ) -> str:
        """Start ``target`` without waiting for its result; returns the invocation id once the
        engine is idle (the handler ran as far as it can). ``delay``: start it that much later
        on the fake clock. The other options as for ``call``."""
        self._require_started()
        service, handler = self.targets.handler(target)
        resolved = self.engine.registry.resolve(service, handler)
        if resolved is None:
            raise HarnessError(f"no handler {service}/{handler} in this harness")
        self._check_key(service, key)
        plan = None
        if crash_after is not None or crash_before is not None:
            plan = CrashPlan(after=crash_after, before=crash_before)
        try:
            rec, _ = await self.engine.submit(
                resolved,
                key,
                json_text(_typed_input(target, arg)),
                idempotency_key=idempotency_key,
                delay_ms=_ms(delay) if delay is not None else 0,
                headers={k.lower(): v for k, v in (headers or {}).items()} or None,
            )
        except OrchestratorError as exc:
            raise HarnessError(str(exc)) from exc
        if plan is not None:
            # (no await since submit returned: its first attempt has not been sent yet)
            if rec.id in self._wire.seen:
                raise HarnessError(f"{rec.id} has run already: a crash plan is for a new one")
            self._wire.plan(rec.id, plan)
        await self._settle()
        return rec.id

    def crash_next(
        self, target: Target, *, after: int | None = None, before: int | None = None
    ) -> None:
        """Crash the next new invocation of ``target`` (one a handler calls, say) once, as
        ``call``'s ``crash_after``/``crash_before`` do. Several calls queue up, in order."""
        service, handler = self.targets.handler(target)
        self._wire.arm(service, handler, CrashPlan(after=after, before=before))

    @property
    def crashes(self) -> list[Crash]:
        """The crashes that happened so far, in order."""
        return list(self._wire.crashes)

    async def result(self, invocation_id: str) -> Any:
        """The output of a finished invocation (as ``call`` returns it); ``NotFinished`` if
        it has not finished and cannot until time passes or something arrives."""
        status = await self.status(invocation_id)
        if not status.finished:
            raise NotFinished(status)
        plan = self._wire.plans.pop(invocation_id, None)
        if plan is not None and plan.fired is None:
            last = " (the last is its output: nothing after it)" if plan.point == "after" else ""
            raise HarnessError(
                f"{plan!r} never happened: {invocation_id} finished with "
                f"{status.journal_length} journal entries{last}"
            )
        return outcome(status.result or {"failure": {"code": 409, "message": status.status}})

    async def status(self, invocation_id: str) -> InvocationStatus:
        """Where the invocation stands, once the engine is idle."""
        await self._settle()
        try:
            rec, _, _ = await self.engine.describe(invocation_id)
        except OrchestratorError as exc:
            raise HarnessError(str(exc)) from exc
        return InvocationStatus.of(rec)

    async def journal(self, invocation_id: str) -> list[dict[str, Any]]:
        """The invocation's journal: each entry (docs/protocol.md) with its ``index`` and, for
        a waiting entry that has it, its ``completion`` (``{"value"}``/``{"failure"}``)."""
        history = await self._history(invocation_id)
        done = {c["index"]: c for c in history.completions}
        out: list[dict[str, Any]] = []
        for index, entry in enumerate(history.journal):
            item: dict[str, Any] = {"index": index, **entry}
            if index in done:
                item["completion"] = {k: v for k, v in done[index].items() if k != "index"}
            out.append(item)
        return out

    async def export(self, invocation_id: str) -> dict[str, Any]:
        """The invocation as ``ritornello invocations export`` writes it (docs/testing.md):
        save it as a replay fixture."""
        return (await self._history(invocation_id)).to_dict()

    async def check_replay(self, invocation_id: str) -> ReplayReport:
        """Replay the invocation's journal against the current code, in process (no step
        runs again), and compare the output it produces: ``ReplayDivergenceError`` at the
        first difference, else the report."""
        history = await self._history(invocation_id)
        report = await run_replay(history, self.endpoint, compare_output=True)
        return report.raise_for_divergence()

    # ------------------------------------------------------------------ from outside

    async def resolve_awakeable(self, awakeable_id: str, value: Any = None) -> None:
        """Resolve an awakeable, as ``POST /restate/awakeables/{id}/resolve`` does."""
        await self._complete_awakeable(awakeable_id, f'{{"value":{json_text(value, "value")}}}')

    async def reject_awakeable(self, awakeable_id: str, reason: str) -> None:
        """Reject an awakeable: its waiter gets ``TerminalError(reason)`` (code 500)."""
        failure = json_text({"failure": {"code": 500, "message": reason or "rejected"}}, "reason")
        await self._complete_awakeable(awakeable_id, failure)

    async def resolve_promise(self, workflow: Any, key: str, name: str, value: Any = None) -> None:
        """Resolve promise ``name`` of workflow ``workflow`` (the ``Workflow``, a handler of
        it, or its name) with id ``key``, as one of its handlers would; ``TerminalError``
        (409) if it was already completed."""
        await self._complete_promise(workflow, key, name, {"value": value})

    async def reject_promise(self, workflow: Any, key: str, name: str, reason: str) -> None:
        """Reject promise ``name``: its waiters get ``TerminalError(reason)`` (code 500)."""
        await self._complete_promise(
            workflow, key, name, {"failure": {"code": 500, "message": reason}}
        )

    async def cancel(self, invocation_id: str) -> None:
        """Cancel it gracefully: its next await raises ``TerminalError('cancelled', 409)``,
        so its compensations run; its pending callees are cancelled too."""
        await self._operate("cancel", invocation_id)

    async def kill(self, invocation_id: str) -> None:
        """Stop it at once: it ends ``killed``, its caller gets a 409."""
        await self._operate("kill", invocation_id)

    async def schedule(
        self,
        target: Target,
        cron: str,
        arg: Any = None,
        *,
        key: str | None = None,
        overlap: str = "skip",
        timezone: str = "UTC",
    ) -> str:
        """A cron schedule of ``target`` (docs/schedules.md); it fires as ``advance`` passes
        its fire times. Returns its id."""
        self._require_started()
        service, handler = self.targets.handler(target)
        try:
            made = await self.engine.schedules.create(
                cron=cron,
                target=f"{service}/{handler}",
                key=key,
                input_text=json_text(arg),
                overlap=overlap,
                timezone=timezone,
            )
        except (OrchestratorError, ValueError) as exc:
            raise HarnessError(str(exc)) from exc
        return made.id

    # ------------------------------------------------------------------ state

    async def state(self, service: Any, key: str) -> dict[str, Any]:
        """The state of one object (or workflow) key: name -> value."""
        await self._settle()
        try:
            _, state = await self.engine.read_state(self.targets.service(service), key)
        except OrchestratorError as exc:
            raise HarnessError(str(exc)) from exc
        return state

    async def set_state(self, service: Any, key: str, state: dict[str, Any]) -> None:
        """Replace the state of one object key (refused while an exclusive handler holds
        the key)."""
        await self._settle()
        try:
            name = self.targets.service(service)
            await self.engine.write_state(name, key, state, None)
        except OrchestratorError as exc:
            raise HarnessError(str(exc)) from exc

    # ------------------------------------------------------------------ helpers

    def _require_started(self) -> None:
        if not self._started:
            raise HarnessError("the harness is not started: use 'async with Harness(...) as env'")

    async def _settle(self) -> None:
        self._require_started()
        await self._time.settle()

    def _check_key(self, service: str, key: str | None) -> None:
        kind = self.targets.kinds.get(service)
        if kind == "service" and key is not None:
            raise HarnessError(f"{service} is a service: it takes no key")
        if kind in ("object", "workflow") and key is None:
            what = "virtual object" if kind == "object" else kind
            raise HarnessError(f"{service} is a {what}: give key=")
        if key is not None and (problem := key_problem(key)) is not None:
            raise HarnessError(problem)

    async def _history(self, invocation_id: str) -> History:
        await self._settle()
        try:
            rec, entries, completions = await self.engine.describe(invocation_id)
        except OrchestratorError as exc:
            raise HarnessError(str(exc)) from exc
        return History.of_record(rec, entries, completions)

    async def _complete_awakeable(self, awakeable_id: str, result_text: str) -> None:
        self._require_started()
        try:
            await self.engine.complete_awakeable(awakeable_id, result_text)
        except OrchestratorError as exc:
            raise HarnessError(str(exc)) from exc
        await self._settle()

    async def _complete_promise(
        self, workflow: Any, key: str, name: str, result: dict[str, Any]
    ) -> None:
        service = self.targets.service(workflow)
        if self.targets.kinds[service] != "workflow":
            raise HarnessError(f"{service} is not a workflow: promises belong to workflows")
        await self.call(f"{service}/{PROMISE_HANDLER}", promise_input(name, result), key=key)

    async def _operate(self, action: str, invocation_id: str) -> None:
        self._require_started()
        try:
            await getattr(self.engine, action)(invocation_id)
        except OrchestratorError as exc:
            raise HarnessError(str(exc)) from exc
        await self._settle()


def _typed_input(target: Target, arg: Any) -> Any:
    """``arg`` as the JSON the ingress would store for it: typed by the handler's input
    annotation or serde when ``target`` is a handler function (dates, decimals, bytes...)."""
    spec = handler_spec(target)
    if spec is None or arg is None:
        return arg
    try:
        return encode(arg, spec.input_hint, spec.input_serde)
    except (TypeError, ValueError) as exc:
        raise HarnessError(f"the input of {spec.target} does not fit its type: {exc}") from None
