"""The wall clock jumps while sleeps are pending (engine with a manual clock, in-process
endpoint): forward by hours, back by minutes. Every timer fires exactly once, never before its
``fire_at`` by the clock, and a sleep still pending across a backward jump — or started after
one — waits for its ``fire_at`` (the handler, woken, reads the clock and finds it past)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from ritornello import Context, Endpoint, Service
from ritornello.orchestrator import Engine, ManualClock
from ritornello.protocol import RetryPolicy
from ritornello.store import TimerRecord
from ritornello.store.memory import MemoryStore

MIN = 60_000
HOUR = 60 * MIN


class JumpingClock(ManualClock):
    """A manual clock whose wall time can also jump (monotonic time does not follow)."""

    def __init__(self) -> None:
        super().__init__()
        self.offset_ms = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.offset_ms

    def jump(self, ms: int) -> None:
        self.offset_ms += ms


CLOCK = JumpingClock()
WOKE: list[tuple[str, int, int]] = []  # (invocation, sleep number, clock when woken)

clk = Service("Clk")


def _woke(inv: str, n: int) -> int:
    now = CLOCK.now_ms()
    WOKE.append((inv, n, now))
    return now


@clk.handler()
async def nap(ctx: Context, ms: list[int]) -> list[int]:
    """Sleeps each duration in turn, reading the clock after each."""
    out = []
    for n, duration in enumerate(ms):
        await ctx.sleep(timedelta(milliseconds=duration))
        out.append(await ctx.run(f"woke-{n}", _woke, ctx.invocation_id, n))
    return out


async def _settle(engine: Engine, rounds: int = 30) -> None:
    engine.timers.poke()
    for _ in range(rounds):
        await asyncio.sleep(0.005)


def test_timers_fire_once_and_never_early_across_clock_jumps() -> None:
    async def main() -> None:
        store = MemoryStore()
        await store.open()
        endpoint = Endpoint([clk])
        engine = Engine(
            store,
            clock=CLOCK,
            retry=RetryPolicy(initial_interval_ms=5, factor=2.0, max_interval_ms=50),
            inprocess={"app": endpoint.inprocess()},
        )
        await engine.start()
        fired: list[tuple[TimerRecord, int]] = []
        real_fire = engine.timers._fire

        async def spy(due: list[TimerRecord]) -> None:
            now = CLOCK.now_ms()
            fired.extend((t, now) for t in due if t.kind == "sleep")
            for t in due:
                assert now >= t.fire_at, ("fired early", t, now)
            await real_fire(due)

        engine.timers._fire = spy  # type: ignore[method-assign]
        try:
            await engine.register_deployment("inproc://app")
            resolved = engine.registry.resolve("Clk", "nap")
            assert resolved is not None
            t0 = CLOCK.now_ms()
            plans: dict[str, list[int]] = {}

            async def submit(durations: list[int]) -> None:
                rec, _ = await engine.submit(resolved, None, json.dumps(durations))
                plans[rec.id] = durations

            for durations in (
                [1 * MIN],
                [10 * MIN],
                [1 * HOUR],
                [2 * HOUR],
                [5 * HOUR],
                [8 * HOUR],
                [90 * MIN, 90 * MIN],  # the second sleep starts after the forward jump
                [170 * MIN, 40 * MIN],  # wakes after the jump back, sleeps again
            ):
                await submit(durations)
            await _settle(engine)
            assert not fired

            CLOCK.jump(3 * HOUR)  # forward: everything due by t0+3h fires, once
            await _settle(engine)
            assert {t.invocation_id for t, _ in fired} == {
                inv for inv, d in plans.items() if d[0] <= 3 * HOUR
            }

            CLOCK.jump(-30 * MIN)  # backward: nothing new is due
            before = len(fired)
            await _settle(engine)
            assert len(fired) == before
            await submit([20 * MIN])  # started after the jump back: fire_at = now + 20 min
            await _settle(engine)
            assert len(fired) == before

            late_at = CLOCK.now_ms() + 20 * MIN
            # Then time moves on in 10-minute steps to t0+10h (the spy rejects early fires).
            while CLOCK.now_ms() < t0 + 10 * HOUR:
                CLOCK.advance(10 * MIN)
                await _settle(engine, 20)

            for inv, durations in plans.items():
                result = json.loads(await asyncio.wait_for(engine.wait_result(inv), 10))
                assert len(result["value"]) == len(durations), result
            keys = [(t.invocation_id, t.index) for t, _ in fired]
            assert len(keys) == len(set(keys)) == sum(len(d) for d in plans.values())
            for t, now in fired:
                assert now >= t.fire_at, (t, now)
            # Each sleep's fire_at is its duration after the clock when it was journaled, and
            # the handler, woken, saw the clock at or past it.
            woke = {(inv, n): now for inv, n, now in WOKE}
            for inv, durations in plans.items():
                fire_ats = sorted(t.fire_at for t, _ in fired if t.invocation_id == inv)
                for n, fire_at in enumerate(fire_ats):
                    assert woke[(inv, n)] >= fire_at, (inv, n, woke[(inv, n)], fire_at)
                    assert fire_at - durations[n] >= t0 - 30 * MIN
            (late,) = [inv for inv, p in plans.items() if p == [20 * MIN]]
            assert [t.fire_at for t, _ in fired if t.invocation_id == late] == [late_at]
            print(f"sleeps fired: {len(fired)}, each once, none early")
        finally:
            await engine.stop()

    asyncio.run(main())
