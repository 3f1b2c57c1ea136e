"""Golden journals: recorded requests and the exact answers the SDK must give.

Each file in ``golden/`` holds an ``InvokeRequest``, the endpoint options, the wall clock the
SDK reads (for sleeps), and the expected ``InvokeResponse``. To re-record after a deliberate
change, run with ``RITORNELLO_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
from typing import Any

import pytest

from ritornello import Endpoint
from ritornello.sdk import _invocation

from ._handlers import ALL_SERVICES

GOLDEN = pathlib.Path(__file__).parent / "golden"
FILES = sorted(GOLDEN.glob("*.json"))


def _answer(fixture: dict[str, Any]) -> dict[str, Any]:
    endpoint = Endpoint(ALL_SERVICES, **fixture["endpoint"]).inprocess()
    body = json.dumps(fixture["request"]).encode()
    answer: dict[str, Any] = json.loads(asyncio.run(endpoint.invoke(body)))
    return answer


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_golden_journal(path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fixture = json.loads(path.read_text())
    monkeypatch.setattr(_invocation, "_wall_clock", lambda: fixture["clock_ms"] / 1000)
    answer = _answer(fixture)
    if os.environ.get("RITORNELLO_UPDATE_GOLDEN") == "1":
        fixture["response"] = answer
        path.write_text(json.dumps(fixture, indent=2) + "\n")
    assert answer == fixture["response"]


def test_golden_set_covers_the_cases() -> None:
    statuses = {json.loads(p.read_text())["response"]["status"] for p in FILES}
    assert statuses == {"done", "suspended", "checkpoint", "error"}
    kinds = {(json.loads(p.read_text())["response"].get("error") or {}).get("kind") for p in FILES}
    assert "journal_mismatch" in kinds


def test_mismatch_answers_name_index_expected_and_actual() -> None:
    fixture = json.loads((GOLDEN / "divergent_name.json").read_text())
    answer = _answer(fixture)
    assert answer["entries"] == []
    assert answer["error"]["kind"] == "journal_mismatch"
    message = answer["error"]["message"]
    assert "index 1" in message and "'a'" in message and "'format'" in message
