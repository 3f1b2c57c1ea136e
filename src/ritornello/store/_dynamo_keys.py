"""Keys of the DynamoDB single-table design (docs/dynamodb.md draws every item type).

Every item has a string partition key ``pk`` and sort key ``sk``. Names chosen by users
(services, object keys, state names, idempotency keys) may hold any unicode, NUL included:
composite parts are JSON-encoded (so ``None`` and ``""`` differ and no separator can be
forged), and a key longer than DynamoDB allows is replaced by its SHA-256 (the full value is
kept in an attribute of the item).
"""

from __future__ import annotations

import hashlib
import json
import zlib

#: DynamoDB limits: partition key 2048 bytes, sort key 1024 bytes. We stay below both.
_MAX_PK_BYTES = 2000
_MAX_SK_BYTES = 1000

INVOCATION_SK = "inv"
IDEMPOTENCY_SK = "idem"
META_PK = "meta"
META_SK = "meta"
LEASES_PK = "l"
MEMBERS_PK = "m"
DEPLOYMENTS_PK = "d"
SCHEDULES_PK = "sc"
LIMITS_PK = "lm"
SERVICE_SETTINGS_PK = "ss"  # an operator's overrides of a service's settings (sk: service)

#: Global secondary indexes (eventually consistent, admin listing and retention only).
SEQ_INDEX = "by_seq"  # seq_pk = "seq#<partition>", seq_sk = "<seq 20 digits>#<id>"
#: done_sk's ms: the expiry (expires_at); items written before retention went by expiry hold
#: their modified_at there, earlier than their expiry: list_expired filters on expires_at.
DONE_INDEX = "by_done"  # done_pk = "done#<partition>" (terminal only), done_sk = "<ms>#<id>"

#: Completion indexes may be negative (CANCEL is -1): shifted so they sort as text.
_INDEX_OFFSET = 10**10


def _bounded(prefix: str, text: str, limit: int) -> str:
    key = prefix + text
    if len(key.encode("utf-8", "surrogatepass")) <= limit:
        return key
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}sha256:{digest}"


def _parts(*parts: object) -> str:
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":"))


def invocation_pk(invocation_id: str) -> str:
    return _bounded("i#", invocation_id, _MAX_PK_BYTES)


def entry_sk(index: int) -> str:
    return f"e#{index + _INDEX_OFFSET:011d}"


def entry_index(sk: str) -> int:
    """The index an entry item's sort key names (a chunk's: its lowest)."""
    return int(sk[2:]) - _INDEX_OFFSET


def completion_sk(index: int) -> str:
    return f"c#{index + _INDEX_OFFSET:011d}"


def idempotency_pk(service: str, handler: str, key: str | None, idempotency_key: str) -> str:
    return _bounded("k#", _parts(service, handler, key, idempotency_key), _MAX_PK_BYTES)


def state_pk(service: str, key: str) -> str:
    return _bounded("s#", _parts(service, key), _MAX_PK_BYTES)


def state_sk(name: str) -> str:
    return _bounded("n#", name, _MAX_SK_BYTES)


def timer_pk(invocation_id: str, shards: int) -> str:
    """Timers are sharded by invocation id, not by partition: a timer is named by (invocation,
    kind, index) alone, so adding one must find it whatever partition it carried before."""
    return f"t#{zlib.crc32(invocation_id.encode('utf-8', 'surrogatepass')) % shards}"


def timer_shard(shard: int) -> str:
    return f"t#{shard}"


def timer_prefix(invocation_id: str) -> str:
    """Every timer of an invocation has a sort key starting with this."""
    return _bounded("", json.dumps(invocation_id, ensure_ascii=False), _MAX_SK_BYTES - 64) + "#"


def timer_sk(invocation_id: str, kind: str, index: int) -> str:
    return f"{timer_prefix(invocation_id)}{kind}#{index + _INDEX_OFFSET:011d}"


def active_pk(partition: int) -> str:
    return f"a#{partition}"


def active_sk(invocation_id: str) -> str:
    return _bounded("", invocation_id, _MAX_SK_BYTES)


def inbox_pk(partition: int) -> str:
    return f"x#{partition}"


def lease_sk(partition: int) -> str:
    return f"{partition:06d}"


def member_sk(node: str) -> str:
    return _bounded("", node, _MAX_SK_BYTES)


def deployment_sk(deployment_id: str) -> str:
    return _bounded("", deployment_id, _MAX_SK_BYTES)


def schedule_sk(schedule_id: str) -> str:
    return _bounded("", schedule_id, _MAX_SK_BYTES)


def limit_sk(name: str) -> str:
    return _bounded("", name, _MAX_SK_BYTES)


def permit_pk(limit: str) -> str:
    """One item collection per limit instance: its permit rows (no item shared by two)."""
    return _bounded("p#", limit, _MAX_PK_BYTES)


def permit_sk(invocation_id: str, index: int) -> str:
    return _bounded("", _parts(invocation_id, index), _MAX_SK_BYTES)


def permit_registry_pk(partition: int) -> str:
    """The limit instances of a partition that have (or had) permit rows."""
    return f"pl#{partition}"


def permit_registry_sk(limit: str) -> str:
    return _bounded("", limit, _MAX_SK_BYTES)


def is_permit_registry(pk: str) -> bool:
    return pk.startswith("pl#")


def seq_pk(partition: int) -> str:
    return f"seq#{partition}"


def seq_sk(seq: int, invocation_id: str) -> str:
    return _bounded("", f"{seq:020d}#{invocation_id}", _MAX_SK_BYTES)


def seq_after(seq: int) -> str:
    """Sorts after every ``seq_sk(seq, ...)`` and before every ``seq_sk(seq + 1, ...)``."""
    return f"{seq:020d}$"


def done_pk(partition: int) -> str:
    return f"done#{partition}"


def done_sk(expires_at: int, invocation_id: str) -> str:
    return _bounded("", f"{expires_at:020d}#{invocation_id}", _MAX_SK_BYTES)


def done_before(ms: int) -> str:
    """Sorts before every ``done_sk(ms, ...)`` and after every ``done_sk(ms - 1, ...)``."""
    return f"{ms:020d}"
