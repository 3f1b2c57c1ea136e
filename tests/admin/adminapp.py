"""Handlers for the admin API tests (served by uvicorn from this directory)."""

from dataclasses import dataclass

from ritornello import Context, Endpoint, Service, TerminalError, VirtualObject

box = VirtualObject("Box")
echo = Service("Echo")
flaky = Service("Flaky")

_failures: dict[str, int] = {}


@box.handler()
async def put(ctx: Context, value: object) -> object:
    """Exclusive: store ``value`` under "v"; returns the previous one."""
    before = await ctx.get("v")
    ctx.set("v", value)
    return before


@box.handler(kind="shared")
async def peek(ctx: Context) -> object:
    """Shared: the whole state as the handler sees it."""
    return {name: await ctx.get(name) for name in await ctx.state_keys()}


@box.handler()
async def hold(ctx: Context, note: str) -> str:
    """Exclusive: hold the key until the awakeable published in state "aid" is resolved."""
    aid, decision = ctx.awakeable()
    ctx.set("aid", aid)
    try:
        return f"{note}: {await decision}"
    except TerminalError as exc:
        return f"{note}: rejected ({exc.message})"


@echo.handler()
async def say(ctx: Context, text: str) -> str:
    """A step and a short sleep, then the text back."""
    loud = await ctx.run("upper", lambda: text.upper())
    await ctx.sleep(0.01)
    return loud


@dataclass
class Tally:
    """Words to count."""

    words: list[str]
    min_length: int = 1


@echo.handler()
async def tally(ctx: Context, tally: Tally) -> dict[str, int]:
    """Typed: how often each word of at least ``min_length`` letters occurs."""
    counts: dict[str, int] = {}
    for word in tally.words:
        if len(word) >= tally.min_length:
            counts[word] = counts.get(word, 0) + 1
    return counts


@flaky.handler()
async def twice(ctx: Context, name: str) -> str:
    """Fails its first two attempts (per name, in this process), then succeeds."""
    seen = _failures.get(name, 0)
    if seen < 2:
        _failures[name] = seen + 1
        raise RuntimeError(f"flaky failure {seen + 1} of {name}")
    return f"ok {name}"


endpoint = Endpoint([box, echo, flaky])
app = endpoint.asgi()
