"""``/invocations``: list (filtered, paged), describe and operate on invocations.

Listing: newest first unless ``order=oldest``. The store filters by status, service and key
and pages by a keyset; the other filters (handler, creation time, and the succeeded/failed
split of the store's ``completed``: admin/_status.py) are applied here, page by page, so a
page may hold fewer than ``limit`` invocations while ``next_cursor`` is not null (at most
``SCAN_LIMIT`` records are read per request). ``next_cursor`` is null on the last page (one
match past the page is looked for before a cursor is given). A client pages until it is null;
the cursor (admin/_cursor.py) names the last record examined by its unique (seq, id), so no
invocation is skipped or repeated, and none created meanwhile enters a newest-first walk.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query

from ritornello.admin._cursor import NEWEST, ORDERS, CursorError, decode_cursor, encode_cursor
from ritornello.admin._models import (
    IdOnly,
    Invocation,
    InvocationDetail,
    InvocationList,
    errors,
    refused,
)
from ritornello.admin._status import ACCEPTED_STATUSES, StatusFilter, parse_status_filter
from ritornello.admin._views import invocation_view, journal_view, retries_view
from ritornello.orchestrator import Engine, OrchestratorError
from ritornello.store import InvocationRecord

#: Records read from the store at most per listing request (filters applied here).
SCAN_LIMIT = 10_000
#: Integers the stores hold (SQLite INTEGER, DynamoDB numbers used as cursors) are 64-bit.
MAX_INT64 = 2**63 - 1


def parse_statuses(values: list[str] | None) -> StatusFilter:
    """``?status=a&status=b,c`` -> the filter on ``[a, b, c]`` (admin/_status.py); 400 for an
    unknown status."""
    names = [part.strip() for value in values or [] for part in value.split(",") if part.strip()]
    try:
        return parse_status_filter(names)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


def invocations_router(engine: Engine) -> APIRouter:
    """Invocation listing, inspection and the cancel/kill/pause/resume/purge operations."""
    router = APIRouter(tags=["invocations"])

    @router.get("/invocations", response_model=InvocationList, responses=errors(400))
    async def list_invocations(
        status: list[str] | None = Query(
            None,
            description="repeatable or comma-separated; each one of "
            f"{', '.join(ACCEPTED_STATUSES)} (completed: succeeded or failed)",
        ),
        service: str | None = Query(None, description="service name"),
        handler: str | None = Query(None, description="handler name"),
        key: str | None = Query(None, description="object key or workflow id"),
        created_after: int | None = Query(
            None, ge=0, le=MAX_INT64, description="created at or after this Unix ms"
        ),
        created_before: int | None = Query(
            None, ge=0, le=MAX_INT64, description="created before this Unix ms"
        ),
        order: str = Query(
            NEWEST, description="newest (first created first, the default) or oldest"
        ),
        cursor: str | None = Query(
            None, max_length=1000, description="the next_cursor of the previous page (opaque)"
        ),
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        """Invocations newest first (or ``order=oldest``), filtered; all filters combine (AND)."""
        statuses = parse_statuses(status)
        if order not in ORDERS:
            raise HTTPException(400, f"order must be one of {', '.join(ORDERS)}, not {order!r}")
        newest_first = order == NEWEST
        try:
            after = decode_cursor(cursor, order) if cursor else None
        except CursorError as exc:
            raise HTTPException(400, str(exc)) from None
        if (
            created_after is not None
            and created_before is not None
            and created_after >= created_before
        ):
            raise HTTPException(400, "created_after must be before created_before")

        def wanted(r: InvocationRecord) -> bool:
            return (
                (handler is None or r.handler == handler)
                and (created_after is None or r.created_at >= created_after)
                and (created_before is None or r.created_at < created_before)
                and statuses.keeps(r)
            )

        local = (
            handler is not None
            or created_after is not None
            or created_before is not None
            or statuses.outcomes is not None
        )
        batch = limit + 1 if not local else 1000  # one more: is this page the last?
        found: list[InvocationRecord] = []
        scanned = 0
        last: InvocationRecord | None = None

        def page(next_from: InvocationRecord | None) -> dict[str, Any]:
            next_cursor = (
                None if next_from is None else encode_cursor(order, next_from.seq, next_from.id)
            )
            return {"invocations": [invocation_view(x) for x in found], "next_cursor": next_cursor}

        while True:
            recs = await engine.store.list_invocations(
                statuses=statuses.store_statuses,
                service=service,
                key=key,
                after=after,
                limit=batch,
                newest_first=newest_first,
            )
            scanned += len(recs)
            for r in recs:
                if wanted(r):
                    if len(found) == limit:  # one more matches: the page is full, not the last
                        return page(found[-1])
                    found.append(r)
                last = r
                after = (r.seq, r.id)
            if len(recs) < batch:
                return page(None)  # the store has nothing more
            if scanned >= SCAN_LIMIT:
                return page(last)  # enough read for one request: go on from here

    @router.get(
        "/invocations/{invocation_id}",
        response_model=InvocationDetail,
        response_model_exclude_unset=True,
        responses=errors(404),
    )
    async def get_invocation(invocation_id: str) -> dict[str, Any]:
        """An invocation with its journal (each entry with ``at``, its commit time, and its
        completion) and its failed attempts (``retries``)."""
        try:
            rec, entries, completions = await engine.describe(invocation_id)
        except OrchestratorError as exc:
            raise refused(exc) from None
        waits = engine.limits.waits_for(rec, entries)
        return {
            **invocation_view(rec),
            "journal": journal_view(entries, completions),
            "retries": retries_view(rec),
            **({"waiting_for_limit": waits} if waits is not None else {}),
        }

    async def _act(action: str, invocation_id: str) -> dict[str, Any]:
        try:
            rec = await getattr(engine, action)(invocation_id)
        except OrchestratorError as exc:
            raise refused(exc) from None
        return invocation_view(rec)

    acts = errors(404, 409, 503)

    @router.patch("/invocations/{invocation_id}/cancel", response_model=Invocation, responses=acts)
    async def cancel_invocation(invocation_id: str) -> dict[str, Any]:
        """Cancel gracefully: the handler's next await raises a terminal "cancelled" error
        (so compensations run); pending callees are cancelled down the call tree."""
        return await _act("cancel", invocation_id)

    @router.patch("/invocations/{invocation_id}/kill", response_model=Invocation, responses=acts)
    async def kill_invocation(invocation_id: str) -> dict[str, Any]:
        """Stop at once; the invocation ends ``killed`` and its caller gets a 409 failure."""
        return await _act("kill", invocation_id)

    @router.patch("/invocations/{invocation_id}/pause", response_model=Invocation, responses=acts)
    async def pause_invocation(invocation_id: str) -> dict[str, Any]:
        """Stop driving it (it keeps its key and timers) until resumed."""
        return await _act("pause", invocation_id)

    @router.patch(
        "/invocations/{invocation_id}/resume",
        response_model=Invocation,
        responses=errors(400, 404, 409, 503),
    )
    async def resume_invocation(
        invocation_id: str,
        deployment: str | None = Query(
            None, min_length=1, description="latest, keep (the default), or a deployment id"
        ),
    ) -> dict[str, Any]:
        """Resume a paused invocation with a fresh retry budget, on its own deployment or
        on the one ``deployment`` names (400: unknown, or not serving its handler)."""
        try:
            rec = await engine.resume(invocation_id, deployment)
        except OrchestratorError as exc:
            raise refused(exc) from None
        return invocation_view(rec)

    @router.patch(
        "/invocations/{invocation_id}/purge", response_model=IdOnly, responses=errors(404, 409)
    )
    async def purge_invocation(invocation_id: str) -> dict[str, str]:
        """Delete a finished (completed or killed) invocation now, with its journal; its
        idempotency key (a workflow's id) becomes free. 409 while it is not finished."""
        try:
            await engine.purge(invocation_id)
        except OrchestratorError as exc:
            raise refused(exc) from None
        return {"id": invocation_id}

    return router
