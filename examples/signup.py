"""A signup workflow: create the account, e-mail a confirmation, wait for the confirmation.

``run`` executes once per workflow id (the user id). The e-mail carries the request that
confirms: ``POST /restate/call/Signup/{id}/click`` with the secret as its JSON body. It is not
a link: the ingress invokes handlers with POST only (a GET is answered 405), so a real e-mail
would link to a page of your own that makes this POST. It calls the shared ``click`` handler,
which resolves the ``email-confirmed`` promise, before or after ``run`` starts waiting on it;
``status`` reads the workflow's state while it runs.
"""

import json
from typing import Any

from ritornello import Context, TerminalError, Workflow

signup = Workflow("Signup")

OUTBOX: list[dict[str, str]] = []  # stands in for an e-mail service


def _send_email(to: str, path: str, body: str) -> str:
    OUTBOX.append({"to": to, "method": "POST", "path": path, "body": body})
    return f"sent to {to}: POST {path} {body}"


@signup.main()
async def run(ctx: Context, user: dict[str, Any]) -> dict[str, Any]:
    email = user.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise TerminalError("a signup needs an e-mail address", status_code=400)
    ctx.set("stage", "account created")
    secret = ctx.uuid().hex
    confirm = f"/restate/call/Signup/{ctx.key}/click"  # POST, the secret as its JSON body
    ctx.set("secret", secret)
    await ctx.run("send-email", _send_email, email, confirm, json.dumps(secret))
    ctx.set("stage", "waiting for the click")
    clicked_with = await ctx.promise("email-confirmed").value()
    ctx.set("stage", "confirmed")
    return {"user": ctx.key, "confirmed": clicked_with == secret}


@signup.handler()
async def click(ctx: Context, secret: str) -> str:
    """The POST the e-mail asks for: resolves the promise (a second one is harmless)."""
    if secret != await ctx.get("secret"):
        raise TerminalError("unknown secret", status_code=404)
    if await ctx.promise("email-confirmed").peek() is not None:
        return "already confirmed"
    await ctx.promise("email-confirmed").resolve(secret)
    return "thanks, confirmed"


@signup.handler()
async def status(ctx: Context) -> str:
    return await ctx.get("stage") or "not started"
