"""RetryingStore's rule for ambiguous commits (retrying.py's table), applied to the parts a
unit has for flow control: permit grants, asks and releases, and completion removals."""

from __future__ import annotations

import dataclasses

import pytest

from ritornello.store import CommitUnit, ConflictError, PermitRecord
from ritornello.store.memory import MemoryStore
from ritornello.store.retrying import RetryingStore

from . import test_faults as faults

T0 = 1_700_000_000_000
ASKED = PermitRecord("emails", "inv_1", 3, 0, 0, T0)
GRANTED = dataclasses.replace(ASKED, granted_at=T0 + 5)
OTHER = PermitRecord("emails", "inv_2", 0, 0, 0, T0)


async def asked(inner: MemoryStore) -> None:
    await faults.setup(inner)
    await inner.commit(CommitUnit(permits_ask=[ASKED]))


def test_a_grant_that_landed_before_failing_returns_normally() -> None:
    async def body(inner: MemoryStore, store: RetryingStore) -> None:
        await asked(inner)
        await store.commit(CommitUnit(permits_grant=[GRANTED]))  # lost, then "already granted"
        assert await inner.get_permit("emails", "inv_1", 3) == GRANTED

    assert faults.run_scripted(body, "lost").calls == 2


def test_a_grant_another_made_first_is_a_conflict() -> None:
    inner_ref: list[MemoryStore] = []

    async def other_grants() -> None:
        theirs = dataclasses.replace(GRANTED, granted_at=T0 + 1)
        await inner_ref[0].commit(CommitUnit(permits_grant=[theirs]))

    async def body(inner: MemoryStore, store: RetryingStore) -> None:
        inner_ref.append(inner)
        await asked(inner)
        with pytest.raises(ConflictError):
            await store.commit(CommitUnit(permits_grant=[GRANTED]))

    faults.run_scripted(body, other_grants)


def test_an_ask_and_a_release_that_landed_with_an_entry_return_normally() -> None:
    unit = CommitUnit(
        entries=[("inv_1", 1, '"a"')],
        completions_remove=[("inv_1", 9)],
        permits_ask=[OTHER],
        permits_release=[("emails", "inv_1", 3)],
    )

    async def body(inner: MemoryStore, store: RetryingStore) -> None:
        await asked(inner)
        await store.commit(unit)
        assert await inner.list_permits() == [OTHER]

    faults.run_scripted(body, "lost")


@pytest.mark.parametrize(
    "unit",
    [
        # our ask is missing: the unit did not land, whatever the entry suggests
        CommitUnit(entries=[("inv_1", 1, '"a"')], permits_ask=[OTHER]),
        # a permit we release is still there
        CommitUnit(entries=[("inv_1", 1, '"a"')], permits_release=[("emails", "inv_1", 3)]),
    ],
    ids=["ask-missing", "release-still-there"],
)
def test_a_permit_against_outweighs_an_entry_for(unit: CommitUnit) -> None:
    inner_ref: list[MemoryStore] = []

    async def other_writer() -> None:  # writes our entry's text, nothing else of the unit
        await inner_ref[0].commit(CommitUnit(entries=[("inv_1", 1, '"a"')]))

    async def body(inner: MemoryStore, store: RetryingStore) -> None:
        inner_ref.append(inner)
        await asked(inner)
        with pytest.raises(ConflictError):
            await store.commit(unit)

    faults.run_scripted(body, other_writer)


def test_an_ask_granted_since_is_still_evidence() -> None:
    """The unit landed (its answer lost), and the owner granted our ask before the retry,
    whose entry then conflicts: the row differs from our ask by its grant only."""
    unit = CommitUnit(permits_ask=[OTHER], permits_release=[("emails", "inv_9", 0)])
    inner_ref: list[MemoryStore] = []

    async def landed_then_granted() -> None:
        await inner_ref[0].commit(unit)
        grant = dataclasses.replace(OTHER, granted_at=T0 + 9)
        await inner_ref[0].commit(CommitUnit(permits_grant=[grant]))

    async def body(inner: MemoryStore, store: RetryingStore) -> None:
        inner_ref.append(inner)
        await asked(inner)
        await store.commit(unit)  # refused after the other writer, then "conflict"
        assert (await inner.get_permit("emails", "inv_2", 0)) == dataclasses.replace(
            OTHER, granted_at=T0 + 9
        )

    faults.run_scripted(body, landed_then_granted, "conflict")
