"""Crash points: named sites where a test can make the process die, as kill -9 would.

``RITORNELLO_CRASH_AT=site:n[,site:n...]`` (read once, at import) makes the n-th time the
process reaches ``site`` end it at once with ``os._exit(137)`` — no cleanup, no flush, no
lease released — so a test can stop the orchestrator at exactly the moment it wants to break.
``mid-batch`` is reached in the SQLite writer process (the default writer): there it SIGKILLs
the orchestrator (``KILL_ALSO``) and then ends itself, so the orchestrator dies with -9.
Unset (production), every site is one test of a module-level constant that is False::

    if crashpoints.ARMED:
        crashpoints.reach("after-commit")

Sites (docs/orchestrator.md lists what each one tests):

* ``before-commit``    a unit is built and about to be committed (engine)
* ``after-commit``     a unit is durable, its effects not yet performed (engine)
* ``before-ack``       an ingress request's invocation is durable, the client not yet answered
* ``after-invoke``     an endpoint answered, the answer not yet persisted (engine)
* ``mid-batch``        SQLite group commit: some units of a batch written, not yet committed
* ``after-renewal``    a partition lease was renewed (leadership)
* ``after-fire``       a schedule's invocation is durable, the schedule not yet moved on

This module lives in the store layer because the lowest layer that reaches a site (the SQLite
writer) is there; the orchestrator imports it too.
"""

from __future__ import annotations

import os
import signal
import sys

SITES = frozenset(
    {
        "before-commit",
        "after-commit",
        "before-ack",
        "after-invoke",
        "mid-batch",
        "after-renewal",
        "after-fire",
    }
)


def _parse(spec: str) -> dict[str, int]:
    plan: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        site, _, count = item.partition(":")
        if site not in SITES or not count.isdigit() or int(count) < 1:
            raise ValueError(
                f"RITORNELLO_CRASH_AT: {item!r} is not SITE:N with N >= 1 "
                f"(sites: {', '.join(sorted(SITES))})"
            )
        plan[site] = int(count)
    return plan


_PLAN = _parse(os.environ.get("RITORNELLO_CRASH_AT", ""))
#: A process to SIGKILL with this one: the SQLite writer process names the orchestrator, so a
#: crash point reached in the writer ends both, as one kill -9 of a one-process orchestrator.
KILL_ALSO: int | None = None
_SEEN: dict[str, int] = {}

#: True only when some crash point is set: the one check a site costs otherwise.
ARMED = bool(_PLAN)


def reach(site: str) -> None:
    """Count a visit to ``site``; die if it is the visit the plan names."""
    target = _PLAN.get(site)
    if target is None:
        return
    seen = _SEEN[site] = _SEEN.get(site, 0) + 1
    if seen == target:
        sys.stderr.write(f"ritornello: crash point {site}:{target} reached, exiting\n")
        sys.stderr.flush()
        if KILL_ALSO is not None:
            os.kill(KILL_ALSO, signal.SIGKILL)
        os._exit(137)
