"""Back from a bad deploy: restart a finished invocation as a new one that keeps a prefix of its
journal, and choose the deployment an invocation goes on with (restart-as-new, resume).

``RestartAsNew`` creates a new invocation of the same service, handler and key with the same
input entry (so the same input and headers), carrying the original's journal before entry
``from_index`` and the completions of those entries, on the chosen deployment. Its handler
replays the kept entries (a kept step is not run again) and runs on from there. Everything else
about its creation is a ``Submit``'s (``_intake``): its key's queue, its partition, its commit.

Invariants of a kept prefix (``kept_prefix``), each refused with ``InvalidRequestError`` (400):

- it holds the input (entry 0) and never the ``output``, so ``1 <= from_index <= last`` where
  ``last`` is the index of the output entry (or the journal's length, for a killed invocation
  that has none); ``from_index`` 0 means 1, as on Restate (the input is always kept);
- every entry that waits for a completion (a call, a sleep, an awakeable, a permit...) has its
  completion kept with it: the new invocation could not get it otherwise;
- every permit kept is given back by a step kept after it (a limited step is kept whole);
- every fan-out started in the prefix has its outcome in it (a branch is never cut).

Only a finished invocation (completed or killed) restarts as new (409 otherwise: kill or cancel
it first, or resume a paused one on another deployment). A workflow's run does not: its id
runs once. The new invocation has no caller and no idempotency key (its original may still
hold it).
"""

from __future__ import annotations

from ritornello.protocol._entries import WAITING_KINDS
from ritornello.store.records import FINAL_STATUSES, InvocationRecord

from .._json import loads
from ..errors import InvalidRequestError, NotFoundError, StateConflictError
from ._effects import Decision
from ._events import RestartAsNew, Submit
from ._intake import submit
from ._invocation import open_permits
from ._journal import unstamped
from ._registry import Registry, Target
from ._state import CoreState

#: ``deployment=`` choices besides a deployment id.
LATEST, KEEP = "latest", "keep"


def chosen_deployment(registry: Registry, rec: InvocationRecord, choice: str) -> str:
    """The deployment id ``choice`` names for ``rec``: ``latest`` (the newest deployment
    serving its service), ``keep`` (its own), or a registered deployment's id. It must serve
    the invocation's handler (400 otherwise)."""
    what = f"{rec.service}/{rec.handler}"
    if choice == KEEP:
        deployment = rec.deployment_id
        if deployment not in registry.deployments:
            raise InvalidRequestError(
                f"deployment {deployment} of invocation {rec.id} is no longer registered: "
                "choose deployment=latest or a deployment id"
            )
    elif choice == LATEST:
        found = registry.service(rec.service)
        if found is None:
            raise InvalidRequestError(f"no registered deployment serves {rec.service}")
        deployment = found[1]
    else:
        deployment = choice
        if deployment not in registry.deployments:
            raise InvalidRequestError(
                f"unknown deployment {choice!r}: expected latest, keep or a registered "
                "deployment's id"
            )
    if registry.handler_info(deployment, rec.service, rec.handler) is None:
        raise InvalidRequestError(f"deployment {deployment} does not serve {what}")
    return deployment


def kept_prefix(
    entries: list[str], completions: list[str], from_index: int
) -> tuple[list[str], list[str]]:
    """(entries, completions) a restart from ``from_index`` keeps (see the module's
    invariants; ``InvalidRequestError`` when they would not hold)."""
    n = max(from_index, 1)
    last = len(entries)
    if last > 1 and loads(entries[-1]).get("kind") == "output":
        last -= 1
    if from_index < 0 or n > last:
        raise InvalidRequestError(
            f"from={from_index} is out of range: this journal keeps at most entries 0..{last - 1} "
            f"(from may be 0..{last}; the output entry is never kept)"
        )
    kept = entries[:n]
    done: dict[int, str] = {}
    for text in completions:
        index = loads(text)["index"]
        if 0 < index < n:
            done[index] = text
    fanouts: dict[str, int] = {}  # the context of each fan-out started in the prefix
    outcomes: set[str] = set()
    for i in range(1, n):
        entry = loads(kept[i])
        kind = entry.get("kind")
        what = f"entry {i} ({kind}{' ' + repr(entry['name']) if entry.get('name') else ''})"
        if kind in WAITING_KINDS and i not in done:
            raise InvalidRequestError(
                f"from={from_index} cuts inside {what}, which has no result yet: "
                f"restart from {i} or earlier"
            )
        parent = entry.get("ctx") or ""
        if kind == "run" and "child" in entry:
            fanouts[f"{parent}/{i}" if parent else str(i)] = i
        elif kind == "run" and parent:
            outcomes.add(parent)
    open_permit = min(open_permits(kept), default=None)
    if open_permit is not None:
        raise InvalidRequestError(
            f"from={from_index} cuts between the permit at entry {open_permit} and its step: "
            f"restart from {open_permit} or earlier, or after the step"
        )
    unfinished = [i for ctx, i in fanouts.items() if ctx not in outcomes]
    if unfinished:
        raise InvalidRequestError(
            f"from={from_index} cuts inside the fan-out started at entry {unfinished[0]}: "
            f"restart from {unfinished[0]} or earlier, or after its outcome"
        )
    return [unstamped(t) for t in kept], [unstamped(done[i]) for i in sorted(done)]


def restartable(rec: InvocationRecord | None, invocation_id: str) -> InvocationRecord:
    """``rec`` if it may restart as new (404: gone; 409: not finished, or a workflow's run)."""
    if rec is None:
        raise NotFoundError(f"invocation {invocation_id} not found")
    if rec.status not in FINAL_STATUSES:
        raise StateConflictError(
            f"invocation {rec.id} is {rec.status}: only a completed or killed invocation "
            "restarts as new (kill or cancel it first; a paused one can resume on another "
            "deployment with resume?deployment=)"
        )
    if rec.handler_kind == "workflow":
        raise StateConflictError(
            f"invocation {rec.id} is a workflow's run: a workflow id runs once, so it cannot "
            "restart as new"
        )
    return rec


def restart_as_new(core: CoreState, ev: RestartAsNew, now: int) -> Decision:
    """The unit that creates the new invocation (``Decision.record``), as ``Submit`` does,
    with the kept prefix of the original's journal."""
    rec = restartable(ev.record, ev.invocation_id)
    deployment = chosen_deployment(core.registry, rec, ev.deployment)
    kept, done = kept_prefix(ev.entries, ev.completions, ev.from_index)
    service = core.registry.service_info(deployment, rec.service)
    info = core.registry.handler_info(deployment, rec.service, rec.handler)
    assert service is not None and info is not None  # chosen_deployment checked it
    target = Target(service, info, deployment)
    created = Submit(
        ev.new_id,
        target,
        rec.key,
        "null",
        here=ev.here,
        journal=tuple(kept),
        completions=tuple(done),
    )
    return submit(core, created, now)
