"""Leases, member records, inboxes and deployments in DynamoDB (blocking; run on the store's
threads). Each is a small item collection read with one strongly consistent Query.

Lease timeline (every write is conditional, so two contenders cannot both win)::

    A: claim(expect v3)  -> put if version = 3       -> ok, epoch 5 / v4
    B: claim(expect v3)  -> put if version = 3       -> ConditionalCheckFailed -> ConflictError
    A: renew             -> update if owner = A AND epoch = 5 -> v5 (version not compared)
    A: commit, fence 5   -> ConditionCheck owner exists AND epoch = 5, in the transaction
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ritornello.store import _dynamo_keys as keys
from ritornello.store._dynamo_client import AwsError, DynamoClient
from ritornello.store._dynamo_models import (
    DeploymentItem,
    InboxItem,
    LeaseItem,
    MemberItem,
    key_of,
)
from ritornello.store.errors import ConflictError, FencedError
from ritornello.store.records import DeploymentRecord, LeaseRecord, MemberRecord

_FAILED = "ConditionalCheckFailedException"


def _failed(exc: AwsError) -> bool:
    return exc.code == _FAILED


class Coordination:
    def __init__(self, client: DynamoClient) -> None:
        self.client = client

    # --- leases ---------------------------------------------------------------------------

    def list_leases(self) -> list[LeaseRecord]:
        leases = [LeaseItem.load(raw).record() for raw in self.client.query_pk(keys.LEASES_PK)]
        return sorted(leases, key=lambda lease: lease.partition)

    def claim_lease(
        self, partition: int, owner: str, expect: LeaseRecord | None, now_ms: int
    ) -> LeaseRecord:
        new = LeaseRecord(
            partition=partition,
            owner=owner,
            epoch=1 if expect is None else expect.epoch + 1,
            version=1 if expect is None else expect.version + 1,
            renewed_at=now_ms,
        )
        item = LeaseItem(
            pk=keys.LEASES_PK,
            sk=keys.lease_sk(partition),
            partition=partition,
            owner=owner,
            epoch=new.epoch,
            version=new.version,
            renewed_at=now_ms,
        )
        kwargs: dict[str, Any] = {"Item": item.raw()}
        if expect is None:
            kwargs["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            kwargs["ConditionExpression"] = "version = :v"
            kwargs["ExpressionAttributeValues"] = {":v": {"N": str(expect.version)}}
        try:
            self.client.call("PutItem", **kwargs)
        except AwsError as exc:
            if _failed(exc):
                raise ConflictError(f"the lease of partition {partition} moved") from None
            raise
        return new

    def _update_lease(self, lease: LeaseRecord, now_ms: int, expression: str) -> dict[str, Any]:
        return self.client.call(
            "UpdateItem",
            Key=key_of(keys.LEASES_PK, keys.lease_sk(lease.partition)),
            UpdateExpression=expression,
            ConditionExpression="#o = :owner AND epoch = :e",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={
                ":owner": {"S": lease.owner or ""},
                ":e": {"N": str(lease.epoch)},
                ":now": {"N": str(now_ms)},
                ":one": {"N": "1"},
            },
            ReturnValues="ALL_NEW",
        )

    def renew_lease(self, lease: LeaseRecord, now_ms: int) -> LeaseRecord:
        fenced = FencedError(
            f"partition {lease.partition}: lease of {lease.owner} at epoch {lease.epoch} is gone",
            partition=lease.partition,
        )
        if lease.owner is None:
            raise fenced
        try:
            response = self._update_lease(lease, now_ms, "SET renewed_at = :now ADD version :one")
        except AwsError as exc:
            if _failed(exc):
                raise fenced from None
            raise
        return LeaseItem.load(response["Attributes"]).record()

    def release_lease(self, lease: LeaseRecord, now_ms: int) -> None:
        if lease.owner is None:
            return
        try:
            self._update_lease(lease, now_ms, "REMOVE #o SET renewed_at = :now ADD version :one")
        except AwsError as exc:
            if not _failed(exc):
                raise

    # --- members --------------------------------------------------------------------------

    def heartbeat(self, node: str, address: str, now_ms: int) -> None:
        self.client.call(
            "UpdateItem",
            Key=key_of(keys.MEMBERS_PK, keys.member_sk(node)),
            UpdateExpression="SET #n = :n, address = :a, heartbeat_at = :h ADD version :one",
            ExpressionAttributeNames={"#n": "node"},
            ExpressionAttributeValues={
                ":n": {"S": node},
                ":a": {"S": address},
                ":h": {"N": str(now_ms)},
                ":one": {"N": "1"},
            },
        )

    def list_members(self) -> list[MemberRecord]:
        members = [MemberItem.load(raw).record() for raw in self.client.query_pk(keys.MEMBERS_PK)]
        return sorted(members, key=lambda m: m.node)

    def remove_member(self, node: str) -> None:
        self.client.call("DeleteItem", Key=key_of(keys.MEMBERS_PK, keys.member_sk(node)))

    # --- inboxes --------------------------------------------------------------------------

    def read_inbox(self, partition: int, limit: int) -> list[tuple[str, str]]:
        if limit <= 0:
            return []
        found: list[tuple[str, str]] = []
        for raw in self.client.query_pk(keys.inbox_pk(partition), Limit=min(limit, 1000)):
            found.append((raw["sk"]["S"], InboxItem.load(raw).inv))
            if len(found) >= limit:
                break
        return found

    def ack_inbox(
        self, partition: int, message_ids: Sequence[str], epoch: int | None = None
    ) -> None:
        pk = keys.inbox_pk(partition)
        unique = list(dict.fromkeys(message_ids))
        if epoch is None:
            self.client.batch_write([{"DeleteRequest": {"Key": key_of(pk, m)}} for m in unique])
            return
        # Fenced: each batch of deletes is a transaction with a check of the lease's epoch.
        fence = {
            "ConditionCheck": {
                "TableName": self.client.table,
                "Key": key_of(keys.LEASES_PK, keys.lease_sk(partition)),
                "ConditionExpression": "attribute_exists(#o) AND epoch = :e",
                "ExpressionAttributeNames": {"#o": "owner"},
                "ExpressionAttributeValues": {":e": {"N": str(epoch)}},
            }
        }
        for start in range(0, max(len(unique), 1), 99):
            deletes = [
                {"Delete": {"TableName": self.client.table, "Key": key_of(pk, m)}}
                for m in unique[start : start + 99]
            ]
            try:
                self.client.call("TransactWriteItems", TransactItems=[fence, *deletes])
            except AwsError as exc:
                if exc.reasons and exc.reasons[0] == "ConditionalCheckFailed":
                    raise FencedError(
                        f"fenced: partition {partition} is not held at epoch {epoch}", partition
                    ) from None
                raise

    # --- deployments ----------------------------------------------------------------------

    def put_deployment(self, deployment: DeploymentRecord) -> None:
        self.client.call("PutItem", Item=DeploymentItem.of(deployment).raw())

    def list_deployments(self) -> list[DeploymentRecord]:
        found = [
            DeploymentItem.load(raw).record() for raw in self.client.query_pk(keys.DEPLOYMENTS_PK)
        ]
        return sorted(found, key=lambda d: (d.created_at, d.id))

    def delete_deployment(self, deployment_id: str) -> bool:
        response = self.client.call(
            "DeleteItem",
            Key=key_of(keys.DEPLOYMENTS_PK, keys.deployment_sk(deployment_id)),
            ReturnValues="ALL_OLD",
        )
        return bool(response.get("Attributes"))
