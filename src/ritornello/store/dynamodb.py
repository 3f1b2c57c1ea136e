"""``DynamoStore``: the store in one DynamoDB table (pynamodb models), with S3 for values past
the item limit. Several orchestrator processes share one table (docs/dynamodb.md).

Invariants:

- A commit unit is one ``TransactWriteItems`` (``_dynamo_commit``): all of it lands or none.
  A purge is the exception: it deletes in batches outside any transaction (idempotent, the
  invocation item last, so an interrupted purge is found and finished by the next one).
- A commit that failed ambiguously (UnavailableError: it may have landed) is remembered by its
  unit's fingerprint. The next ``commit`` of the same unit resends the *same* request with the
  same ClientRequestToken (DynamoDB then does not apply it twice); if its conditions fail, the
  store checks whether every item the request wrote is there as written: if so the unit
  landed and the retry is a no-op.
- Blocking calls run on a small thread pool owned by the store, never on the event loop;
  a cancelled ``commit`` still finishes on its thread.
- ``_known`` holds the last record this store wrote of each recent invocation not finished
  (and its item's ``ep``). A record at a version never changes (every write of the item is
  conditioned on the version and ``seq`` it replaces), so a unit expecting that version is
  planned without the read before the transaction: its conditions decide, as they do after a
  read (``unread_view``). Entries are dropped on a failed or ambiguous commit, on purge and on
  seal; a stale one only costs a ConflictError the caller already handles (a re-read).
- A plain step (``step_fence``) is fenced on its invocation item (``ep`` at most its epoch)
  instead of on the lease; ``seal`` stamps a new leader's epoch on every live invocation of
  the partition before it reads them, so a predecessor's step lands before that read or never.
  A step refused by its condition is told apart by reading the lease: moved, FencedError;
  else ConflictError (timeline in docs/dynamodb.md, "A commit").
- A running invocation's latest small entries live in its item's tail (``_dynamo_tail``): a
  plain step that keeps the item within 1 KB is one conditional PutItem of that item alone.
  Every index of a journal is in exactly one place (entry item, chunk, tail); ``get_journal``
  merges them by index.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ritornello.store import _dynamo_keys as keys
from ritornello.store import _dynamo_schema as schema
from ritornello.store._base import Store
from ritornello.store._checks import check_limit, check_schedule, check_unit
from ritornello.store._dynamo_blobs import Blobs
from ritornello.store._dynamo_client import AwsError, DynamoClient, DynamoSettings, Unavailable
from ritornello.store._dynamo_commit import (
    MAX_ITEMS,
    Plan,
    Replan,
    build_plan,
    check_fences,
    fingerprint,
    lease_keys,
)
from ritornello.store._dynamo_coord import Coordination
from ritornello.store._dynamo_limits import Limits
from ritornello.store._dynamo_models import InvocationItem, LeaseItem, key_from, key_of
from ritornello.store._dynamo_reads import Reads
from ritornello.store._dynamo_schedules import Schedules
from ritornello.store._dynamo_stats import DynamoStats
from ritornello.store._dynamo_steps import Known, StepRefused
from ritornello.store._service_settings import DYNAMO_PK, dynamo_item, dynamo_record
from ritornello.store.errors import (
    ConflictError,
    FencedError,
    StoreClosedError,
    StoreError,
    UnavailableError,
)
from ritornello.store.records import (
    FINAL_STATUSES,
    CommitUnit,
    DeploymentRecord,
    InvocationRecord,
    LeaseRecord,
    LimitRecord,
    MemberRecord,
    PermitRecord,
    ScheduleRecord,
    ServiceSettingsRecord,
    TimerRecord,
)

__all__ = ["DynamoSettings", "DynamoStats", "DynamoStore"]

_T = TypeVar("_T")
_REPLANS = 5
#: Threads (and connections) of the leadership lane: a round's renewals and heartbeat at once.
LEASE_THREADS = 4
_REMEMBERED = 1000
_SEAL_CONDITION = "attribute_exists(pk) AND (attribute_not_exists(ep) OR ep < :e)"
#: Invocation records remembered to plan commits without a read (a few MB at most).
_KNOWN = 10_000
_RETRYABLE_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)


def _unheard(write: asyncio.Future[None]) -> None:
    """Retrieve a shielded write's outcome, so one whose caller was cancelled (a driver
    stopped on a change of leader) is not reported as an exception nobody retrieved."""
    if not write.cancelled():
        write.exception()


class DynamoStore(Store):
    """A DynamoDB table (``settings.table``); values past ~350 KB go to ``settings.bucket``."""

    def __init__(self, settings: DynamoSettings, *, threads: int = 16) -> None:
        self.settings = settings
        self.partitions = settings.partitions
        self.stats = DynamoStats()
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._lease_executor: ThreadPoolExecutor | None = None
        self._client: DynamoClient | None = None
        self._reads: Reads | None = None
        self._coord: Coordination | None = None
        self._schedules: Schedules | None = None
        self._limits: Limits | None = None
        self._blobs: Blobs | None = None
        self._opened = False
        self._closed = False
        self._lock = threading.Lock()
        self._ambiguous: OrderedDict[str, tuple[Plan, str]] = OrderedDict()
        self._known: OrderedDict[str, Known] = OrderedDict()

    @classmethod
    def from_url(cls, url: str) -> DynamoStore:
        """``dynamodb://TABLE?region=&endpoint_url=&s3_endpoint_url=&bucket=&partitions=``."""
        return cls(DynamoSettings.from_url(url))

    # --- lifecycle ------------------------------------------------------------------------

    def _connect(self) -> DynamoClient:
        if self._client is None:
            self._client = DynamoClient(
                self.settings, self.stats, pool=self._threads + LEASE_THREADS
            )
            self._blobs = Blobs(self._client, self.settings.bucket)
            self._coord = Coordination(self._client)
            self._schedules = Schedules(self._client)
        return self._client

    async def init(self) -> list[str]:
        """Create the table (on-demand, TTL), its meta item and the bucket, if missing.
        Idempotent; needs no ``open``. Returns what was created or found, a line each."""
        if self._closed:
            raise StoreClosedError("the store is closed")

        def run() -> list[str]:
            return schema.init(self._connect(), self.settings.partitions)

        if self._executor is not None:
            return await self._submit(run)
        return await asyncio.to_thread(run)

    async def open(self) -> None:
        if self._closed:
            raise StoreClosedError("the store is closed")
        if self._opened:
            raise StoreError(f"DynamoDB table {self.settings.table}: the store is already open")
        self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix="ritornello-ddb")
        # Leadership gets its own lane: a lease renewal must never queue behind a burst of
        # commits, or a busy leader would lose its partitions for being busy.
        self._lease_executor = ThreadPoolExecutor(
            LEASE_THREADS, thread_name_prefix="ritornello-ddb-lease"
        )
        try:
            meta = await self._submit(lambda: schema.read_meta(self._connect()))
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self.partitions = int(meta.partitions)
        assert self._client is not None and self._blobs is not None
        self._reads = Reads(self._client, self._blobs, self.partitions)
        self._limits = Limits(self._client, self.partitions)
        self._opened = True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, True)
        lane, self._lease_executor = self._lease_executor, None
        if lane is not None:
            await asyncio.to_thread(lane.shutdown, True)
        if self._client is not None:
            self._client.close()

    def _submit(self, fn: Callable[[], _T]) -> asyncio.Future[_T]:
        assert self._executor is not None
        return asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._closed:
            raise StoreClosedError("the store is closed")
        if not self._opened:
            raise StoreError("the store is not open")
        return await self._submit(functools.partial(fn, *args))

    async def _run_lease(self, fn: Callable[[], _T]) -> _T:
        """Like ``_run``, on the leadership lane."""
        if self._closed:
            raise StoreClosedError("the store is closed")
        if not self._opened or self._lease_executor is None:
            raise StoreError("the store is not open")
        return await asyncio.get_running_loop().run_in_executor(self._lease_executor, fn)

    @property
    def _r(self) -> Reads:
        assert self._reads is not None
        return self._reads

    @property
    def _s(self) -> Schedules:
        assert self._schedules is not None
        return self._schedules

    @property
    def _lm(self) -> Limits:
        assert self._limits is not None
        return self._limits

    @property
    def _c(self) -> Coordination:
        assert self._coord is not None
        return self._coord

    # --- commit ---------------------------------------------------------------------------

    async def commit(self, unit: CommitUnit) -> None:
        check_unit(unit)
        # shielded: a cancelled caller does not cancel the write (it runs on its thread); its
        # outcome then goes unheard (the caller's successor reads the store), not logged
        write = asyncio.ensure_future(self._run(self._commit, unit))
        write.add_done_callback(_unheard)
        await asyncio.shield(write)

    def _commit(self, unit: CommitUnit) -> None:
        client = self._connect()
        fp = fingerprint(unit)
        with self._lock:
            remembered = self._ambiguous.pop(fp, None)
        if remembered is not None and not unit.purge and self._resend(fp, *remembered):
            self._learn(remembered[0].records)
            return
        last: list[dict[str, Any]] = []
        if unit.purge:
            if unit.fences:  # the purge is not part of the transaction: check them first
                leases = client.batch_get(lease_keys(unit))
                check_fences(unit, {key_from(raw): raw for raw in leases})
            purged = set(unit.purge)
            self._forget(purged)
            last = self._purge(unit)
            unit = dataclasses.replace(unit, purge=[])
            if {w.record.id for w in unit.invocations} & purged:
                client.batch_write(last)  # the rest of the unit re-creates one of them
                last = []
        self._apply(unit, fp)
        if last:
            client.batch_write(last)

    def _apply(self, unit: CommitUnit, fp: str) -> None:
        client, blobs = self._connect(), self._blobs
        assert blobs is not None
        ids = {w.record.id for w in unit.invocations}
        known: dict[str, Known] | None = self._recall(ids)
        for _ in range(_REPLANS):
            plan = build_plan(client, blobs, unit, self.partitions, known)
            known = None  # a second round reads
            if not plan.items:
                return
            if not plan.conditional and len(plan.items) > MAX_ITEMS:
                self._write_unconditionally(plan)
                self._learn(plan.records)
                return
            plan.check_limits()
            token = uuid.uuid4().hex
            try:
                self._send(plan, token)
            except UnavailableError:
                self._forget(ids)
                self._remember(fp, plan, token)
                raise
            except Replan:
                continue
            except StepRefused as refused:
                self._forget(ids)
                raise self._refused(refused) from None
            except BaseException:
                self._forget(ids)
                raise
            self._learn(plan.records)
            return
        self._forget(ids)
        raise ConflictError("a commit unit kept racing with concurrent writers; giving up")

    def _refused(self, refused: StepRefused) -> Exception:
        """FencedError if the lease of the refused step's partition moved past its epoch
        (a later leader sealed or wrote the invocation), else ConflictError."""
        raw = self._connect().get(key_of(keys.LEASES_PK, keys.lease_sk(refused.partition)))
        lease = None if raw is None else LeaseItem.load(raw).record()
        if lease is None or lease.owner is None or lease.epoch != refused.epoch:
            what = f"partition {refused.partition} is no longer held at epoch {refused.epoch}"
            return FencedError(what, partition=refused.partition)
        return ConflictError(refused.what)

    def _recall(self, ids: set[str]) -> dict[str, Known]:
        with self._lock:
            return {i: r for i in ids if (r := self._known.get(i)) is not None}

    def _learn(self, records: dict[str, Known]) -> None:
        if not records:
            return
        with self._lock:
            for inv_id, record in records.items():
                if record[0].status in FINAL_STATUSES:  # (its result may be large)
                    self._known.pop(inv_id, None)  # nothing updates it but a purge
                    continue
                self._known[inv_id] = record
                self._known.move_to_end(inv_id)
            while len(self._known) > _KNOWN:
                self._known.popitem(last=False)

    def _forget(self, ids: set[str]) -> None:
        with self._lock:
            for inv_id in ids:
                self._known.pop(inv_id, None)

    def _send(self, plan: Plan, token: str) -> None:
        single = plan.single
        if single is not None:  # a plain step, its entries in the tail: one PutItem
            try:
                self._connect().call("PutItem", **single)
            except AwsError as exc:
                if exc.code != "ConditionalCheckFailedException":
                    raise
                raise plan.explain(["ConditionalCheckFailed"]) from None
            return
        try:
            self._connect().call(
                "TransactWriteItems", TransactItems=plan.items, ClientRequestToken=token
            )
        except AwsError as exc:
            if exc.code != "TransactionCanceledException":
                raise
            codes = set(exc.reasons) - {None, "None"}
            if "ConditionalCheckFailed" in codes:
                raise plan.explain(exc.reasons) from None
            if codes <= _RETRYABLE_REASONS:
                raise Unavailable(str(exc), exc.code) from None
            raise StoreError(f"DynamoDB cancelled the commit: {exc}") from None

    def _remember(self, fp: str, plan: Plan, token: str) -> None:
        with self._lock:
            self._ambiguous[fp] = (plan, token)
            while len(self._ambiguous) > _REMEMBERED:
                self._ambiguous.popitem(last=False)

    def _resend(self, fp: str, plan: Plan, token: str) -> bool:
        """Retry of a unit whose commit failed ambiguously: True if it is now applied."""
        try:
            self._send(plan, token)
            return True
        except UnavailableError:
            self._remember(fp, plan, token)
            raise
        except (ConflictError, Replan, StepRefused):
            return self._landed(plan)  # if not, the unit is planned again on a fresh read

    def _landed(self, plan: Plan) -> bool:
        """Whether every item ``plan`` writes is stored exactly as written (and deletes gone).
        Permit registry items are no evidence: any later ask rewrites them."""
        puts = [i for i in plan.puts() if not keys.is_permit_registry(i["pk"]["S"])]
        deletes = plan.deletes()
        stored = {
            key_from(raw): raw
            for raw in self._connect().batch_get([key_of(*key_from(i)) for i in puts] + deletes)
        }
        return all(stored.get(key_from(i)) == i for i in puts) and not any(
            key_from(k) in stored for k in deletes
        )

    def _write_unconditionally(self, plan: Plan) -> None:
        """A large unit with no condition (state clears of a purge): in batches."""
        requests: list[dict[str, Any]] = [{"PutRequest": {"Item": i}} for i in plan.puts()]
        requests += [{"DeleteRequest": {"Key": k}} for k in plan.deletes()]
        self._connect().batch_write(requests)

    def _purge(self, unit: CommitUnit) -> list[dict[str, Any]]:
        """Delete what hangs off the purged invocations; return the deletes of the invocation
        items themselves, which go last (after the rest of the unit): until then the next
        ``list_expired`` finds an interrupted purge again."""
        client = self._connect()
        ids = list(dict.fromkeys(unit.purge))
        found = client.batch_get([key_of(keys.invocation_pk(i), keys.INVOCATION_SK) for i in ids])
        records = {r.id: r for r in (InvocationItem.load(raw).record(None) for raw in found)}
        deletes: list[dict[str, Any]] = []
        for inv_id in ids:
            record = records.get(inv_id)
            for raw in client.query_pk(keys.invocation_pk(inv_id), ProjectionExpression="pk, sk"):
                if raw["sk"]["S"] != keys.INVOCATION_SK:
                    deletes.append(raw)
            shard = keys.timer_pk(inv_id, self.partitions)
            prefix = keys.timer_prefix(inv_id)
            deletes.extend(client.query_pk(shard, prefix, ProjectionExpression="pk, sk"))
            if record is not None:
                deletes.append(key_of(keys.active_pk(record.partition), keys.active_sk(inv_id)))
                if record.idempotency_key is not None:
                    pk = keys.idempotency_pk(
                        record.service, record.handler, record.key, record.idempotency_key
                    )
                    self._delete_idempotency(pk, inv_id)
        client.batch_write([{"DeleteRequest": {"Key": key_of(*key_from(k))}} for k in deletes])
        last = [key_of(keys.invocation_pk(i), keys.INVOCATION_SK) for i in records]
        return [{"DeleteRequest": {"Key": k}} for k in last]

    def _delete_idempotency(self, pk: str, inv_id: str) -> None:
        try:
            self._connect().call(
                "DeleteItem",
                Key=key_of(pk, keys.IDEMPOTENCY_SK),
                ConditionExpression="inv = :id",
                ExpressionAttributeValues={":id": {"S": inv_id}},
            )
        except AwsError as exc:
            if exc.code != "ConditionalCheckFailedException":
                raise

    # --- reads ----------------------------------------------------------------------------

    async def seal(self, partition: int, epoch: int) -> None:
        """Stamp ``epoch`` as ``ep`` on every live invocation of ``partition`` (those with an
        active marker), unless one holds a later epoch: a step fenced at an earlier epoch
        then fails its condition (``Store.seal``). Idempotent."""

        def live() -> list[str]:
            client = self._connect()
            markers = client.query_pk(keys.active_pk(partition), ProjectionExpression="inv")
            return [raw["inv"]["S"] for raw in markers]

        ids = await self._run(live)
        for start in range(0, len(ids), self._threads):
            chunk = ids[start : start + self._threads]
            await asyncio.gather(*(self._run(self._seal_one, i, epoch) for i in chunk))
        self._forget(set(ids))

    def _seal_one(self, invocation_id: str, epoch: int) -> None:
        try:
            self._connect().call(
                "UpdateItem",
                Key=key_of(keys.invocation_pk(invocation_id), keys.INVOCATION_SK),
                UpdateExpression="SET ep = :e",
                ConditionExpression=_SEAL_CONDITION,
                ExpressionAttributeValues={":e": {"N": str(epoch)}},
            )
        except AwsError as exc:  # gone, or already at this epoch or a later one
            if exc.code != "ConditionalCheckFailedException":
                raise

    async def get_invocation(self, invocation_id: str) -> InvocationRecord | None:
        return await self._run(lambda: self._r.get_invocation(invocation_id))

    async def get_journal(self, invocation_id: str) -> tuple[list[str], list[str]]:
        return await self._run(lambda: self._r.get_journal(invocation_id))

    async def get_state(self, service: str, key: str) -> dict[str, str]:
        return await self._run(lambda: self._r.get_state(service, key))

    async def list_invocations(
        self,
        *,
        statuses: Sequence[str] | None = None,
        service: str | None = None,
        key: str | None = None,
        after_seq: int = -1,
        limit: int = 1000,
        partition: int | None = None,
        after: tuple[int, str] | None = None,
        newest_first: bool = False,
    ) -> list[InvocationRecord]:
        args = (statuses, service, key, after_seq, limit, partition, after, newest_first)
        return await self._run(lambda: self._r.list_invocations(*args))

    async def find_idempotent(
        self, service: str, handler: str, key: str | None, idempotency_key: str
    ) -> InvocationRecord | None:
        args = (service, handler, key, idempotency_key)
        return await self._run(lambda: self._r.find_idempotent(*args))

    async def list_expired(
        self, before_ms: int, limit: int = 500, partition: int | None = None
    ) -> list[InvocationRecord]:
        return await self._run(lambda: self._r.list_expired(before_ms, limit, partition))

    async def list_timers(self, partition: int | None = None) -> list[TimerRecord]:
        return await self._run(lambda: self._r.list_timers(partition))

    async def max_seq(self) -> int:
        return await self._run(lambda: self._r.max_seq())

    # --- deployments, leases, members, inboxes ---------------------------------------------

    async def put_deployment(self, deployment: DeploymentRecord) -> None:
        await self._run(lambda: self._c.put_deployment(deployment))

    async def list_deployments(self) -> list[DeploymentRecord]:
        return await self._run(lambda: self._c.list_deployments())

    async def delete_deployment(self, deployment_id: str) -> bool:
        return await self._run(lambda: self._c.delete_deployment(deployment_id))

    async def put_service_settings(self, record: ServiceSettingsRecord) -> None:
        item = dynamo_item(record, keys.deployment_sk(record.service))  # bounded as any sk
        await self._run(lambda: self._c.client.call("PutItem", Item=item))

    async def list_service_settings(self) -> list[ServiceSettingsRecord]:
        def read() -> list[ServiceSettingsRecord]:
            found = [dynamo_record(raw) for raw in self._c.client.query_pk(DYNAMO_PK)]
            return sorted(found, key=lambda r: r.service)

        return await self._run(read)

    async def put_schedule(
        self, schedule: ScheduleRecord, expect_version: int | None = None
    ) -> None:
        check_schedule(schedule, expect_version)
        await self._run(lambda: self._s.put(schedule, expect_version))

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        return await self._run(lambda: self._s.get(schedule_id))

    async def list_schedules(self, partition: int | None = None) -> list[ScheduleRecord]:
        return await self._run(lambda: self._s.list(partition))

    async def delete_schedule(self, schedule_id: str, expect_version: int | None = None) -> bool:
        return await self._run(lambda: self._s.delete(schedule_id, expect_version))

    async def put_limit(self, limit: LimitRecord, expect_version: int | None = None) -> None:
        check_limit(limit, expect_version)
        await self._run(lambda: self._lm.put_limit(limit, expect_version))

    async def get_limit(self, name: str) -> LimitRecord | None:
        return await self._run(lambda: self._lm.get_limit(name))

    async def list_limits(self) -> list[LimitRecord]:
        return await self._run(lambda: self._lm.list_limits())

    async def delete_limit(self, name: str) -> bool:
        return await self._run(lambda: self._lm.delete_limit(name))

    async def get_permit(self, limit: str, invocation_id: str, index: int) -> PermitRecord | None:
        return await self._run(lambda: self._lm.get_permit(limit, invocation_id, index))

    async def list_permits(
        self, *, partition: int | None = None, limit: str | None = None
    ) -> list[PermitRecord]:
        return await self._run(lambda: self._lm.list_permits(partition, limit))

    async def list_leases(self) -> list[LeaseRecord]:
        return await self._run_lease(lambda: self._c.list_leases())

    async def claim_lease(
        self, partition: int, owner: str, expect: LeaseRecord | None, now_ms: int
    ) -> LeaseRecord:
        return await self._run_lease(lambda: self._c.claim_lease(partition, owner, expect, now_ms))

    async def renew_lease(self, lease: LeaseRecord, now_ms: int) -> LeaseRecord:
        return await self._run_lease(lambda: self._c.renew_lease(lease, now_ms))

    async def release_lease(self, lease: LeaseRecord, now_ms: int) -> None:
        await self._run_lease(lambda: self._c.release_lease(lease, now_ms))

    async def heartbeat(self, node: str, address: str, now_ms: int) -> None:
        await self._run_lease(lambda: self._c.heartbeat(node, address, now_ms))

    async def list_members(self) -> list[MemberRecord]:
        return await self._run_lease(lambda: self._c.list_members())

    async def remove_member(self, node: str) -> None:
        await self._run(lambda: self._c.remove_member(node))

    async def read_inbox(self, partition: int, limit: int = 1000) -> list[tuple[str, str]]:
        return await self._run(lambda: self._c.read_inbox(partition, limit))

    async def ack_inbox(
        self, partition: int, message_ids: Sequence[str], epoch: int | None = None
    ) -> None:
        ids = list(message_ids)
        await self._run(lambda: self._c.ack_inbox(partition, ids, epoch))
