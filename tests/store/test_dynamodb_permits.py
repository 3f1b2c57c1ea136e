"""What is DynamoDB-specific about permits (the conformance suite covers the rest): the
registry of a partition's limit instances and how it forgets empty ones, races the read
before a transaction cannot see, a retry after an ambiguous failure, and what they cost.
Against moto over HTTP."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ritornello.store import CommitUnit, ConflictError, PermitRecord, UnavailableError
from ritornello.store import _dynamo_keys as keys
from ritornello.store._dynamo_client import DynamoClient
from ritornello.store._dynamo_models import PermitItem, key_of
from ritornello.store.dynamodb import DynamoStore

from .conftest import Run, make_dynamo_store

T0 = 1_700_000_000_000
ASKED = PermitRecord("emails", "inv_1", 3, 1, 0, T0)
GRANTED = dataclasses.replace(ASKED, granted_at=T0 + 5)


@pytest.fixture
def ddb(tmp_path: Path, run: Run[Any]) -> Any:
    store = make_dynamo_store(tmp_path)
    run(store.open())
    yield store
    run(store.close())


def registry(ddb: DynamoStore, partition: int, limit: str) -> dict[str, Any] | None:
    key = key_of(keys.permit_registry_pk(partition), keys.permit_registry_sk(limit))
    return ddb._connect().get(key)


def before_transactions(
    monkeypatch: pytest.MonkeyPatch, hook: Callable[[DynamoClient, int], None]
) -> None:
    """Run ``hook(client, n)`` before the n-th TransactWriteItems (1, 2, ...) is sent."""
    call = DynamoClient.call
    sent = [0]

    def hooked(self: DynamoClient, operation: str, **kwargs: Any) -> dict[str, Any]:
        if operation == "TransactWriteItems":
            sent[0] += 1
            hook(self, sent[0])
        return call(self, operation, **kwargs)

    monkeypatch.setattr(DynamoClient, "call", hooked)


def test_the_registry_lists_a_partitions_instances_and_forgets_empty_ones(
    ddb: DynamoStore, run: Run[Any]
) -> None:
    other = PermitRecord("sms", "inv_2", 0, 1, 0, T0)
    run(ddb.commit(CommitUnit(permits_ask=[ASKED, other])))
    assert registry(ddb, 1, "emails") is not None and registry(ddb, 1, "sms") is not None
    assert registry(ddb, 0, "emails") is None
    run(ddb.commit(CommitUnit(permits_release=[("sms", "inv_2", 0)])))
    assert registry(ddb, 1, "sms") is not None  # a release does not look for other rows
    assert run(ddb.list_permits(partition=1)) == [ASKED]
    assert registry(ddb, 1, "sms") is None  # the listing found it empty
    assert registry(ddb, 1, "emails") is not None
    run(ddb.commit(CommitUnit(permits_ask=[other])))
    assert run(ddb.list_permits(partition=1)) == [ASKED, other]


def test_an_ask_after_the_listing_read_keeps_the_registry_item(
    ddb: DynamoStore, run: Run[Any]
) -> None:
    """The listing's delete is conditioned on the token it read: an ask since has changed it."""
    run(ddb.commit(CommitUnit(permits_ask=[ASKED])))
    run(ddb.commit(CommitUnit(permits_release=[("emails", "inv_1", 3)])))
    seen = registry(ddb, 1, "emails")
    assert seen is not None
    run(ddb.commit(CommitUnit(permits_ask=[ASKED])))  # a new token
    ddb._lm._forget(seen)  # the listing that read the old token, empty rows, deletes late
    assert registry(ddb, 1, "emails") is not None
    assert run(ddb.list_permits(partition=1)) == [ASKED]


def test_an_ask_that_loses_a_race_is_dropped_and_the_unit_applies(
    ddb: DynamoStore, run: Run[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = dataclasses.replace(ASKED, priority=7)

    def other_asks_first(client: DynamoClient, n: int) -> None:
        if n == 1:  # between our read (no row) and our transaction
            client.call("PutItem", Item=PermitItem.of(theirs).raw())

    before_transactions(monkeypatch, other_asks_first)
    run(ddb.commit(CommitUnit(permits_ask=[ASKED], entries=[("inv_1", 0, "{}")])))
    assert run(ddb.get_permit("emails", "inv_1", 3)) == theirs
    assert run(ddb.get_journal("inv_1")) == (["{}"], [])


def test_a_grant_that_loses_a_race_conflicts_and_writes_nothing(
    ddb: DynamoStore, run: Run[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    run(ddb.commit(CommitUnit(permits_ask=[ASKED])))
    theirs = dataclasses.replace(ASKED, granted_at=T0 + 1)

    def other_grants_first(client: DynamoClient, n: int) -> None:
        if n == 1:
            client.call("PutItem", Item=PermitItem.of(theirs).raw())

    before_transactions(monkeypatch, other_grants_first)
    with pytest.raises(ConflictError, match="no longer waiting"):
        run(ddb.commit(CommitUnit(permits_grant=[GRANTED], entries=[("inv_1", 0, "{}")])))
    assert run(ddb.get_permit("emails", "inv_1", 3)) == theirs
    assert run(ddb.get_journal("inv_1")) == ([], [])


def test_a_retry_of_a_landed_unit_with_permits_is_a_no_op(
    ddb: DynamoStore, run: Run[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transaction lands, its answer is lost, and another ask of the same instance
    rewrites the registry item before the retry: the registry is no evidence either way."""
    run(ddb.commit(CommitUnit(permits_ask=[ASKED])))
    call = DynamoClient.call
    sent = [0]
    neighbour = PermitRecord("emails", "inv_9", 0, 1, 0, T0)

    def lossy(self: DynamoClient, operation: str, **kwargs: Any) -> dict[str, Any]:
        response = call(self, operation, **kwargs)
        if operation == "TransactWriteItems":
            sent[0] += 1
            if sent[0] == 1:
                raise UnavailableError("connection reset after the request was sent")
        return response

    monkeypatch.setattr(DynamoClient, "call", lossy)
    asked = PermitRecord("emails", "inv_2", 0, 1, 0, T0)
    unit = CommitUnit(
        permits_ask=[asked],
        permits_grant=[GRANTED],
        permits_release=[("emails", "inv_0", 0)],
        completions=[("inv_1", 3, '"granted"')],
    )
    with pytest.raises(UnavailableError):
        run(ddb.commit(unit))
    monkeypatch.undo()
    run(ddb.commit(CommitUnit(permits_ask=[neighbour])))
    run(ddb.commit(unit))  # the retry: its conditions fail, and it finds the unit landed
    assert run(ddb.list_permits(limit="emails")) == [GRANTED, asked, neighbour]
    with pytest.raises(ConflictError, match="already granted"):  # a new grant still conflicts
        run(ddb.commit(CommitUnit(permits_grant=[GRANTED])))


def test_what_permits_cost(ddb: DynamoStore, run: Run[Any]) -> None:
    """The figures of docs/dynamodb.md's cost table (items under 1 KB, no fence)."""

    def cost(unit: CommitUnit) -> tuple[int, float, float]:
        ddb.stats.reset()
        run(ddb.commit(unit))
        snap = ddb.stats.snapshot()
        return snap["items_written"], snap["write_units"], snap["read_units"]

    assert cost(CommitUnit(permits_ask=[ASKED])) == (2, 4.0, 0.0)  # row + registry item
    assert cost(CommitUnit(permits_ask=[ASKED])) == (0, 0.0, 1.0)  # dropped on the read
    assert cost(CommitUnit(permits_grant=[GRANTED])) == (1, 2.0, 1.0)
    assert cost(CommitUnit(permits_release=[("emails", "inv_1", 3)])) == (1, 2.0, 0.0)
    assert cost(CommitUnit(completions_remove=[("inv_1", 3)])) == (1, 2.0, 0.0)
    run(ddb.commit(CommitUnit(permits_ask=[ASKED])))
    ddb.stats.reset()
    run(ddb.list_permits(partition=1))
    assert ddb.stats.snapshot()["requests"] == {"Query": 2}  # the registry, then one instance
