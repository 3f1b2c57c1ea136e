"""A signup workflow: create the account, e-mail a confirmation link, wait for the click.

``run`` executes once per workflow id (the user id). The e-mail link calls the shared
``click`` handler, which resolves the ``email-confirmed`` promise, before or after ``run``
starts waiting on it; ``status`` reads the workflow's state while it runs.
"""

from typing import Any

from ritornello import Context, TerminalError, Workflow

signup = Workflow("Signup")

OUTBOX: list[dict[str, str]] = []  # stands in for an e-mail service


def _send_email(to: str, link: str) -> str:
    OUTBOX.append({"to": to, "link": link})
    return f"sent {link} to {to}"


@signup.main()
async def run(ctx: Context, user: dict[str, Any]) -> dict[str, Any]:
    email = user.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise TerminalError("a signup needs an e-mail address", status_code=400)
    ctx.set("stage", "account created")
    secret = ctx.uuid().hex
    link = f"/restate/call/Signup/{ctx.key}/click?secret={secret}"
    ctx.set("secret", secret)
    await ctx.run("send-email", _send_email, email, link)
    ctx.set("stage", "waiting for the click")
    clicked_with = await ctx.promise("email-confirmed").value()
    ctx.set("stage", "confirmed")
    return {"user": ctx.key, "confirmed": clicked_with == secret}


@signup.handler()
async def click(ctx: Context, secret: str) -> str:
    """The link in the e-mail: resolves the promise (a second click is harmless)."""
    if secret != await ctx.get("secret"):
        raise TerminalError("unknown link", status_code=404)
    if await ctx.promise("email-confirmed").peek() is not None:
        return "already confirmed"
    await ctx.promise("email-confirmed").resolve(secret)
    return "thanks, confirmed"


@signup.handler()
async def status(ctx: Context) -> str:
    return await ctx.get("stage") or "not started"
