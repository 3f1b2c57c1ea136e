"""Operator actions (admin API): kill, cancel, pause, resume, purge, and reading and writing an
object's state.

An action on an invocation halts its driver first (``Stopping``; nothing starts it meanwhile),
reads the record, has the core build the unit (conditioned on the version read), and commits;
a conflict means the record moved (a commit of the halted attempt landed meanwhile): read
again, at most ``ROUNDS`` times.

State writes: an object's user state can be replaced from outside only while no exclusive
invocation holds the key — the key's queue is held by the write meanwhile, so no invocation
starts on it either. 409 while the key is held; 503 when another orchestrator leads the key's
partition. The state version is a digest of the user state rows (name and stored JSON text), so
it changes exactly when the state does, whoever wrote it; the engine's own rows of a workflow
(promises, waiters: names starting with NUL) are neither shown, versioned, nor written.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ritornello.protocol import parse_awakeable_id
from ritornello.store import (
    FINAL_STATUSES,
    LIVE_STATUSES,
    ConflictError,
    FencedError,
    InvocationRecord,
    Store,
)

from .._json import JsonInputError, json_input_of, loads
from .._keys import is_utf8, key_problem
from ..core import (
    CancelSignal,
    CompleteAwakeable,
    Core,
    Decision,
    Effect,
    Event,
    HoldKey,
    Operate,
    Purge,
    Released,
    ReleaseKey,
    Stopping,
    WriteState,
    cancels_at_once,
)
from ..errors import (
    InvalidRequestError,
    NotFoundError,
    NotLeaderError,
    OrchestratorError,
    StateConflictError,
)
from ._committer import Committer
from ._driver import Drivers
from ._leadership import Leadership

log = logging.getLogger("ritornello.engine")

#: How many times an action reads the record again after a conflict.
ROUNDS = 5


def state_version(rows: dict[str, str]) -> str:
    """The version of an object's user state: a digest of its rows (names and JSON texts)."""
    digest = hashlib.sha256()
    for name in sorted(rows):
        if name.startswith("\x00"):
            continue
        digest.update(name.encode("utf-8", "surrogatepass") + b"\x00")
        digest.update(rows[name].encode("utf-8", "surrogatepass") + b"\x00")
    return digest.hexdigest()[:32]


class Operations:
    """What an operator can do to invocations and object state."""

    def __init__(
        self,
        core: Core,
        store: Store,
        committer: Committer,
        leadership: Leadership,
        drivers: Drivers,
        *,
        apply: Callable[[Event], Decision],
        perform: Callable[[Sequence[Effect]], None],
    ) -> None:
        self.core = core
        self.store = store
        self.committer = committer
        self.leadership = leadership
        self.drivers = drivers
        self._apply = apply
        self._perform = perform

    async def act(
        self,
        action: str,
        invocation_id: str,
        deployment: str | None = None,
        result: str | None = None,
    ) -> InvocationRecord:
        """``kill``, ``pause``, ``resume``, or ``cancel`` (an invocation that never started).
        ``deployment`` (resume): ``latest``, ``keep`` or an id, the code it goes on with;
        ``result`` (kill): the failure text it ends with (None: ``KILLED_RESULT``)."""
        self._perform(self._apply(Stopping(invocation_id)).effects)
        try:
            await self.drivers.halted(invocation_id)
            for _ in range(ROUNDS):
                rec = await self.store.get_invocation(invocation_id)
                entries: list[str] = []
                completions: list[str] = []
                if rec is not None and action != "resume":
                    entries, completions = await self.store.get_journal(invocation_id)
                here = rec is not None and self.leadership.leads(rec.partition)
                event = Operate(
                    action, invocation_id, rec, entries, completions, here, deployment, result
                )
                decision = self._apply(event)
                try:
                    decision = await self.committer.commit_decision(decision)
                except ConflictError:
                    continue  # a commit of the halted attempt landed meanwhile: read again
                assert decision.record is not None
                log.info("%s %s (was %s)", action, invocation_id, rec.status if rec else None)
                return decision.record
            raise StateConflictError(f"invocation {invocation_id} keeps changing; try again")
        finally:
            self._perform(self._apply(Released(invocation_id)).effects)

    async def cancel(self, invocation_id: str) -> InvocationRecord:
        """Cancel gracefully: the handler's next await raises a terminal "cancelled" error
        (409), so its compensations run; pending callees are cancelled too, down the call
        tree. An invocation that never started ends at once with that failure."""
        rec = await self.store.get_invocation(invocation_id)
        if rec is None:
            raise NotFoundError(f"invocation {invocation_id} not found")
        if rec.status in FINAL_STATUSES:
            raise StateConflictError(f"invocation {invocation_id} is already {rec.status}")
        if cancels_at_once(rec):
            return await self.act("cancel", invocation_id)
        await self.committer.commit_decision(self._apply(CancelSignal(rec)))
        entries, completions = await self.store.get_journal(rec.id)
        done = {loads(c)["index"] for c in completions}
        for i, text in enumerate(entries):
            entry = loads(text)
            if entry["kind"] == "call" and i not in done:
                with contextlib.suppress(OrchestratorError):
                    await self.cancel(entry["id"])
        log.info("cancel %s (was %s)", invocation_id, rec.status)
        return rec

    async def complete_awakeable(self, awakeable_id: str, result_text: str) -> None:
        """Resolve or reject an awakeable from outside (``result_text`` is ``{"value": ...}``
        or ``{"failure": ...}``). Unknown or forged ids: NotFoundError; already completed:
        StateConflictError."""
        target = parse_awakeable_id(awakeable_id)
        if target is None:
            raise NotFoundError(f"awakeable {awakeable_id!r} not found")
        rec = await self.store.get_invocation(target[0])
        entries, completions = await self.store.get_journal(target[0])
        event = CompleteAwakeable(awakeable_id, rec, entries, completions, result_text)
        try:
            await self.committer.commit_decision(self._apply(event))
        except FencedError:
            raise
        except ConflictError:  # the unit's one condition: its completion must be new
            raise StateConflictError(f"awakeable {awakeable_id!r} is already completed") from None

    async def purge(self, invocation_id: str) -> InvocationRecord:
        """Delete a finished invocation with its journal, completions and timers, freeing its
        idempotency key (and, for a workflow's run, the workflow id with its state and
        promises, as retention does)."""
        rec = await self.store.get_invocation(invocation_id)
        if rec is None:
            raise NotFoundError(f"invocation {invocation_id} not found")
        here = self.leadership.leads(rec.partition)
        await self.committer.commit_decision(self._apply(Purge([rec], here)))
        return rec

    async def read_state(self, service: str, key: str) -> tuple[str, dict[str, Any]]:
        """(version, user state name -> JSON value) of one object or workflow key."""
        rows = await self.store.get_state(service, key)
        state = {n: loads(v) for n, v in sorted(rows.items()) if not n.startswith("\x00")}
        return state_version(rows), state

    async def write_state(
        self,
        service: str,
        key: str,
        new_state: dict[str, Any],
        expect_version: str | None,
    ) -> str:
        """Replace the user state of ``(service, key)`` with ``new_state``; the new version.
        ``expect_version`` (from ``read_state``) makes it conditional (see module doc). The
        key passes the ingress's rule for keys, each value its checks of a body
        (``_json.json_input_of``): NaN, infinities, integers past 64 bits, nesting past
        ``MAX_JSON_DEPTH`` and text that is not UTF-8 are refused, never stored."""
        if (problem := key_problem(key, "object_key")) is not None:
            raise InvalidRequestError(problem)
        texts: dict[str, str] = {}
        for name, value in new_state.items():
            if name.startswith("\x00"):
                raise InvalidRequestError("state names starting with NUL are reserved")
            if not is_utf8(name):
                raise InvalidRequestError(f"state name {name!r} is not valid UTF-8")
            try:
                texts[name] = json_input_of(value, f"state value {name!r}")
            except JsonInputError as exc:
                raise InvalidRequestError(str(exc)) from None
        partition = self.core.key_partition(service, key)
        if not self.leadership.leads(partition):
            leases = {lease.partition: lease.owner for lease in await self.store.list_leases()}
            raise NotLeaderError(
                f"partition {partition} of {service}/{key} is led by "
                f"{leases.get(partition) or 'no orchestrator right now'}, not "
                f"{self.leadership.node}: send the state write to its admin API"
            )
        self._apply(HoldKey(service, key))
        try:
            rows = await self.store.get_state(service, key)
            current = state_version(rows)
            if expect_version is not None and expect_version != current:
                raise StateConflictError(
                    f"state of {service}/{key} is at version {current}, not {expect_version}"
                )
            decision = self._apply(WriteState(service, key, rows, texts))
            if decision.unit is not None:
                await self.committer.commit_decision(decision)
            after = {n: v for n, v in rows.items() if n.startswith("\x00")} | texts
            return state_version(after)
        finally:
            self._perform(self._apply(ReleaseKey(service, key)).effects)

    async def pinned(self, deployment_id: str, limit: int = 10) -> list[InvocationRecord]:
        """Up to ``limit`` unfinished invocations pinned to ``deployment_id`` (they would fail
        their attempts if it went away)."""
        found: list[InvocationRecord] = []
        async for rec in self.store.scan_invocations(sorted(LIVE_STATUSES)):
            if rec.deployment_id == deployment_id:
                found.append(rec)
                if len(found) >= limit:
                    break
        return found
