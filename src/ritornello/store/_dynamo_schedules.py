"""Cron schedules in DynamoDB (blocking; run on the store's threads): one item per schedule in
the item collection pk ``sc`` (docs/dynamodb.md), read whole with one strongly consistent
Query. Schedules are few and small, so one collection is cheaper than one per partition: the
scheduler of every orchestrator reads it once a poll and keeps the schedules it leads.

Compare-and-set timeline (every write is conditional, so two writers cannot both move it)::

    A: get   -> v7
    B: get   -> v7
    A: put v8 if version = 7 -> ok
    B: put v8 if version = 7 -> ConditionalCheckFailed -> ConflictError (B reads again)
"""

from __future__ import annotations

from typing import Any

from ritornello.store import _dynamo_keys as keys
from ritornello.store._dynamo_client import AwsError, DynamoClient, versioned_put
from ritornello.store._dynamo_models import ScheduleItem, key_of
from ritornello.store.errors import ConflictError
from ritornello.store.records import ScheduleRecord

_FAILED = "ConditionalCheckFailedException"


class Schedules:
    def __init__(self, client: DynamoClient) -> None:
        self.client = client

    def put(self, schedule: ScheduleRecord, expect_version: int | None) -> None:
        kwargs = versioned_put(ScheduleItem.of(schedule).raw(), expect_version)
        try:
            self.client.call("PutItem", **kwargs)
        except AwsError as exc:
            if exc.code != _FAILED:
                raise
            if expect_version is None:
                raise ConflictError(f"schedule {schedule.id} already exists") from None
            raise self._moved(schedule.id, expect_version) from None

    def _moved(self, schedule_id: str, expect_version: int) -> ConflictError:
        current = self.get(schedule_id)
        if current is None:
            return ConflictError(f"schedule {schedule_id} does not exist")
        return ConflictError(
            f"schedule {schedule_id} is at version {current.version}, not {expect_version}"
        )

    def get(self, schedule_id: str) -> ScheduleRecord | None:
        raw = self.client.get(key_of(keys.SCHEDULES_PK, keys.schedule_sk(schedule_id)))
        return None if raw is None else ScheduleItem.load(raw).record()

    def list(self, partition: int | None) -> list[ScheduleRecord]:
        found = [ScheduleItem.load(raw).record() for raw in self.client.query_pk(keys.SCHEDULES_PK)]
        found = [s for s in found if partition is None or s.partition == partition]
        return sorted(found, key=lambda s: (s.created_at, s.id))

    def delete(self, schedule_id: str, expect_version: int | None) -> bool:
        kwargs: dict[str, Any] = {
            "Key": key_of(keys.SCHEDULES_PK, keys.schedule_sk(schedule_id)),
            "ReturnValues": "ALL_OLD",
        }
        if expect_version is not None:
            kwargs["ConditionExpression"] = "attribute_not_exists(pk) OR version = :v"
            kwargs["ExpressionAttributeValues"] = {":v": {"N": str(expect_version)}}
        try:
            response = self.client.call("DeleteItem", **kwargs)
        except AwsError as exc:
            if exc.code != _FAILED or expect_version is None:
                raise
            raise self._moved(schedule_id, expect_version) from None
        return bool(response.get("Attributes"))
