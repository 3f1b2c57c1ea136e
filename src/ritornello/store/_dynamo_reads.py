"""Reads of the DynamoDB store (blocking; run on the store's threads).

Strongly consistent everywhere correctness needs it: an invocation, a journal, an object's
state, timers, a partition's active invocations, idempotency keys. The two global secondary
indexes (eventually consistent) serve only the admin's global listing, ``max_seq`` and
retention (``list_expired``).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ritornello.store import _dynamo_keys as keys
from ritornello.store._dynamo_blobs import Blobs
from ritornello.store._dynamo_client import DynamoClient
from ritornello.store._dynamo_models import (
    TTL_GRACE_S,
    ActiveItem,
    IdempotencyItem,
    InvocationItem,
    RawItem,
    TimerItem,
    ValueItem,
    key_of,
)
from ritornello.store._dynamo_tail import journal_items
from ritornello.store.records import FINAL_STATUSES, InvocationRecord, TimerRecord


class Reads:
    def __init__(self, client: DynamoClient, blobs: Blobs, partitions: int) -> None:
        self.client = client
        self.blobs = blobs
        self.partitions = partitions

    def _record(self, raw: RawItem) -> InvocationRecord:
        item = InvocationItem.load(raw)
        result = None
        if item.result is not None or item.result_ref is not None:
            result = self.blobs.get(item.result, item.result_ref)
        return item.record(result)

    def _records(self, keys_: Sequence[RawItem], consistent: bool) -> dict[str, InvocationRecord]:
        found = self.client.batch_get(keys_, consistent=consistent) if keys_ else []
        records = (self._record(raw) for raw in found)
        return {r.id: r for r in records}

    def get_invocation(self, invocation_id: str) -> InvocationRecord | None:
        raw = self.client.get(key_of(keys.invocation_pk(invocation_id), keys.INVOCATION_SK))
        return None if raw is None else self._record(raw)

    def get_journal(self, invocation_id: str) -> tuple[list[str], list[str]]:
        """The entries (entry items, chunks and the invocation item's tail, by index) and the
        completions, in one strongly consistent Query of the invocation's collection."""
        raws = list(self.client.query_pk(keys.invocation_pk(invocation_id)))
        completions = [self._value(raw) for raw in raws if raw["sk"]["S"].startswith("c#")]
        held = sorted(journal_items(raws), key=lambda pair: pair[0])
        return [self._value(entry) for _, entry in held], completions

    def _value(self, raw: RawItem) -> str:
        v, ref = raw.get("v"), raw.get("ref")
        return self.blobs.get(None if v is None else v["S"], None if ref is None else ref["S"])

    def get_state(self, service: str, key: str) -> dict[str, str]:
        values: dict[str, str] = {}
        for raw in self.client.query_pk(keys.state_pk(service, key)):
            item = ValueItem.load(raw)
            values[item.name or ""] = self.blobs.get(item.v, item.ref)
        return {name: values[name] for name in sorted(values)}

    def find_idempotent(
        self, service: str, handler: str, key: str | None, idempotency_key: str
    ) -> InvocationRecord | None:
        pk = keys.idempotency_pk(service, handler, key, idempotency_key)
        raw = self.client.get(key_of(pk, keys.IDEMPOTENCY_SK))
        if raw is None:
            return None
        holder = self.get_invocation(IdempotencyItem.load(raw).inv)
        if holder is None or _gone(holder, _now_ms()):
            return None
        if (holder.service, holder.handler, holder.key, holder.idempotency_key) != (
            service,
            handler,
            key,
            idempotency_key,
        ):
            return None  # a stale key item (the holder moved to another key)
        return holder

    # --- listing --------------------------------------------------------------------------

    def list_invocations(
        self,
        statuses: Sequence[str] | None,
        service: str | None,
        key: str | None,
        after_seq: int,
        limit: int,
        partition: int | None,
        after: tuple[int, str] | None = None,
        newest_first: bool = False,
    ) -> list[InvocationRecord]:
        if limit <= 0 or (statuses is not None and not statuses):
            return []
        wanted = None if statuses is None else frozenset(statuses)

        def past(seq: int, invocation_id: str) -> bool:
            """Strictly past the keyset cursor ``after`` in the order asked."""
            if after is None:
                return True
            return (seq, invocation_id) < after if newest_first else (seq, invocation_id) > after

        def keep(r: InvocationRecord) -> bool:
            return (
                r.seq > after_seq
                and past(r.seq, r.id)
                and (wanted is None or r.status in wanted)
                and (service is None or r.service == service)
                and (key is None or r.key == key)
            )

        if partition is not None and wanted is not None and not wanted & FINAL_STATUSES:
            return self._list_active(partition, keep, after_seq, limit, newest_first)
        return self._list_indexed(
            wanted, service, key, keep, after_seq, limit, partition, after, newest_first
        )

    def _list_active(
        self, partition: int, keep: Any, after_seq: int, limit: int, newest_first: bool = False
    ) -> list[InvocationRecord]:
        """Strongly consistent: the partition's active markers, then the invocations."""
        markers = [ActiveItem.load(raw) for raw in self.client.query_pk(keys.active_pk(partition))]
        order = sorted(
            ((int(m.seq), m.inv) for m in markers if int(m.seq) > after_seq), reverse=newest_first
        )
        found: list[InvocationRecord] = []
        for start in range(0, len(order), 100):
            chunk = [i for _, i in order[start : start + 100]]
            records = self._records(
                [key_of(keys.invocation_pk(i), keys.INVOCATION_SK) for i in chunk], True
            )
            ordered = sorted(records.values(), key=lambda r: (r.seq, r.id), reverse=newest_first)
            found.extend(r for r in ordered if keep(r))
            if len(found) >= limit:
                break
        return found[:limit]

    def _list_indexed(
        self,
        wanted: frozenset[str] | None,
        service: str | None,
        key: str | None,
        keep: Any,
        after_seq: int,
        limit: int,
        partition: int | None,
        after: tuple[int, str] | None = None,
        newest_first: bool = False,
    ) -> list[InvocationRecord]:
        """Eventually consistent: the by_seq index of each partition, merged by (seq, id),
        read forwards or (``newest_first``) backwards. The keyset cursor ``after`` becomes the
        sort key's bound (``seq_sk`` is ``<seq>#<id>``, ordered as the pair); ``keep`` drops the
        cursor's own row where the bound is inclusive."""
        filters: list[str] = []
        names: dict[str, str] = {}
        low = keys.seq_after(after_seq)
        condition = "seq_pk = :pk AND seq_sk > :after"
        values: dict[str, Any] = {":pk": {"S": ""}, ":after": {"S": low}}
        if after is not None:
            mark = keys.seq_sk(*after)
            if newest_first:
                if mark < low:
                    return []  # below the cursor is nothing past after_seq
                condition = "seq_pk = :pk AND seq_sk BETWEEN :after AND :before"
                values[":before"] = {"S": mark}
            else:
                values[":after"] = {"S": max(low, mark)}
        if wanted is not None:
            names["#st"] = "status"
            marks = []
            for n, status in enumerate(sorted(wanted)):
                values[f":s{n}"] = {"S": status}
                marks.append(f":s{n}")
            filters.append(f"#st IN ({', '.join(marks)})")
        if service is not None:
            names["#sv"] = "service"
            values[":sv"] = {"S": service}
            filters.append("#sv = :sv")
        if key is not None:
            names["#k"] = "okey"
            values[":k"] = {"S": key}
            filters.append("#k = :k")
        per_partition: list[Iterable[tuple[str, str]]] = []
        for p in self._partitions(partition):
            kwargs: dict[str, Any] = {
                "IndexName": keys.SEQ_INDEX,
                "KeyConditionExpression": condition,
                "ExpressionAttributeValues": {**values, ":pk": {"S": keys.seq_pk(p)}},
                "Limit": min(max(limit, 25), 1000),
                "ScanIndexForward": not newest_first,
            }
            if filters:
                kwargs["FilterExpression"] = " AND ".join(filters)
                kwargs["ExpressionAttributeNames"] = names
            rows = self.client.query(consistent=False, **kwargs)
            per_partition.append(_take(((r["seq_sk"]["S"], r["id"]["S"]) for r in rows), limit + 1))
        merged = list(heapq.merge(*per_partition, reverse=newest_first))[: limit + 1]
        records = self._records(
            [key_of(keys.invocation_pk(i), keys.INVOCATION_SK) for _, i in merged], False
        )
        now = _now_ms()
        ordered = sorted(records.values(), key=lambda r: (r.seq, r.id), reverse=newest_first)
        return [r for r in ordered if keep(r) and not _gone(r, now)][:limit]

    def list_expired(
        self, before_ms: int, limit: int, partition: int | None
    ) -> list[InvocationRecord]:
        if limit <= 0:
            return []
        per_partition = []
        for p in self._partitions(partition):
            rows = self.client.query(
                consistent=False,
                IndexName=keys.DONE_INDEX,
                KeyConditionExpression="done_pk = :pk AND done_sk < :before",
                ExpressionAttributeValues={
                    ":pk": {"S": keys.done_pk(p)},
                    ":before": {"S": keys.done_before(before_ms)},
                },
                Limit=min(max(limit, 25), 1000),
            )
            per_partition.append(_take(((r["done_sk"]["S"], r["pk"]["S"]) for r in rows), limit))
        merged = list(heapq.merge(*per_partition))[:limit]
        records = self._records([key_of(pk, keys.INVOCATION_SK) for _, pk in merged], True)
        found = [
            r
            for r in records.values()
            if r.status in FINAL_STATUSES and r.expires_at is not None and r.expires_at < before_ms
        ]
        return sorted(found, key=lambda r: (r.expires_at or 0, r.id))

    def list_timers(self, partition: int | None) -> list[TimerRecord]:
        """One strongly consistent Query per timer shard (timers are sharded by invocation)."""
        kwargs: dict[str, Any] = {}
        if partition is not None:
            kwargs["FilterExpression"] = "#p = :p"
            kwargs["ExpressionAttributeNames"] = {"#p": "partition"}
        timers = [
            TimerItem.load(raw).record()
            for shard in range(self.partitions)
            for raw in self._timer_shard(shard, partition, kwargs)
        ]
        return sorted(timers, key=lambda t: (t.fire_at, t.invocation_id, t.kind, t.index))

    def _timer_shard(
        self, shard: int, partition: int | None, kwargs: dict[str, Any]
    ) -> Iterator[RawItem]:
        values: dict[str, Any] = {":pk": {"S": keys.timer_shard(shard)}}
        if partition is not None:
            values[":p"] = {"N": str(partition)}
        return self.client.query(
            KeyConditionExpression="pk = :pk", ExpressionAttributeValues=values, **kwargs
        )

    def max_seq(self) -> int:
        best = 0
        for p in self._partitions(None):
            page = self.client.call(
                "Query",
                IndexName=keys.SEQ_INDEX,
                KeyConditionExpression="seq_pk = :pk",
                ExpressionAttributeValues={":pk": {"S": keys.seq_pk(p)}},
                ScanIndexForward=False,
                Limit=1,
            )
            for raw in page.get("Items", []):
                best = max(best, int(raw["seq"]["N"]))
        return best

    def _partitions(self, partition: int | None) -> Iterable[int]:
        return range(self.partitions) if partition is None else (partition,)


def _take(rows: Iterator[tuple[str, str]], limit: int) -> list[tuple[str, str]]:
    taken: list[tuple[str, str]] = []
    for row in rows:
        taken.append(row)
        if len(taken) >= limit:
            break
    return taken


def _now_ms() -> int:
    return int(time.time() * 1000)


def _gone(record: InvocationRecord, now_ms: int) -> bool:
    """Past its expiry and DynamoDB's TTL grace: TTL may delete it any moment (or did)."""
    return record.expires_at is not None and record.expires_at + TTL_GRACE_S * 1000 < now_ms
