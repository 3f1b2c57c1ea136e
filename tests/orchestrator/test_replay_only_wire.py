"""The orchestrator's side of replay-only requests (docs/protocol.md, "Replay only"): a request
carries ``replay_only`` only when asked for, and a ``replayed`` answer to an ordinary attempt
is a failed attempt (a malformed answer), never taken as progress."""

from __future__ import annotations

import asyncio
import json

from ritornello import Endpoint
from ritornello.orchestrator.core import AttemptFailed, Invocation, Invoke
from ritornello.orchestrator.invokers import Invoker
from ritornello.orchestrator.protocols import RitornelloProtocol, encode_request
from ritornello.protocol import InvokeResponse
from ritornello.store import InvocationRecord


class _Answers(Invoker):
    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.bodies: list[bytes] = []

    async def discover(self) -> bytes:
        return Endpoint([]).discovery().encode()

    async def invoke(self, service: str, handler: str, body: bytes) -> bytes:
        self.bodies.append(body)
        return self.answer


def test_the_orchestrator_refuses_a_replayed_answer_to_an_ordinary_attempt() -> None:
    rec = InvocationRecord("inv_o", "Dry", "flow", None, "exclusive", "running", "dp_1", 1, 0, 0)
    inv = Invocation.created(rec, '{"kind":"input","value":1}')
    assert b"replay_only" not in encode_request(inv)
    assert json.loads(encode_request(inv, replay_only=True))["replay_only"] is True
    invoker = _Answers(InvokeResponse(status="replayed", replayed=1).encode())
    adapter = RitornelloProtocol()
    outcome = asyncio.run(adapter.attempt(invoker, Invoke(inv, False), adapter.new_exchange(), 5))
    assert isinstance(outcome, AttemptFailed)
    assert "replayed, to a request that was not replay-only" in outcome.message
