"""Integers past 64 bits: orjson, which reads every endpoint answer, would turn them into
floats, so a handler's result, step value or state write carrying one must fail its attempt
with a clear message, never be stored changed."""

from __future__ import annotations

import asyncio
import json

from ritornello import Context, Endpoint, Service
from ritornello.orchestrator import Engine
from ritornello.orchestrator._json import IntegerRangeError, check_int64
from ritornello.protocol import RetryPolicy
from ritornello.store.memory import MemoryStore

big = Service("Big")


@big.handler(retry=RetryPolicy(max_attempts=2, on_max_attempts="pause"))
async def huge(ctx: Context, n: int) -> int:
    return await ctx.run("square", lambda: n * n)


def test_check_int64_bounds() -> None:
    check_int64(
        b'{"a": 18446744073709551615, "b": -9223372036854775808, "s": "1234567890123456789012"}'
    )
    for text in (b"[18446744073709551616]", b'{"a": -9223372036854775809}', b"1" * 400):
        try:
            check_int64(text)
        except IntegerRangeError as exc:
            assert "64 bits" in str(exc)
        else:
            raise AssertionError(f"{text[:40]!r} passed")


def test_an_answer_with_a_huge_integer_fails_its_attempt_and_stores_no_float() -> None:
    async def main() -> None:
        store = MemoryStore()
        await store.open()
        engine = Engine(
            store,
            retry=RetryPolicy(initial_interval_ms=2, factor=1.0, max_interval_ms=2),
            inprocess={"app": Endpoint([big]).inprocess()},
        )
        await engine.start()
        try:
            await engine.register_deployment("inproc://app")
            target = engine.registry.resolve("Big", "huge")
            assert target is not None
            small, _ = await engine.submit(target, None, "3037000499")  # square < 2**63
            assert json.loads(await engine.wait_result(small.id)) == {"value": 3037000499**2}
            rec, _ = await engine.submit(target, None, str(2**40))  # square = 2**80
            for _ in range(500):
                got = await store.get_invocation(rec.id)
                assert got is not None
                if got.status == "paused":
                    break
                await asyncio.sleep(0.01)
            assert got.status == "paused", got
            assert got.last_error is not None and "64 bits" in got.last_error
            entries, _ = await store.get_journal(rec.id)
            assert all("e+" not in e for e in entries), entries  # nothing stored as a float
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())
