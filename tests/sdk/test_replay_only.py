"""Replay-only requests (docs/protocol.md, "Replay only"): the dry run of restart-as-new.

The endpoint replays the journal and answers ``replayed`` at the handler's first action past
it — before that action records or runs anything — or the first mismatch; discovery advertises
it; the messages round-trip and refuse malformed fields."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest

from ritornello import Context, Endpoint, Service
from ritornello.protocol import (
    DiscoveryResponse,
    Entry,
    InvokeRequest,
    InvokeResponse,
    ProtocolError,
)
from ritornello.sdk._machine import Machine
from ritornello.sdk.errors import Suspended

steps: Counter[str] = Counter()
svc = Service("Dry")


@svc.handler()
async def flow(ctx: Context, n: int) -> int:
    a = await ctx.run("a", lambda: steps.update(["a"]) or n + 1)
    b = await ctx.run("b", lambda: steps.update(["b"]) or a * 2)
    return b


@svc.handler()
async def fan(ctx: Context, n: int) -> list[int]:
    batch = await ctx.map("each", list(range(n)), _each)
    return [item.value for item in batch.items]


async def _each(ctx: Context, i: int) -> int:
    return await ctx.run("one", lambda: steps.update(["one"]) or i)


ENDPOINT = Endpoint([svc])


def _invoke(handler: str, journal: list[Entry], **fields: Any) -> InvokeResponse:
    request = InvokeRequest("inv_dry", "Dry", handler, None, 1, journal, replay_only=True, **fields)
    raw = asyncio.run(ENDPOINT.inprocess().invoke(request.encode()))
    return InvokeResponse.decode(raw)


def test_the_first_action_past_the_journal_ends_the_replay_before_it_runs() -> None:
    steps.clear()
    only_input = _invoke("flow", [{"kind": "input", "value": 1}])
    assert (only_input.status, only_input.replayed, only_input.entries) == ("replayed", 1, [])
    kept = _invoke(
        "flow", [{"kind": "input", "value": 1}, {"kind": "run", "name": "a", "value": 2}]
    )
    assert (kept.status, kept.replayed) == ("replayed", 2)
    whole = [
        {"kind": "input", "value": 1},
        {"kind": "run", "name": "a", "value": 2},
        {"kind": "run", "name": "b", "value": 4},
    ]
    assert _invoke("flow", whole).replayed == 3  # its output would be new: not recorded
    assert steps == Counter()  # no step ran


def test_a_changed_handler_answers_its_first_mismatch() -> None:
    steps.clear()
    answer = _invoke(
        "flow", [{"kind": "input", "value": 1}, {"kind": "run", "name": "x", "value": 2}]
    )
    assert answer.status == "error" and answer.error is not None
    assert answer.error["kind"] == "journal_mismatch"
    assert (answer.error["index"], answer.error["journal_has"], answer.error["handler_did"]) == (
        "1",
        "run 'x'",
        "run 'a'",
    )
    assert steps == Counter()


def test_a_fan_out_branch_past_the_journal_ends_the_replay() -> None:
    steps.clear()
    answer = _invoke("fan", [{"kind": "input", "value": 2}])
    assert answer.status == "replayed" and answer.entries == []
    assert steps == Counter()


def test_the_machine_records_nothing_past_the_journal() -> None:
    journal: list[Entry] = [{"kind": "input", "value": 0}, {"kind": "set", "name": "k", "value": 1}]
    m = Machine(InvokeRequest("inv_m", "S", "h", None, 1, journal), replay_only=True)
    assert m.record({"kind": "set", "name": "k", "value": 9}) == (1, journal[1])
    with pytest.raises(Suspended):
        m.record({"kind": "clear", "name": "k"})
    with pytest.raises(Suspended):  # ended: every later action ends it again
        m.reserve({"kind": "run", "name": "s"})
    assert m.response() == InvokeResponse(status="replayed", replayed=2)


def test_messages_round_trip_and_refuse_malformed_fields() -> None:
    request = InvokeRequest("i", "S", "h", None, 1, [{"kind": "input"}], replay_only=True)
    assert InvokeRequest.decode(request.encode()) == request
    assert "replay_only" not in InvokeRequest("i", "S", "h", None, 1, [{"kind": "input"}]).to_dict()
    bad = {**request.to_dict(), "replay_only": "yes"}
    with pytest.raises(ProtocolError, match="replay_only must be true or false"):
        InvokeRequest.decode(bad)
    answer = InvokeResponse(status="replayed", replayed=3)
    assert InvokeResponse.decode(answer.encode()) == answer
    base = answer.to_dict()
    for wrong in (
        {"replayed": 0},
        {"replayed": "3"},
        {"replayed": True},
        {"entries": [{"kind": "output"}]},
    ):
        with pytest.raises(ProtocolError, match="replayed"):
            InvokeResponse.decode({**base, **wrong})
    found = DiscoveryResponse.decode(ENDPOINT.discovery().encode())
    assert found.replay_only is True
    assert DiscoveryResponse.decode(json.dumps({"version": 1, "services": []})).replay_only is False
