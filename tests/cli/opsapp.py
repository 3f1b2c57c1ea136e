"""The examples plus a handler that fails before it succeeds (its failed attempts become the
invocation's ``retries``) and one that always fails, for the operator tests (CLI and UI):
``ritornello dev tests/cli/opsapp.py``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from app import SERVICES

from ritornello import Context, Endpoint, Service, TerminalError

flaky = Service("Flaky")
_attempts: dict[str, int] = {}  # one process (ritornello dev): attempts seen per name


@flaky.handler()
async def succeed_after(ctx: Context, order: dict[str, object]) -> str:
    """Fail ``order["fail"]`` times (a retryable error), then answer."""
    name = str(order["name"])
    _attempts[name] = _attempts.get(name, 0) + 1
    if _attempts[name] <= int(str(order["fail"])):
        raise RuntimeError(f"flaky failure {_attempts[name]} of {name}")
    return await ctx.run("answer", lambda: f"{name} ok after {_attempts[name]} attempts")


@flaky.handler()
async def refuse(ctx: Context, name: str) -> str:
    """Fail at once, terminally: the invocation ends ``failed``."""
    raise TerminalError(f"refused {name}", status_code=422)


endpoint = Endpoint([*SERVICES, flaky])
