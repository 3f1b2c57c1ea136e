"""The replay machine alone: no event loop, no handler, entries in, answer out."""

from __future__ import annotations

import pytest

from ritornello import JournalMismatchError, Suspended
from ritornello.protocol import Entry, InvokeRequest
from ritornello.sdk._machine import Machine


def machine(*journal: Entry, always_replay: bool = False, **request: object) -> Machine:
    full: list[Entry] = [{"kind": "input", "value": "in"}, *journal]
    return Machine(
        InvokeRequest("inv_m", "S", "h", None, 1, full, **request),  # type: ignore[arg-type]
        always_replay=always_replay,
    )


def test_replayed_actions_return_their_journal_entries_then_new_ones_are_collected() -> None:
    m = machine({"kind": "set", "name": "a", "value": 1})
    assert m.record({"kind": "set", "name": "a", "value": 99}) == (
        1,
        {"kind": "set", "name": "a", "value": 1},
    )
    assert m.record({"kind": "clear", "name": "a"}) == (2, None)
    m.finish({"kind": "output", "value": "x"})
    response = m.response()
    assert response.status == "done"
    assert response.entries == [{"kind": "clear", "name": "a"}, {"kind": "output", "value": "x"}]


def test_steps_hold_their_position_until_filled_and_a_hole_cuts_the_answer() -> None:
    m = machine()
    first, _ = m.reserve({"kind": "run", "name": "a"})
    second, _ = m.reserve({"kind": "run", "name": "b"})
    m.record({"kind": "set", "name": "k", "value": 1})
    m.fill(second, {"kind": "run", "name": "b", "value": 2})
    raise_and_keep = m.checkpoint()
    assert isinstance(raise_and_keep, Suspended)
    m.fill(first, {"kind": "run", "name": "a", "value": 1})
    assert [e.get("name") for e in m.response().entries] == ["a", "b", "k"]

    m = machine()
    first, _ = m.reserve({"kind": "run", "name": "a"})
    m.record({"kind": "set", "name": "k", "value": 1})
    m.fail_step("ValueError: no")
    response = m.response()
    assert response.status == "error" and response.entries == []


def test_a_mismatch_poisons_the_attempt() -> None:
    m = machine({"kind": "run", "name": "a", "value": 1})
    with pytest.raises(JournalMismatchError, match=r"index 1.*run 'a'.*run 'b'"):
        m.reserve({"kind": "run", "name": "b"})
    with pytest.raises(JournalMismatchError):
        m.record({"kind": "clear_all"})
    error = m.response().error
    assert error is not None and error["kind"] == "journal_mismatch"


def test_the_first_ending_wins_and_later_actions_re_raise_it() -> None:
    m = machine({"kind": "sleep", "name": "", "duration_ms": 5})
    index, _ = m.record({"kind": "sleep", "name": "", "duration_ms": 9})
    assert m.completion(index) is None
    signal = m.suspend([index])
    assert isinstance(signal, Suspended) and signal.waiting == (1,)
    m.checkpoint()
    with pytest.raises(Suspended):
        m.record({"kind": "clear_all"})
    response = m.response()
    assert response.status == "suspended" and response.waiting == [1] and response.entries == []


def test_always_replay_checkpoints_after_each_new_entry_but_not_the_output() -> None:
    m = machine(always_replay=True)
    with pytest.raises(Suspended):
        m.record({"kind": "clear_all"})
    assert m.response().status == "checkpoint"
    m = machine(always_replay=True)
    m.finish({"kind": "output", "value": None})
    assert m.response().status == "done"
