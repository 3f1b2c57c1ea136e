"""The public names of ``ritornello.testing`` (docs/testing.md relies on them), and misuse
that must fail clearly."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

import ritornello.testing
from ritornello import Endpoint
from ritornello.testing import Harness, HarnessError

from ._services import SERVICES, steps


def test_the_exported_names() -> None:
    assert sorted(ritornello.testing.__all__) == [
        "Crash",
        "Divergence",
        "Harness",
        "HarnessError",
        "History",
        "InvocationStatus",
        "NotFinished",
        "ReplayDivergenceError",
        "ReplayReport",
        "replay",
        "replay_async",
    ]
    for name in ritornello.testing.__all__:
        assert getattr(ritornello.testing, name).__module__.startswith("ritornello.testing")
    assert issubclass(ritornello.testing.NotFinished, HarnessError)
    assert issubclass(ritornello.testing.ReplayDivergenceError, AssertionError)


def test_a_harness_must_be_started_and_takes_services_or_one_endpoint() -> None:
    async def main() -> None:
        env = Harness(*SERVICES)
        with pytest.raises(HarnessError, match="not started"):
            await env.call(steps, 1)
        async with Harness(SERVICES) as listed:  # a list works as the services themselves
            assert await listed.call(steps, 1) == ["step-0"]
        async with Harness(Endpoint(SERVICES)) as given:
            assert await given.call(steps, 1) == ["step-0"]
        with pytest.raises(HarnessError, match="build the Endpoint"):
            Harness(Endpoint(SERVICES), always_replay=True)
        with pytest.raises(HarnessError, match="aware datetime"):
            Harness(*SERVICES, start=datetime(2030, 1, 1))

    asyncio.run(main())
