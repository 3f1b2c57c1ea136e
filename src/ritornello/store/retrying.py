"""``RetryingStore``: retries ``UnavailableError`` (throttling, transaction conflicts, internal
errors, lost answers) with exponential backoff and full jitter, within a time budget.

Only ``UnavailableError`` is retried. ``ConflictError``, ``FencedError``, ``ValueError``,
``SchemaError``, ``StoreClosedError`` and anything else pass straight through. When the budget
(seconds on the monotonic clock, and optionally a number of attempts) runs out, the last
failure is re-raised as an ``UnavailableError`` that says so.

Ambiguous commits. A commit that raised ``UnavailableError`` may have landed, so its retry may
meet its own earlier write. The rule, for every commit retried after such a failure:

- The retry succeeds: done. Only a unit with no condition our own write could break succeeds
  twice: no versioned invocation write, no journal entry, no fresh completion, no permit grant
  (an insert of an existing id is a no-op, and so is an ask of an existing permit). The rest
  of such a unit re-applies to the same result: completions are first-writer-wins, state and
  timer changes, completion removals, permit releases and purges are idempotent, and inbox
  messages (``notify``) may be duplicated by contract. So the retry is a no-op, never a
  duplicate.
- The retry raises ``FencedError``: re-raised. A fence fails only because another leader
  claimed the partition, never because of our own write; we must step down either way.
- The retry raises ``ConflictError``: did our earlier attempt land? Units are atomic, so one
  part that only our write can explain proves the whole unit landed, and one part our landed
  write contradicts proves it did not. Read back, strongly consistent, each part:

  ==================================  ==========================  ===========================
  part of the unit                    landed if (evidence for)    not landed if (against)
  ==================================  ==========================  ===========================
  versioned write of an id (the last  stored record equals it     missing or different
  one in the unit for that id)        exactly
  insert only, for an id              stored record equals it     missing
  journal entry (id, index, text)     stored with the same text   missing or other text
  fresh completion (id, index, text)  stored with the same text   missing or other text
  permit grant (the row the unit      stored equal to it          missing or different
  leaves granted)
  permit ask (a row the unit leaves   stored equal to it but      missing
  asked, not granted)                 perhaps granted since
  permit release (a row the unit      (none: it may never have    there
  leaves released)                    been there)
  other completion, completion        (no evidence either way: they never cause a conflict)
  removal, state, timer, purge,
  notify
  ==================================  ==========================  ===========================

  Landed iff there is evidence for and none against; then ``commit`` returns normally.
  Otherwise the ``ConflictError`` is re-raised: a unit with only idempotent parts cannot
  raise a plain conflict at all, so one we cannot explain is not taken as success. The rule
  never reports a false success; it may report a conflict for a unit that did land if
  another writer changed its records between our attempts (a stale view either way: the
  caller re-reads, as after any conflict).

  Two assumptions: a record equal in every field (``modified_at``, ``version``...) was
  written by us, not by a concurrent writer making the identical change (for a fresh
  completion: the same value, stamped in the same millisecond — were it theirs, the
  awakeable still holds exactly what we asked for); and one writer at a
  time (the leader of the partition, fenced) appends an invocation's journal and changes its
  object's state and timers, so an entry with our text at our index is ours, and re-applying
  a state or timer change overwrites nobody else's.

``claim_lease`` follows the same rule: a ConflictError after an UnavailableError means success
if the stored lease is ours at exactly the epoch and version our claim sets. ``renew_lease``
(the version is not compared) and ``release_lease`` retry as they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ritornello.store._base import Store
from ritornello.store._wrapper import StoreWrapper
from ritornello.store.errors import ConflictError, FencedError, UnavailableError
from ritornello.store.records import (
    CommitUnit,
    InvocationRecord,
    LeaseRecord,
    PermitRecord,
)

T = TypeVar("T")


class RetryingStore(StoreWrapper):
    """Delegates every method to ``inner``, retrying ``UnavailableError`` (module docstring).

    Backoff before retry ``n`` (1, 2, ...) is uniform in ``[0, min(cap_s, base_s * 2**(n-1))]``
    ("full jitter"), cut to what is left of ``budget_s``. ``max_attempts`` also bounds the
    attempts of one call. ``retries`` counts the retries, by method name.
    """

    def __init__(
        self,
        inner: Store,
        *,
        budget_s: float = 10.0,
        base_s: float = 0.01,
        cap_s: float = 1.0,
        max_attempts: int | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if budget_s < 0 or base_s < 0 or cap_s < 0:
            raise ValueError("budget_s, base_s and cap_s must not be negative")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        super().__init__(inner)
        self.budget_s = budget_s
        self.base_s = base_s
        self.cap_s = cap_s
        self.max_attempts = max_attempts
        self.retries: Counter[str] = Counter()
        self._rng = rng if rng is not None else random.Random()
        self._sleep = sleep
        self._clock = clock

    # ------------------------------------------------------------------ retrying

    async def _call(self, method: str, call: Callable[[], Awaitable[T]]) -> T:
        started = self._clock()
        attempt = 1
        while True:
            try:
                return await call()
            except UnavailableError as error:
                await self._backoff(method, attempt, started, error)
                attempt += 1

    async def _backoff(
        self, method: str, attempt: int, started: float, error: UnavailableError
    ) -> None:
        """Sleep before the next attempt, or raise if the budget is spent."""
        left = self.budget_s - (self._clock() - started)
        if left <= 0 or (self.max_attempts is not None and attempt >= self.max_attempts):
            raise UnavailableError(
                f"{method}: retry budget ran out after {attempt} attempt"
                f"{'' if attempt == 1 else 's'} (budget {self.budget_s:g}s"
                f"{'' if self.max_attempts is None else f' or {self.max_attempts} attempts'}); "
                f"last error: {error}"
            ) from error
        delay = self._rng.uniform(0.0, min(self.cap_s, self.base_s * 2.0 ** (attempt - 1)))
        self.retries[method] += 1
        await self._sleep(min(delay, left))

    async def commit(self, unit: CommitUnit) -> None:
        started = self._clock()
        attempt = 1
        maybe_landed = False  # an earlier attempt raised UnavailableError
        while True:
            try:
                await self.inner.commit(unit)
                return
            except FencedError:
                raise
            except ConflictError:
                if maybe_landed and await self._landed(unit):
                    return
                raise
            except UnavailableError as error:
                maybe_landed = True
                await self._backoff("commit", attempt, started, error)
                attempt += 1

    async def _landed(self, unit: CommitUnit) -> bool:
        """Whether ``unit`` is in the store, by the table of the module docstring."""
        evidence = False
        versioned: dict[str, InvocationRecord] = {}
        inserted: dict[str, InvocationRecord] = {}
        for write in unit.invocations:
            record = write.record
            if write.expect_version is not None:
                versioned[record.id] = record  # the last versioned write of an id stands
            elif record.id not in versioned:
                inserted.setdefault(record.id, record)  # the first insert of an id stands
        for invocation_id, record in versioned.items():
            if await self.get_invocation(invocation_id) != record:
                return False
            evidence = True
        for invocation_id, record in inserted.items():
            if invocation_id in versioned:
                continue
            stored = await self.get_invocation(invocation_id)
            if stored is None:
                return False
            evidence = evidence or stored == record
        # invocation id -> (its entries by index, its completions' texts)
        journals: dict[str, tuple[dict[int, str], list[str]]] = {}

        async def journal(invocation_id: str) -> tuple[dict[int, str], list[str]]:
            found = journals.get(invocation_id)
            if found is None:
                entries, completions = await self.get_journal(invocation_id)
                found = journals[invocation_id] = (dict(enumerate(entries)), completions)
            return found

        for invocation_id, index, text in unit.entries:
            if (await journal(invocation_id))[0].get(index) != text:
                return False
            evidence = True
        if unit.fresh:
            fresh = {(i, n) for i, n in unit.fresh}
            for invocation_id, index, text in unit.completions:
                if (invocation_id, index) in fresh:
                    # completions come back without their index: the text carries it
                    if text not in (await journal(invocation_id))[1]:
                        return False
                    evidence = True
        permits = await self._permits_landed(unit)
        return permits is not None and (evidence or permits)

    async def _permits_landed(self, unit: CommitUnit) -> bool | None:
        """The permits' part of ``_landed``: None if a permit shows that the unit did not
        land, else whether one shows that it did."""
        # each permit the unit names -> (granted, the record) as the unit leaves it; None:
        # released. An ask of a permit the unit names already changes nothing.
        left: dict[tuple[str, str, int], tuple[bool, PermitRecord] | None] = {}
        for name in unit.permits_release:
            left[name] = None
        for permit in unit.permits_ask:
            name = (permit.limit, permit.invocation_id, permit.index)
            if left.get(name) is None:
                left[name] = (False, permit)
        for permit in unit.permits_grant:
            left[(permit.limit, permit.invocation_id, permit.index)] = (True, permit)
        evidence = False
        for (limit, invocation_id, index), outcome in left.items():
            stored = await self.get_permit(limit, invocation_id, index)
            if outcome is None or stored is None:
                if stored is not None or outcome is not None:
                    return None  # a released permit is there, or an asked one is missing
                continue
            granted, permit = outcome
            if granted:
                if stored != permit:
                    return None
                evidence = True
            elif stored == dataclasses.replace(permit, granted_at=stored.granted_at):
                evidence = True  # our ask (or the same ask before it), perhaps granted since
        return evidence

    async def claim_lease(
        self, partition: int, owner: str, expect: LeaseRecord | None, now_ms: int
    ) -> LeaseRecord:
        started = self._clock()
        attempt = 1
        maybe_landed = False
        while True:
            try:
                return await self.inner.claim_lease(partition, owner, expect, now_ms)
            except ConflictError:
                # As for commits: the lease may have moved because our own claim landed.
                # Only our claim makes it ours at exactly the next epoch and version.
                if maybe_landed:
                    for lease in await self.list_leases():
                        if (
                            lease.partition == partition
                            and lease.owner == owner
                            and lease.epoch == (1 if expect is None else expect.epoch + 1)
                            and lease.version == (1 if expect is None else expect.version + 1)
                        ):
                            return lease
                raise
            except UnavailableError as error:
                maybe_landed = True
                await self._backoff("claim_lease", attempt, started, error)
                attempt += 1
