"""Named limits and the reads of permits in DynamoDB (blocking; run on the store's threads).
Permits are written only by commit units (``_dynamo_commit``); docs/dynamodb.md draws the
items.

- A limit is one item in the collection pk ``lm``, read whole (limits are few and small);
  ``put`` is a compare-and-set, as a schedule's (``_dynamo_schedules``).
- The permit rows of a limit instance are the collection pk ``p#<limit>``, sk
  ``[invocation id, index]``: no item is shared by two instances, so busy limits do not meet.
- A partition's limit instances are listed in the collection pk ``pl#<partition>`` (the
  *registry*): a commit that asks a permit writes the registry item of its instance in the
  same transaction, so ``list_permits(partition=P)`` finds every instance with a row in P by
  one Query of the registry and one of each instance's rows, all strongly consistent.

Registry items are forgotten by the listing that finds their instance empty, with a delete
conditioned on the item's token, which every ask rewrites::

    list: query pl#P -> (L, tok t1); query p#L -> no rows
    ask:                                                  put row + pl#P/L tok t2 (one transaction)
    list:                                delete pl#P/L if tok = t1 -> ConditionalCheckFailed: kept

Had the ask come before the rows were read, they would have been seen; after the delete, it
writes the registry item again. So an instance with rows is never missing from the registry.
"""

from __future__ import annotations

from collections.abc import Iterable

from ritornello.store import _dynamo_keys as keys
from ritornello.store._checks import check_version
from ritornello.store._dynamo_client import AwsError, DynamoClient, versioned_put
from ritornello.store._dynamo_models import (
    LimitItem,
    PermitItem,
    PermitRegistryItem,
    RawItem,
    key_of,
)
from ritornello.store.errors import ConflictError
from ritornello.store.records import LimitRecord, PermitRecord, permit_order

_FAILED = "ConditionalCheckFailedException"


class Limits:
    def __init__(self, client: DynamoClient, partitions: int) -> None:
        self.client = client
        self.partitions = partitions

    # --- limits -----------------------------------------------------------------------------

    def put_limit(self, limit: LimitRecord, expect_version: int | None) -> None:
        try:
            self.client.call("PutItem", **versioned_put(LimitItem.of(limit).raw(), expect_version))
            return
        except AwsError as exc:
            if exc.code != _FAILED:
                raise
        current = self.get_limit(limit.name)
        check_version(
            f"limit {limit.name!r}", None if current is None else current.version, expect_version
        )
        raise ConflictError(f"limit {limit.name!r} changed while it was written")

    def get_limit(self, name: str) -> LimitRecord | None:
        raw = self.client.get(key_of(keys.LIMITS_PK, keys.limit_sk(name)))
        return None if raw is None else LimitItem.load(raw).record()

    def list_limits(self) -> list[LimitRecord]:
        found = [LimitItem.load(raw).record() for raw in self.client.query_pk(keys.LIMITS_PK)]
        return sorted(found, key=lambda r: r.name)

    def delete_limit(self, name: str) -> bool:
        response = self.client.call(
            "DeleteItem",
            Key=key_of(keys.LIMITS_PK, keys.limit_sk(name)),
            ReturnValues="ALL_OLD",
        )
        return bool(response.get("Attributes"))

    # --- permits ----------------------------------------------------------------------------

    def get_permit(self, limit: str, invocation_id: str, index: int) -> PermitRecord | None:
        raw = self.client.get(key_of(keys.permit_pk(limit), keys.permit_sk(invocation_id, index)))
        return None if raw is None else PermitItem.load(raw).record()

    def list_permits(self, partition: int | None, limit: str | None) -> list[PermitRecord]:
        rows = self._rows(limit) if limit is not None else self._registered(partition)
        found = {
            (p.limit, p.invocation_id, p.index): p
            for p in rows
            if partition is None or p.partition == partition
        }
        return sorted(found.values(), key=permit_order)

    def _rows(self, limit: str) -> list[PermitRecord]:
        """Every permit row of one limit instance (one strongly consistent Query)."""
        rows = (
            PermitItem.load(raw).record() for raw in self.client.query_pk(keys.permit_pk(limit))
        )
        return [p for p in rows if p.limit == limit]  # a long name's pk is a hash: check it

    def _registered(self, partition: int | None) -> Iterable[PermitRecord]:
        """The rows of every limit instance in the registry of ``partition`` (of every
        partition if None); forgets the instances found empty (the module docstring)."""
        partitions = range(self.partitions) if partition is None else (partition,)
        for p in partitions:
            for raw in self.client.query_pk(keys.permit_registry_pk(p)):
                rows = self._rows(PermitRegistryItem.load(raw).lim)
                if not rows:
                    self._forget(raw)
                yield from rows

    def _forget(self, raw: RawItem) -> None:
        try:
            self.client.call(
                "DeleteItem",
                Key=key_of(raw["pk"]["S"], raw["sk"]["S"]),
                ConditionExpression="tok = :t",
                ExpressionAttributeValues={":t": raw["tok"]},
            )
        except AwsError as exc:
            if exc.code != _FAILED:
                raise
