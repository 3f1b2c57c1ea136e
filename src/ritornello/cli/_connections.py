"""Bounds on the connections each of the orchestrator's ports holds (``_listen`` applies them).

A connection is **waiting** while none of its requests is in the app: from its accept, or from
the end of its previous answer, to the last byte of its next request. Only a waiting connection
has a deadline, and only a waiting one is ever closed by these bounds:

* no byte of a request ``idle_timeout_s`` after its accept or its previous answer (a silent
  connection, an idle kept-alive one): closed;
* its request's head incomplete ``header_timeout_s`` after the head's first byte (a slowloris,
  one header byte every few seconds): closed;
* the body incomplete ``body_timeout_s`` after the head (a slow body): closed.

Once a request is complete the app has it, with no deadline from here (a call waits for its
invocation as long as the app lets it), until its answer has been handed to the transport.

At ``max_connections`` on a port, a new connection closes the connection that has been waiting
longest, or, when none is waiting (each has a request in the app), is closed itself. A client
that sends its request as soon as it connects stops waiting within a round trip, so however many
connections a flood opens that send nothing, or send slowly, ``/health`` and calls keep being
answered; what the flood holds is closed by its deadline, or to make room, whichever is first.

Timeline of one kept-alive connection (idle 5 s, head 10 s, body 30 s)::

    t=0     accepted                  waiting, deadline 5      (idle)
    t=1     first byte of a request   waiting, deadline 11     (head)
    t=1.01  head complete             waiting, deadline 31.01  (body)
    t=1.02  body complete             in the app: no deadline, never closed to make room
    t=3     answer sent               waiting, deadline 8      (idle)
    t=8     nothing since             closed

Costs: one timer per port (``sweep``, every ``tick_s`` while anything is waiting), none per
connection or request; per request, three reads of the loop's clock, a few attribute writes and
two ``OrderedDict`` operations. uvicorn's own keep-alive timer (a ``call_later`` per answer,
cancelled by the next request) is not used: the idle deadline replaces it.

Connections use file descriptors: ``raise_open_file_limit`` lifts the process's soft limit to
its hard one at start, and ``per_port`` lowers ``max_connections`` so that both ports together
stay below what the process may open (``RESERVED_FDS`` kept for the store, the invokers'
connections to endpoints, logs and the loop). Past the limit, ``accept`` fails and the event
loop closes what it accepts: every request on both ports is reset, ``/health`` included.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("ritornello.serve")

#: File descriptors kept for everything but client connections (store, invokers, logs, loop).
RESERVED_FDS = 256
#: The fewest connections a port is lowered to, however low the open-file limit.
MIN_PER_PORT = 16
#: Seconds between two warnings that a port is at its limit.
WARN_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class Limits:
    """One port's bounds (``Settings`` carries them: docs/orchestrator.md, "Connections")."""

    max_connections: int = 4096
    idle_timeout_s: float = 5.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0

    @property
    def tick_s(self) -> float:
        """How often deadlines are checked: a quarter of the shortest, within 0.05 s to 1 s. A
        connection is closed at most this long after its deadline, never before it."""
        shortest = min(self.idle_timeout_s, self.header_timeout_s, self.body_timeout_s)
        return min(1.0, max(0.05, shortest / 4))


class Connection(Protocol):
    """What the bounds need of a connection (``_listen.HttpToolsProtocol``)."""

    loop: asyncio.AbstractEventLoop
    #: When it is closed if still waiting (the loop's clock); read only while it is waiting.
    deadline: float

    def drop(self) -> None:
        """Close it at once (abort: nothing more is sent) and stop counting it."""


class Connections:
    """One port's waiting connections, the longest waiting first, and the sweep that closes
    those past their deadline. Invariant: ``waiting`` holds exactly the open connections with
    no request in the app (``_listen`` calls ``wait`` and ``leave`` as that changes)."""

    def __init__(self, limits: Limits, where: str = "") -> None:
        self.limits = limits
        self.where = where
        self.waiting: OrderedDict[Connection, None] = OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._warned_at = float("-inf")

    def admit(self, conn: Connection, count: int) -> None:
        """A new connection, ``count`` open on this port with it: it waits; past the limit the
        longest-waiting connection is dropped (the new one if it is the only one waiting)."""
        self.wait(conn)
        if count <= self.limits.max_connections:
            return
        victim, _ = self.waiting.popitem(last=False)
        victim.drop()
        now = conn.loop.time()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning(
                "%s: %d connections, the limit (max_connections): closing the ones waiting "
                "longest for a request to make room (logged at most once a minute)",
                self.where or "a port",
                self.limits.max_connections,
            )

    def wait(self, conn: Connection) -> None:
        """``conn`` has no request in the app now (its deadline is set): it waits, last."""
        self.waiting[conn] = None
        if self._sweep is None or conn.loop is not self._loop:  # (a new loop: tests, bare use)
            self._loop = conn.loop
            self._sweep = conn.loop.call_later(self.limits.tick_s, self.sweep)

    def leave(self, conn: Connection) -> None:
        """``conn`` waits no more: a request of it is in the app (no deadline, never dropped to
        make room), or it is gone."""
        self.waiting.pop(conn, None)

    def sweep(self) -> None:
        """Drop the waiting connections past their deadline; again in ``tick_s`` while any
        connection waits."""
        self._sweep = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        waiting = self.waiting
        for conn in [c for c in waiting if c.deadline <= now]:
            del waiting[conn]
            conn.drop()
        if waiting:
            self._sweep = loop.call_later(self.limits.tick_s, self.sweep)


def raise_open_file_limit() -> int:
    """Raise this process's soft open-file limit (RLIMIT_NOFILE) to its hard one where the
    system allows; the soft limit then in force (0: no such limit here)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Unix
        return 0
    infinite = resource.RLIM_INFINITY
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # an infinite hard limit (macOS) has a system-wide ceiling below it: try a large value, then
    # the usual ceiling
    for target in (hard,) if hard != infinite else (1 << 16, 10240):
        if soft == infinite or soft >= target:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            break
        except (ValueError, OSError) as exc:
            log.debug("open-file limit not raised to %d: %s", target, exc)
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 0 if soft == infinite else soft


def per_port(max_connections: int, open_files: int) -> int:
    """``max_connections``, lowered so that two ports' connections and ``RESERVED_FDS`` fit in
    ``open_files`` (0: no limit), to ``MIN_PER_PORT`` at the least."""
    if open_files <= 0:
        return max_connections
    return min(max_connections, max(MIN_PER_PORT, (open_files - RESERVED_FDS) // 2))
