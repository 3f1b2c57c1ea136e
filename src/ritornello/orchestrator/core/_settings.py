"""What a handler's effective settings (``Registry.settings_of``) mean for an invocation:
how long it is kept once finished, and how long an attempt may wait for an answer. Pure."""

from __future__ import annotations

from ritornello.protocol import Settings
from ritornello.store.records import InvocationRecord


def retention_of(settings: Settings, rec: InvocationRecord, default_ms: int) -> int:
    """How long (ms) the finished ``rec`` is kept before it may be purged.

    The retentions that apply to it: the journal's always, the idempotency key's when it has
    one, the workflow's for a workflow's run. It is kept as long as the longest of those that
    are set (one record holds journal, key and result alike, so the longest need wins); when
    none of them is set, ``default_ms`` (the orchestrator's ``retention_s``)."""
    applicable = [settings.journal_retention_ms]
    if rec.idempotency_key is not None:
        applicable.append(settings.idempotency_retention_ms)
    if rec.handler_kind == "workflow":
        applicable.append(settings.workflow_retention_ms)
    given = [ms for ms in applicable if ms is not None]
    return max(given) if given else default_ms


def attempt_timeout_s(settings: Settings | None, default_s: float) -> float:
    """How long an attempt may wait for the endpoint's next answer (seconds).

    Our endpoints cannot be asked to suspend in the middle of an attempt, so where Restate
    would ask after ``inactivity_timeout`` and abort after ``abort_timeout`` more, the attempt
    is aborted after both (then retried with backoff, as any failed attempt). Unset
    inactivity: ``default_s`` (the orchestrator's ``attempt_timeout_s``); unset abort: 0."""
    if settings is None or (
        settings.inactivity_timeout_ms is None and settings.abort_timeout_ms is None
    ):
        return default_s
    inactivity = (
        default_s
        if settings.inactivity_timeout_ms is None
        else settings.inactivity_timeout_ms / 1000
    )
    return inactivity + (settings.abort_timeout_ms or 0) / 1000
