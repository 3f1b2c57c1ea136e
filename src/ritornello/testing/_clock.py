"""Fake time for the harness: wait until the engine is idle, and move its manual clock.

*Idle* is ``Engine.idle()``: no attempt in flight, nothing being committed or fired, no timer
due. Every harness call that sets something going returns only once the engine is idle again,
so what a test reads next is settled.

*Advancing* moves the clock as real time would pass, one due moment at a time: to the earliest
armed timer (a sleep, a delayed send, a retry's backoff) or schedule fire time within reach,
where what is due fires and the engine settles (a woken handler may arm a timer that is due
before the target, which then fires too), and so on, then to the target itself. At each moment
the due schedules are fired and the invocations past their retention purged, as the engine's
background loops would (they are off in the harness, which runs them on its clock). The clock
never goes back and nothing ever waits on real time, except steps that do real work.
"""

from __future__ import annotations

import asyncio

from ritornello.orchestrator import Engine, ManualClock

from .errors import HarnessError

#: Due moments one ``advance`` may pass through before it gives up (a handler that sleeps in
#: a loop forever).
MAX_MOMENTS = 100_000


class FakeTime:
    """Settling and advancing one engine on its manual clock."""

    def __init__(self, engine: Engine, clock: ManualClock, *, settle_timeout_s: float) -> None:
        self.engine = engine
        self.clock = clock
        self.settle_timeout_s = settle_timeout_s

    async def settle(self) -> None:
        """Wait until the engine is idle (``HarnessError`` after ``settle_timeout_s`` of real
        time: a handler that never stops, or a step that hangs)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settle_timeout_s
        polls = 0
        while not self.engine.idle():
            if loop.time() > deadline:
                raise HarnessError(
                    f"the engine did not become idle within {self.settle_timeout_s:g} s: "
                    f"{len(self.engine.drivers.tasks)} invocation(s) still being driven "
                    f"({', '.join(sorted(self.engine.drivers.tasks)[:5])})"
                )
            polls += 1
            # the first turns of the loop are free; then a step is doing real work
            await asyncio.sleep(0 if polls < 100 else 0.001)

    async def advance(self, ms: int) -> None:
        """Move the clock ``ms`` forward through every due moment (module docstring)."""
        if ms < 0:
            raise HarnessError("time only moves forward")
        await self.settle()
        target = self.clock.now_ms() + ms
        upcoming = await self._moment()
        for _ in range(MAX_MOMENTS):
            due = [t for t in (self.engine.timers.next_fire_at(), upcoming) if t is not None]
            if not due or min(due) > target:
                break
            self.clock.advance(max(0, min(due) - self.clock.now_ms()))
            upcoming = await self._moment()
        else:
            raise HarnessError(f"more than {MAX_MOMENTS} timers came due in one advance")
        self.clock.advance(target - self.clock.now_ms())
        await self._moment()

    async def _moment(self) -> int | None:
        """Let what is due now happen: timers, schedules, retention; then settle. Returns the
        next schedule fire time, if any."""
        self.engine.timers.poke()
        await self.settle()  # due timers first, as the engine prefers them to new work
        upcoming = await self.engine.schedules.tick()
        await self.settle()
        await self.engine.purge_expired()
        return upcoming
