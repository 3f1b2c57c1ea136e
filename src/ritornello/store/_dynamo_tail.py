"""The journal tail: a running invocation's latest entries inline in its own item
(docs/dynamodb.md, "The journal tail").

Layout (no schema change: items written before have no tail and no chunks and read as before):

- the invocation item (sk ``inv``) may hold ``tl``: a map from entry index (decimal text) to
  the entry (``{"v": <JSON text>, "fp": <partition>, "ep": <epoch>}``, the stamps of the unit
  that wrote it, as an entry item holds them);
- a *chunk* item (sk ``e#<its lowest index>``) holds ``es``, a map of the same shape: a tail
  moved out of the invocation item in one write;
- an entry item (sk ``e#<index>``, ``v`` or ``ref``) holds one entry, as before.

Invariants: an index is held by exactly one of these places (a tail entry is only ever added
at an index the record's journal did not reach, and a transaction that moves the tail out
writes the chunk and the invocation item without it together); the journal is the union,
ordered by index. Inline values are small (``ENTRY_LIMIT``): a value bound for S3 is never in a
tail or a chunk. Every write of the invocation item carries the tail it read or remembered,
conditioned on the version and ``seq`` it replaces, so no write drops or repeats an entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ritornello.store import _dynamo_keys as keys
from ritornello.store._dynamo_models import RawItem

TAIL = "tl"
CHUNK = "es"
#: The largest invocation item (bytes, as DynamoDB sizes it) that keeps its tail: within one
#: write unit, so a step's write costs 1 WCU. Past it the tail moves out into a chunk.
ITEM_LIMIT = 1024
#: The largest entry that may go inline in a tail (an entry past it is an item of its own).
ENTRY_LIMIT = 512
#: The most bytes of new entries one unit moves into a chunk (a chunk stays far below
#: DynamoDB's 400 KB item limit).
CHUNK_LIMIT = 64_000

#: index -> the entry's raw map value (``{"M": {"v": ..., "fp": ..., "ep": ...}}``)
Tail = dict[int, dict[str, Any]]


def tail_of(raw: RawItem | None) -> Tail:
    """The tail an invocation item holds (empty: none)."""
    value = None if raw is None else raw.get(TAIL)
    return _entries(value)


def _entries(value: dict[str, Any] | None) -> Tail:
    if not value:
        return {}
    return {int(index): entry for index, entry in value["M"].items()}


def as_attribute(tail: Mapping[int, dict[str, Any]]) -> dict[str, Any]:
    """The ``tl`` (or ``es``) attribute value of ``tail``."""
    return {"M": {str(index): tail[index] for index in sorted(tail)}}


def entry_value(text: str, stamp: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """One inline entry, with its writer's stamps (``fp``, ``ep``)."""
    return {"M": {"v": {"S": text}, **stamp}}


def chunk_item(invocation_id: str, tail: Mapping[int, dict[str, Any]]) -> RawItem:
    """The item a tail moves out into: sk ``e#<lowest index>``, the entries in ``es``."""
    return {
        "pk": {"S": keys.invocation_pk(invocation_id)},
        "sk": {"S": keys.entry_sk(min(tail))},
        CHUNK: as_attribute(tail),
    }


def without_tail(raw: RawItem) -> RawItem:
    """``raw`` without its tail (for the record's model, which does not know it)."""
    if TAIL not in raw:
        return raw
    return {name: value for name, value in raw.items() if name != TAIL}


def journal_items(raws: Iterable[RawItem]) -> Iterator[tuple[int, RawItem]]:
    """(index, entry) of every entry the items of one invocation collection hold: entry
    items, chunks and the invocation item's tail, in no particular order. An entry is a raw
    item-like map holding ``v`` or ``ref`` and, when its writer was fenced, ``fp``/``ep``."""
    for raw in raws:
        sk = raw["sk"]["S"]
        if sk == keys.INVOCATION_SK:
            for index, entry in tail_of(raw).items():
                yield index, entry["M"]
        elif sk.startswith("e#"):
            if CHUNK in raw:
                for index, entry in _entries(raw[CHUNK]).items():
                    yield index, entry["M"]
            else:
                yield keys.entry_index(sk), raw
