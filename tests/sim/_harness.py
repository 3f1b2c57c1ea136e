"""One seed of the simulation: a random scenario, random faults, random crashes; the real
``Engine`` on a ``MemoryStore``, on a virtual-time loop (``_loop``), every choice drawn from
``random.Random(seed)``.

Per seed (``Scenario.generate``):

* 1, 2 or 4 partitions; one in-process endpoint (replaying from the start at every attempt or
  not), reached through a ``FakeInvoker`` whose seeded ``Faults`` refuse an attempt before the
  handler runs, lose the answer after it ran, answer garbage, or delay the answer (past the
  attempt timeout, sometimes);
* the store: ``MemoryStore`` <- ``_TracingStore`` <- ``FaultyStore`` (throttles, transaction
  conflicts, internal errors, ambiguous commits, on ``commit`` and a random set of other
  operations) <- ``RetryingStore`` (tiny backoff, on virtual time);
* 2 to 6 client requests at random times: ``flow`` invocations (steps, sleeps, calls, calls to
  objects, delayed sends to objects, awakeables resolved from outside), direct object adds,
  delayed (scheduled) ``echo``s; every request carries an idempotency key and is retried
  after a crash or an error, as a client would, so each yields exactly one invocation;
* 0 to 3 crashes: at a random virtual time, or at the n-th visit of a crash point
  (``before-commit``, ``after-commit``, ``after-invoke``, ``after-renewal``): every task of the
  "process" is cancelled at once, nothing flushed or released, and a new ``Engine`` starts on
  the same store (exclusive: it claims every partition at once).

Checked after the run (``_check``): every request got its expected result, every invocation is
completed, each key's total is the sum of everything added to it and the totals its adds saw
are all different (no two exclusive handlers of a key overlapped, none ran twice), journals
are dense, no timer is left, and ``check_store`` (when the module exists) finds nothing.

Determinism: ids come from the seed (``_ids`` is given seeded ``secrets`` and virtual
``time``), engines are named, the loop has no real I/O or threads. ``SeedRun.trace`` lists
every unit that reached the store, with the virtual time, plus the harness's own events;
``digest`` hashes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import json
import logging
import os
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, TypeVar

from ritornello import Endpoint, RetryPolicy
from ritornello.orchestrator import Engine, OrchestratorError, StateConflictError
from ritornello.orchestrator.invokers import FakeInvoker, Faults
from ritornello.protocol import _ids
from ritornello.store import CommitUnit, Store, StoreError, crashpoints
from ritornello.store._wrapper import StoreWrapper
from ritornello.store.faults import FaultyStore
from ritornello.store.memory import MemoryStore
from ritornello.store.retrying import RetryingStore

from . import _app
from ._loop import LoopClock, VirtualLoop

T = TypeVar("T")

CRASH_SITES = ("before-commit", "after-commit", "after-invoke", "after-renewal")
READ_OPS = (
    "get_invocation",
    "get_journal",
    "get_state",
    "list_invocations",
    "list_timers",
    "find_idempotent",
    "renew_lease",
    "claim_lease",
    "heartbeat",
    "read_inbox",
    "ack_inbox",
)
#: Virtual seconds a seed may take before it counts as stuck.
VIRTUAL_LIMIT_S = 900.0
RETRY = RetryPolicy(initial_interval_ms=20, factor=2.0, max_interval_ms=500, max_attempts=10_000)


#: Delayed sends to objects (scheduled invocations of a key): on unless
#: RITORNELLO_SIM_DELAYED_SENDS=0 (they found a recovery-order bug, since fixed: seed 110).
DELAYED_OBJECT_SENDS = os.environ.get("RITORNELLO_SIM_DELAYED_SENDS", "1") != "0"


class Killed(BaseException):
    """Raised at a crash point: the process dies there (nothing after it runs)."""


# ---------------------------------------------------------------------------------- scenario


@dataclass
class Request:
    label: str
    at: float  # virtual seconds
    target: str  # "Service/handler"
    key: str | None
    arg: Any
    delay_ms: int = 0

    def expected(self) -> Any:
        if self.target == "SimSvc/flow":
            return [_app.expected_item(op) for op in self.arg]
        if self.target == "SimObj/add":
            return self.arg  # checked on the amount only (the total depends on order)
        return self.arg


@dataclass
class Scenario:
    seed: int
    partitions: int
    always_replay: bool
    durability: str
    store_faults: dict[str, Any]
    invoker_faults: dict[str, float]
    requests: list[Request]
    crashes_at: list[float]  # virtual times
    crash_points: list[tuple[str, int]]  # (site, n-th visit)
    watchdog_s: float

    @staticmethod
    def generate(seed: int, *, delayed_object_sends: bool = DELAYED_OBJECT_SENDS) -> Scenario:
        rng = random.Random(seed)
        keys = [f"k{i}" for i in range(rng.randint(1, 3))]
        requests: list[Request] = []
        awake = 0
        for n in range(rng.randint(2, 6)):
            at = round(rng.uniform(0, 3), 3)
            kind = rng.choice(["flow", "flow", "flow", "add", "echo"])
            if kind == "add":
                requests.append(Request(f"r{n}", at, "SimObj/add", rng.choice(keys), n + 1))
            elif kind == "echo":
                delay = rng.choice([0, 0, 300, 2000])
                requests.append(Request(f"r{n}", at, "SimSvc/echo", None, f"e{n}", delay))
            else:
                ops: list[list[Any]] = []
                for m in range(rng.randint(1, 4)):
                    op = rng.choice(["run", "sleep", "call", "add", "send", "awake"])
                    if op == "run":
                        ops.append(["run", f"v{n}.{m}"])
                    elif op == "sleep":
                        ops.append(["sleep", rng.choice([0, 10, 700, 3000])])
                    elif op == "call":
                        ops.append(["call", [n, m]])
                    elif op in ("add", "send"):
                        amount = rng.randint(1, 9)
                        ops.append([op, rng.choice(keys), amount])
                        if op == "send":
                            delay = rng.choice([0, 0, 500])
                            ops[-1].append(delay if delayed_object_sends else 0)
                    else:
                        ops.append(["awake", f"a{awake}"])
                        awake += 1
                requests.append(Request(f"r{n}", at, "SimSvc/flow", None, ops))
        total = rng.choice([0.0, 0.02, 0.1, 0.3])
        split = [rng.random() for _ in range(4)]
        rates = {
            kind: total * part / sum(split)
            for kind, part in zip(
                ("throttle", "conflict", "internal", "ambiguous"), split, strict=True
            )
        }
        ops_faulted = ("commit", *rng.sample(READ_OPS, rng.randint(0, 4)))
        inv_total = rng.choice([0.0, 0.05, 0.2])
        inv_split = [rng.random() for _ in range(4)]
        invoker_faults = {
            kind: inv_total * part / sum(inv_split)
            for kind, part in zip(("refuse", "lose", "garbage", "slow"), inv_split, strict=True)
        }
        n_crashes = rng.choice([0, 1, 1, 2, 3])
        crashes_at, crash_points = [], []
        for _ in range(n_crashes):
            if rng.random() < 0.5:
                crashes_at.append(round(rng.uniform(0.0, 8.0), 3))
            else:
                crash_points.append((rng.choice(CRASH_SITES), rng.randint(1, 12)))
        return Scenario(
            seed=seed,
            partitions=rng.choice([1, 1, 2, 4]),
            always_replay=rng.random() < 0.3,
            durability=rng.choice(["step", "step", "batch"]),
            store_faults={"seed": seed, "ops": ops_faulted, **rates},
            invoker_faults=invoker_faults,
            requests=requests,
            crashes_at=sorted(crashes_at),
            crash_points=crash_points,
            watchdog_s=rng.choice([0.0, 5.0]),
        )


# ---------------------------------------------------------------------------------- fakes


class _TracingStore(StoreWrapper):
    """Records every commit that reached the in-memory store, in order."""

    def __init__(self, inner: Store, trace: list[str], now: Callable[[], float]) -> None:
        super().__init__(inner)
        self._trace = trace
        self._now = now

    async def commit(self, unit: CommitUnit) -> None:
        try:
            await self.inner.commit(unit)
        except StoreError as exc:
            self._trace.append(f"{self._now():.6f} commit-refused {type(exc).__name__}")
            raise
        self._trace.append(f"{self._now():.6f} commit {unit!r}")


# ---------------------------------------------------------------------------------- run


@dataclass
class SeedRun:
    seed: int
    scenario: Scenario
    trace: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    virtual_s: float = 0.0
    restarts: int = 0

    @property
    def digest(self) -> str:
        return hashlib.sha256("\n".join(self.trace).encode()).hexdigest()


class _Sim:
    """The simulated process (an engine and the client-side tasks it serves) and its crashes."""

    def __init__(self, scenario: Scenario, run: SeedRun, loop: VirtualLoop) -> None:
        self.sc = scenario
        self.run = run
        self.loop = loop
        self.clock = LoopClock(loop)
        self.mem = MemoryStore(scenario.partitions)
        traced = _TracingStore(self.mem, run.trace, loop.time)
        faulty = FaultyStore(traced, **scenario.store_faults)
        self.store = RetryingStore(
            faulty,
            budget_s=2.0,
            base_s=0.005,
            cap_s=0.1,
            rng=random.Random(scenario.seed * 7 + 1),
            clock=loop.time,
        )
        endpoint = Endpoint(
            [_app.sim_svc, _app.sim_obj],
            always_replay=scenario.always_replay,
            durability=scenario.durability,
        )
        self.target = FakeInvoker(
            endpoint.inprocess(),
            faults=Faults(**scenario.invoker_faults, delays_s=(0.2, 1.0, 4.0)),  # timeout: 3 s
            rng=random.Random(scenario.seed * 7 + 2),
        )
        self.engine: Engine | None = None
        self.generation = 0
        self.process_tasks: dict[asyncio.Task[Any], None] = {}  # ordered, unlike a set
        self.crash_plan = dict(scenario.crash_points)
        self.visits: dict[str, int] = {}
        self.up = asyncio.Event()
        self._reboot: asyncio.Task[None] | None = None

    def note(self, text: str) -> None:
        self.run.trace.append(f"{self.loop.time():.6f} {text}")

    # -- the process

    def _new_engine(self) -> Engine:
        """The next incarnation of the orchestrator process, on the same store and clocks."""
        self.generation += 1
        self.engine = Engine(
            self.store,
            clock=self.clock,
            retry=RETRY,
            attempt_timeout_s=3.0,
            inprocess={"app": self.target},
            node=f"sim{self.generation}",
            retention_s=3600.0,
            watchdog_interval_s=self.sc.watchdog_s,
        )
        return self.engine

    async def boot(self) -> None:
        engine = self._new_engine()
        self.note(f"boot {engine.node}")
        while True:
            try:
                await engine.start()
                if not engine.registry.deployments:
                    await engine.register_deployment("inproc://app")
                break
            except (StoreError, OrchestratorError) as exc:  # store faults at start: a supervisor
                self.note(f"start failed: {type(exc).__name__}")  # restarts the process
                await self._kill(engine)
                await asyncio.sleep(1.0)
                engine = self._new_engine()
        self.up.set()

    def _cancel_all(self, engine: Engine) -> list[asyncio.Task[Any]]:
        """The synchronous half of kill -9: nothing of the process runs another step."""
        tasks: list[asyncio.Task[Any] | None] = [*engine.abandon(), *self.process_tasks]
        # Cancelled in order of creation: a set's order (the engine keeps some) is the order of
        # memory addresses, which would make the run differ between two runs of one seed.
        alive = sorted({t for t in tasks if t is not None}, key=_creation_order)
        for task in alive:
            task.cancel()
        self.process_tasks.clear()
        return alive

    async def _kill(self, engine: Engine) -> None:
        self.up.clear()
        tasks = self._cancel_all(engine)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def crash(self, why: str) -> None:
        engine = self.engine
        if engine is None or not self.up.is_set():
            return
        self.run.restarts += 1
        self.note(f"crash {engine.node} ({why})")
        await self._kill(engine)
        await self.boot()

    def reach(self, site: str) -> None:
        """``crashpoints.reach`` during the run: die at the planned visit of a site."""
        seen = self.visits[site] = self.visits.get(site, 0) + 1
        if self.crash_plan.get(site) != seen or self.engine is None or not self.up.is_set():
            return
        del self.crash_plan[site]
        engine = self.engine
        tasks = self._cancel_all(engine)
        self.up.clear()
        self.note(f"killed at {site}:{seen}")
        self._reboot = asyncio.get_running_loop().create_task(self._after_kill(engine, tasks))
        raise Killed(site)

    async def _after_kill(self, engine: Engine, tasks: list[asyncio.Task[Any]]) -> None:
        self.run.restarts += 1
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.boot()

    # -- clients: retried until they get an answer, as a real client would

    async def client(self, what: str, call: Callable[[Engine], Awaitable[T]]) -> T:
        while True:
            await self.up.wait()
            engine = self.engine
            assert engine is not None
            task = asyncio.ensure_future(call(engine))
            self.process_tasks[task] = None
            await asyncio.wait({task})
            self.process_tasks.pop(task, None)
            if task.cancelled():
                self.note(f"{what}: cut off by a crash")
            else:
                exc = task.exception()
                if exc is None:
                    return task.result()
                if isinstance(exc, StateConflictError) and what.startswith("wake"):
                    raise exc
                if not isinstance(exc, (OrchestratorError, StoreError, Killed)):
                    raise exc
                self.note(f"{what}: {type(exc).__name__}")
            await asyncio.sleep(0.3)

    async def request(self, req: Request) -> None:
        await asyncio.sleep(req.at)
        service, handler = req.target.split("/")

        async def submit(engine: Engine) -> str:
            target = engine.registry.resolve(service, handler)
            assert target is not None
            rec, _ = await engine.submit(
                target,
                req.key,
                json.dumps(req.arg),
                idempotency_key=req.label,
                delay_ms=req.delay_ms,
            )
            return rec.id

        inv_id = await self.client(f"submit {req.label}", submit)
        self.note(f"submitted {req.label} {inv_id}")
        text = await self.client(f"wait {req.label}", lambda e: e.wait_result(inv_id))
        self.run.results[req.label] = (inv_id, json.loads(text))
        self.note(f"answered {req.label}")

    async def wake(self, label: str) -> None:
        """Resolve awakeable ``label`` from outside. The id is read again at every try: an
        attempt whose answer was lost published an id that was never journaled; the last one
        published is the journaled one (every replay publishes it again)."""
        while label not in _app.AWAKEABLES:  # noqa: ASYNC110 - polled, as a client would
            await asyncio.sleep(0.1)
        text = json.dumps({"value": _app.awake_value(label)})
        with contextlib.suppress(OrchestratorError):  # 409: an earlier try landed
            await self.client(
                f"wake {label}", lambda e: e.complete_awakeable(_app.AWAKEABLES[label], text)
            )

    async def crash_at(self, at: float) -> None:
        await asyncio.sleep(at)
        await self.up.wait()
        await self.crash(f"at t={at}")

    async def main(self) -> None:
        await self.mem.open()
        await self.store.open()
        await self.boot()
        labels = [
            op[1]
            for r in self.sc.requests
            if r.target == "SimSvc/flow"
            for op in r.arg
            if op[0] == "awake"
        ]
        crashes = [asyncio.ensure_future(self.crash_at(t)) for t in self.sc.crashes_at]
        try:
            async with asyncio.timeout(VIRTUAL_LIMIT_S):
                await asyncio.gather(
                    *(self.request(r) for r in self.sc.requests), *(self.wake(a) for a in labels)
                )
                await asyncio.gather(*crashes)
                self.crash_plan.clear()
                if self._reboot is not None:
                    await self._reboot
                while await self.mem.list_invocations(statuses=_LIVE, limit=1):  # noqa: ASYNC110
                    await asyncio.sleep(0.5)  # sends and their callees finish
        except TimeoutError:
            live = await self.mem.list_invocations(statuses=_LIVE)
            stuck = ", ".join(f"{r.id} {r.service}/{r.handler} {r.status}" for r in live)
            raise AssertionError(
                f"stuck after {VIRTUAL_LIMIT_S:g} virtual s; answered: "
                f"{sorted(self.run.results)}; live: {stuck or 'none'}"
            ) from None
        assert self.engine is not None
        await self.engine.stop()
        self.note("stopped")


def _creation_order(task: asyncio.Task[Any]) -> int:
    """asyncio names tasks ``Task-N`` with a counter: N orders them by creation."""
    _, _, n = task.get_name().rpartition("-")
    return int(n) if n.isdigit() else 0


_LIVE = ["pending", "running", "suspended", "backing-off", "scheduled", "paused"]


@contextlib.contextmanager
def _deterministic(sim_rng: random.Random, sim: Callable[[], _Sim | None]) -> Iterator[None]:
    """Seeded ids, virtual id timestamps, crash points routed to the simulation, quiet logs."""
    saved = (_ids.secrets, _ids.time, crashpoints.ARMED, crashpoints.reach)

    def reach(site: str) -> None:
        current = sim()
        if current is not None:
            current.reach(site)

    def time_ns() -> int:
        current = sim()
        return 0 if current is None else current.clock.now_ms() * 1_000_000

    _ids.secrets = SimpleNamespace(token_bytes=sim_rng.randbytes)  # type: ignore[assignment]
    _ids.time = SimpleNamespace(time_ns=time_ns)  # type: ignore[assignment]
    _ids._forget_random()  # no bytes read before from the OS: the seeded source from the start
    crashpoints.ARMED = True
    crashpoints.reach = reach
    logger = logging.getLogger("ritornello")
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.CRITICAL + 1)
    logger.propagate = False
    try:
        yield
    finally:
        _ids.secrets, _ids.time, crashpoints.ARMED, crashpoints.reach = saved
        _ids._forget_random()  # nor seeded bytes left for ids made afterwards
        logger.setLevel(level)
        logger.propagate = propagate


def run_seed(seed: int, *, delayed_object_sends: bool = DELAYED_OBJECT_SENDS) -> SeedRun:
    """Run one seed to the end; ``error`` says what went wrong (None: all checks passed)."""
    scenario = Scenario.generate(seed, delayed_object_sends=delayed_object_sends)
    run = SeedRun(seed, scenario)
    _app.AWAKEABLES.clear()
    loop = VirtualLoop()
    holder: list[_Sim] = []
    try:
        with _deterministic(random.Random(seed * 7 + 3), lambda: holder[0] if holder else None):
            asyncio.set_event_loop(loop)
            sim = _Sim(scenario, run, loop)
            holder.append(sim)
            try:
                loop.run_until_complete(sim.main())
                run.error = _check(sim, loop)
            except Exception as exc:  # reported with the seed
                run.error = f"{type(exc).__name__}: {exc}"
            finally:
                run.virtual_s = loop.time()
                _shutdown(loop)
    finally:
        asyncio.set_event_loop(None)
    return run


def _shutdown(loop: VirtualLoop) -> None:
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    with contextlib.suppress(Exception):
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()


def _check(sim: _Sim, loop: VirtualLoop) -> str | None:
    return loop.run_until_complete(_check_async(sim))


async def _check_async(sim: _Sim) -> str | None:
    mem, sc, run = sim.mem, sim.sc, sim.run
    problems: list[str] = []
    added: dict[str, int] = {}
    for req in sc.requests:
        got = run.results.get(req.label)
        if got is None:
            problems.append(f"{req.label}: no answer")
            continue
        inv_id, answer = got
        value = answer.get("value") if isinstance(answer, dict) else None
        if req.target == "SimObj/add":
            value = value[0] if isinstance(value, list) else value
            added[req.key or ""] = added.get(req.key or "", 0) + req.arg
        elif req.target == "SimSvc/flow":
            for op in req.arg:
                if op[0] in ("add", "send"):
                    added[op[1]] = added.get(op[1], 0) + op[2]
        if value != req.expected() or "value" not in answer:
            problems.append(f"{req.label} ({inv_id}): expected {req.expected()!r}, got {answer!r}")
    seen_totals: dict[str, list[int]] = {}
    for rec in await mem.list_invocations(statuses=None, limit=100_000):
        if rec.status != "completed":
            problems.append(f"{rec.id} {rec.service}/{rec.handler} ended {rec.status}")
        if rec.service == "SimObj" and rec.handler == "add" and rec.result:
            result = json.loads(rec.result).get("value")
            if isinstance(result, list):
                seen_totals.setdefault(rec.key or "", []).append(result[1])
        indices = sorted(mem._journal.get(rec.id, {}))
        if indices != list(range(len(indices))):
            problems.append(f"{rec.id}: journal positions not dense: {indices}")
    for key, amount in sorted(added.items()):
        state = await mem.get_state("SimObj", key)
        total = json.loads(state.get("total", "0"))
        if total != amount:
            problems.append(f"SimObj/{key}: total {total}, expected {amount}")
        totals = seen_totals.get(key, [])
        if len(set(totals)) != len(totals):
            problems.append(f"SimObj/{key}: adds saw the same total twice: {sorted(totals)}")
    timers = await mem.list_timers()
    if timers:
        problems.append(f"timers left: {timers}")
    try:
        check = importlib.import_module("ritornello.orchestrator.check")
    except ImportError:
        check = None
    if check is not None:
        try:  # the module is new: tolerate an older signature
            found = check.check_store(mem, now_ms=sim.clock.now_ms(), expect_terminal=True)
        except TypeError:
            found = check.check_store(mem)
        report = await _maybe_await(found)
        problems.extend(f"check_store: {v}" for v in report.violations)
    return "; ".join(problems) or None


async def _maybe_await(value: Any) -> Any:
    if asyncio.iscoroutine(value):
        return await value
    return value
