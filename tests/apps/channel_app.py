"""A Lambda app for the checkpoint channel's tests (tests/integration/test_lambda_channel.py).

Every Lambda event this process gets appends one line to CHANNEL_INVOKES (``invoke`` or
``discover``), and every execution of a step's side effect appends ``invocation step`` to
CHANNEL_LEDGER: a test counts Lambda requests and step executions from them. The channel
token of each unsigned request goes to CHANNEL_TOKENS.
"""

import os
import time

from ritornello import Context, Endpoint, Service, TerminalError

steps = Service("Steps")


def _append(path_var: str, line: str) -> None:
    path = os.environ.get(path_var)
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


def _effect(invocation_id: str, step: str, i: int, pause_s: float) -> int:
    _append("CHANNEL_LEDGER", f"{invocation_id} {step}")
    if pause_s:
        time.sleep(pause_s)
    return i * i


@steps.handler()
async def ten(ctx: Context, args: dict[str, float]) -> list[int]:
    """``n`` steps (ten by default), each ``pause_s`` long."""
    n, pause = int(args.get("n", 10)), float(args.get("pause_s", 0))
    out = []
    for i in range(n):
        out.append(await ctx.run(f"step-{i}", _effect, ctx.invocation_id, f"step-{i}", i, pause))
    return out


@steps.handler()
async def waits(ctx: Context, args: dict[str, float]) -> dict[str, object]:
    """Publishes an awakeable (to CHANNEL_AWAKEABLE), runs ``n`` steps of ``pause_s``, then
    awaits the awakeable; cancelled, it says so."""
    aid, fut = ctx.awakeable()
    await ctx.run("publish", _publish, aid)
    n, pause = int(args.get("n", 6)), float(args.get("pause_s", 0.3))
    out = []
    try:
        for i in range(n):
            out.append(
                await ctx.run(f"step-{i}", _effect, ctx.invocation_id, f"step-{i}", i, pause)
            )
        value = await fut
    except TerminalError as exc:
        return {"steps": out, "cancelled": str(exc)}
    return {"steps": out, "awakeable": value}


def _publish(aid: str) -> str:
    path = os.environ.get("CHANNEL_AWAKEABLE")
    if path:
        with open(path + ".tmp", "w") as fh:
            fh.write(aid)
        os.replace(path + ".tmp", path)
    return aid


_handler = Endpoint([steps]).lambda_handler()


def lambda_handler(event: object, context: object = None) -> dict[str, object]:
    text = repr(event)
    _append("CHANNEL_INVOKES", "discover" if "discover" in text else "invoke")
    if isinstance(event, dict) and isinstance(event.get("channel"), dict):
        _append("CHANNEL_TOKENS", event["channel"]["token"])  # unsigned requests only
    return _handler(event, context)
