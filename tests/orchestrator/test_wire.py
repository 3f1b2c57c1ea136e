"""The wire of Ritornello's protocol (``orchestrator/protocols/_ritornello.py``), round trip:
what the orchestrator builds decodes, by the protocol's own strict decoder, to exactly the
request it stands for; every answer the protocol can express decodes back to itself; anything
else is a failed attempt with a message, never a half-read answer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ritornello.orchestrator.core import Invocation
from ritornello.orchestrator.protocols import decode_answer, decode_discovery, encode_request
from ritornello.protocol import (
    DiscoveryResponse,
    HandlerInfo,
    InvokeRequest,
    InvokeResponse,
    ProtocolError,
    RetryPolicy,
    ServiceInfo,
)
from ritornello.store import InvocationRecord

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _record(**changes: Any) -> InvocationRecord:
    fields: dict[str, Any] = {
        "id": "inv_" + "a" * 26,
        "service": "Svc",
        "handler": "h",
        "key": None,
        "handler_kind": "exclusive",
        "status": "running",
        "deployment_id": "dp_1",
        "seq": 1,
        "created_at": 0,
        "modified_at": 0,
    }
    fields.update(changes)
    return InvocationRecord(**fields)


@given(
    key=st.none() | st.text(),
    attempt=st.integers(min_value=1, max_value=10**6),
    values=st.lists(_json, min_size=1, max_size=5),
    done=st.sets(st.integers(min_value=1, max_value=4)),
    state=st.none() | st.dictionaries(st.text(), _json, max_size=4),
    promises=st.none() | st.dictionaries(st.text(min_size=1), _json, max_size=3),
)
@settings(max_examples=200, deadline=None)
def test_a_request_decodes_to_what_it_stands_for(
    key: str | None,
    attempt: int,
    values: list[Any],
    done: set[int],
    state: dict[str, Any] | None,
    promises: dict[str, Any] | None,
) -> None:
    """Stored texts (entries with ``at`` stamps, completions in any order, state values) are
    spliced into a request that the SDK's strict decoder reads back exactly."""
    entries = [{"kind": "input", "value": values[0], "at": 5}]
    entries += [{"kind": "sleep", "duration_ms": 1, "wake_at": 2} for _ in values[1:]]
    completions = {i: {"index": i, "value": i * 10} for i in done if i < len(entries)}
    inv = Invocation(
        _record(key=key, attempt=attempt),
        [_text(e) for e in entries],
        {i: _text(c) for i, c in sorted(completions.items(), reverse=True)},
        set(range(1, len(entries))),
        state={k: _text(v) for k, v in state.items()} if state is not None else None,
        promises={k: _text({"value": v}) for k, v in promises.items()}
        if promises is not None
        else None,
    )
    got = InvokeRequest.decode(encode_request(inv))
    assert got == InvokeRequest(
        id=inv.rec.id,
        service="Svc",
        handler="h",
        key=key,
        attempt=attempt,
        journal=entries,
        completions=[completions[i] for i in sorted(completions)],
        state=state,
        promises={k: {"value": v} for k, v in promises.items()} if promises is not None else None,
    )


_entries = st.lists(
    st.builds(lambda v: {"kind": "run", "name": "step", "value": v}, _json), max_size=4
)


@given(
    entries=_entries,
    status=st.sampled_from(["done", "suspended", "checkpoint", "error"]),
    value=_json,
)
@settings(max_examples=200, deadline=None)
def test_every_answer_decodes_to_itself(
    entries: list[dict[str, Any]], status: str, value: Any
) -> None:
    waiting: list[int] = []
    error = None
    if status == "done":
        entries = [*entries, {"kind": "output", "value": value}]
    elif status == "suspended":
        waiting = [1]
    elif status == "error":
        error = {"kind": "ValueError", "message": str(value)}
    answer = InvokeResponse(status, entries, waiting, error)
    assert decode_answer(answer.encode()) == answer


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"not json", "not JSON"),
        (b"[1,2]", "not a JSON object but list"),
        (b"null", "not a JSON object but NoneType"),
        (b'{"version":1,"status":"weird","entries":[]}', "unknown status"),
        (b'{"version":99,"status":"done","entries":[]}', "unsupported protocol version"),
        (
            b'{"version":1,"status":"done","entries":[{"kind":"run","value":18446744073709551616}]}',
            "out of range",
        ),
        (b'{"version":1,"status":"suspended","entries":[]}', "must name what it waits on"),
        (b'{"version":1,"status":"done","entries":[{"kind":"nope"}]}', "not a journal entry"),
    ],
)
def test_what_is_not_an_answer_is_a_failed_attempt_saying_why(raw: bytes, why: str) -> None:
    got = decode_answer(raw)
    assert isinstance(got, str) and got.startswith("protocol: malformed answer") and why in got


def test_discovery_round_trips_and_refuses_what_is_not_one() -> None:
    found = DiscoveryResponse(
        (
            ServiceInfo("Obj", "object", (HandlerInfo("add"), HandlerInfo("get", "shared"))),
            ServiceInfo("Svc", "service", (HandlerInfo("h", retry=RetryPolicy(max_attempts=3)),)),
        ),
        stream=True,
    )
    assert decode_discovery(found.encode()) == found
    for bad in (b"<html>", b"[]", b'{"version":1}', b'{"version":1,"services":[{"kind":"x"}]}'):
        with pytest.raises(ProtocolError):
            decode_discovery(bad)
