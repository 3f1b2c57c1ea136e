"""A ``CommitUnit`` as one ``TransactWriteItems`` request (a *plan*).

The unit's parts apply in order and a later part sees the earlier ones; a transaction touches
each item at most once. So the plan first reads what decides the outcome (one strongly
consistent BatchGetItem: the invocations written and the completions added; one Query per
object whose state is cleared), replays the unit on that view, and emits one write per item
with the condition that makes the read still true when the transaction applies:

- invocation insert: ``attribute_not_exists(pk)``; an insert of an id that exists is dropped
  (idempotent creation); update: ``version`` and ``seq`` of the record replaced, and ``ep``
  (the highest epoch that fenced or sealed the item) at most the one written. A failed
  expectation seen in the read is a ConflictError at once, before any write. The read is
  skipped when the store knows every record updated at its expected version
  (``unread_view``): the conditions alone decide then.
- idempotency key claimed: ``attribute_not_exists(pk) OR inv = <id> OR ttl < now``;
- journal entry: ``attribute_not_exists(pk)`` (append-only); small entries of an invocation
  the unit updates go in the item's tail instead (``_dynamo_tail``), and the tail moves out
  into one chunk item (``attribute_not_exists(pk)``) when the item would pass ``ITEM_LIMIT``;
  every Put of an invocation item carries its tail; an entry of an invocation the unit does
  not update comes with a ConditionCheck that its tail does not hold the index. A plan that is
  one plain step's Put alone is sent as a PutItem (``Plan.single``), not a transaction;
- completion: dropped if it exists (first writer wins), else ``attribute_not_exists(pk)``;
  a ``fresh`` one that exists is a ConflictError, whether the read finds it or its condition
  fails in the transaction;
- fence: a ConditionCheck ``attribute_exists(owner) AND epoch = <e>`` on the lease item, but
  for a plain step (``step_fence``), fenced by its update's ``ep`` condition instead (a new
  leader seals its partition's live invocations before reading them: ``DynamoStore.seal``);
- permit ask: dropped if the read finds the row (it stays as it is), else
  ``attribute_not_exists(pk)``, with the registry item of its limit instance (unconditional);
  grant: a ConflictError at once unless the read finds the row waiting, then
  ``attribute_exists(pk)`` and ``granted_at`` absent; a permit several parts name is replayed
  on the read and written once (after a release: with no condition, the outcome no longer
  depends on what was there);
- completion removal: an unconditional Delete (a completion the unit writes and removes is
  not written);
- state, timers, inbox messages, active markers, permit releases: unconditional.

Timeline of a race the read cannot see (the caller re-plans, see ``Plan.explain``)::

    us:    read (inv_1 absent)            put inv_1 if absent -> cancelled
    other:              put inv_1 -> ok
    us:    re-read (inv_1 present) -> the insert is dropped, the rest of the unit applies

and of two fresh completions of one awakeable (two resolves through the ingress)::

    A: read (completion absent)           put it if absent -> ok                  (202)
    B: read (completion absent)                  put it if absent -> cancelled: ConflictError
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ritornello.store import _dynamo_keys as keys
from ritornello.store._checks import check_fence
from ritornello.store._dynamo_blobs import RESULT_INLINE_LIMIT, Blobs
from ritornello.store._dynamo_client import DynamoClient
from ritornello.store._dynamo_models import (
    ActiveItem,
    IdempotencyItem,
    InboxItem,
    InvocationItem,
    LeaseItem,
    PermitItem,
    PermitRegistryItem,
    RawItem,
    TimerItem,
    ValueItem,
    key_from,
    key_of,
)
from ritornello.store._dynamo_stats import item_size
from ritornello.store._dynamo_steps import Known, StepRefused, ep_of, step_fence, unread_view
from ritornello.store._dynamo_tail import (
    CHUNK_LIMIT,
    ENTRY_LIMIT,
    ITEM_LIMIT,
    TAIL,
    Tail,
    as_attribute,
    chunk_item,
    entry_value,
    tail_of,
)
from ritornello.store.errors import ConflictError, FencedError, StoreError
from ritornello.store.records import FINAL_STATUSES, CommitUnit, InvocationRecord, PermitRecord

MAX_ITEMS = 100
MAX_BYTES = 4_000_000

_IdemKey = str  # the idempotency item's pk


_PROCESS = uuid.uuid4().hex[:8]
_last_message = [0]
_message_lock = threading.Lock()


def message_id(now_ms: int) -> str:
    """An inbox message id: increasing within this process, ordered by time across processes
    (microsecond-like ticks, then this process's random tag)."""
    with _message_lock:
        tick = _last_message[0] = max(now_ms * 1000, _last_message[0] + 1)
    return f"{tick:017d}-{_PROCESS}"


class Replan(Exception):
    """A condition failed that a fresh read turns into a no-op: plan again."""


@dataclass(frozen=True, slots=True)
class Role:
    """Why an item is in the transaction: decides what its failed condition means."""

    # insert | update | step | idempotency | entry | completion | fresh | fence | ask | grant
    # | plain
    kind: str
    what: str
    partition: int | None = None
    epoch: int | None = None


@dataclass
class Plan:
    items: list[dict[str, Any]] = field(default_factory=list)  # TransactItems
    roles: list[Role] = field(default_factory=list)
    #: The invocations as the transaction leaves them (what the store may remember once it
    #: lands: ``known`` of the next ``build_plan``).
    records: dict[str, Known] = field(default_factory=dict)

    @property
    def conditional(self) -> bool:
        return any(role.kind != "plain" for role in self.roles)

    def add(self, op: str, body: dict[str, Any], role: Role) -> None:
        self.items.append({op: body})
        self.roles.append(role)

    def check_limits(self) -> None:
        if len(self.items) > MAX_ITEMS:
            raise StoreError(
                f"a commit unit needs {len(self.items)} DynamoDB items; one transaction holds "
                f"at most {MAX_ITEMS} (split the unit)"
            )
        size = sum(item_size(next(iter(i.values())).get("Item", {})) for i in self.items)
        if size > MAX_BYTES:
            raise StoreError(
                f"a commit unit of {size} bytes exceeds DynamoDB's 4 MB transaction limit"
            )

    def explain(self, reasons: Sequence[str | None]) -> Exception:
        """The error for a cancelled transaction whose item conditions failed."""
        failed = [
            role
            for role, code in zip(self.roles, reasons, strict=False)
            if code == "ConditionalCheckFailed"
        ]
        fences = [role for role in failed if role.kind == "fence"]
        if fences:
            return FencedError(fences[0].what, partition=fences[0].partition)
        for role in failed:
            if role.kind == "step" and role.partition is not None and role.epoch is not None:
                return StepRefused(role.what, role.partition, role.epoch)
        if any(role.kind in ("insert", "completion", "ask") for role in failed):
            return Replan()
        what = "; ".join(role.what for role in failed) or "a condition failed"
        return ConflictError(what)

    @property
    def single(self) -> dict[str, Any] | None:
        """The PutItem request of a plan that is one plain step's write of its invocation
        item alone (its entries in the item's tail): no transaction needed."""
        if len(self.items) != 1 or self.roles[0].kind != "step" or "Put" not in self.items[0]:
            return None
        body: dict[str, Any] = self.items[0]["Put"]
        return body

    def puts(self) -> list[RawItem]:
        return [i["Put"]["Item"] for i in self.items if "Put" in i]

    def deletes(self) -> list[RawItem]:
        return [i["Delete"]["Key"] for i in self.items if "Delete" in i]


def _idem_pk(r: InvocationRecord | None) -> _IdemKey | None:
    if r is None or r.idempotency_key is None:
        return None
    return keys.idempotency_pk(r.service, r.handler, r.key, r.idempotency_key)


def build_plan(
    client: DynamoClient,
    blobs: Blobs,
    unit: CommitUnit,
    partitions: int,
    known: Mapping[str, Known] | None = None,
) -> Plan:
    """Read what the unit depends on and plan its transaction (writes large values to S3).
    Fences are checked first (on the read, and again in the transaction). With ``known``, a
    unit that ``unread_view`` can plan is planned without the read: its conditions alone
    decide, and the fences are checked in the transaction only."""
    table = client.table
    plan = Plan()
    now_ms = int(time.time() * 1000)

    def put(item: RawItem, role: Role, condition: str | None = None, **expr: Any) -> None:
        body: dict[str, Any] = {"TableName": table, "Item": item}
        if condition is not None:
            body["ConditionExpression"] = condition
            body.update({k: v for k, v in expr.items() if v})
        plan.add("Put", body, role)

    def delete(pk: str, sk: str, what: str) -> None:
        plan.add("Delete", {"TableName": table, "Key": key_of(pk, sk)}, Role("plain", what))

    # --- one consistent read of the invocations and completions the unit touches -----------
    inv_ids = list(dict.fromkeys(w.record.id for w in unit.invocations))
    epochs: dict[int, int] = {}
    for partition, epoch in unit.fences:
        if epochs.setdefault(partition, epoch) != epoch:
            raise FencedError(f"partition {partition} fenced at two epochs", partition=partition)
    unread = unread_view(unit, known)
    stored: dict[str, InvocationRecord | None] = {}
    stored_ep: dict[str, int | None] = {}
    stored_tail: dict[str, Tail] = {}
    found: dict[tuple[str, str], RawItem] = {}
    if unread is not None:  # nothing found: completions are put if absent (else: re-plan)
        for i, held in unread.items():
            stored[i], stored_ep[i], stored_tail[i] = (None, None, {}) if held is None else held
    else:
        wanted = [key_of(keys.invocation_pk(i), keys.INVOCATION_SK) for i in inv_ids]
        wanted += [
            key_of(keys.invocation_pk(i), keys.completion_sk(n)) for i, n, _ in unit.completions
        ]
        wanted += lease_keys(unit)
        wanted += [key_of(*_permit_key(p)) for p in (*unit.permits_ask, *unit.permits_grant)]
        found = {key_from(raw): raw for raw in client.batch_get(wanted)} if wanted else {}
        check_fences(unit, found)
        for i in inv_ids:
            raw = found.get((keys.invocation_pk(i), keys.INVOCATION_SK))
            stored[i] = None if raw is None else InvocationItem.load(raw).record(None)
            stored_ep[i] = ep_of(raw)
            stored_tail[i] = tail_of(raw)
    step = step_fence(unit, stored)
    # Each entry records the first fence of its unit (the writer's partition and epoch): an
    # audit trail showing that along a journal the epochs never go down (no stale leader
    # appended after its successor); tests/integration/test_scaleout.py checks it.
    stamp = (
        {"fp": {"N": str(unit.fences[0][0])}, "ep": {"N": str(unit.fences[0][1])}}
        if unit.fences
        else {}
    )
    by_invocation: dict[str, list[tuple[int, str]]] = {}
    for inv_id, index, text in unit.entries:
        mine = by_invocation.setdefault(inv_id, [])
        if any(index == n for n, _ in mine):
            raise ConflictError(f"journal entry {inv_id}[{index}] is written twice")
        if index in stored_tail.get(inv_id, {}):
            raise ConflictError(f"journal entry {inv_id}[{index}] is already written")
        mine.append((index, text))
    inlined: set[str] = set()  # invocations whose entries of this unit go in their tail

    # --- invocations, replayed in list order ---------------------------------------------
    view = dict(stored)
    final: dict[str, InvocationRecord] = {}
    claims: dict[_IdemKey, str] = {}  # idempotency key -> holder, as the unit leaves it
    for write in unit.invocations:
        r, current = write.record, view.get(write.record.id)
        if write.expect_version is None:
            if current is not None:
                continue  # idempotent creation: the first write stands
        elif current is None:
            raise ConflictError(f"invocation {r.id} does not exist")
        elif current.version != write.expect_version:
            raise ConflictError(
                f"invocation {r.id} is at version {current.version}, not {write.expect_version}"
            )
        old, new = _idem_pk(current), _idem_pk(r)
        if new is not None and new != old:
            holder = claims.get(new)
            if holder is not None and holder != r.id:
                raise ConflictError(
                    f"invocation {holder} already holds idempotency key {r.idempotency_key!r}"
                )
            claims[new] = r.id
        if old is not None and old != new and claims.get(old) == r.id:
            del claims[old]
        view[r.id] = final[r.id] = r
    # keys given up in this unit (their former holders, which a new claim may replace)
    released = {
        old: inv_id
        for inv_id, r in final.items()
        if (old := _idem_pk(stored[inv_id])) is not None and old != _idem_pk(r)
    }

    for inv_id, r in final.items():
        before = stored[inv_id]
        result = blobs.put(r.result, RESULT_INLINE_LIMIT) if r.result is not None else (None, None)
        # the fencing epoch of its partition, else the one it holds: ``ep`` never goes down
        ep = epochs.get(r.partition, stored_ep.get(inv_id))
        invocation = InvocationItem.of(r, *result, ep=ep)
        item = invocation.raw()
        # the tail it holds goes on with it, with this unit's entries if they may go inline;
        # past ITEM_LIMIT it all moves out into one chunk item, in this transaction
        tail = dict(stored_tail.get(inv_id, {})) if before is not None else {}
        mine = by_invocation.get(inv_id, [])
        if _may_inline(mine, before, r, tail):
            inlined.add(inv_id)
            tail.update((index, entry_value(text, stamp)) for index, text in mine)
        if tail:
            item[TAIL] = as_attribute(tail)
            if item_size(item) > ITEM_LIMIT:
                del item[TAIL]
                what = f"journal chunk {inv_id}[{min(tail)}] is already written"
                put(chunk_item(inv_id, tail), Role("entry", what), "attribute_not_exists(pk)")
                tail = {}
        plan.records[inv_id] = (r, ep, tail)
        if before is None:
            what = f"invocation {inv_id} exists"
            put(item, Role("insert", what), "attribute_not_exists(pk)")
        else:
            _put_update(put, item, before, ep, step)
        was_active = before is not None and before.status not in FINAL_STATUSES
        is_active = r.status not in FINAL_STATUSES
        moved = before is not None and before.partition != r.partition
        if before is not None and was_active and (not is_active or moved):
            delete(keys.active_pk(before.partition), keys.active_sk(inv_id), "active marker")
        if is_active and (not was_active or moved):
            marker = ActiveItem(
                pk=keys.active_pk(r.partition), sk=keys.active_sk(inv_id), inv=inv_id, seq=r.seq
            )
            put(marker.raw(), Role("plain", "active marker"))
        new = _idem_pk(r)
        if new is None or (
            before is not None and _idem_pk(before) == new and before.expires_at == r.expires_at
        ):
            continue
        # claim the key, or refresh its expiry (past it, the key may be claimed again)
        idem = IdempotencyItem(pk=new, sk=keys.IDEMPOTENCY_SK, inv=inv_id, ttl=invocation.ttl)
        values = {":id": {"S": inv_id}, ":now": {"N": str(now_ms // 1000)}}
        condition = "attribute_not_exists(pk) OR inv = :id OR #ttl < :now"
        if new in released:
            condition += " OR inv = :was"
            values[":was"] = {"S": released.pop(new)}
        put(
            idem.raw(),
            Role("idempotency", f"idempotency key {r.idempotency_key!r} is taken"),
            condition,
            ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues=values,
        )
    for old in released:
        delete(old, keys.IDEMPOTENCY_SK, "idempotency key released")

    # --- journal entries (append-only) and completions (first writer wins) ---------------
    seen: set[tuple[str, int]] = set()
    for inv_id, mine in by_invocation.items():
        if inv_id not in final and mine:
            # written without its invocation (an insert dropped): the indices must not be in
            # the invocation's tail (an index in a chunk is caught when it is the chunk's
            # first: the creation's input entry, index 0, the one such a unit rewrites)
            names = {"#tl": TAIL} | {f"#k{n}": str(index) for n, (index, _) in enumerate(mine)}
            condition = " AND ".join(f"attribute_not_exists(#tl.#k{n})" for n in range(len(mine)))
            plan.add(
                "ConditionCheck",
                {
                    "TableName": table,
                    "Key": key_of(keys.invocation_pk(inv_id), keys.INVOCATION_SK),
                    "ConditionExpression": condition,
                    "ExpressionAttributeNames": names,
                },
                Role("entry", f"journal entry {inv_id}[{mine[0][0]}] is already written"),
            )
    for inv_id, index, text in unit.entries:
        if inv_id in inlined:
            continue
        v, ref = blobs.put(text)
        entry = ValueItem(pk=keys.invocation_pk(inv_id), sk=keys.entry_sk(index), v=v, ref=ref)
        what = f"journal entry {inv_id}[{index}] is already written"
        raw = entry.raw()
        raw.update(stamp)
        put(raw, Role("entry", what), "attribute_not_exists(pk)")
    seen.clear()
    fresh = {(i, n) for i, n in unit.fresh} if unit.fresh else ()
    removed = {(i, n) for i, n in unit.completions_remove}
    for inv_id, index, text in unit.completions:
        pk, sk = keys.invocation_pk(inv_id), keys.completion_sk(index)
        must_be_new = (inv_id, index) in fresh
        if must_be_new and (pk, sk) in found:
            raise ConflictError(f"completion {inv_id}[{index}] is already written")
        if (inv_id, index) in seen or (pk, sk) in found:
            continue
        seen.add((inv_id, index))
        if (inv_id, index) in removed:  # written, then removed: only the removal is sent
            if must_be_new:  # ... which must still find none
                removed.discard((inv_id, index))
                what = f"completion {inv_id}[{index}] is already written"
                body = {"TableName": table, "Key": key_of(pk, sk)}
                body["ConditionExpression"] = "attribute_not_exists(pk)"
                plan.add("Delete", body, Role("fresh", what))
            continue
        v, ref = blobs.put(text)
        completion = ValueItem(pk=pk, sk=sk, v=v, ref=ref)
        role = (
            Role("fresh", f"completion {inv_id}[{index}] is already written")
            if must_be_new
            else Role("completion", "completion exists")
        )
        put(completion.raw(), role, "attribute_not_exists(pk)")
    for inv_id, index in dict.fromkeys((i, n) for i, n in unit.completions_remove):
        if (inv_id, index) in removed:
            delete(keys.invocation_pk(inv_id), keys.completion_sk(index), "completion removed")

    # --- state, in list order; then timers (removes first), inbox messages, fences --------
    changes: dict[tuple[str, str], tuple[str, str | None]] = {}  # (pk, sk) -> (name, value)
    listed: set[str] = set()
    for service, key, name, value in unit.state:
        pk = keys.state_pk(service, key)
        if name is None:
            if pk not in listed:
                listed.add(pk)
                for raw in client.query_pk(
                    pk, ProjectionExpression="pk, sk, #n", ExpressionAttributeNames={"#n": "name"}
                ):
                    changes.setdefault(key_from(raw), (raw.get("name", {}).get("S", ""), None))
            for item_key, (old_name, _) in list(changes.items()):
                if item_key[0] == pk:
                    changes[item_key] = (old_name, None)
            continue
        changes[(pk, keys.state_sk(name))] = (name, value)
    for (pk, sk), (name, value) in changes.items():
        if value is None:
            delete(pk, sk, "state")
        else:
            v, ref = blobs.put(value)
            put(ValueItem(pk=pk, sk=sk, name=name, v=v, ref=ref).raw(), Role("plain", "state"))

    timers: dict[tuple[str, str], RawItem | None] = {}
    for t in unit.timers_remove:
        pk = keys.timer_pk(t.invocation_id, partitions)
        timers[(pk, keys.timer_sk(t.invocation_id, t.kind, t.index))] = None
    for t in unit.timers_add:
        timer_item = TimerItem.of(t, partitions).raw()
        timers[key_from(timer_item)] = timer_item
    for (pk, sk), timer in timers.items():
        if timer is None:
            delete(pk, sk, "timer")
        else:
            put(timer, Role("plain", "timer"))

    _plan_permits(unit, found, put, delete)

    for partition, inv_id in unit.notify:
        message = InboxItem(pk=keys.inbox_pk(partition), sk=message_id(now_ms), inv=inv_id)
        put(message.raw(), Role("plain", "inbox"))

    for partition, epoch in epochs.items():
        if step is not None:
            continue  # the step's condition on its invocation item is its fence
        plan.add(
            "ConditionCheck",
            {
                "TableName": table,
                "Key": key_of(keys.LEASES_PK, keys.lease_sk(partition)),
                "ConditionExpression": "attribute_exists(#o) AND epoch = :e",
                "ExpressionAttributeNames": {"#o": "owner"},
                "ExpressionAttributeValues": {":e": {"N": str(epoch)}},
            },
            Role("fence", f"partition {partition} is no longer held at epoch {epoch}", partition),
        )
    return plan


def _may_inline(
    entries: Sequence[tuple[int, str]],
    before: InvocationRecord | None,
    after: InvocationRecord,
    tail: Tail,
) -> bool:
    """Whether a unit's ``entries`` of one invocation it writes go in its tail: each small
    (never an S3-bound value), at an index the journal did not reach before the unit and
    does after it, and not one the tail holds (so an index is never in two places)."""
    if not entries:
        return False
    low = 0 if before is None else before.journal_len
    total = 0
    for index, text in entries:
        size = len(text.encode("utf-8", "surrogatepass"))
        total += size
        if size > ENTRY_LIMIT or not low <= index < after.journal_len or index in tail:
            return False
    return total <= CHUNK_LIMIT


def _put_update(
    put: Callable[..., None],
    item: RawItem,
    before: InvocationRecord,
    ep: int | None,
    step: tuple[str, int, int] | None,
) -> None:
    """The update of an invocation item: it must still be ``before`` (version and seq) and
    hold no later epoch than the one it is written with (``ep`` never goes down; a step's
    condition is its fence, ``step_fence``)."""
    what = f"invocation {before.id} moved past version {before.version}"
    values = {":v": {"N": str(before.version)}, ":s": {"N": str(before.seq)}}
    condition = "version = :v AND seq = :s AND "
    if ep is None:
        condition += "attribute_not_exists(ep)"
    else:
        condition += "(attribute_not_exists(ep) OR ep <= :ep)"
        values[":ep"] = {"N": str(ep)}
    if step is not None and step[0] == before.id:
        role = Role("step", what, step[1], step[2])
    else:
        role = Role("update", what)
    put(item, role, condition, ExpressionAttributeValues=values)


def _permit_key(p: PermitRecord) -> tuple[str, str]:
    return (keys.permit_pk(p.limit), keys.permit_sk(p.invocation_id, p.index))


@dataclass
class _Permit:
    """How the unit leaves one permit row, replayed on the read (``was``)."""

    was: PermitRecord | None
    now: PermitRecord | None
    released: bool = False  # released first: the outcome no longer depends on ``was``
    asked: bool = False  # inserted by an ask because the read found no row
    granted: bool = False


def _plan_permits(
    unit: CommitUnit,
    found: dict[tuple[str, str], RawItem],
    put: Callable[..., None],
    delete: Callable[[str, str, str], None],
) -> None:
    """The unit's permits, in its order (releases, asks, grants), one write per row: Put if
    the row ends up present, Delete if released; the condition keeps the read true."""
    if not (unit.permits_release or unit.permits_ask or unit.permits_grant):
        return
    rows: dict[tuple[str, str], _Permit] = {}

    def row(key: tuple[str, str]) -> _Permit:
        if key not in rows:
            raw = found.get(key)
            was = None if raw is None else PermitItem.load(raw).record()
            rows[key] = _Permit(was, was)
        return rows[key]

    for limit, inv_id, index in unit.permits_release:
        r = row((keys.permit_pk(limit), keys.permit_sk(inv_id, index)))
        r.now, r.released = None, True
    for p in unit.permits_ask:
        r = row(_permit_key(p))
        if r.now is None:  # else the row stays exactly as it is
            r.now, r.asked = p, not r.released
    for p in unit.permits_grant:
        r = row(_permit_key(p))
        if r.now is None or r.now.granted_at is not None:
            state = "does not exist" if r.now is None else "is already granted"
            raise ConflictError(f"permit {p.limit!r} {p.invocation_id}[{p.index}] {state}")
        r.now, r.granted = p, True
    token = uuid.uuid4().hex
    registered: set[tuple[int, str]] = set()
    for (pk, sk), r in rows.items():
        now = r.now
        if now is None:
            if r.released:
                delete(pk, sk, "permit released")
            continue
        what = f"permit {now.limit!r} {now.invocation_id}[{now.index}]"
        if r.asked:  # the read found no row: it must still be missing
            put(PermitItem.of(now).raw(), Role("ask", f"{what} exists"), _ABSENT)
        elif r.granted and not r.released:  # the read found it waiting: it must still be
            put(
                PermitItem.of(now).raw(),
                Role("grant", f"{what} is no longer waiting"),
                _WAITING,
                ExpressionAttributeValues={":null": {"S": "NULL"}},
            )
        elif r.released:  # released first: whatever was there, this is the outcome
            put(PermitItem.of(now).raw(), Role("plain", "permit"))
        moved = r.was is not None and r.was.partition != now.partition
        if r.asked or r.released or moved:
            instance = (now.partition, now.limit)
            if instance not in registered:  # so list_permits(partition) finds the instance
                registered.add(instance)
                entry = PermitRegistryItem(
                    pk=keys.permit_registry_pk(instance[0]),
                    sk=keys.permit_registry_sk(instance[1]),
                    lim=instance[1],
                    tok=token,
                )
                put(entry.raw(), Role("plain", "permit registry"))


_ABSENT = "attribute_not_exists(pk)"
_WAITING = (
    "attribute_exists(pk) AND "
    "(attribute_not_exists(granted_at) OR attribute_type(granted_at, :null))"
)


def lease_keys(unit: CommitUnit) -> list[RawItem]:
    return [key_of(keys.LEASES_PK, keys.lease_sk(p)) for p, _ in unit.fences]


def check_fences(unit: CommitUnit, found: dict[tuple[str, str], RawItem]) -> None:
    """FencedError if a fence fails on the leases read (``found``, by key)."""
    for partition, epoch in unit.fences:
        raw = found.get((keys.LEASES_PK, keys.lease_sk(partition)))
        check_fence(partition, epoch, None if raw is None else LeaseItem.load(raw).record())


def fingerprint(unit: CommitUnit) -> str:
    """Identifies a unit across retries of ``commit`` (same parts, same order)."""
    return hashlib.sha256(repr(unit).encode("utf-8", "surrogatepass")).hexdigest()
