"""The DynamoDB table: its definition, ``init`` (create it; idempotent) and the check ``open``
runs. The meta item (pk ``meta``) records the schema version and the number of partitions,
both fixed at ``init``.
"""

from __future__ import annotations

import time
from typing import Any

from ritornello.store import _dynamo_keys as keys
from ritornello.store._dynamo_client import AwsError, DynamoClient
from ritornello.store._dynamo_models import MetaItem, key_of
from ritornello.store.errors import SchemaError, StoreError

SCHEMA_VERSION = 1

_S = "S"


def _index(name: str, pk: str, sk: str, projection: dict[str, Any]) -> dict[str, Any]:
    return {
        "IndexName": name,
        "KeySchema": [
            {"AttributeName": pk, "KeyType": "HASH"},
            {"AttributeName": sk, "KeyType": "RANGE"},
        ],
        "Projection": projection,
    }


TABLE_DEFINITION: dict[str, Any] = {
    "AttributeDefinitions": [
        {"AttributeName": name, "AttributeType": _S}
        for name in ("pk", "sk", "seq_pk", "seq_sk", "done_pk", "done_sk")
    ],
    "KeySchema": [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
    "GlobalSecondaryIndexes": [
        # Admin listing by seq: small index items, rewritten only when these attributes change.
        _index(
            keys.SEQ_INDEX,
            "seq_pk",
            "seq_sk",
            {
                "ProjectionType": "INCLUDE",
                "NonKeyAttributes": ["id", "status", "service", "okey", "seq", "expires_at"],
            },
        ),
        # Retention: sparse (terminal invocations only).
        _index(keys.DONE_INDEX, "done_pk", "done_sk", {"ProjectionType": "KEYS_ONLY"}),
    ],
}


def missing_table_message(table: str) -> str:
    return (
        f"DynamoDB table {table!r} does not exist (or is not initialized); create it with "
        f"`ritornello store init --store URL`"
    )


def init(client: DynamoClient, partitions: int) -> list[str]:
    """Create what is missing: the table (on-demand, TTL on ``ttl``), its meta item, the S3
    bucket. Returns a line per thing created or found."""
    done: list[str] = []
    table = client.table
    try:
        client.call("CreateTable", **TABLE_DEFINITION)
        done.append(f"created DynamoDB table {table} (on-demand)")
    except AwsError as exc:
        if exc.code != "ResourceInUseException":
            raise
        done.append(f"DynamoDB table {table} exists")
    for _ in range(600):
        status = client.call("DescribeTable")["Table"].get("TableStatus")
        if status == "ACTIVE":
            break
        time.sleep(0.5)
    else:
        raise StoreError(f"DynamoDB table {table} did not become ACTIVE")
    ttl = client.call("DescribeTimeToLive").get("TimeToLiveDescription", {})
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        spec = {"Enabled": True, "AttributeName": "ttl"}
        client.call("UpdateTimeToLive", TimeToLiveSpecification=spec)
        done.append(f"enabled TTL on attribute ttl of {table}")
    meta = MetaItem(
        pk=keys.META_PK, sk=keys.META_SK, partitions=partitions, schema_version=SCHEMA_VERSION
    )
    try:
        client.call("PutItem", Item=meta.raw(), ConditionExpression="attribute_not_exists(pk)")
        done.append(f"wrote meta item: {partitions} partitions, schema {SCHEMA_VERSION}")
    except AwsError as exc:
        if exc.code != "ConditionalCheckFailedException":
            raise
        existing = read_meta(client)
        done.append(f"meta item exists: {int(existing.partitions)} partitions")
    bucket = client.settings.bucket
    if bucket is not None:
        done.append(_create_bucket(client, bucket))
    return done


def _create_bucket(client: DynamoClient, bucket: str) -> str:
    region = client.settings.resolved_region()
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.s3_call("create_bucket", **kwargs)
    except AwsError as exc:
        if exc.code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            return f"S3 bucket {bucket} exists"
        raise
    return f"created S3 bucket {bucket}"


def read_meta(client: DynamoClient) -> MetaItem:
    """The meta item; StoreError naming ``ritornello store init`` if there is none."""
    try:
        raw = client.get(key_of(keys.META_PK, keys.META_SK))
    except AwsError as exc:
        if exc.code == "ResourceNotFoundException":
            raise StoreError(missing_table_message(client.table)) from None
        raise
    if raw is None:
        raise StoreError(missing_table_message(client.table))
    meta = MetaItem.load(raw)
    if int(meta.schema_version) != SCHEMA_VERSION:
        raise SchemaError(
            f"DynamoDB table {client.table} has schema version {int(meta.schema_version)}; "
            f"this code uses {SCHEMA_VERSION}"
        )
    return meta
