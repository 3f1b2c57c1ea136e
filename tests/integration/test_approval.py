"""The approval example: an awakeable raced against a durable timer with ``select``."""

from __future__ import annotations

import time

from tests.integration.conftest import Stack


def _aid(stack: Stack, key: str) -> str:
    for _ in range(200):
        status, aid, _ = stack.call(f"/restate/call/Approvals/{key}/pending")
        if status == 200 and aid:
            return str(aid)
        time.sleep(0.02)
    raise AssertionError("no pending approval")


def test_approved_declined_rejected_and_expired(stack: Stack) -> None:
    send = "/restate/send/Approvals"
    ids = {
        key: stack.call(f"{send}/{key}/request", {"timeout_s": 60})[1]["invocationId"]  # type: ignore[index]
        for key in ("yes", "no", "reject")
    }
    expired = stack.call(f"{send}/late/request", {"timeout_s": 0.3})[1]["invocationId"]  # type: ignore[index]
    assert stack.call(f"/restate/awakeables/{_aid(stack, 'yes')}/resolve", True)[0] == 202
    assert stack.call(f"/restate/awakeables/{_aid(stack, 'no')}/resolve", False)[0] == 202
    status, _, _ = stack.call(
        f"/restate/awakeables/{_aid(stack, 'reject')}/reject",
        raw=b"not in budget",
        headers={"content-type": "text/plain"},
    )
    assert status == 202
    results = {k: stack.get(f"/restate/attach/{v}")[:2] for k, v in ids.items()}
    assert results == {
        "yes": (200, "approved"),
        "no": (200, "declined"),
        "reject": (200, "rejected: not in budget"),
    }
    assert stack.get(f"/restate/attach/{expired}")[:2] == (200, "expired")
    assert stack.call("/restate/call/Approvals/yes/pending")[:2] == (200, None)
