"""Client-side accounting of DynamoDB (and S3) requests, for cost reports.

Counted from botocore events on the store's own clients, once per API call (botocore's own
retries of a throttled call are not billed and not counted). Capacity units follow the AWS
pricing rules:

- standard writes (PutItem, DeleteItem, UpdateItem, BatchWriteItem): 1 WCU per KB per item;
- transactional writes (TransactWriteItems): 2 WCU per KB per item; a ConditionCheck counts
  as a write;
- strongly consistent reads: 1 RCU per 4 KB (GetItem and BatchGetItem per item, Query over
  the sum of the items returned); eventually consistent reads half that.

A Delete, Update or ConditionCheck is billed by the size of the stored item, which the client
does not know: it is counted as 1 KB. Item sizes are computed the way DynamoDB does
(attribute names + values).
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from typing import Any

_WRITE_OPS = {"PutItem", "DeleteItem", "UpdateItem"}


def item_size(item: dict[str, Any]) -> int:
    """Bytes DynamoDB bills for an item in wire format."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    kind, v = next(iter(value.items()))
    if kind == "S":
        return len(str(v).encode("utf-8", "surrogatepass"))
    if kind == "N":
        return len(str(v).lstrip("-").replace(".", "")) // 2 + 1
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + _value_size(x) for x in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(x) for k, x in v.items())
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: x}) for x in v)
    return 0


def _kb(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def _rcu(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / 4096))
    return float(units) if consistent else units / 2


class DynamoStats:
    """Counters of one store. ``requests`` per operation name; thread-safe and cheap."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.items_written = 0
        self.write_units = 0.0
        self.read_units = 0.0
        self.s3_requests: Counter[str] = Counter()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.items_written = 0
            self.write_units = 0.0
            self.read_units = 0.0
            self.s3_requests.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "items_written": self.items_written,
                "write_units": self.write_units,
                "read_units": self.read_units,
                "s3_requests": dict(self.s3_requests),
            }

    # --- botocore event handlers ----------------------------------------------------------

    def before_dynamodb(
        self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        op: str = model.name
        context["ritornello_consistent"] = _consistent(op, params)
        items, units = _write_cost(op, params)
        with self._lock:
            self.requests[op] += 1
            self.items_written += items
            self.write_units += units

    def after_dynamodb(
        self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        op: str = model.name
        if op not in ("GetItem", "Query", "Scan", "BatchGetItem"):
            return
        consistent = bool(context.get("ritornello_consistent"))
        units = 0.0
        if op == "GetItem" and "Item" in parsed:
            units = _rcu(item_size(parsed["Item"]), consistent)
        elif op in ("Query", "Scan"):
            units = _rcu(sum(item_size(i) for i in parsed.get("Items", [])), consistent)
        elif op == "BatchGetItem":
            for found in parsed.get("Responses", {}).values():
                units += sum(_rcu(item_size(i), consistent) for i in found)
        with self._lock:
            self.read_units += units

    def before_s3(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.s3_requests[model.name] += 1


def _consistent(op: str, params: dict[str, Any]) -> bool:
    if op == "BatchGetItem":
        return all(t.get("ConsistentRead", False) for t in params.get("RequestItems", {}).values())
    return bool(params.get("ConsistentRead", False))


def _write_cost(op: str, params: dict[str, Any]) -> tuple[int, float]:
    if op == "TransactWriteItems":
        units = 0
        for entry in params.get("TransactItems", []):
            part = next(iter(entry.values()))
            units += 2 * _kb(item_size(part["Item"])) if "Item" in part else 2
        return len(params.get("TransactItems", [])), float(units)
    if op == "BatchWriteItem":
        count, units = 0, 0
        for requests in params.get("RequestItems", {}).values():
            for request in requests:
                count += 1
                put = request.get("PutRequest")
                units += _kb(item_size(put["Item"])) if put else 1
        return count, float(units)
    if op in _WRITE_OPS:
        return 1, float(_kb(item_size(params["Item"])) if "Item" in params else 1)
    return 0, 0.0
