"""pynamodb models of every item type in the table (docs/dynamodb.md).

The models define the attributes and do the (de)serialization; the store sends the requests
itself through one pynamodb ``Connection`` (``_dynamo_client``), because one table holds every
type and a commit mixes them in one ``TransactWriteItems`` whose order the store must know.
``Meta.table_name`` is therefore a placeholder: the table is named by the store URL.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.models import Model

from ritornello.store import _dynamo_keys as keys
from ritornello.store.records import (
    FINAL_STATUSES,
    DeploymentRecord,
    InvocationRecord,
    LeaseRecord,
    LimitRecord,
    MemberRecord,
    PermitRecord,
    ScheduleRecord,
    TimerRecord,
)

RawItem = dict[str, Any]  # an item in DynamoDB's wire format: {"name": {"S": "..."}}
_M = TypeVar("_M", bound="Item")

#: Extra time DynamoDB's TTL waits past ``expires_at`` (it deletes late anyway).
TTL_GRACE_S = 3600


class Item(Model):
    """Base of every item: the table's key."""

    class Meta:
        table_name = "ritornello"  # placeholder, see the module docstring

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)

    def raw(self) -> RawItem:
        return dict(self.serialize())

    @classmethod
    def load(cls: type[_M], raw: RawItem) -> _M:
        return cls.from_raw_data(raw)


class MetaItem(Item):
    """pk ``meta``: what ``init`` fixed."""

    partitions = NumberAttribute()
    schema_version = NumberAttribute()


class InvocationItem(Item):
    """pk ``i#<id>``, sk ``inv``. ``result_ref``: the result lives in S3 under this key."""

    id = UnicodeAttribute()
    service = UnicodeAttribute()
    handler = UnicodeAttribute()
    okey = UnicodeAttribute(null=True)
    handler_kind = UnicodeAttribute()
    status = UnicodeAttribute()
    deployment_id = UnicodeAttribute()
    seq = NumberAttribute()
    created_at = NumberAttribute()
    modified_at = NumberAttribute()
    attempt = NumberAttribute()
    journal_len = NumberAttribute()
    waiting = ListAttribute(of=NumberAttribute)  # deserializes to numbers
    caller_id = UnicodeAttribute(null=True)
    caller_index = NumberAttribute(null=True)
    idempotency_key = UnicodeAttribute(null=True)
    result = UnicodeAttribute(null=True)
    result_ref = UnicodeAttribute(null=True)
    last_error = UnicodeAttribute(null=True)
    next_at = NumberAttribute(null=True)
    version = NumberAttribute()
    partition = NumberAttribute()
    expires_at = NumberAttribute(null=True)
    history = UnicodeAttribute(null=True)  # absent on items written before it existed
    #: The highest epoch of its partition that fenced a write of it or sealed it (absent:
    #: none yet). Never goes down; a step fenced on the item needs its epoch >= it.
    ep = NumberAttribute(null=True)
    ttl = NumberAttribute(null=True)  # DynamoDB TTL (epoch seconds)
    seq_pk = UnicodeAttribute()  # index by_seq: every invocation
    seq_sk = UnicodeAttribute()
    done_pk = UnicodeAttribute(null=True)  # index by_done: terminal invocations only
    done_sk = UnicodeAttribute(null=True)

    @classmethod
    def of(
        cls, r: InvocationRecord, result: str | None, result_ref: str | None, ep: int | None = None
    ) -> InvocationItem:
        # in the retention index once finished and stamped with its expiry
        terminal = r.status in FINAL_STATUSES and r.expires_at is not None
        return cls(
            pk=keys.invocation_pk(r.id),
            sk=keys.INVOCATION_SK,
            id=r.id,
            service=r.service,
            handler=r.handler,
            okey=r.key,
            handler_kind=r.handler_kind,
            status=r.status,
            deployment_id=r.deployment_id,
            seq=r.seq,
            created_at=r.created_at,
            modified_at=r.modified_at,
            attempt=r.attempt,
            journal_len=r.journal_len,
            waiting=list(r.waiting),
            caller_id=r.caller_id,
            caller_index=r.caller_index,
            idempotency_key=r.idempotency_key,
            result=result,
            result_ref=result_ref,
            last_error=r.last_error,
            next_at=r.next_at,
            version=r.version,
            partition=r.partition,
            expires_at=r.expires_at,
            history=r.history,
            ep=ep,
            ttl=None if r.expires_at is None else r.expires_at // 1000 + TTL_GRACE_S,
            seq_pk=keys.seq_pk(r.partition),
            seq_sk=keys.seq_sk(r.seq, r.id),
            done_pk=keys.done_pk(r.partition) if terminal else None,
            done_sk=keys.done_sk(r.expires_at, r.id)
            if r.expires_at is not None and terminal
            else None,
        )

    def record(self, result: str | None) -> InvocationRecord:
        """The record, with ``result`` resolved by the caller (it may live in S3)."""
        return InvocationRecord(
            id=self.id,
            service=self.service,
            handler=self.handler,
            key=self.okey,
            handler_kind=self.handler_kind,
            status=self.status,
            deployment_id=self.deployment_id,
            seq=int(self.seq),
            created_at=int(self.created_at),
            modified_at=int(self.modified_at),
            attempt=int(self.attempt),
            journal_len=int(self.journal_len),
            waiting=tuple(int(cast(float, w)) for w in self.waiting),
            caller_id=self.caller_id,
            caller_index=_int(self.caller_index),
            idempotency_key=self.idempotency_key,
            result=result,
            last_error=self.last_error,
            next_at=_int(self.next_at),
            version=int(self.version),
            partition=int(self.partition),
            expires_at=_int(self.expires_at),
            history=self.history,
        )


class ValueItem(Item):
    """A JSON text: journal entry (pk ``i#<id>``, sk ``e#<index>``), completion (sk
    ``c#<index>``) or state value (pk ``s#[service,key]``, sk ``n#<name>``, ``name`` set).
    Exactly one of ``v`` (inline) and ``ref`` (S3 key) is set."""

    v = UnicodeAttribute(null=True)
    ref = UnicodeAttribute(null=True)
    name = UnicodeAttribute(null=True)


class IdempotencyItem(Item):
    """pk ``k#[service,handler,key,idempotency_key]``: which invocation holds the key.
    ``ttl`` is set with the holder's expiry; past it the key may be taken again."""

    inv = UnicodeAttribute()
    ttl = NumberAttribute(null=True)


class TimerItem(Item):
    """pk ``t#<crc32(id) % partitions>``, sk ``"<id>"#<kind>#<index>``."""

    fire_at = NumberAttribute()
    inv = UnicodeAttribute()
    kind = UnicodeAttribute()
    index = NumberAttribute()
    partition = NumberAttribute()

    @classmethod
    def of(cls, t: TimerRecord, shards: int) -> TimerItem:
        return cls(
            pk=keys.timer_pk(t.invocation_id, shards),
            sk=keys.timer_sk(t.invocation_id, t.kind, t.index),
            fire_at=t.fire_at,
            inv=t.invocation_id,
            kind=t.kind,
            index=t.index,
            partition=t.partition,
        )

    def record(self) -> TimerRecord:
        return TimerRecord(
            int(self.fire_at), self.inv, self.kind, int(self.index), int(self.partition)
        )


class ActiveItem(Item):
    """pk ``a#<partition>``, sk ``<id>``: a non-terminal invocation of the partition."""

    inv = UnicodeAttribute()
    seq = NumberAttribute()


class InboxItem(Item):
    """pk ``x#<partition>``, sk ``<ms 13 digits>-<random>``: a message to the partition."""

    inv = UnicodeAttribute()


class LeaseItem(Item):
    """pk ``l``, sk ``<partition 6 digits>``."""

    partition = NumberAttribute()
    owner = UnicodeAttribute(null=True)
    epoch = NumberAttribute()
    version = NumberAttribute()
    renewed_at = NumberAttribute()

    def record(self) -> LeaseRecord:
        return LeaseRecord(
            int(self.partition),
            self.owner,
            int(self.epoch),
            int(self.version),
            int(self.renewed_at),
        )


class MemberItem(Item):
    """pk ``m``, sk ``<node>``."""

    node = UnicodeAttribute()
    address = UnicodeAttribute()
    heartbeat_at = NumberAttribute()
    version = NumberAttribute()

    def record(self) -> MemberRecord:
        return MemberRecord(self.node, self.address, int(self.heartbeat_at), int(self.version))


class DeploymentItem(Item):
    """pk ``d``, sk ``<id>``."""

    id = UnicodeAttribute()
    uri = UnicodeAttribute()
    services = UnicodeAttribute()
    created_at = NumberAttribute()

    @classmethod
    def of(cls, d: DeploymentRecord) -> DeploymentItem:
        return cls(
            pk=keys.DEPLOYMENTS_PK,
            sk=keys.deployment_sk(d.id),
            id=d.id,
            uri=d.uri,
            services=d.services,
            created_at=d.created_at,
        )

    def record(self) -> DeploymentRecord:
        return DeploymentRecord(self.id, self.uri, self.services, int(self.created_at))


class ScheduleItem(Item):
    """pk ``sc``, sk ``<id>``: a cron schedule (one small item collection, read whole)."""

    id = UnicodeAttribute()
    cron = UnicodeAttribute()
    service = UnicodeAttribute()
    handler = UnicodeAttribute()
    okey = UnicodeAttribute(null=True)
    input = UnicodeAttribute()
    overlap = UnicodeAttribute()
    timezone = UnicodeAttribute()
    paused = BooleanAttribute()
    created_at = NumberAttribute()
    checked_until = NumberAttribute()
    partition = NumberAttribute()
    last_fire_at = NumberAttribute(null=True)
    last_invocation_id = UnicodeAttribute(null=True)
    fires = NumberAttribute()
    skipped = NumberAttribute()
    missed = NumberAttribute()
    version = NumberAttribute()

    @classmethod
    def of(cls, s: ScheduleRecord) -> ScheduleItem:
        return cls(
            pk=keys.SCHEDULES_PK,
            sk=keys.schedule_sk(s.id),
            id=s.id,
            cron=s.cron,
            service=s.service,
            handler=s.handler,
            okey=s.key,
            input=s.input,
            overlap=s.overlap,
            timezone=s.timezone,
            paused=s.paused,
            created_at=s.created_at,
            checked_until=s.checked_until,
            partition=s.partition,
            last_fire_at=s.last_fire_at,
            last_invocation_id=s.last_invocation_id,
            fires=s.fires,
            skipped=s.skipped,
            missed=s.missed,
            version=s.version,
        )

    def record(self) -> ScheduleRecord:
        return ScheduleRecord(
            id=self.id,
            cron=self.cron,
            service=self.service,
            handler=self.handler,
            key=self.okey,
            input=self.input,
            overlap=self.overlap,
            timezone=self.timezone,
            paused=bool(self.paused),
            created_at=int(self.created_at),
            checked_until=int(self.checked_until),
            partition=int(self.partition),
            last_fire_at=_int(self.last_fire_at),
            last_invocation_id=self.last_invocation_id,
            fires=int(self.fires),
            skipped=int(self.skipped),
            missed=int(self.missed),
            version=int(self.version),
        )


class LimitItem(Item):
    """pk ``lm``, sk ``<name>``: a named limit (one small item collection, read whole)."""

    name = UnicodeAttribute()
    concurrency = NumberAttribute(null=True)
    rate = NumberAttribute(null=True)
    per_ms = NumberAttribute()
    burst = NumberAttribute()
    updated_at = NumberAttribute()
    version = NumberAttribute()
    per_key = BooleanAttribute(default=False)

    @classmethod
    def of(cls, r: LimitRecord) -> LimitItem:
        return cls(
            pk=keys.LIMITS_PK,
            sk=keys.limit_sk(r.name),
            name=r.name,
            concurrency=r.concurrency,
            rate=r.rate,
            per_ms=r.per_ms,
            burst=r.burst,
            updated_at=r.updated_at,
            version=r.version,
            per_key=r.per_key,
        )

    def record(self) -> LimitRecord:
        return LimitRecord(
            name=self.name,
            concurrency=_int(self.concurrency),
            rate=None if self.rate is None else float(self.rate),
            per_ms=int(self.per_ms),
            burst=int(self.burst),
            updated_at=int(self.updated_at),
            version=int(self.version),
            per_key=bool(self.per_key),
        )


class PermitItem(Item):
    """pk ``p#<limit>``, sk ``[invocation id, index]`` (JSON): one invocation's place in a
    limit instance; ``granted_at`` absent while it waits."""

    lim = UnicodeAttribute()
    inv = UnicodeAttribute()
    index = NumberAttribute()
    partition = NumberAttribute()
    priority = NumberAttribute()
    asked_at = NumberAttribute()
    granted_at = NumberAttribute(null=True)

    @classmethod
    def of(cls, p: PermitRecord) -> PermitItem:
        return cls(
            pk=keys.permit_pk(p.limit),
            sk=keys.permit_sk(p.invocation_id, p.index),
            lim=p.limit,
            inv=p.invocation_id,
            index=p.index,
            partition=p.partition,
            priority=p.priority,
            asked_at=p.asked_at,
            granted_at=p.granted_at,
        )

    def record(self) -> PermitRecord:
        return PermitRecord(
            self.lim,
            self.inv,
            int(self.index),
            int(self.partition),
            int(self.priority),
            int(self.asked_at),
            _int(self.granted_at),
        )


class PermitRegistryItem(Item):
    """pk ``pl#<partition>``, sk ``<limit>``: a limit instance of the partition with permit
    rows (or that had some). ``tok`` is new at every ask that writes it, so a reader that found
    the instance empty may delete the item only if no ask wrote it since (``tok`` unchanged)."""

    lim = UnicodeAttribute()
    tok = UnicodeAttribute()


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def key_of(pk: str, sk: str) -> RawItem:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def key_from(raw: RawItem) -> tuple[str, str]:
    return (raw["pk"]["S"], raw["sk"]["S"])
