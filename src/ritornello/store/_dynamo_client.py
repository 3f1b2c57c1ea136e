"""Settings of a DynamoDB store and its blocking I/O: one pynamodb ``Connection`` (one
thread-safe botocore client) for DynamoDB, one boto3 client for S3, botocore's *standard*
retry mode (a few quick retries, nothing more), and the mapping of AWS errors onto the store's
error tree. Every method here blocks: the store runs them on its own threads.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import botocore.exceptions  # type: ignore[import-untyped]
import botocore.session  # type: ignore[import-untyped]
from botocore import xform_name
from pynamodb.connection import Connection

from ritornello.store._dynamo_models import RawItem
from ritornello.store._dynamo_stats import DynamoStats
from ritornello.store.errors import StoreError, UnavailableError

DEFAULT_PARTITIONS = 16
_OPTIONS = ("region", "endpoint_url", "s3_endpoint_url", "bucket", "partitions")

#: Error codes that mean "not now": the request may be retried later.
UNAVAILABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
        "TransactionInProgressException",
        "SlowDown",
        "RequestTimeout",
    }
)
_CONTROL_OPS = frozenset({"DescribeTimeToLive"})
_MULTI_TABLE_OPS = frozenset({"BatchGetItem", "BatchWriteItem", "TransactWriteItems"})
_CONNECTION_ERRORS = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
)


@dataclass(frozen=True)
class DynamoSettings:
    """What a ``dynamodb://TABLE?...`` URL says. ``None`` falls back to the standard AWS
    settings (AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_S3, ...)."""

    table: str
    region: str | None = None
    endpoint_url: str | None = None
    s3_endpoint_url: str | None = None
    bucket: str | None = None
    partitions: int = DEFAULT_PARTITIONS

    @classmethod
    def from_url(cls, url: str) -> DynamoSettings:
        parts = urlsplit(url)
        if parts.scheme != "dynamodb" or not parts.netloc or parts.path not in ("", "/"):
            raise ValueError(f"bad store URL {url!r} (expected dynamodb://TABLE?options)")
        options = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ValueError(f"bad store URL {url!r}: unknown option(s) {', '.join(unknown)}")
        try:
            partitions = int(options.get("partitions", DEFAULT_PARTITIONS))
        except ValueError:
            raise ValueError(f"bad store URL {url!r}: partitions must be an integer") from None
        if not 1 <= partitions <= 10_000:
            raise ValueError(f"bad store URL {url!r}: partitions must be in 1..10000")
        return cls(
            table=parts.netloc,
            region=options.get("region"),
            endpoint_url=options.get("endpoint_url"),
            s3_endpoint_url=options.get("s3_endpoint_url"),
            bucket=options.get("bucket"),
            partitions=partitions,
        )

    def resolved_region(self) -> str:
        return (
            self.region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1"
        )


class Unavailable(UnavailableError):
    """An UnavailableError carrying the AWS error code (if any)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class AwsError(StoreError):
    """A request failed with an AWS error code the caller may want to look at."""

    def __init__(self, message: str, code: str, reasons: Sequence[str | None] = ()) -> None:
        super().__init__(message)
        self.code = code
        #: TransactionCanceledException: one code (or None) per transaction item, in order.
        self.reasons = list(reasons)


def versioned_put(item: RawItem, expect_version: int | None) -> dict[str, Any]:
    """PutItem arguments for a compare-and-set of a record with a ``version`` attribute:
    an insert when ``expect_version`` is None, else only over that version."""
    kwargs: dict[str, Any] = {"Item": item}
    if expect_version is None:
        kwargs["ConditionExpression"] = "attribute_not_exists(pk)"
    else:
        kwargs["ConditionExpression"] = "version = :v"
        kwargs["ExpressionAttributeValues"] = {":v": {"N": str(expect_version)}}
    return kwargs


def error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


_session_lock = threading.RLock()
_sessions: list[Any] = []


class _Connection(Connection):
    """pynamodb's Connection on one botocore session per process: a session caches the
    service models it loaded, so a second store's client costs milliseconds, not 100 ms."""

    @property
    def session(self) -> Any:
        return _shared_session()


def _shared_session() -> Any:
    with _session_lock:
        if not _sessions:
            _sessions.append(botocore.session.get_session())
        return _sessions[0]


class DynamoClient:
    """The store's clients. ``call`` returns the parsed response or raises a store error:
    ``Unavailable`` for throttling and connection trouble, ``AwsError`` for the rest."""

    def __init__(self, settings: DynamoSettings, stats: DynamoStats, pool: int) -> None:
        self.settings = settings
        self.table = settings.table
        self.stats = stats
        region = settings.resolved_region()
        retries = {"mode": "standard", "total_max_attempts": 4}
        self._conn = _Connection(
            region=region,
            host=settings.endpoint_url,
            connect_timeout_seconds=5,
            read_timeout_seconds=20,
            retry_configuration=retries,
            max_pool_connections=pool,
        )
        with _session_lock:  # botocore sessions are not thread-safe while creating clients
            events = self._conn.client.meta.events
            events.register("before-parameter-build.dynamodb", stats.before_dynamodb)
            events.register("after-call.dynamodb", stats.after_dynamodb)
        self._s3: Any = None
        self._region = region
        self._pool = pool

    # --- DynamoDB -------------------------------------------------------------------------

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        if operation not in _MULTI_TABLE_OPS:
            kwargs.setdefault("TableName", self.table)
        try:
            if operation in _CONTROL_OPS:  # pynamodb's dispatch would add a parameter
                result: dict[str, Any] = getattr(self._conn.client, xform_name(operation))(**kwargs)
                return result
            return self._conn.dispatch(operation, kwargs)
        except botocore.exceptions.ClientError as exc:
            code = error_code(exc)
            message = f"DynamoDB {operation} on {self.table}: {code}: {exc}"
            if code in UNAVAILABLE_CODES:
                raise Unavailable(message, code) from exc
            reasons = [
                r.code if r is not None else None
                for r in getattr(exc, "cancellation_reasons", None) or ()
            ]
            raise AwsError(message, code, reasons) from exc
        except _CONNECTION_ERRORS as exc:
            raise Unavailable(f"DynamoDB {operation}: {exc}") from exc

    def get(self, key: RawItem) -> RawItem | None:
        found: RawItem | None = self.call("GetItem", Key=key, ConsistentRead=True).get("Item")
        return found

    def query(self, consistent: bool = True, **kwargs: Any) -> Iterator[RawItem]:
        """Every item of a Query, page after page."""
        kwargs.setdefault("ConsistentRead", consistent)
        while True:
            page = self.call("Query", **kwargs)
            yield from page.get("Items", [])
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def query_pk(self, pk: str, prefix: str | None = None, **kwargs: Any) -> Iterator[RawItem]:
        """Strongly consistent Query of one item collection (sort keys starting with prefix)."""
        values: dict[str, Any] = {":pk": {"S": pk}}
        condition = "pk = :pk"
        if prefix is not None:
            condition += " AND begins_with(sk, :prefix)"
            values[":prefix"] = {"S": prefix}
        return self.query(
            KeyConditionExpression=condition, ExpressionAttributeValues=values, **kwargs
        )

    def batch_get(self, keys: Sequence[RawItem], consistent: bool = True) -> list[RawItem]:
        """The items that exist among ``keys`` (any order), 100 keys per request."""
        found: list[RawItem] = []
        unique = list({(k["pk"]["S"], k["sk"]["S"]): k for k in keys}.values())
        for start in range(0, len(unique), 100):
            request: dict[str, Any] = {
                self.table: {"Keys": unique[start : start + 100], "ConsistentRead": consistent}
            }
            for attempt in range(8):
                response = self.call("BatchGetItem", RequestItems=request)
                found.extend(response.get("Responses", {}).get(self.table, []))
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            if request:
                raise Unavailable(f"DynamoDB BatchGetItem on {self.table}: keys left unprocessed")
        return found

    def batch_write(self, requests: Sequence[dict[str, Any]]) -> None:
        """BatchWriteItem (``{"PutRequest": ...}`` / ``{"DeleteRequest": ...}``), 25 a request.
        Not atomic; every request here is idempotent."""
        for start in range(0, len(requests), 25):
            pending: dict[str, Any] = {self.table: list(requests[start : start + 25])}
            for attempt in range(8):
                response = self.call("BatchWriteItem", RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            if pending:
                raise Unavailable(f"DynamoDB BatchWriteItem on {self.table}: items unprocessed")

    # --- S3 -------------------------------------------------------------------------------

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            import boto3  # type: ignore[import-untyped]
            from botocore.config import Config  # type: ignore[import-untyped]

            endpoint = self.settings.s3_endpoint_url or self.settings.endpoint_url
            config = Config(
                retries={"mode": "standard", "total_max_attempts": 4},
                max_pool_connections=self._pool,
                s3={"addressing_style": "path"} if endpoint else {},
            )
            with _session_lock:
                if len(_sessions) < 2:  # boto3 customizes its botocore session once
                    _sessions.append(boto3.session.Session(botocore_session=_shared_session()))
                client = _sessions[1].client(
                    "s3", region_name=self._region, endpoint_url=endpoint, config=config
                )
            client.meta.events.register("before-parameter-build.s3", self.stats.before_s3)
            self._s3 = client
        return self._s3

    def s3_call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = getattr(self.s3, operation)(**kwargs)
            return result
        except botocore.exceptions.ClientError as exc:
            code = error_code(exc)
            message = f"S3 {operation} on {kwargs.get('Bucket')}: {code}: {exc}"
            if code in UNAVAILABLE_CODES or code.startswith("5"):
                raise Unavailable(message, code) from exc
            raise AwsError(message, code) from exc
        except _CONNECTION_ERRORS as exc:
            raise Unavailable(f"S3 {operation}: {exc}") from exc

    def close(self) -> None:
        if self._s3 is not None:
            self._s3.close()
        client = self._conn.client
        client.close()
