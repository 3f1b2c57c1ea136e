"""Performs what the core asks of a limit's owner, and keeps the definitions current.

* Grant turns (``LimitTurn``): ``LimitsDue`` is applied after the delay; a unit it decides is
  committed like any other (a few at a time: the core holds further turns until a report).
* Reads: a limit's rows again (``ReadPermits``), one row named by an inbox message
  (``changed``), the definitions (``ReadLimits``, and every ``refresh``). A partition's rows
  are read by its recovery (``_recovery``), with its invocations.
* Definitions, lowest precedence first: the code's (a deployment's services declare them),
  ``ritornello.toml``'s ``[limits.NAME]`` tables, the admin API's (stored). The merged set goes
  to the core whenever it changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from ritornello.protocol import DiscoveryResponse
from ritornello.protocol._entries import INVOCATION_PERMIT
from ritornello.store import (
    ConflictError,
    InvocationRecord,
    LimitRecord,
    Status,
    Store,
    StoreError,
)

from .._limit_spec import (
    KEY_SEPARATOR,
    LimitError,
    LimitSpec,
    check_name,
    parse_limit,
    spec_of,
)
from ..core import (
    READ_MAX_MS,
    Core,
    Decision,
    Effect,
    Event,
    LimitsDefined,
    LimitsDue,
    PermitChanged,
    PermitNoticed,
    PermitsRead,
    instance_of,
    limit_figures,
    limit_partition,
)
from ..errors import InvalidRequestError, NotFoundError, StateConflictError, TryAgainError
from ._committer import Committer

log = logging.getLogger("ritornello.engine")


class Limits:
    """The runtime side of named limits for one orchestrator process."""

    def __init__(
        self,
        core: Core,
        store: Store,
        committer: Committer,
        *,
        apply: Callable[[Event], Decision],
        perform: Callable[[Sequence[Effect]], None],
        configured: Mapping[str, LimitSpec] | None = None,
        declared: Callable[[], Mapping[str, dict[str, Any]]] | None = None,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        self.core = core
        self.store = store
        self.committer = committer
        self._apply = apply
        self._perform = perform
        #: ``ritornello.toml``'s limits
        self.configured: dict[str, LimitSpec] = dict(configured or {})
        #: the deployments' (the code's) limits, as discovery carried them
        self._code = declared or dict
        self.core_now = now_ms or (lambda: 0)
        self._sent: dict[str, LimitSpec] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: grant turns asked for "now" (``turn(0)``) that have not run yet
        self._soon = 0
        self.closing = False

    # ------------------------------------------------------------------ definitions

    def _declared(self) -> dict[str, LimitSpec]:
        """The code's definitions (each checked when its endpoint was registered)."""
        out = {}
        for name, body in self._code().items():
            try:
                out[name] = parse_limit(body, f"limit {name!r}")
            except LimitError as exc:  # registered before the check existed: skipped
                log.warning("limits: %s", exc)
        return out

    async def check(self, discovery: DiscoveryResponse) -> None:
        """What an endpoint declares about limits, before it is registered: its definitions
        must be valid, and every limit a service or handler names must be defined (by it,
        another deployment, ritornello.toml or the admin API). InvalidRequestError else."""
        own: dict[str, LimitSpec] = {}
        for svc in discovery.services:
            for name, body in svc.limits:
                try:
                    own[check_name(name)] = parse_limit(body, f"service {svc.name}: limit {name!r}")
                except LimitError as exc:
                    raise InvalidRequestError(str(exc)) from None
        named = [(svc.name, svc.limit) for svc in discovery.services if svc.limit]
        named += [
            (f"{svc.name}/{h.name}", h.limit)
            for svc in discovery.services
            for h in svc.handlers
            if h.limit
        ]
        if not named:
            return
        known = {**self._declared(), **self.configured, **own}
        stored = {r.name for r in await self.store.list_limits()}
        for where, limit in named:
            assert limit is not None
            if limit not in known and limit not in stored:
                raise InvalidRequestError(
                    f"limit {limit!r} named by {where} is not defined: define it in the "
                    f"service (limits=[Limit({limit!r}, ...)]), in ritornello.toml "
                    f"([limits.{limit}]) or with PUT /limits/{limit}"
                )

    def specs(self, stored: Mapping[str, LimitSpec]) -> dict[str, LimitSpec]:
        """The effective definitions: the admin API's over the configuration's over the
        code's."""
        return {**self._declared(), **self.configured, **stored}

    async def refresh(self, *, fresh: bool = False) -> None:
        """Read the stored definitions and hand the merged set to the core if it changed
        (or ``fresh``: it was asked for)."""
        stored = {r.name: spec_of(r) for r in await self.store.list_limits()}
        specs = self.specs(stored)
        if fresh or specs != self._sent:
            self._sent = specs
            self._perform(self._apply(LimitsDefined(specs, fresh=fresh)).effects)

    # ------------------------------------------------------------------ effects

    def turn(self, delay_ms: int) -> None:
        """Apply ``LimitsDue`` after ``delay_ms``."""
        loop = asyncio.get_running_loop()
        if delay_ms <= 0:
            self._soon += 1
            loop.call_soon(self._due_soon)
        else:
            loop.call_later(delay_ms / 1000, self._due)

    @property
    def busy(self) -> bool:
        """Whether a grant turn asked for now, a grant unit or a read is still under way (a
        turn waiting for its time, a rate limit's, does not count: ``Engine.idle``)."""
        return self._soon > 0 or bool(self._tasks)

    def _due_soon(self) -> None:
        self._soon -= 1
        self._due()

    def _due(self) -> None:
        if self.closing:
            return
        decision = self._apply(LimitsDue())
        if decision.unit is None:
            self._perform(decision.effects)
            return
        self._spawn(self._commit(decision))

    async def _commit(self, decision: Decision) -> None:
        try:
            await self.committer.commit_decision(decision)
        except (StoreError, ConnectionError, OSError) as exc:
            log.warning("limits: a grant unit failed (%s); its rows are read again", exc)

    def read_permits(self, limit: str, read_from: int) -> None:
        self._spawn(self._read_permits(limit, read_from))

    async def _read_permits(self, limit: str, read_from: int) -> None:
        """One limit's rows, read until a read succeeds in time: the core counts this read
        out until its ``PermitsRead`` comes back, so exactly one does."""
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            try:
                rows = await self.store.list_permits(limit=limit)
            except StoreError as exc:
                log.warning("limits: reading %r failed (%s); trying again", limit, exc)
                await asyncio.sleep(1.0)
                continue
            if (loop.time() - began) * 1000 <= READ_MAX_MS:
                break  # else too old to measure against memory: again
        event = PermitsRead(rows, limit=limit, read_from=read_from)
        self._perform(self._apply(event).effects)

    def read_limits(self) -> None:
        self._spawn(self._read_limits())

    async def _read_limits(self) -> None:
        try:
            await self.refresh(fresh=True)
        except StoreError as exc:
            log.warning("limits: reading the definitions failed (%s); trying again", exc)
            await asyncio.sleep(1.0)
            self.read_limits()

    # ------------------------------------------------------------------ the inbox

    async def changed(self, limit: str, invocation_id: str, index: int) -> None:
        """An inbox message: one row of a limit owned here changed (read now, applied where
        memory has not learned of it since)."""
        loop = asyncio.get_running_loop()
        self._apply(PermitNoticed(limit, invocation_id, index))  # counts the read out
        read_from = self.core.limits.clock
        while True:
            began = loop.time()
            try:
                row = await self.store.get_permit(limit, invocation_id, index)
            except StoreError as exc:
                log.warning("limits: reading a row of %r failed (%s); trying again", limit, exc)
                await asyncio.sleep(1.0)
                continue
            if (loop.time() - began) * 1000 <= READ_MAX_MS:
                break
        event = PermitChanged(limit, invocation_id, index, row, read_from)
        self._perform(self._apply(event).effects)

    # ------------------------------------------------------------------ the admin API's

    async def put(self, name: str, spec: LimitSpec, now_ms: int) -> tuple[LimitRecord, bool]:
        """Set limit ``name`` (created: True). Takes effect at once here, within the
        definitions' refresh (2 s) on the other orchestrators."""
        check_name(name)
        for _ in range(5):
            old = await self.store.get_limit(name)
            rec = LimitRecord(
                name,
                spec.concurrency,
                spec.rate,
                spec.per_ms,
                spec.burst,
                now_ms,
                version=1 if old is None else old.version + 1,
            )
            try:
                await self.store.put_limit(rec, None if old is None else old.version)
            except ConflictError:
                continue  # another writer won the race: write over what it wrote
            await self.refresh()
            return rec, old is None
        raise TryAgainError(f"limit {name!r} keeps changing; try again")

    async def delete(self, name: str, *, force: bool = False) -> None:
        """Remove the admin API's definition of ``name`` (one in the configuration or the code
        then applies again). Refused while invocations wait for or hold its permits and no
        other definition would apply, unless ``force``: they then fail with 404."""
        if await self.store.get_limit(name) is None:
            raise NotFoundError(f"limit {name!r} is not set through the admin API")
        if not force and name not in self.specs({}):
            rows = await self.store.list_permits(limit=name)
            if rows:
                held = sum(1 for r in rows if r.granted_at is not None)
                raise StateConflictError(
                    f"limit {name!r} has {held} permit(s) out and {len(rows) - held} "
                    "invocation(s) waiting: they would fail; delete with ?force=true to do so"
                )
        await self.store.delete_limit(name)
        await self.refresh()

    async def describe(self, name: str | None = None) -> list[dict[str, Any]]:
        """Each limit (or ``name`` alone: NotFoundError if not defined): its definition, where
        it comes from, and live figures. ``in_flight``, ``waiting`` and ``oldest_wait_ms`` come
        from the store (the whole cluster); the last minute's counts from the owner's memory,
        when it is this process (else null)."""
        stored = {r.name: r for r in await self.store.list_limits()}
        declared, configured = self._declared(), self.configured
        names = sorted({*declared, *configured, *stored})
        if name is not None:
            if name not in names:
                raise NotFoundError(f"limit {name!r} is not defined")
            names = [name]
        now = self.core_now()
        out = []
        for n in names:
            rec = stored.get(n)
            spec = spec_of(rec) if rec else configured.get(n) or declared[n]
            source = "admin" if rec else "config" if n in configured else "code"
            rows = await self.store.list_permits(limit=n)
            held = sum(1 for r in rows if r.granted_at is not None)
            asked = [r.asked_at // 1000 for r in rows if r.granted_at is None]  # µs
            local: dict[str, int | None] = limit_figures(self.core.limits, [n], now).get(n, {})
            if not local and limit_partition(n, self.core.partitions) in self.core.ready:
                local = {"granted_last_minute": 0, "refused_last_minute": 0}  # owned, unused
            out.append(
                {
                    "name": n,
                    **spec.as_json(),
                    "source": source,
                    "version": rec.version if rec else None,
                    "updated_at": rec.updated_at if rec else None,
                    "in_flight": held,
                    "waiting": len(asked),
                    "oldest_wait_ms": max(0, now - min(asked)) if asked else None,
                    "granted_last_minute": local.get("granted_last_minute"),
                    "refused_last_minute": local.get("refused_last_minute"),
                }
            )
        return out

    def waits_for(self, rec: InvocationRecord, entries: list[str]) -> str | None:
        """The limit instance a suspended invocation waits for a permit of (``NAME`` or, per
        key, ``NAME[KEY]``); None if it waits for none."""
        if rec.status != Status.SUSPENDED:
            return None
        for index in rec.waiting:
            instance = None
            if index == INVOCATION_PERMIT and entries:
                limit = self.core.registry.limit_of(rec.deployment_id, rec.service, rec.handler)
                if limit is not None:
                    instance = instance_of(self.core.limits.specs, limit, entries[0], rec.key)
            elif 0 < index < len(entries) and '"permit"' in entries[index]:
                entry = json.loads(entries[index])
                instance = entry.get("instance") or entry.get("name")
            if isinstance(instance, str):
                name, sep, key = instance.partition(KEY_SEPARATOR)
                return f"{name}[{key}]" if sep else name
        return None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self.closing = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
