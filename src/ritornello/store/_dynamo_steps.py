"""What a commit may leave out on DynamoDB, and when (docs/dynamodb.md, "A commit").

- The read before the transaction (``unread_view``): when the store knows every record the unit
  updates at the version it expects. A record at a version never changes, since every write
  of an invocation item is conditioned on the version and ``seq`` it replaces.
- The ConditionCheck on the lease (``step_fence``): for a plain step, whose update's condition
  on ``ep`` (the highest epoch that fenced or sealed the item) fences it instead. A new leader
  seals the partition's live invocations (``DynamoStore.seal``) before its recovery reads them,
  so a predecessor's step lands before that read or never.
"""

from __future__ import annotations

from collections.abc import Mapping

from ritornello.store._dynamo_models import RawItem
from ritornello.store._dynamo_tail import Tail
from ritornello.store.records import CommitUnit, InvocationRecord, Status, with_changes


class StepRefused(Exception):
    """A step fenced on its invocation item failed its condition: the version moved
    (ConflictError) or a later leader sealed or wrote it (FencedError). The caller reads the
    lease to tell which."""

    def __init__(self, what: str, partition: int, epoch: int) -> None:
        super().__init__(what)
        self.what, self.partition, self.epoch = what, partition, epoch


#: What the store knows of an invocation item: its record, its ``ep`` (see ``ep_of``) and its
#: journal tail (``_dynamo_tail``).
Known = tuple[InvocationRecord, int | None, Tail]


def ep_of(raw: RawItem | None) -> int | None:
    """The ``ep`` attribute of an invocation item (None: absent)."""
    value = None if raw is None else raw.get("ep")
    return None if value is None else int(value["N"])


def step_fence(
    unit: CommitUnit, stored: Mapping[str, InvocationRecord | None]
) -> tuple[str, int, int] | None:
    """(invocation id, partition, epoch) if ``unit`` is a plain step: it appends entries to
    one running invocation and changes only that record's ``journal_len``, ``modified_at``
    and ``version``, fenced by its own partition alone. Such a unit is fenced on the
    invocation item (``ep``) instead of a ConditionCheck on the lease: it touches nothing a
    successor reads before sealing the partition (``DynamoStore.seal``)."""
    if (
        len(unit.invocations) != 1
        or not unit.entries
        or unit.completions
        or unit.completions_remove
        or unit.state
        or unit.timers_add
        or unit.timers_remove
        or unit.purge
        or unit.notify
        or unit.fresh
        or unit.permits_ask
        or unit.permits_grant
        or unit.permits_release
    ):
        return None
    write = unit.invocations[0]
    new, before = write.record, stored.get(write.record.id)
    if write.expect_version is None or before is None or before.version != write.expect_version:
        return None
    if {p for p, _ in unit.fences} != {new.partition} or len(set(unit.fences)) != 1:
        return None
    if before.status != Status.RUNNING or new.status != Status.RUNNING:
        return None
    if any(inv_id != new.id for inv_id, _, _ in unit.entries):
        return None
    same = with_changes(
        before, journal_len=new.journal_len, modified_at=new.modified_at, version=new.version
    )
    if same != new:
        return None
    return new.id, new.partition, unit.fences[0][1]


def unread_view(
    unit: CommitUnit, known: Mapping[str, Known] | None
) -> dict[str, Known | None] | None:
    """The invocations as they stand before ``unit``, without reading, when ``known`` (records
    this store wrote, by id) tells them all: the first write of each id is an insert
    (taken as absent: if it exists, its condition fails and the unit is planned again on a
    read) or an update expecting the version ``known`` holds. None: the unit needs the read
    (unknown versions, or permits, whose asks and grants are replayed on the rows read).

    Safe because a record at a version is a fact that never changes: every write of an
    invocation item is conditioned on the version it replaces (and its ``seq``, which no two
    records of one id share), so the transaction applies only if the item is still the one
    ``known`` holds, whatever else happened since."""
    if known is None or unit.permits_ask or unit.permits_grant:
        return None
    view: dict[str, Known | None] = {}
    for write in unit.invocations:
        inv_id = write.record.id
        if inv_id in view:
            continue  # later writes of an id are replayed on the view
        if write.expect_version is None:
            view[inv_id] = None
            continue
        held = known.get(inv_id)
        if held is None or held[0].version != write.expect_version:
            return None
        view[inv_id] = held
    return view
