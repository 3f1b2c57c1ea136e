"""Cancellation in the SDK: raised once, at the first await without a result, journaled so a
replay raises it at the same place even after the awaited call has completed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ritornello import Context, Endpoint, Service, TerminalError, gather

svc = Service("Cx")


@svc.handler()
async def work(ctx: Context) -> list[str]:
    done: list[str] = []
    try:
        await ctx.call("Other/slow", 1)
        done.append("slow finished")
    except TerminalError as exc:
        done.append(f"caught {exc.status_code} {exc.message}")
        await ctx.call("Other/undo", 1)  # compensations await as usual after the cancel
        done.append("undone")
    return done


@svc.handler()
async def both(ctx: Context) -> Any:
    try:
        return await gather(ctx.call("Other/a"), ctx.call("Other/b"))
    except TerminalError as exc:
        return exc.message


ID = "inv_cccccccccccccccccccccccccc"
CANCEL = {"index": -1, "failure": {"code": 409, "message": "cancelled"}}


def _invoke(handler: str, journal: list[Any], completions: list[Any]) -> Any:
    request = {
        "version": 1,
        "type": "invoke",
        "id": ID,
        "service": "Cx",
        "handler": handler,
        "key": None,
        "attempt": 1,
        "journal": journal,
        "completions": completions,
        "state": None,
    }
    return json.loads(asyncio.run(Endpoint([svc]).inprocess().invoke(json.dumps(request).encode())))


def test_cancel_is_raised_once_and_replayed_at_the_same_place() -> None:
    journal: list[Any] = [{"kind": "input", "value": None}]
    first = _invoke("work", journal, [])
    assert first["status"] == "suspended" and first["waiting"] == [1]
    journal += first["entries"]
    cancelled = _invoke("work", journal, [CANCEL])
    marker, undo = cancelled["entries"]
    assert marker == {"kind": "run", "name": "ctx.cancelled", "value": 1}
    assert undo["kind"] == "call" and undo["name"] == "Other/undo"
    assert cancelled["status"] == "suspended" and cancelled["waiting"] == [3]
    journal += cancelled["entries"]
    # The slow call completes after all: the replay must still take the cancelled path.
    late = [CANCEL, {"index": 1, "value": "late"}, {"index": 3, "value": None}]
    final = _invoke("work", journal, late)
    assert final["status"] == "done"
    assert final["entries"][-1]["value"] == ["caught 409 cancelled", "undone"]


def test_cancel_while_gathering() -> None:
    journal: list[Any] = [{"kind": "input", "value": None}]
    first = _invoke("both", journal, [])
    assert first["status"] == "suspended" and first["waiting"] == [1, 2]
    journal += first["entries"]
    out = _invoke("both", journal, [CANCEL])
    assert out["entries"][0] == {"kind": "run", "name": "ctx.cancelled", "value": 1}
    assert out["entries"][-1] == {"kind": "output", "value": "cancelled"}
    again = _invoke("both", journal + out["entries"][:1], [CANCEL, {"index": 1, "value": 1}])
    assert again["entries"][-1] == {"kind": "output", "value": "cancelled"}
