"""Where each backend keeps the operators' service settings (``ServiceSettingsRecord``): no
table of their own, so no schema change.

- SQLite: one row of the ``meta`` table per service, named ``service_settings/<service>``
  (service names hold no ``/``, and no other meta row starts so), value the record as JSON.
- DynamoDB: one item per service in the collection pk ``ss``, sk the service (bounded as
  every sort key is), read whole: services are few and their settings small.

Jobs are module-level functions: SQLite's writer process receives them by reference.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ritornello.store._dynamo_keys import SERVICE_SETTINGS_PK
from ritornello.store.records import ServiceSettingsRecord

META_PREFIX = "service_settings/"
#: Every meta name starting with ``META_PREFIX`` sorts in [prefix, prefix with '/' + 1).
_PUT = "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)"
_LIST = "SELECT value FROM meta WHERE name >= ? AND name < ? ORDER BY name"
DYNAMO_PK = SERVICE_SETTINGS_PK


def _encode(record: ServiceSettingsRecord) -> str:
    return json.dumps(
        {"service": record.service, "settings": record.settings, "updated_at": record.updated_at}
    )


def _decode(text: str) -> ServiceSettingsRecord:
    obj = json.loads(text)
    return ServiceSettingsRecord(obj["service"], obj["settings"], int(obj["updated_at"]))


def sqlite_put(cur: sqlite3.Cursor, record: ServiceSettingsRecord) -> None:
    """Writer job: insert or replace the service's row."""
    cur.execute(_PUT, (META_PREFIX + record.service, _encode(record)))


def sqlite_list(cur: sqlite3.Cursor, _: None) -> list[ServiceSettingsRecord]:
    """Reader job: every service's row, by service."""
    end = META_PREFIX[:-1] + chr(ord("/") + 1)
    return [_decode(value) for (value,) in cur.execute(_LIST, (META_PREFIX, end))]


def dynamo_item(record: ServiceSettingsRecord, sk: str) -> dict[str, Any]:
    """The raw item of ``record`` under sort key ``sk``."""
    return {
        "pk": {"S": DYNAMO_PK},
        "sk": {"S": sk},
        "service": {"S": record.service},
        "settings": {"S": record.settings},
        "updated_at": {"N": str(record.updated_at)},
    }


def dynamo_record(raw: dict[str, Any]) -> ServiceSettingsRecord:
    return ServiceSettingsRecord(
        raw["service"]["S"], raw["settings"]["S"], int(raw["updated_at"]["N"])
    )
