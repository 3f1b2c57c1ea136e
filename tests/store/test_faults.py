"""FaultyStore injects failures at the rates it is given, deterministically per seed;
RetryingStore over it turns them into exactly the store a fault-free run produces: no write
lost, none duplicated, no conflict hidden and no false success."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ritornello.store import (
    CommitUnit,
    ConflictError,
    FencedError,
    InvocationRecord,
    InvocationWrite,
    LeaseRecord,
    SchemaError,
    Store,
    StoreClosedError,
    TimerRecord,
    UnavailableError,
)
from ritornello.store.faults import FaultyStore
from ritornello.store.memory import MemoryStore
from ritornello.store.retrying import RetryingStore

from .conftest import inv

OBJECTS = ["alice", "bob", "carol"]
T0 = 1_700_000_000_000


def bump(record: InvocationRecord, **changes: Any) -> InvocationWrite:
    """An update of ``record`` to its next version."""
    new = dataclasses.replace(record, version=record.version + 1, **changes)
    return InvocationWrite(new, expect_version=record.version)


class FakeTime:
    """A monotonic clock that only ``sleep`` moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def no_sleep(seconds: float) -> None:
    pass


def retrying(inner: Store, **options: Any) -> RetryingStore:
    """A RetryingStore that never really sleeps and whose budget never runs out."""
    return RetryingStore(inner, rng=random.Random(0), sleep=no_sleep, clock=lambda: 0.0, **options)


# --- a realistic sequence of commit units ------------------------------------------------------


class Planner:
    """Generates what an orchestrator commits: ingress (with idempotency keys, some scheduled),
    attempts appending entries, completions, state, sleeps and their timers, calls creating
    callees, results, purges; plus units that genuinely conflict (a stale version, a reused
    idempotency key). Tracks the store it expects, so every other unit applies."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0
        self.now = T0
        self.live: dict[str, InvocationRecord] = {}
        self.done: dict[str, InvocationRecord] = {}
        self.next_index: dict[str, int] = {}
        self.ids: list[str] = []

    def plan(self, count: int) -> list[tuple[CommitUnit, bool]]:
        """``count`` units, each with whether it must conflict."""
        kinds = ["ingress", "step", "fire", "append", "finish", "stale", "dup", "purge"]
        weights = [4, 5, 2, 1, 2, 1, 1, 1]
        plan: list[tuple[CommitUnit, bool]] = []
        while len(plan) < count:
            self.n += 1
            self.now += self.rng.randint(1, 50)
            made = getattr(self, "_" + self.rng.choices(kinds, weights)[0])()
            if made is not None:
                plan.append(made)
        return plan

    def _pick(self, pool: dict[str, InvocationRecord]) -> InvocationRecord | None:
        return pool[self.rng.choice(sorted(pool))] if pool else None

    def _state(self, record: InvocationRecord) -> list[tuple[str, str, str | None, str | None]]:
        key = record.key or "alice"
        roll = self.rng.random()
        if roll < 0.4:
            return [(record.service, key, "n", str(self.n))]
        if roll < 0.5:
            return [(record.service, key, "n", None), (record.service, key, "m", '"x"')]
        if roll < 0.55:
            return [(record.service, key, None, None)]
        return []

    def _ingress(self) -> tuple[CommitUnit, bool]:
        id = f"inv_{self.n}"
        scheduled = self.rng.random() < 0.2
        record = inv(
            id,
            key=self.rng.choice(OBJECTS),
            seq=self.n,
            status="scheduled" if scheduled else "running",
            idempotency_key=f"ik_{self.n}" if self.rng.random() < 0.5 else None,
            created_at=self.now,
            modified_at=self.now,
            next_at=self.now + 1000 if scheduled else None,
        )
        self.live[id] = record
        self.next_index[id] = 1
        self.ids.append(id)
        timers = [TimerRecord(self.now + 1000, id, "start")] if scheduled else []
        return CommitUnit(
            invocations=[InvocationWrite(record)],
            entries=[(id, 0, f'{{"input": {self.n}}}')],
            timers_add=timers,
        ), False

    def _step(self) -> tuple[CommitUnit, bool] | None:
        record = self._pick(self.live)
        if record is None:
            return None
        first = self.next_index[record.id]
        count = self.rng.randint(1, 3)
        last = first + count - 1
        entries = [
            (record.id, i, f'{{"step": {i}, "n": {self.n}}}') for i in range(first, last + 1)
        ]
        suspend = self.rng.random() < 0.4
        unit = CommitUnit(
            entries=entries,
            state=self._state(record),
            timers_remove=[TimerRecord(0, record.id, "start")],
        )
        if self.rng.random() < 0.3 and first > 1:  # a completion of an earlier entry
            unit.completions.append((record.id, first - 1, f'{{"value": {self.n}}}'))
        callee = None
        if self.rng.random() < 0.2:  # a call: create the callee (maybe it already exists)
            existing = self._pick({**self.live, **self.done})
            if existing is not None and self.rng.random() < 0.3:
                # an insert of an existing id: ignored by the store
                unit.invocations.append(
                    InvocationWrite(dataclasses.replace(existing, modified_at=self.now))
                )
            else:
                callee = inv(
                    f"inv_{self.n}_callee",
                    handler="get",
                    key=None,
                    handler_kind="shared",
                    seq=self.n,
                    caller_id=record.id,
                    caller_index=last,
                    created_at=self.now,
                    modified_at=self.now,
                )
                unit.invocations.append(InvocationWrite(callee))
                unit.entries.append((callee.id, 0, '{"input": "call"}'))
        write = bump(
            record,
            status="suspended" if suspend else "running",
            journal_len=last + 1,
            waiting=(last,) if suspend else (),
            modified_at=self.now,
        )
        unit.invocations.insert(self.rng.randint(0, len(unit.invocations)), write)
        if suspend:
            unit.timers_add.append(TimerRecord(self.now + 500, record.id, "sleep", last))
        self.live[record.id] = write.record
        self.next_index[record.id] = last + 1
        if callee is not None:
            self.live[callee.id] = callee
            self.next_index[callee.id] = 1
            self.ids.append(callee.id)
        return unit, False

    def _fire(self) -> tuple[CommitUnit, bool] | None:
        """A sleep timer fires: a completion and the timer removed, with or without a
        version bump."""
        record = self._pick({k: r for k, r in self.live.items() if r.waiting})
        if record is None:
            return None
        index = record.waiting[0]
        unit = CommitUnit(
            completions=[(record.id, index, "null")],
            timers_remove=[TimerRecord(0, record.id, "sleep", index)],
        )
        if self.rng.random() < 0.7:
            write = bump(record, status="running", waiting=(), modified_at=self.now)
            unit.invocations.append(write)
            self.live[record.id] = write.record
        return unit, False

    def _append(self) -> tuple[CommitUnit, bool] | None:
        """Entries (and a completion) with no invocation write."""
        record = self._pick(self.live)
        if record is None:
            return None
        index = self.next_index[record.id]
        self.next_index[record.id] = index + 1
        return CommitUnit(
            entries=[(record.id, index, f'{{"append": {self.n}}}')],
            completions=[(record.id, index, '"done"')],
        ), False

    def _finish(self) -> tuple[CommitUnit, bool] | None:
        record = self._pick(self.live)
        if record is None:
            return None
        write = bump(
            record,
            status="completed",
            waiting=(),
            result=f'{{"value": {self.n}}}',
            modified_at=self.now,
            expires_at=self.now + 86_400_000,
        )
        index = self.next_index[record.id]
        self.next_index[record.id] = index + 1
        del self.live[record.id]
        self.done[record.id] = write.record
        removed = [TimerRecord(0, record.id, "sleep", i) for i in record.waiting]
        return CommitUnit(
            invocations=[write],
            entries=[(record.id, index, '{"output": true}')],
            state=self._state(record),
            timers_remove=[*removed, TimerRecord(0, record.id, "start")],
        ), False

    def _stale(self) -> tuple[CommitUnit, bool] | None:
        """A write expecting an old version, by someone else: it must conflict."""
        record = self._pick({k: r for k, r in self.live.items() if r.version > 1})
        if record is None:
            return None
        old = dataclasses.replace(record, version=record.version - 1, status="paused")
        index = self.next_index[record.id]
        return CommitUnit(
            invocations=[bump(old, modified_at=self.now)],
            entries=[(record.id, index, '"stale"')],
            state=[(record.service, record.key or "alice", "n", '"stale"')],
        ), True

    def _dup(self) -> tuple[CommitUnit, bool] | None:
        """A second invocation with an idempotency key in use: it must conflict."""
        holder = self._pick(
            {k: r for k, r in {**self.live, **self.done}.items() if r.idempotency_key}
        )
        if holder is None:
            return None
        record = dataclasses.replace(holder, id=f"inv_{self.n}_dup", seq=self.n, version=1)
        self.ids.append(record.id)
        return CommitUnit(
            invocations=[InvocationWrite(record)], entries=[(record.id, 0, '"dup"')]
        ), True

    def _purge(self) -> tuple[CommitUnit, bool] | None:
        record = self._pick(self.done)
        if record is None:
            return None
        del self.done[record.id]
        return CommitUnit(purge=[record.id]), False


async def run_plan(store: Store, plan: list[tuple[CommitUnit, bool]]) -> list[str]:
    """Commit every unit in order; the outcome of each ("ok" or the error's class name)."""
    outcomes = []
    for unit, _ in plan:
        try:
            await store.commit(unit)
            outcomes.append("ok")
        except ConflictError as error:
            outcomes.append(type(error).__name__)
    return outcomes


async def snapshot(store: Store, ids: list[str]) -> dict[str, Any]:
    return {
        "invocations": await store.list_invocations(limit=1_000_000),
        "journals": {id: await store.get_journal(id) for id in ids},
        "state": {o: await store.get_state("Counter", o) for o in OBJECTS},
        "timers": await store.list_timers(),
        "max_seq": await store.max_seq(),
    }


async def reference(plan: list[tuple[CommitUnit, bool]], ids: list[str]) -> tuple[Any, Any]:
    async with MemoryStore() as store:
        outcomes = await run_plan(store, plan)
        return outcomes, await snapshot(store, ids)


FAULTS: dict[str, Any] = {"ambiguous": 0.3, "throttle": 0.2, "conflict": 0.1, "internal": 0.1}


def test_the_plan_is_realistic() -> None:
    planner = Planner(7)
    plan = planner.plan(300)
    outcomes, snap = asyncio.run(reference(plan, planner.ids))
    assert outcomes == ["ConflictError" if conflicts else "ok" for _, conflicts in plan]
    assert sum(conflicts for _, conflicts in plan) >= 10
    assert len(snap["invocations"]) >= 30
    assert snap["timers"] and any(snap["state"].values())
    assert any(completions for _, completions in snap["journals"].values())


def test_retrying_over_faults_gives_the_fault_free_store() -> None:
    planner = Planner(11)
    plan = planner.plan(300)

    async def body() -> None:
        expected_outcomes, expected = await reference(plan, planner.ids)
        inner = MemoryStore()
        faulty = FaultyStore(inner, seed=5, **FAULTS)
        async with retrying(faulty) as store:
            assert await run_plan(store, plan) == expected_outcomes
            assert await snapshot(inner, planner.ids) == expected
            assert store.retries["commit"] == sum(faulty.injected.values())
        assert all(faulty.injected[kind] >= 20 for kind in FAULTS), faulty.injected

    asyncio.run(body())


@settings(
    max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    plan_seed=st.integers(0, 1_000),
    fault_seed=st.integers(0, 2**32 - 1),
    ambiguous=st.floats(0.0, 0.5),
    throttle=st.floats(0.0, 0.25),
)
def test_any_faults_give_the_fault_free_store(
    plan_seed: int, fault_seed: int, ambiguous: float, throttle: float
) -> None:
    planner = Planner(plan_seed)
    plan = planner.plan(60)

    async def body() -> None:
        expected_outcomes, expected = await reference(plan, planner.ids)
        inner = MemoryStore()
        faulty = FaultyStore(
            inner, seed=fault_seed, ambiguous=ambiguous, throttle=throttle, internal=0.1
        )
        async with retrying(faulty) as store:
            assert await run_plan(store, plan) == expected_outcomes
            assert await snapshot(inner, planner.ids) == expected

    asyncio.run(body())


# --- FaultyStore -------------------------------------------------------------------------------


def test_each_fault_is_injected_at_its_rate() -> None:
    n = 4000
    rates: dict[str, Any] = {"throttle": 0.1, "conflict": 0.05, "internal": 0.05, "ambiguous": 0.2}

    async def body() -> None:
        inner = MemoryStore()
        async with FaultyStore(inner, seed=1, **rates) as store:
            messages = []
            for i in range(n):
                try:
                    await store.commit(CommitUnit(completions=[("inv_1", i, "null")]))
                except UnavailableError as error:
                    messages.append(str(error))
            for kind, rate in rates.items():
                assert abs(store.injected[kind] / n - rate) < 0.02, (kind, store.injected)
            assert len(messages) == sum(store.injected.values())
            # throttle, conflict and internal refuse the write; ambiguous applies it
            landed = len((await inner.get_journal("inv_1"))[1])
            refused = sum(store.injected[k] for k in ("throttle", "conflict", "internal"))
            assert landed == n - refused
            assert {m.split(" (")[0] for m in messages} == {
                "injected: throttled",
                "injected: transaction conflict",
                "injected: internal error",
                "injected: ambiguous failure",
            }

    asyncio.run(body())


def outcomes_for(seed: int) -> list[str]:
    async def body() -> list[str]:
        async with FaultyStore(MemoryStore(), seed=seed, throttle=0.2, ambiguous=0.2) as store:
            seen = []
            for i in range(200):
                try:
                    await store.commit(CommitUnit(completions=[("inv_1", i, "null")]))
                    seen.append("ok")
                except UnavailableError as error:
                    seen.append(str(error))
            return seen

    return asyncio.run(body())


def test_faults_are_deterministic_per_seed() -> None:
    assert outcomes_for(3) == outcomes_for(3)
    assert outcomes_for(3) != outcomes_for(4)


def test_faults_apply_to_the_listed_ops_only() -> None:
    async def body() -> None:
        inner = MemoryStore()
        async with FaultyStore(inner, throttle=1.0, ops=("get_invocation",)) as store:
            await store.commit(CommitUnit(invocations=[InvocationWrite(inv())]))
            assert await store.get_journal("inv_1") == ([], [])
            with pytest.raises(UnavailableError, match="injected: throttled"):
                await store.get_invocation("inv_1")
            assert store.injected == {"throttle": 1}

    asyncio.run(body())


def test_ambiguous_fault_of_a_failed_write_raises_the_honest_error() -> None:
    async def body() -> None:
        async with FaultyStore(MemoryStore(), ambiguous=1.0) as store:
            with pytest.raises(UnavailableError):
                await store.commit(CommitUnit(invocations=[InvocationWrite(inv())]))
            with pytest.raises(ConflictError):  # the write failed: nothing to be unsure of
                await store.commit(CommitUnit(invocations=[bump(inv(version=5))]))
            assert store.injected == {"ambiguous": 1}

    asyncio.run(body())


def test_bad_fault_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="more than 1"):
        FaultyStore(MemoryStore(), throttle=0.6, ambiguous=0.6)
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultyStore(MemoryStore(), internal=-0.1)
    with pytest.raises(ValueError, match="unknown store methods"):
        FaultyStore(MemoryStore(), ops=("commit", "open", "frobnicate"))


def test_wrappers_mirror_partitions_after_open() -> None:
    async def body() -> None:
        inner = MemoryStore(partitions=4)
        faulty = FaultyStore(inner)
        async with RetryingStore(faulty) as store:
            assert faulty.partitions == store.partitions == 4
            assert store.exclusive == faulty.exclusive == inner.exclusive

    asyncio.run(body())


def test_spec_from_text() -> None:
    assert FaultyStore.spec_from_text("ambiguous=0.05,throttle=0.01,seed=3") == {
        "ambiguous": 0.05,
        "throttle": 0.01,
        "seed": 3,
    }
    assert FaultyStore.spec_from_text(
        " conflict = 0.1 , internal=0.2, ops=commit+renew_lease "
    ) == {
        "conflict": 0.1,
        "internal": 0.2,
        "ops": ("commit", "renew_lease"),
    }
    assert FaultyStore.spec_from_text("") == {}
    spec = FaultyStore.spec_from_text("ambiguous=1,ops=get_state")
    assert FaultyStore(MemoryStore(), **spec).rates["ambiguous"] == 1.0
    for bad in ["ambiguous", "latency=0.1", "seed=x", "throttle=", "throttle=lots"]:
        with pytest.raises(ValueError, match="bad fault spec"):
            FaultyStore.spec_from_text(bad)


# --- RetryingStore: ambiguous commits -----------------------------------------------------------


class Scripted(FaultyStore):
    """Commits go as scripted (then normally): "lost" applies the unit then raises
    UnavailableError; "refused" raises it without applying; "fenced" raises FencedError,
    "conflict" ConflictError; an async callable runs first (another writer), then the unit is
    refused."""

    def __init__(self, inner: Store, *script: str | Callable[[], Awaitable[None]]) -> None:
        super().__init__(inner)
        self.script = list(script)
        self.calls = 0

    async def commit(self, unit: CommitUnit) -> None:
        self.calls += 1
        step = self.script.pop(0) if self.script else "ok"
        if step == "lost":
            await self.inner.commit(unit)
            raise UnavailableError("scripted: answer lost")
        if step == "refused":
            raise UnavailableError("scripted: refused")
        if step == "fenced":
            raise FencedError("scripted: fenced", 0)
        if step == "conflict":
            raise ConflictError("scripted: a condition failed")
        if callable(step):
            await step()
            raise UnavailableError("scripted: refused after another writer")
        await self.inner.commit(unit)


def run_scripted(
    body: Callable[[MemoryStore, RetryingStore], Awaitable[None]], *script: Any
) -> Scripted:
    inner = MemoryStore()
    scripted = Scripted(inner, *script)

    async def main() -> None:
        async with retrying(scripted) as store:
            await body(inner, store)

    asyncio.run(main())
    return scripted


V1 = inv(idempotency_key="ik")
STEP = bump(V1, status="suspended", journal_len=3, waiting=(2,), modified_at=T0 + 1)
STEP_UNIT = CommitUnit(
    invocations=[STEP],
    entries=[("inv_1", 1, '"a"'), ("inv_1", 2, '"b"')],
    state=[("Counter", "alice", "n", "1")],
    timers_add=[TimerRecord(T0 + 9, "inv_1", "sleep", 2)],
)


async def setup(inner: MemoryStore) -> None:
    await inner.commit(CommitUnit(invocations=[InvocationWrite(V1)], entries=[("inv_1", 0, "{}")]))


def test_a_commit_that_landed_before_failing_returns_normally() -> None:
    async def body(inner: MemoryStore, store: RetryingStore) -> None:
        await setup(inner)
        await store.commit(STEP_UNIT)  # lost, refused, then a conflict with itself
        assert await inner.get_invocation("inv_1") == STEP.record
        assert await inner.get_journal("inv_1") == (["{}", '"a"', '"b"'], [])
        assert store.retries["commit"] == 2

    assert run_scripted(body, "lost", "refused").calls == 3


def test_an_entries_only_commit_that_landed_returns_normally() -> None:
    unit = CommitUnit(entries=[("inv_1", 1, '"a"')], completions=[("inv_1", 1, '"c"')])

    async def body(inner: MemoryStore, store: RetryingStore) -> None:
        await setup(inner)
        await store.commit(unit)
        assert await inner.get_journal("inv_1") == (["{}", '"a"'], ['"c"'])

    run_scripted(body, "lost")


def test_an_idempotent_unit_that_landed_is_applied_once() -> None:
    callee = inv("inv_2", idempotency_key="ik2", seq=2)
    unit = CommitUnit(
        invocations=[InvocationWrite(callee)],  # insert: ignored the second time
        completions=[("inv_1", 4, '"first"')],
        state=[("Counter", "alice", "n", "7")],
        timers_add=[TimerRecord(T0, "inv_2", "start")],
    )

    async def body(inner: MemoryStore, store: RetryingStore) -> None:
        await setup(inner)
        await store.commit(unit)
        assert await inner.get_invocation("inv_2") == callee
        assert await inner.get_journal("inv_1") == (["{}"], ['"first"'])
        assert await inner.get_state("Counter", "alice") == {"n": "7"}
        assert await inner.list_timers() == [TimerRecord(T0, "inv_2", "start")]

    assert run_scripted(body, "lost", "lost").calls == 3


def test_a_fresh_completion_that_landed_before_failing_returns_normally() -> None:
    """An awakeable resolved through the ingress, whose answer was lost: the retry meets its
    own completion (a conflict) and finds it stored with its text: landed, not a 409."""
    unit = CommitUnit(completions=[("inv_1", 2, '{"index":2,"value":"ok"}')], fresh=[("inv_1", 2)])

    async def body(inner: MemoryStore, store: RetryingStore) -> None:
        await setup(inner)
        await store.commit(unit)
        assert await inner.get_journal("inv_1") == (["{}"], ['{"index":2,"value":"ok"}'])

    assert run_scripted(body, "lost").calls == 2


def test_a_fresh_completion_another_wrote_first_is_a_conflict() -> None:
    """The same after a failure, but another resolve won meanwhile: its text, not ours."""
    inner_ref: list[MemoryStore] = []
    ours = '{"index":2,"value":"ours"}'
    unit = CommitUnit(completions=[("inv_1", 2, ours)], fresh=[("inv_1", 2)])

    async def other_writer() -> None:
        theirs = CommitUnit(completions=[("inv_1", 2, '{"index":2,"value":"theirs"}')])
        await inner_ref[0].commit(theirs)

    async def body(inner: MemoryStore, store: RetryingStore) -> None:
        inner_ref.append(inner)
        await setup(inner)
        with pytest.raises(ConflictError):
            await store.commit(unit)
        assert await inner.get_journal("inv_1") == (["{}"], ['{"index":2,"value":"theirs"}'])

    run_scripted(body, other_writer)


def test_a_genuine_conflict_after_a_failure_is_raised() -> None:
    inner_ref: list[MemoryStore] = []

    async def other_writer() -> None:  # someone else moves inv_1 to version 2 first
        other = bump(V1, status="killed", modified_at=T0 + 5)
        await inner_ref[0].commit(CommitUnit(invocations=[other]))

    async def body(inner: MemoryStore, store: RetryingStore) -> None:
        inner_ref.append(inner)
        await setup(inner)
        with pytest.raises(ConflictError) as caught:
            await store.commit(STEP_UNIT)
        assert type(caught.value) is ConflictError
        stored = await inner.get_invocation("inv_1")
        assert stored is not None and stored.status == "killed"
        assert await inner.get_journal("inv_1") == (["{}"], [])
        assert await inner.get_state("Counter", "alice") == {}

    run_scripted(body, other_writer)


def test_a_genuine_entry_conflict_after_a_failure_is_raised() -> None:
    inner_ref: list[MemoryStore] = []

    async def other_writer() -> None:
        await inner_ref[0].commit(CommitUnit(entries=[("inv_1", 1, '"theirs"')]))

    async def body(inner: MemoryStore, store: RetryingStore) -> None:
        inner_ref.append(inner)
        await setup(inner)
        with pytest.raises(ConflictError):
            await store.commit(CommitUnit(entries=[("inv_1", 1, '"ours"')]))

    run_scripted(body, "refused", other_writer)


def test_a_conflict_after_a_failure_with_no_evidence_is_raised() -> None:
    # a reused idempotency key: our insert never happened, so the conflict is real
    dup = inv("inv_9", idempotency_key="ik", seq=9)

    async def body(inner: MemoryStore, store: RetryingStore) -> None:
        await setup(inner)
        with pytest.raises(ConflictError):
            await store.commit(CommitUnit(invocations=[InvocationWrite(dup)]))
        assert await inner.get_invocation("inv_9") is None

    run_scripted(body, "refused", "refused")


def test_evidence_against_outweighs_evidence_for() -> None:
    """Our entry is there (someone wrote the same text), but our insert is missing: the unit
    did not land (units are atomic), whatever the entry suggests."""
    inner_ref: list[MemoryStore] = []
    dup = inv("inv_9", idempotency_key="ik", seq=9)

    async def other_writer() -> None:
        await inner_ref[0].commit(CommitUnit(entries=[("inv_1", 1, '"a"')]))

    async def body(inner: MemoryStore, store: RetryingStore) -> None:
        inner_ref.append(inner)
        await setup(inner)
        with pytest.raises(ConflictError):
            await store.commit(
                CommitUnit(invocations=[InvocationWrite(dup)], entries=[("inv_1", 1, '"a"')])
            )

    run_scripted(body, other_writer)


@pytest.mark.parametrize(
    "unit",
    [
        CommitUnit(completions=[("inv_1", 1, "null")], state=[("Counter", "alice", "n", "1")]),
        # an insert of an id that exists with other fields is ignored: no evidence either way
        CommitUnit(invocations=[InvocationWrite(dataclasses.replace(V1, status="killed"))]),
    ],
    ids=["idempotent-parts", "insert-of-existing"],
)
def test_an_unexplained_conflict_after_a_failure_is_raised(unit: CommitUnit) -> None:
    """Nothing in these units can conflict, nor prove it landed: the conflict is reported."""

    async def body(inner: MemoryStore, store: RetryingStore) -> None:
        await setup(inner)
        with pytest.raises(ConflictError, match="scripted"):
            await store.commit(unit)

    run_scripted(body, "lost", "conflict")


def test_a_landed_commit_overwritten_since_is_reported_as_a_conflict() -> None:
    """The conservative side of the rule: when our write cannot be recognised any more, the
    retry reports the conflict rather than guess."""
    inner_ref: list[MemoryStore] = []

    async def landed_then_overwritten() -> None:
        await inner_ref[0].commit(STEP_UNIT)
        await inner_ref[0].commit(CommitUnit(invocations=[bump(STEP.record, status="killed")]))

    async def body(inner: MemoryStore, store: RetryingStore) -> None:
        inner_ref.append(inner)
        await setup(inner)
        with pytest.raises(ConflictError):
            await store.commit(STEP_UNIT)

    run_scripted(body, landed_then_overwritten)


@pytest.mark.parametrize("first", ["lost", "refused"])
def test_a_fenced_error_is_never_turned_into_success(first: str) -> None:
    async def body(inner: MemoryStore, store: RetryingStore) -> None:
        await setup(inner)
        with pytest.raises(FencedError):
            await store.commit(STEP_UNIT)

    assert run_scripted(body, first, "fenced").calls == 2


def test_a_conflict_without_a_failure_is_not_checked() -> None:
    async def body(inner: MemoryStore, store: RetryingStore) -> None:
        await setup(inner)
        await inner.commit(STEP_UNIT)
        with pytest.raises(ConflictError):  # our own earlier, successful write: still a conflict
            await store.commit(STEP_UNIT)
        assert store.retries == {}

    run_scripted(body)


# --- RetryingStore: what is retried, and the budget ----------------------------------------------


def test_only_unavailable_errors_are_retried() -> None:
    async def body(inner: MemoryStore, store: RetryingStore) -> None:
        malformed = CommitUnit(invocations=[InvocationWrite(inv(version=3), expect_version=1)])
        with pytest.raises(ValueError):
            await store.commit(malformed)
        await store.close()
        with pytest.raises(StoreClosedError):
            await store.commit(CommitUnit())
        with pytest.raises(StoreClosedError):
            await store.get_invocation("inv_1")
        assert store.retries == {}

    assert run_scripted(body).calls == 2

    class Incompatible(FaultyStore):
        opens = 0

        async def open(self) -> None:
            self.opens += 1
            raise SchemaError("scripted: schema version 99")

    incompatible = Incompatible(MemoryStore())
    with pytest.raises(SchemaError):
        asyncio.run(retrying(incompatible).open())
    assert incompatible.opens == 1


def test_reads_and_lease_operations_are_retried() -> None:
    ops = ("get_invocation", "list_invocations", "claim_lease", "renew_lease", "list_leases")

    async def body() -> None:
        inner = MemoryStore()
        faulty = FaultyStore(inner, seed=2, throttle=0.3, ambiguous=0.3, ops=ops)
        async with retrying(faulty) as store:
            await store.commit(CommitUnit(invocations=[InvocationWrite(inv())]))
            for _ in range(20):
                assert await store.get_invocation("inv_1") == inv()
                assert await store.list_invocations() == [inv()]
            lease = await store.claim_lease(0, "node-a", None, T0)
            for i in range(20):
                lease = await store.renew_lease(lease, T0 + i)
            assert await store.list_leases() == [lease]
            # a renewal that landed unreported is renewed again: the version may run ahead
            assert (lease.owner, lease.epoch) == ("node-a", 1) and lease.version >= 21
        assert store.retries["get_invocation"] > 0 and store.retries["renew_lease"] > 0

    asyncio.run(body())


def test_a_claim_that_landed_before_failing_returns_the_lease() -> None:
    before_retry: list[Callable[[], Awaitable[None]]] = []

    async def sleep(seconds: float) -> None:
        while before_retry:
            await before_retry.pop(0)()

    async def body() -> None:
        inner = MemoryStore()
        faulty = FaultyStore(inner, ambiguous=1.0, ops=("claim_lease",))
        store = RetryingStore(faulty, sleep=sleep, clock=lambda: 0.0)
        async with store:
            lease = await store.claim_lease(0, "node-a", None, T0)  # landed, then conflicted
            assert lease == LeaseRecord(0, "node-a", 1, 1, T0)
            assert await inner.list_leases() == [lease]
            assert store.retries == {"claim_lease": 1}

            # refused, and node-b claims before our retry: its lease is not ours
            async def node_b_claims() -> None:
                faulty.rates["throttle"] = 0.0
                await inner.renew_lease(lease, T0 + 1)  # moves the version too
                await inner.claim_lease(0, "node-b", (await inner.list_leases())[0], T0 + 2)

            faulty.rates.update(ambiguous=0.0, throttle=1.0)
            before_retry.append(node_b_claims)
            with pytest.raises(ConflictError):
                await store.claim_lease(0, "node-a", lease, T0 + 3)
            stored = (await inner.list_leases())[0]
            assert (stored.owner, stored.epoch) == ("node-b", 2)

    asyncio.run(body())


def test_the_budget_running_out_raises_unavailable_error() -> None:
    async def body() -> None:
        fake = FakeTime()
        faulty = FaultyStore(MemoryStore(), throttle=1.0)
        async with RetryingStore(
            faulty, budget_s=2.0, base_s=0.05, cap_s=0.5, sleep=fake.sleep, clock=fake.clock
        ) as store:
            with pytest.raises(UnavailableError) as caught:
                await store.commit(CommitUnit())
        message = str(caught.value)
        found = re.search(r"after (\d+) attempts", message)
        assert found is not None
        attempts = int(found.group(1))
        assert message.startswith("commit: retry budget ran out after")
        assert "budget 2s" in message and "injected: throttled" in message
        assert attempts == faulty.injected["throttle"] == len(fake.sleeps) + 1
        assert store.retries["commit"] == attempts - 1
        assert fake.now == pytest.approx(2.0)  # the last sleep is cut to the budget
        for n, slept in enumerate(fake.sleeps):  # full jitter under the exponential cap
            assert 0.0 <= slept <= min(0.5, 0.05 * 2**n)
        assert isinstance(caught.value.__cause__, UnavailableError)

    asyncio.run(body())


def test_the_attempts_cap_running_out_raises_unavailable_error() -> None:
    async def body() -> None:
        async with retrying(FaultyStore(MemoryStore(), internal=1.0), max_attempts=4) as store:
            with pytest.raises(UnavailableError, match=r"after 4 attempts .*or 4 attempts"):
                await store.commit(CommitUnit())
            assert store.retries == {"commit": 3}

    asyncio.run(body())
