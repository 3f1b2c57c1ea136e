"""What ``check_store`` reports: the violation kinds, one violation, the report. Its own module
so that every rule module adds to a report without importing ``_store``, which imports them."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Every ``Violation.kind``, in the order the package docstring lists the invariants.
KINDS = (
    "journal",
    "json",
    "state",
    "call",
    "liveness",
    "stuck",
    "timer",
    "exclusive",
    "schedule",
    "permit",
    "acknowledged",
)


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant: ``kind`` is one of ``KINDS``. ``invocation_id`` names what it is
    about: an invocation, or for kind ``schedule`` the schedule's id (None for kind ``json``
    about an object's state row: the message names the object)."""

    kind: str
    invocation_id: str | None
    message: str


@dataclass(slots=True)
class CheckReport:
    """What ``check_store`` found, and how much it read."""

    violations: list[Violation] = field(default_factory=list)
    invocations: int = 0
    entries: int = 0
    completions: int = 0
    timers: int = 0
    schedules: int = 0
    #: Timers whose ``fire_at`` had passed at ``now_ms`` (informational: due on a stopped store).
    overdue_timers: int = 0
    #: Callees found by id that listing all invocations did not return (informational).
    unlisted: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations

    def add(self, kind: str, invocation_id: str | None, message: str) -> None:
        self.violations.append(Violation(kind, invocation_id, message))
