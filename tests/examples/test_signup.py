"""examples/signup.py: a workflow that waits for the confirmation its e-mail asks for."""

from __future__ import annotations

import json

import pytest
from signup import OUTBOX, click, signup, status
from signup import run as signup_run

from ritornello import TerminalError
from ritornello.testing import Harness

from ._run import run


def _secret_of(mail: dict[str, str], key: str) -> str:
    """The e-mail asks for a POST to the click handler with the secret as its JSON body."""
    assert (mail["method"], mail["path"]) == ("POST", f"/restate/call/Signup/{key}/click")
    secret = json.loads(mail["body"])
    assert isinstance(secret, str)
    return secret


def test_signup_waits_for_the_click_then_confirms() -> None:
    async def test(env: Harness) -> None:
        OUTBOX.clear()
        assert await env.call(status, key="u1") == "not started"
        ref = await env.send(signup_run, {"email": "u1@example.com"}, key="u1")
        assert await env.call(status, key="u1") == "waiting for the click"
        assert [m["to"] for m in OUTBOX] == ["u1@example.com"]
        secret = _secret_of(OUTBOX[0], "u1")
        with pytest.raises(TerminalError, match="unknown secret") as raised:
            await env.call(click, "wrong", key="u1")
        assert raised.value.status_code == 404
        assert await env.call(click, secret, key="u1") == "thanks, confirmed"
        assert await env.result(ref) == {"user": "u1", "confirmed": True}
        assert await env.call(click, secret, key="u1") == "already confirmed"
        assert await env.call(status, key="u1") == "confirmed"
        await env.check_replay(ref)

    run(test, signup)


def test_the_promise_can_also_be_resolved_by_the_test_itself() -> None:
    async def test(env: Harness) -> None:
        ref = await env.send(signup_run, {"email": "u2@example.com"}, key="u2")
        await env.resolve_promise(signup, "u2", "email-confirmed", "not the secret")
        assert await env.result(ref) == {"user": "u2", "confirmed": False}

    run(test, signup)


def test_the_email_goes_out_once_after_a_crash_and_again_only_if_unjournaled() -> None:
    async def test(env: Harness) -> None:
        # run: input 0, set 1, set 2, run 'send-email' 3, set 4, promise_get 5, ...
        OUTBOX.clear()
        await env.send(signup_run, {"email": "u3@example.com"}, key="u3", crash_after=3)
        assert len(OUTBOX) == 1  # journaled before the crash: replayed, not sent again
        assert (env.crashes[-1].point, env.crashes[-1].index) == ("after", 3)
        OUTBOX.clear()
        await env.send(signup_run, {"email": "u4@example.com"}, key="u4", crash_before=3)
        assert len(OUTBOX) == 2  # sent, then lost: at-least-once
        assert (env.crashes[-1].point, env.crashes[-1].index) == ("before", 3)
        assert OUTBOX[0] == OUTBOX[1]  # the same request: the secret is deterministic

    run(test, signup)


def test_a_signup_needs_an_email_and_runs_once_per_id() -> None:
    async def test(env: Harness) -> None:
        with pytest.raises(TerminalError, match="e-mail address") as raised:
            await env.call(signup_run, {"email": "nope"}, key="u5")
        assert raised.value.status_code == 400
        # the workflow id u5 has run: its outcome stays, whatever the new input
        with pytest.raises(TerminalError, match="e-mail address"):
            await env.call(signup_run, {"email": "u5@example.com"}, key="u5")

    run(test, signup)
