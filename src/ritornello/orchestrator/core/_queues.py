"""Object keys: one exclusive invocation at a time per (service, key), in arrival order.

A key's queue holds the ids of its unfinished exclusive invocations: the head holds the key
(running, suspended, backing-off or paused), the rest wait (pending). Shared handlers and
keyless invocations never queue. A queue exists only while it is not empty.

Two caches spare reads while this process alone can write the store (an exclusive store):
``prepared`` holds what a queued invocation's driver would load (its record and input, kept
by the ingress that created it), and ``states`` holds the state of idle keys (no queue) as
their last holder here left it. Neither holds anything the store does not: a prepared
invocation leaves with its place in the queue or when anything acts on it; a key's state
leaves when its queue is made again or when any unit writes the key's state.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable

from ritornello.store.records import InvocationRecord

from ._invocation import Invocation

#: How many idle object keys keep their state in memory, and the largest state (characters of
#: JSON text) kept: a cache of reads, not a copy of the store.
KEY_STATES_CACHED = 1024
KEY_STATE_MAX_CHARS = 16 * 1024

Key = tuple[str, str]


def exclusive_key(rec: InvocationRecord) -> Key | None:
    """The object key ``rec`` must hold to run, or None (keyless, or a shared handler)."""
    if rec.key is None or rec.handler_kind == "shared":
        return None
    return (rec.service, rec.key)


class KeyQueues:
    """The key queues of the partitions led here, with the two caches (see module doc)."""

    def __init__(self) -> None:
        self.queues: dict[Key, deque[str]] = {}
        self.prepared: dict[str, Invocation] = {}
        self.states: dict[Key, dict[str, str]] = {}

    def queue_for(self, key: Key) -> deque[str]:
        """The key's queue, made if it has none (its cached state goes: the new holder reads
        the state, or the ingress took the cached copy first)."""
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = deque()
            self.states.pop(key, None)
        return q

    def holder(self, key: Key) -> str | None:
        q = self.queues.get(key)
        return q[0] if q else None

    def contains(self, rec: InvocationRecord) -> bool:
        key = exclusive_key(rec)
        q = self.queues.get(key) if key is not None else None
        return q is not None and rec.id in q

    def enqueue(self, rec: InvocationRecord) -> None:
        """Append ``rec`` to its key's queue unless it is there already."""
        key = exclusive_key(rec)
        if key is not None:
            q = self.queue_for(key)
            if rec.id not in q:
                q.append(rec.id)

    def is_head(self, rec: InvocationRecord) -> bool:
        key = exclusive_key(rec)
        q = self.queues.get(key) if key is not None else None
        return q is not None and len(q) > 0 and q[0] == rec.id

    def remove(self, rec: InvocationRecord) -> tuple[bool, str | None]:
        """Take ``rec`` out of its key's queue: (whether it held the key, the new head)."""
        self.prepared.pop(rec.id, None)
        key = exclusive_key(rec)
        q = self.queues.get(key) if key is not None else None
        if key is None or q is None:
            return False, None
        held = bool(q) and q[0] == rec.id
        with contextlib.suppress(ValueError):
            q.remove(rec.id)
        if not q:
            del self.queues[key]
            return held, None
        return held, q[0] if held else None

    def keep_state(self, key: Key, state: dict[str, str]) -> None:
        """Keep an idle key's state for its next holder (bounded; the oldest goes first)."""
        if sum(len(v) for v in state.values()) > KEY_STATE_MAX_CHARS:
            return
        if len(self.states) >= KEY_STATES_CACHED:
            del self.states[next(iter(self.states))]
        self.states[key] = dict(state)

    def forget_states(self, keys: list[Key]) -> None:
        for key in keys:
            self.states.pop(key, None)

    def drop(self, partition: int, key_partition: Callable[[str, str], int]) -> None:
        """Forget the queues, prepared invocations and key states of ``partition``
        (``key_partition(service, key)`` places a key)."""
        for key in [k for k in self.queues if key_partition(*k) == partition]:
            del self.queues[key]
        for key in [k for k in self.states if key_partition(*k) == partition]:
            del self.states[key]
        for inv_id in [i for i, inv in self.prepared.items() if inv.rec.partition == partition]:
            del self.prepared[inv_id]
