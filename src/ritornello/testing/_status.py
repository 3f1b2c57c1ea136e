"""``InvocationStatus``: where one invocation stands, as the harness reports it.

A snapshot of the store's record (the live status while it is being driven), in the admin API's
words (docs/admin-api.md, "The invocation object"): times as UTC datetimes on the harness's
clock, the result as ``{"value": ...}`` or ``{"failure": {"code", "message"}}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ritornello.store import FINAL_STATUSES, InvocationRecord


def utc(ms: int) -> datetime:
    """Unix ms as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True)
class InvocationStatus:
    """One invocation, now. ``status`` is one of ``pending scheduled running suspended
    backing-off paused completed killed``."""

    invocation_id: str
    service: str
    handler: str
    key: str | None
    status: str
    #: failed attempts plus one
    attempt: int
    #: entries journaled, the input included
    journal_length: int
    #: the journal indices a suspended invocation waits on
    waiting_on: tuple[int, ...]
    #: when a backing-off invocation is retried, or a scheduled one starts
    next_at: datetime | None
    last_failure: str | None
    #: ``{"value": ...}`` or ``{"failure": {"code", "message"}}`` once finished, else None
    result: dict[str, Any] | None

    @classmethod
    def of(cls, rec: InvocationRecord) -> InvocationStatus:
        return cls(
            invocation_id=rec.id,
            service=rec.service,
            handler=rec.handler,
            key=rec.key,
            status=rec.status,
            attempt=rec.attempt,
            journal_length=rec.journal_len,
            waiting_on=tuple(rec.waiting),
            next_at=utc(rec.next_at) if rec.next_at is not None else None,
            last_failure=rec.last_error,
            result=json.loads(rec.result) if rec.result else None,
        )

    @property
    def target(self) -> str:
        """``Service/handler``, or ``Object/key/handler``."""
        if self.key is None:
            return f"{self.service}/{self.handler}"
        return f"{self.service}/{self.key}/{self.handler}"

    @property
    def finished(self) -> bool:
        """Completed or killed: it holds its result and never changes again."""
        return self.status in FINAL_STATUSES

    def describe(self) -> str:
        """One line: the status and what it waits for."""
        text = f"{self.target} is {self.status}"
        if self.waiting_on:
            text += f", waiting on journal entries {list(self.waiting_on)}"
        if self.next_at is not None:
            what = "retried" if self.status == "backing-off" else "started"
            text += f", to be {what} at {self.next_at.isoformat()} (advance the clock)"
        elif self.status == "suspended":
            text += " (advance the clock, or complete what it waits on)"
        if self.last_failure:
            text += f"; last failure: {self.last_failure}"
        return text
