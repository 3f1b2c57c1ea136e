"""A step's commit (journal entries and the invocation's new version) against a deposed
leader and a stale writer, on every backend; on DynamoDB through two stores on one table
(moto over HTTP), each remembering the records it wrote (so it commits a step without reading
first) and fencing a plain step on its invocation item (docs/dynamodb.md, "A commit").

What must hold: once the new leader has sealed the partition, a zombie (its lease moved)
racing it on the same journal index never lands anything and gets FencedError, the owner's
steps all land, the journal has each index once, and the invocation finishes; a step already
in flight at the takeover lands before the seal (DynamoDB) or never (SQLite, memory), and the
new leader's read after sealing has whatever landed; a writer whose remembered version is stale
gets a ConflictError and writes nothing, even when another store purged and re-created the id;
a step whose answer was lost is not applied twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ritornello.store import (
    CommitUnit,
    ConflictError,
    FencedError,
    InvocationRecord,
    InvocationWrite,
    Store,
)
from ritornello.store.records import with_changes

from .conftest import BACKENDS, Run, inv, make_dynamo_store, make_store

STEPS = 10


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pair(backend_name: str, tmp_path: Path, run: Run[Any]) -> Iterator[tuple[Store, Store]]:
    """Two handles on one store: two DynamoDB stores on one table (two processes), else the
    same store twice (SQLite and memory serve one process)."""
    if backend_name == "dynamodb":
        a, b = make_dynamo_store(tmp_path), make_dynamo_store(tmp_path)
        run(a.open())
        run(b.open())
        yield a, b
        run(a.close())
        run(b.close())
    else:
        store = make_store(backend_name, tmp_path)
        run(store.open())
        yield store, store
        run(store.close())


def _entry(index: int, who: str) -> str:
    return json.dumps({"kind": "run", "name": f"step-{index}", "by": who})


def _step(
    rec: InvocationRecord, who: str, fence: tuple[int, int], *, final: bool = False
) -> tuple[CommitUnit, InvocationRecord]:
    """The unit of one handler answer appending the next entry of ``rec``'s journal (the
    output, if ``final``), and the record it leaves."""
    index = rec.journal_len
    changes: dict[str, Any] = {
        "journal_len": index + 1,
        "version": rec.version + 1,
        "modified_at": rec.modified_at + 1,
    }
    text = _entry(index, who)
    if final:
        changes.update(status="completed", result='{"value": 10}')
        text = json.dumps({"kind": "output", "value": 10, "by": who})
    new = with_changes(rec, **changes)
    unit = CommitUnit(
        invocations=[InvocationWrite(new, expect_version=rec.version)],
        entries=[(rec.id, index, text)],
        fences=[fence],
    )
    return unit, new


async def _race(a: Store, b: Store) -> tuple[list[str], InvocationRecord | None, int]:
    now = 1_700_000_000_000
    lease_a = await a.claim_lease(0, "a", None, now)
    rec = inv(partition=0)
    await a.commit(
        CommitUnit(
            invocations=[InvocationWrite(rec)],
            entries=[(rec.id, 0, '{"kind": "input"}')],
            fences=[(0, lease_a.epoch)],
        )
    )
    for _ in range(3):  # the first leader's steps: its store remembers the record
        unit, rec = _step(rec, "a", (0, lease_a.epoch))
        await a.commit(unit)
    zombie = rec
    # The lease moves to b (a was paused past its lease): b reads what a committed.
    lease_b = await b.claim_lease(0, "b", (await b.list_leases())[0], now + 10_000)
    assert lease_b.epoch == lease_a.epoch + 1
    await b.seal(0, lease_b.epoch)  # what the new leader's recovery does before reading
    owned = await b.get_invocation(rec.id)
    assert owned == rec
    zombie_losses = 0
    for n in range(STEPS - 4):
        # both append the same index at once: the zombie from what it remembers
        unit_z, _ = _step(zombie, "a", (0, lease_a.epoch))
        unit_b, after = _step(owned, "b", (0, lease_b.epoch), final=n == STEPS - 5)
        z, o = await asyncio.gather(a.commit(unit_z), b.commit(unit_b), return_exceptions=True)
        assert o is None, o  # the owner's step always lands
        assert isinstance(z, FencedError), z  # the zombie's never does
        zombie_losses += 1
        owned = after
        zombie = after if n % 2 else zombie  # a zombie that re-read is as stale as one that did not
    entries, _ = await b.get_journal(rec.id)
    return entries, await a.get_invocation(rec.id), zombie_losses


def test_a_zombie_racing_the_new_owner_lands_nothing(
    pair: tuple[Store, Store], run: Run[Any]
) -> None:
    a, b = pair
    entries, final, losses = run(_race(a, b))
    assert losses == STEPS - 4
    assert final is not None and final.status == "completed" and final.result == '{"value": 10}'
    assert final.journal_len == len(entries) == STEPS  # input, 8 steps, output
    decoded = [json.loads(e) for e in entries]
    assert [d.get("by") for d in decoded[1:4]] == ["a"] * 3  # before the takeover
    assert [d.get("by") for d in decoded[4:]] == ["b"] * (STEPS - 4)  # after: the owner's only
    assert [d.get("name") for d in decoded[1:-1]] == [f"step-{i}" for i in range(1, STEPS - 1)]
    assert decoded[-1]["kind"] == "output"


def test_a_step_in_flight_at_the_takeover_lands_before_the_seal_or_never(
    pair: tuple[Store, Store], backend_name: str, run: Run[Any]
) -> None:
    """The window between a claim and the new leader's seal: on DynamoDB a step of the old
    leader fenced on its invocation item may still land there (SQLite and memory check the
    lease in every unit: it is refused at once); on every backend, what landed is what the
    new leader reads after sealing, and nothing of the old leader's lands after the seal."""
    a, b = pair

    async def scenario() -> None:
        lease_a = await a.claim_lease(0, "a", None, 1)
        rec = inv(partition=0)
        await a.commit(
            CommitUnit(
                invocations=[InvocationWrite(rec)],
                entries=[(rec.id, 0, "{}")],
                fences=[(0, lease_a.epoch)],
            )
        )
        unit, rec = _step(rec, "a", (0, lease_a.epoch))
        await a.commit(unit)
        lease_b = await b.claim_lease(0, "b", (await b.list_leases())[0], 2)
        late, late_rec = _step(rec, "a", (0, lease_a.epoch))
        try:
            await a.commit(late)
            landed = True
        except FencedError:
            landed = False
        assert landed == (backend_name == "dynamodb")
        await b.seal(0, lease_b.epoch)
        seen = await b.get_invocation(rec.id)
        entries, _ = await b.get_journal(rec.id)
        assert seen == (late_rec if landed else rec)
        assert len(entries) == (3 if landed else 2)
        after, _ = _step(seen, "a", (0, lease_a.epoch))  # even from the current version
        with pytest.raises(FencedError):
            await a.commit(after)
        assert await b.get_invocation(rec.id) == seen
        unit, last = _step(seen, "b", (0, lease_b.epoch))
        await b.commit(unit)
        assert await a.get_invocation(rec.id) == last

    run(scenario())


def test_a_stale_writer_conflicts_and_writes_nothing(
    pair: tuple[Store, Store], run: Run[Any]
) -> None:
    a, b = pair

    async def scenario() -> None:
        lease = await a.claim_lease(0, "a", None, 1)
        fence = (0, lease.epoch)  # a and b act as one leader here
        rec = inv()
        await a.commit(
            CommitUnit(
                invocations=[InvocationWrite(rec)], entries=[(rec.id, 0, "{}")], fences=[fence]
            )
        )
        unit, rec = _step(rec, "a", fence)
        await a.commit(unit)  # a remembers version 2
        moved, moved_rec = _step(rec, "b", fence)
        await b.commit(moved)  # b moves it to version 3
        stale, _ = _step(rec, "a", fence)
        stale.entries.append((rec.id, 3, _entry(3, "a")))  # an index nobody wrote
        with pytest.raises(ConflictError) as caught:
            await a.commit(stale)
        assert not isinstance(caught.value, FencedError)  # the lease is still held
        unfenced, _ = _step(rec, "a", fence)
        unfenced.fences.clear()
        with pytest.raises(ConflictError):
            await a.commit(unfenced)
        entries, _ = await a.get_journal(rec.id)
        assert [json.loads(e).get("by") for e in entries[1:]] == ["a", "b"]
        assert await a.get_invocation(rec.id) == moved_rec
        # reading again, a goes on from b's version
        fresh = await a.get_invocation(rec.id)
        assert fresh is not None
        unit, last = _step(fresh, "a", fence)
        await a.commit(unit)
        assert await b.get_invocation(rec.id) == last

    run(scenario())


def test_a_remembered_record_of_a_purged_and_recreated_id_conflicts(
    tmp_path: Path, run: Run[Any]
) -> None:
    """Same id, same version, another record (purged and created again by another process):
    the version alone would match; the commit's condition on ``seq`` does not."""
    a, b = make_dynamo_store(tmp_path), make_dynamo_store(tmp_path)

    async def scenario() -> None:
        await a.open()
        await b.open()
        rec = inv(seq=1)
        await a.commit(CommitUnit(invocations=[InvocationWrite(rec)], entries=[(rec.id, 0, "{}")]))
        unit, rec = _step(rec, "a", (0, 0))
        unit.fences.clear()
        await a.commit(unit)  # a remembers (version 2, seq 1)
        await b.commit(CommitUnit(purge=[rec.id]))
        again = inv(seq=7)
        await b.commit(
            CommitUnit(invocations=[InvocationWrite(again)], entries=[(rec.id, 0, "{}")])
        )
        unit, again = _step(again, "b", (0, 0))
        unit.fences.clear()
        await b.commit(unit)  # version 2 again, seq 7
        stale, _ = _step(rec, "a", (0, 0))
        stale.fences.clear()
        a.stats.reset()
        with pytest.raises(ConflictError):
            await a.commit(stale)
        assert "BatchGetItem" not in a.stats.snapshot()["requests"]  # planned from memory
        assert await a.get_invocation(rec.id) == again
        assert len((await a.get_journal(rec.id))[0]) == 2
        await a.close()
        await b.close()

    run(scenario())


def test_a_step_of_a_known_record_is_one_request(tmp_path: Path, run: Run[Any]) -> None:
    """Creating an invocation and each step after it: one TransactWriteItems, no read, and a
    step writes two items (no lease check); a store that does not know the record reads it
    first (one BatchGetItem), then knows it."""
    a, b = make_dynamo_store(tmp_path), make_dynamo_store(tmp_path)

    async def scenario() -> None:
        await a.open()
        await b.open()
        lease = await a.claim_lease(0, "a", None, 1)
        rec = inv(partition=0)
        a.stats.reset()
        await a.commit(
            CommitUnit(
                invocations=[InvocationWrite(rec)],
                entries=[(rec.id, 0, "{}")],
                fences=[(0, lease.epoch)],
            )
        )
        for _ in range(3):
            unit, rec = _step(rec, "a", (0, lease.epoch))
            await a.commit(unit)
        snap = a.stats.snapshot()
        assert snap["requests"] == {"TransactWriteItems": 1, "PutItem": 3}
        assert snap["read_units"] == 0
        # create: invocation (its input entry in its tail), active marker, lease check; a
        # step: one PutItem of the invocation item, its entry in the tail (under 1 KB)
        assert snap["write_units"] == 6 + 3 * 1
        b.stats.reset()
        for _ in range(2):
            unit, rec = _step(rec, "b", (0, lease.epoch))
            await b.commit(unit)
        assert b.stats.snapshot()["requests"] == {"PutItem": 2, "BatchGetItem": 1}
        await a.close()
        await b.close()

    run(scenario())


def test_a_step_whose_answer_was_lost_is_not_applied_twice(
    tmp_path: Path, run: Run[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step fenced on its invocation lands but its answer is lost: the retry of the same
    unit finds it landed (its own condition now fails) and returns quietly."""
    from ritornello.store import UnavailableError
    from ritornello.store._dynamo_client import DynamoClient

    a = make_dynamo_store(tmp_path)
    sent: list[int] = []
    call = DynamoClient.call

    def lossy(self: DynamoClient, operation: str, **kwargs: Any) -> dict[str, Any]:
        if operation == "PutItem":
            sent.append(len(kwargs["Item"]))
        response = call(self, operation, **kwargs)  # the resend fails its conditions here
        if operation == "PutItem" and len(sent) == 1:  # the step's first attempt
            raise UnavailableError("connection reset after the request was sent")
        return response

    async def scenario() -> None:
        await a.open()
        lease = await a.claim_lease(0, "a", None, 1)
        rec = inv(partition=0)
        await a.commit(
            CommitUnit(
                invocations=[InvocationWrite(rec)],
                entries=[(rec.id, 0, "{}")],
                fences=[(0, lease.epoch)],
            )
        )
        unit, after = _step(rec, "a", (0, lease.epoch))
        monkeypatch.setattr(DynamoClient, "call", lossy)
        with pytest.raises(UnavailableError):
            await a.commit(unit)
        await a.commit(unit)  # the retry
        assert len(sent) == 2 and sent[0] == sent[1]  # one PutItem, the same request resent
        assert await a.get_invocation(rec.id) == after
        assert len((await a.get_journal(rec.id))[0]) == 2
        await a.close()

    run(scenario())
