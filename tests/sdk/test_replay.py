"""Replay end to end: a test orchestrator drives handlers until done, in every mode."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ritornello import Endpoint
from ritornello.protocol import Entry, InvokeRequest, InvokeResponse

from ._driver import Driver, Finished
from ._handlers import ALL_SERVICES, EXECUTIONS

MODES: dict[str, dict[str, Any]] = {
    "step": {"durability": "step"},
    "batch": {"durability": "batch"},
    "always_replay": {"always_replay": True},
}


def _drive(options: dict[str, Any]) -> tuple[Finished, Driver]:
    EXECUTIONS.clear()
    driver = Driver(Endpoint(ALL_SERVICES, **options).inprocess())
    finished = asyncio.run(driver.run("Ledger/process", 10, key="acct-1"))
    return finished, driver


def _timeless(journal: list[Entry]) -> list[Entry]:
    """A journal without what the wall clock decides (sleep wake_at, ctx.time)."""
    out: list[Entry] = []
    for entry in journal:
        entry = dict(entry)  # type: ignore[assignment]
        entry.pop("wake_at", None)
        if entry.get("name") == "ctx.time":
            entry.pop("value", None)
        out.append(entry)
    return out


def test_ten_step_handler_gives_the_same_result_in_every_mode() -> None:
    results = {mode: _drive(options) for mode, options in MODES.items()}
    outputs = {mode: finished.output for mode, (finished, _) in results.items()}
    assert outputs["step"] == outputs["batch"] == outputs["always_replay"]
    assert outputs["step"]["value"]["total"] == sum(i * i for i in range(10))
    assert outputs["step"]["value"]["doubled"] == 2 * 285
    journals = {mode: _timeless(finished.journal) for mode, (finished, _) in results.items()}
    assert journals["step"] == journals["batch"] == journals["always_replay"]
    states = {mode: driver.states for mode, (_, driver) in results.items()}
    assert states["step"] == states["batch"] == states["always_replay"]
    assert "s0" not in states["step"][("Ledger", "acct-1")]
    sent = {mode: driver.sent for mode, (_, driver) in results.items()}
    assert sent["step"] == sent["batch"] == sent["always_replay"]
    rounds = {mode: driver.rounds for mode, (_, driver) in results.items()}
    assert rounds["batch"] < rounds["step"] < rounds["always_replay"]


@pytest.mark.parametrize("mode", MODES)
def test_each_step_executes_exactly_once_across_reinvocations(mode: str) -> None:
    _drive(MODES[mode])
    # Ten steps of the ledger and one step in the Math/double callee.
    assert len(EXECUTIONS) == 11
    assert set(EXECUTIONS.values()) == {1}


def test_step_durability_never_starts_a_step_before_the_previous_one_is_persisted() -> None:
    finished, _ = _drive(MODES["step"])
    runs = [e for e in finished.journal if e["kind"] == "run" and e["name"] != "ctx.time"]
    # The handler runs its steps one after another: each answer carries at most one new step,
    # so no step started while an earlier one's result was unpersisted.
    assert max(finished.runs_per_answer) == 1
    assert sum(finished.runs_per_answer) == len(runs)
    batch, _ = _drive(MODES["batch"])
    assert max(batch.runs_per_answer) > 1


def test_always_replay_answers_one_new_entry_per_checkpoint() -> None:
    EXECUTIONS.clear()
    endpoint = Endpoint(ALL_SERVICES, always_replay=True).inprocess()
    journal: list[Entry] = [{"kind": "input", "value": "Ada"}]
    sizes = []
    while True:
        request = InvokeRequest("inv_x", "Greeter", "greet", None, 1, list(journal))
        response = InvokeResponse.decode(asyncio.run(endpoint.invoke(request.encode())))
        sizes.append((response.status, len(response.entries)))
        journal += response.entries
        if response.status == "done":
            break
    assert sizes == [("checkpoint", 1), ("checkpoint", 1), ("done", 1)]


def test_always_replay_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RITORNELLO_ALWAYS_REPLAY", "1")
    assert Endpoint(ALL_SERVICES).always_replay
    monkeypatch.setenv("RITORNELLO_ALWAYS_REPLAY", "0")
    assert not Endpoint(ALL_SERVICES).always_replay


def test_unknown_durability_is_refused() -> None:
    with pytest.raises(ValueError, match="durability"):
        Endpoint(ALL_SERVICES, durability="sometimes")
