"""The status the admin API shows, and how a ``?status=`` filter maps onto the store's.

The store keeps one final status for an invocation that ran to its end, ``completed``, with
its result (``{"value": ...}`` or ``{"failure": ...}``). That is deliberate: the invocation
state machine, retention, the invariant checker (``ritornello check``) and every backend's
indexes know one finished-with-a-result status, and records written before this API split it
stay valid with no migration. The admin API splits it by the result:

- ``succeeded``: completed with ``{"value": ...}`` (or no result at all);
- ``failed``: completed with ``{"failure": ...}`` (a terminal error, or cancelled).

Every other status is the store's own. ``?status=completed`` is still accepted and means
either of the two (for clients written before the split). A ``succeeded``/``failed`` filter
asks the store for ``completed`` invocations (its status index narrows the read) and keeps
the outcome wanted; ``invocation_outcome`` is that check, and ``api_status`` the shown status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ritornello.store import STATUSES, InvocationRecord, Status

SUCCEEDED = "succeeded"
FAILED = "failed"
#: The statuses the admin API shows, in lifecycle order: the store's, with ``completed``
#: split in two.
API_STATUSES: tuple[str, ...] = tuple(
    name
    for s in STATUSES
    for name in ((SUCCEEDED, FAILED) if s == Status.COMPLETED.value else (s,))
)
#: What ``?status=`` accepts: the shown statuses and the old ``completed`` (either outcome).
ACCEPTED_STATUSES: tuple[str, ...] = (*API_STATUSES, Status.COMPLETED.value)


def invocation_outcome(result: str | None) -> str:
    """``failed`` when the result text is a ``{"failure": ...}`` object, else ``succeeded``.
    Unparseable text (never written by the orchestrator) reads as succeeded."""
    if not result:
        return SUCCEEDED
    try:
        value = json.loads(result)
    except ValueError:
        return SUCCEEDED
    return FAILED if isinstance(value, dict) and "failure" in value else SUCCEEDED


def api_status(r: InvocationRecord) -> str:
    """The status the admin API shows for ``r``."""
    if r.status == Status.COMPLETED.value:
        return invocation_outcome(r.result)
    return r.status


@dataclass(frozen=True, slots=True)
class StatusFilter:
    """A parsed ``?status=`` filter: the store statuses to ask for (None: any) and, when only
    one outcome of ``completed`` is wanted, that outcome (None: no outcome check)."""

    store_statuses: tuple[str, ...] | None
    outcomes: frozenset[str] | None

    def keeps(self, r: InvocationRecord) -> bool:
        """Whether ``r`` (already of one of ``store_statuses``) passes the outcome check."""
        if self.outcomes is None or r.status != Status.COMPLETED.value:
            return True
        return invocation_outcome(r.result) in self.outcomes


def parse_status_filter(names: list[str] | None) -> StatusFilter:
    """``["failed", "running"]`` -> store statuses ``(running, completed)`` keeping only failed
    completions. ValueError names an unknown status. Empty or None: no filter."""
    wanted: list[str] = []
    for name in names or []:
        if name not in ACCEPTED_STATUSES:
            raise ValueError(
                f"unknown status {name!r}: expected one of {', '.join(ACCEPTED_STATUSES)}"
            )
        if name not in wanted:
            wanted.append(name)
    if not wanted:
        return StatusFilter(None, None)
    completed = Status.COMPLETED.value
    outcomes = {n for n in wanted if n in (SUCCEEDED, FAILED)}
    store = [n for n in wanted if n not in (SUCCEEDED, FAILED)]
    if outcomes and completed not in store:
        store.append(completed)
    either = completed in wanted or outcomes == {SUCCEEDED, FAILED}
    ordered = tuple(s for s in STATUSES if s in store)
    return StatusFilter(ordered, None if either or not outcomes else frozenset(outcomes))
