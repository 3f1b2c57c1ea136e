"""examples/approval.py: wait for a human's decision (an awakeable), or give up in time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from approval import approvals, pending, request

from ritornello.testing import Harness, HarnessError

from ._run import run


async def _asked(env: Harness, key: str, timeout_s: float = 3600) -> tuple[str, str]:
    """Send a request; (its invocation id, the awakeable id it published in its state)."""
    ref = await env.send(request, {"what": "laptop", "timeout_s": timeout_s}, key=key)
    aid = await env.call(pending, key=key)
    assert isinstance(aid, str) and aid == (await env.state(approvals, key))["awakeable"]
    return ref, aid


def test_approved_and_declined() -> None:
    async def test(env: Harness) -> None:
        ref, aid = await _asked(env, "ann")
        await env.resolve_awakeable(aid, True)
        assert await env.result(ref) == "approved"
        assert await env.call(pending, key="ann") is None  # cleared when decided
        ref, aid = await _asked(env, "bo")
        await env.resolve_awakeable(aid, False)
        assert await env.result(ref) == "declined"
        await env.check_replay(ref)

    run(test, approvals)


def test_rejected_with_a_reason() -> None:
    async def test(env: Harness) -> None:
        ref, aid = await _asked(env, "cy")
        await env.reject_awakeable(aid, "over budget")
        assert await env.result(ref) == "rejected: over budget"

    run(test, approvals)


def test_no_decision_in_time_expires() -> None:
    async def test(env: Harness) -> None:
        ref, _ = await _asked(env, "di", timeout_s=600)
        await env.advance(timedelta(seconds=599))
        assert (await env.status(ref)).status == "suspended"
        await env.advance(timedelta(seconds=1))
        assert await env.result(ref) == "expired"
        assert await env.call(pending, key="di") is None
        await env.check_replay(ref)

    run(test, approvals)


def test_a_decision_after_the_timeout_changes_nothing() -> None:
    async def test(env: Harness) -> None:
        ref, aid = await _asked(env, "ed", timeout_s=60)
        await env.advance(timedelta(minutes=5))
        assert await env.result(ref) == "expired"
        with pytest.raises(HarnessError, match="its invocation is completed"):
            await env.resolve_awakeable(aid, True)
        assert await env.result(ref) == "expired"

    run(test, approvals)
