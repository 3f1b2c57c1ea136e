"""The signup workflow example: the POST the e-mail asks for (a shared handler) resolves the
promise."""

from __future__ import annotations

import json
import time

from tests.integration.conftest import Stack


def test_signup_waits_for_the_click(stack: Stack) -> None:
    status, body, _ = stack.call("/restate/send/Signup/ada/run", {"email": "ada@example.com"})
    assert status == 202
    inv = body["invocationId"]  # type: ignore[index]
    secret = None
    for _ in range(200):
        journal = stack.admin("GET", f"/invocations/{inv}")[1]["journal"]  # type: ignore[index]
        sent = [e for e in journal if e.get("name") == "send-email" and "value" in e]
        if sent:
            # "sent to ADDRESS: POST PATH BODY", the body the secret as JSON
            _, method, path, body = sent[0]["value"].rsplit(" ", 3)
            assert (method, path) == ("POST", "/restate/call/Signup/ada/click")
            secret = json.loads(body)
            break
        time.sleep(0.02)
    assert secret is not None
    assert stack.call("/restate/call/Signup/ada/status")[:2] == (200, "waiting for the click")
    assert stack.call("/restate/call/Signup/ada/click", "wrong")[0] == 404
    assert stack.call("/restate/call/Signup/ada/click", secret)[:2] == (200, "thanks, confirmed")
    assert stack.call("/restate/call/Signup/ada/click", secret)[:2] == (200, "already confirmed")
    assert stack.get("/restate/workflow/Signup/ada/attach")[:2] == (
        200,
        {"user": "ada", "confirmed": True},
    )
    assert stack.call("/restate/call/Signup/ada/status")[:2] == (200, "confirmed")
    assert stack.call("/restate/call/Signup/bob/run", {"email": "nope"})[0] == 400
