"""``FakeInvoker``: scripted answers, seeded faults, registration as ``inproc://NAME``, and a
garbage answer failing one attempt of a real engine."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from typing import Any

import pytest

from ritornello import Context, Endpoint, Service
from ritornello.orchestrator import Engine, FakeInvoker, InvokerError, invokers
from ritornello.orchestrator.invokers import Faults, InProcessInvoker, make_invoker
from ritornello.protocol import DiscoveryResponse, HandlerInfo, RetryPolicy, ServiceInfo
from ritornello.store.memory import MemoryStore

FAST = RetryPolicy(initial_interval_ms=5, factor=2.0, max_interval_ms=50)
DISCOVERY = DiscoveryResponse((ServiceInfo("Fake", "service", (HandlerInfo("h"),)),)).encode()

svc = Service("Doubler")
runs: list[int] = []


@svc.handler()
async def double(ctx: Context, n: int) -> int:
    runs.append(n)
    return 2 * n


class _Counting:
    """An in-process target that counts the invokes it ran and answers their bodies back."""

    def __init__(self) -> None:
        self.ran = 0

    async def discover(self) -> bytes:
        return DISCOVERY

    async def invoke(self, body: bytes) -> bytes:
        self.ran += 1
        return b"ran:" + body


def test_a_script_is_answered_in_order_and_its_last_answer_repeats() -> None:
    async def main() -> None:
        fake = FakeInvoker(answers=[b"a", InvokerError("refused"), b"b"], discovery=DISCOVERY)
        assert await fake.discover() == DISCOVERY
        assert await fake.invoke("Fake", "h", b"1") == b"a"
        with pytest.raises(InvokerError, match="refused"):
            await fake.invoke("Fake", "h", b"2")
        assert [await fake.invoke("Fake", "h", b) for b in (b"3", b"4")] == [b"b", b"b"]
        assert fake.requests == [b"1", b"2", b"3", b"4"] and fake.calls == 4
        await fake.close()  # a no-op: the instance goes on answering
        assert await fake.invoke("Fake", "h", b"5") == b"b"

    asyncio.run(main())


def test_a_target_answers_and_discovery_can_be_overridden() -> None:
    async def main() -> None:
        target = _Counting()
        fake = FakeInvoker(target)
        assert await fake.discover() == DISCOVERY
        assert await fake.invoke("Fake", "h", b"x") == b"ran:x"
        assert target.ran == 1
        assert await FakeInvoker(target, discovery=b"other").discover() == b"other"
        with pytest.raises(InvokerError, match="no discovery"):
            await FakeInvoker(answers=[b"a"]).discover()

    asyncio.run(main())


def test_it_needs_exactly_one_source_of_answers_and_sane_rates() -> None:
    with pytest.raises(ValueError, match="give one"):
        FakeInvoker()
    with pytest.raises(ValueError, match="give one"):
        FakeInvoker(_Counting(), answers=[b"a"])
    with pytest.raises(ValueError, match="at least one answer"):
        FakeInvoker(answers=[])
    with pytest.raises(ValueError, match="sum to at most 1"):
        Faults(refuse=0.6, lose=0.6)
    with pytest.raises(ValueError, match="sum to at most 1"):
        Faults(garbage=-0.1)
    with pytest.raises(ValueError, match="delay"):
        Faults(slow=0.5, delays_s=())


FAULTS = Faults(refuse=0.2, lose=0.2, garbage=0.2, slow=0.2, delays_s=(0.0, 0.001))


async def _outcomes(seed: int, n: int = 60) -> tuple[list[str], int]:
    """What ``n`` invokes through a faulty FakeInvoker seeded with ``seed`` gave, and how often
    the target ran."""
    target = _Counting()
    fake = FakeInvoker(target, faults=FAULTS, rng=random.Random(seed))
    out = []
    for i in range(n):
        try:
            out.append((await fake.invoke("Fake", "h", str(i).encode())).decode())
        except InvokerError as exc:
            out.append(str(exc))
    assert fake.calls == n
    return out, target.ran


def test_faults_from_a_seeded_rng_are_reproducible() -> None:
    first, ran = asyncio.run(_outcomes(7))
    assert asyncio.run(_outcomes(7)) == (first, ran)
    assert asyncio.run(_outcomes(8))[0] != first
    assert {o.split(":")[0] for o in first} == {
        "ran",  # no fault, or a slow answer
        "injected",  # refused or lost
        '{"version"',  # garbage
    }


def test_the_draws_follow_the_documented_order() -> None:
    """One ``random()`` per invoke, matched against refuse, lose, garbage, slow in that order,
    and one ``choice(delays_s)`` more for a slow answer: the simulation's seeds rely on it."""
    out, ran = asyncio.run(_outcomes(11))
    rng = random.Random(11)
    expected, target_runs = [], 0
    for i in range(60):
        x = rng.random()
        if x < 0.2:
            expected.append("injected: connection refused")
            continue
        if x < 0.4:
            target_runs += 1
            expected.append("injected: connection reset after the request")
        elif x < 0.6:
            expected.append(FAULTS.garbage_answer.decode())
        else:
            if x < 0.8:
                rng.choice(FAULTS.delays_s)
            target_runs += 1
            expected.append(f"ran:{i}")
    assert out == expected and ran == target_runs


def test_a_cancelled_caller_cancels_the_slow_answer_and_the_handler() -> None:
    async def main() -> None:
        target = _Counting()
        fake = FakeInvoker(target, faults=Faults(slow=1.0, delays_s=(3600.0,)))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(fake.invoke("Fake", "h", b"x"), 0.05)
        await asyncio.sleep(0)
        assert fake.calls == 1 and target.ran == 0
        assert len(asyncio.all_tasks()) == 1  # only main(): the injected sleep is gone

    asyncio.run(main())


def test_inproc_registers_an_invoker_as_it_is_and_wraps_a_target() -> None:
    fake = FakeInvoker(answers=[b"a"], discovery=DISCOVERY)
    inprocess: dict[str, Any] = {"fake": fake, "app": Endpoint([svc]).inprocess()}
    assert make_invoker("inproc://fake", inprocess, timeout_s=1.0) is fake
    assert type(make_invoker("inproc://app", inprocess, timeout_s=1.0)) is InProcessInvoker
    with pytest.raises(InvokerError, match="no in-process endpoint named 'nope'"):
        make_invoker("inproc://nope", inprocess, timeout_s=1.0)


def test_a_garbage_answer_fails_one_attempt_of_a_real_engine() -> None:
    """A seeded garbage fault on the first attempt: the engine refuses the answer, keeps
    nothing of it, and the retry (no fault drawn) completes the invocation."""
    draws = random.Random(1)
    assert draws.random() < 0.5 <= draws.random()  # seed 1: garbage, then no fault

    async def main() -> None:
        store = MemoryStore()
        await store.open()
        fake = FakeInvoker(
            Endpoint([svc]).inprocess(), faults=Faults(garbage=0.5), rng=random.Random(1)
        )
        engine = Engine(store, retry=FAST, inprocess={"fake": fake})
        await engine.start()
        try:
            await engine.register_deployment("inproc://fake")
            await engine.register_deployment("inproc://fake")  # again: the same instance
            resolved = engine.registry.resolve("Doubler", "double")
            assert resolved is not None
            runs.clear()
            rec, _ = await engine.submit(resolved, None, "21")
            result = json.loads(await asyncio.wait_for(engine.wait_result(rec.id), 5))
            assert result == {"value": 42}
            final = await store.get_invocation(rec.id)
            assert final is not None and final.attempt == 2
            entries, _ = await store.get_journal(rec.id)
            assert [json.loads(e)["kind"] for e in entries] == ["input", "output"]
            assert fake.calls == 2 and runs == [21]  # the garbage attempt never ran it
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())


def test_the_invokers_package_exports_its_names_and_loads_boto3_only_for_lambda() -> None:
    assert sorted(invokers.__all__) == [
        "CHANNEL_PATH",
        "ChannelRun",
        "Channels",
        "DEFAULT_DENY",
        "Duplex",
        "FakeInvoker",
        "Faults",
        "FunctionError",
        "FunctionUrlInvoker",
        "HostDeniedError",
        "HostPolicy",
        "HttpClientError",
        "HttpInvoker",
        "HttpPool",
        "InProcessInvoker",
        "InProcessTarget",
        "InvokeStream",
        "Invoker",
        "InvokerError",
        "LambdaInvoker",
        "MAX_ANSWER_BYTES",
        "MAX_DISCOVERY_BYTES",
        "RefusedStatus",
        "TOKEN_HEADER",
        "ThrottledError",
        "check_uri_text",
        "is_function_url",
        "make_invoker",
        "parse_function_arn",
        "throttled",
    ]
    code = (
        "import sys, ritornello.orchestrator as o, ritornello.orchestrator.invokers as i\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules\n"
        "[getattr(i, name) for name in i.__all__]\n"
        "assert 'boto3' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
