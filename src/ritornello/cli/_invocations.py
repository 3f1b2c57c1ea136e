"""``ritornello invocations ...``: list, show (with the journal timeline), export (the journal
as a file for replay tests), and the operator actions (cancel, kill, pause, resume, purge) on
one invocation or on every match of a filter.

Bulk actions list the matches first (every page), ask before acting (unless ``--yes``), then act
one by one with a progress bar. Each listed invocation is checked against the filters again on
this side, so a server that ignored a filter can never widen a bulk action. One failure does
not stop the others; any failure makes the exit status 1.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from ritornello.orchestrator import parse_delay
from ritornello.orchestrator.ingress import HttpError

from ._client import (
    DEFAULT_ADMIN_URL,
    AdminTokenOpt,
    AdminUrlOpt,
    ApiError,
    Client,
    CliError,
    JsonOpt,
    admin,
    fails_cleanly,
    pages,
    quote,
)
from ._output import console, fields, narrow, note, print_json, status, table, when
from ._timeline import draw

invocations_app = typer.Typer(
    name="invocations", help="List, inspect and steer invocations.", no_args_is_help=True
)

StatusOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--status",
        metavar="STATUS",
        help="pending, scheduled, running, suspended, backing-off, paused, succeeded, failed, "
        "killed, or completed (succeeded or failed); repeat, or comma-separate, for several",
    ),
]
#: ``--status completed`` (the server's older name) matches either outcome.
COMPLETED = frozenset({"completed", "succeeded", "failed"})
ServiceOpt = Annotated[
    str | None, typer.Option("--service", metavar="SERVICE", help="service name")
]
HandlerOpt = Annotated[
    str | None, typer.Option("--handler", metavar="HANDLER", help="handler name")
]
KeyOpt = Annotated[
    str | None, typer.Option("--key", metavar="KEY", help="virtual object key / workflow id")
]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="AGE|TIME",
        help="created at or after: an age (30s, 10m, 2h, 1d) or ISO time",
    ),
]
UntilOpt = Annotated[
    str | None,
    typer.Option(
        "--until", metavar="AGE|TIME", help="created before: an age (30s, 10m, 2h, 1d) or ISO time"
    ),
]


def instant_ms(text: str, now_ms: int | None = None) -> int:
    """Unix ms from an age before now (``10m``, ``1h30m``, ``PT10M``: the ingress's delay
    syntax, ``parse_delay``) or an ISO 8601 time (UTC unless it names its offset)."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    try:
        return now - parse_delay(text)
    except HttpError:
        pass  # not an age: a point in time, then
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither an age (30s, 10m, 2h, 1d) nor an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


class Filters:
    """The listing filters, as query parameters and as a check on each listed invocation."""

    def __init__(
        self,
        statuses: list[str] | None,
        service: str | None,
        handler: str | None,
        key: str | None,
        since: str | None = None,
        until: str | None = None,
    ) -> None:
        self.statuses = [s.strip() for raw in statuses or [] for s in raw.split(",") if s.strip()]
        self.service = service
        self.handler = handler
        self.key = key
        self.created_after = instant_ms(since) if since is not None else None
        self.created_before = instant_ms(until) if until is not None else None

    def any(self) -> bool:
        return bool(self.statuses) or any(
            v is not None
            for v in (self.service, self.handler, self.key, self.created_after, self.created_before)
        )

    def params(self) -> list[tuple[str, Any]]:
        query: list[tuple[str, Any]] = [("status", s) for s in self.statuses]
        for name in ("service", "handler", "key", "created_after", "created_before"):
            if getattr(self, name) is not None:
                query.append((name, getattr(self, name)))
        return query

    def match(self, inv: dict[str, Any]) -> bool:
        created = inv.get("created_at") or 0
        return (
            (
                not self.statuses
                or inv.get("status") in self.statuses
                or ("completed" in self.statuses and inv.get("status") in COMPLETED)
            )
            and all(
                getattr(self, name) is None or inv.get(name) == getattr(self, name)
                for name in ("service", "handler", "key")
            )
            and (self.created_after is None or created >= self.created_after)
            and (self.created_before is None or created < self.created_before)
        )


#: The listing's columns, and those it keeps on a narrow terminal (``narrow()``: the id alone
#: takes 30 of 80 columns), where ``created`` is shown short (``mm-dd HH:MM``).
LIST_COLUMNS = ("id", "target", "status", "attempt", "entries", "created", "modified")
NARROW_COLUMNS = ("id", "target", "status", "attempt", "created")


def _list_table(invocations: list[dict[str, Any]]) -> None:
    """The invocations as a table on stdout, as wide as the terminal allows."""
    short = narrow()
    cols = NARROW_COLUMNS if short else LIST_COLUMNS
    rows = []
    for i in invocations:
        values = {
            "id": i["id"],
            "target": i.get("target"),
            "status": status(i.get("status", "?")),
            "attempt": str(i.get("attempt", "")),
            "entries": str(i.get("journal_length", "")),
            "created": when(i.get("created_at"), short=short),
            "modified": when(i.get("modified_at")),
        }
        rows.append(tuple(values[c] for c in cols))
    table(None, cols, rows, whole=("status", "attempt", "entries", "created"))


@invocations_app.command("list")
@fails_cleanly
def list_invocations(
    statuses: StatusOpt = None,
    service: ServiceOpt = None,
    handler: HandlerOpt = None,
    key: KeyOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", min=1, max=1000, help="page size")
    ] = 50,
    order: Annotated[
        str,
        typer.Option(
            "--order", metavar="newest|oldest", help="newest (the default) or oldest first"
        ),
    ] = "newest",
    cursor: Annotated[
        str | None,
        typer.Option("--cursor", metavar="CURSOR", help="next_cursor of the previous page"),
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", metavar="", help="follow next_cursor to the end")
    ] = False,
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Invocations, newest first (or --order oldest), one page at a time (or --all)."""
    if order not in ("newest", "oldest"):
        raise typer.BadParameter(f"{order!r}: expected newest or oldest", param_hint="--order")
    filters = Filters(statuses, service, handler, key, since, until)
    params = [*filters.params(), ("order", order), ("limit", limit)]
    with admin(admin_url, token) as api:
        if every:
            body: dict[str, Any] = {
                "invocations": list(pages(api, "/invocations", "invocations", params)),
                "next_cursor": None,
            }
        else:
            query = params + ([("cursor", cursor)] if cursor is not None else [])
            body = api.request("GET", "/invocations", params=query).json()
    body["invocations"] = [i for i in body["invocations"] if filters.match(i)]
    if as_json:
        return print_json(body)
    _list_table(body["invocations"])
    if body.get("next_cursor") is not None:
        note(f"more: --cursor {body['next_cursor']}  (or --all)")


@invocations_app.command("show")
@fails_cleanly
def show(
    invocation_id: Annotated[str, typer.Argument(metavar="ID")],
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One invocation: its record, its journal as a timeline, and its failed attempts."""
    with admin(admin_url, token) as api:
        inv = api.get(f"/invocations/{quote(invocation_id)}")
    if as_json:
        return print_json(inv)
    fields(
        [
            ("id", inv["id"]),
            ("target", inv.get("target")),
            ("status", status(inv.get("status", "?"))),
            ("attempt", str(inv.get("attempt", ""))),
            ("deployment", inv.get("deployment_id")),
            ("invoked by", f"{inv.get('invoked_by')} {inv.get('caller_id') or ''}".strip()),
            ("idempotency key", inv.get("idempotency_key")),
            ("created", when(inv.get("created_at"))),
            ("modified", when(inv.get("modified_at"))),
            ("next retry", when(inv.get("next_retry_at"))),
            ("waiting on", inv.get("waiting_on")),
            ("waiting for limit", inv.get("waiting_for_limit")),
            ("last failure", inv.get("last_failure")),
            ("result", inv.get("result")),
        ]
    )
    console().print()
    draw(inv)


@invocations_app.command("export")
@fails_cleanly
def export(
    invocation_id: Annotated[str, typer.Argument(metavar="ID")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="FILE", help="write it to this file ('-' or none: stdout)"
        ),
    ] = None,
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
) -> None:
    """An invocation and its journal as JSON, for replay tests (docs/testing.md):
    ``ritornello.testing.replay(FILE, services)`` runs new code against it."""
    from ritornello.testing import HarnessError, History  # the harness only for this command

    with admin(admin_url, token) as api:
        detail = api.get(f"/invocations/{quote(invocation_id)}")
    try:
        history = History.from_admin(detail)
    except HarnessError as exc:
        raise CliError(f"the admin API's answer for {invocation_id} is no journal: {exc}") from None
    if output is None or str(output) == "-":
        sys.stdout.write(history.dumps())
        return
    try:
        output.write_text(history.dumps(), encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc.strerror or exc}") from None
    note(f"wrote {invocation_id} ({history.status}, {len(history.journal)} entries) to {output}")


def _act(
    action: str,
    past: str,
    ids: list[str],
    filters: Filters,
    yes: bool,
    api: Client,
    as_json: bool,
    query: dict[str, Any] | None = None,
) -> None:
    """Apply ``action`` to ``ids`` or to every invocation matching ``filters`` (``query``: the
    action's own query parameters)."""
    query = query or {}
    if ids and filters.any():
        raise CliError("give invocation IDs or filters, not both")
    if not ids and not filters.any():
        raise CliError("give an invocation ID, or filters (--status, --service, --handler, --key)")
    if len(ids) == 1:
        body = api.send("PATCH", f"/invocations/{quote(ids[0])}/{action}", **query)
        if as_json:
            return print_json(body)
        state = f" (now {body['status']})" if isinstance(body, dict) and "status" in body else ""
        return note(f"{past} {ids[0]}{state}")
    if not ids:
        listed = pages(api, "/invocations", "invocations", [*filters.params(), ("limit", 500)])
        matches = [i for i in listed if filters.match(i)]
        ids = [i["id"] for i in matches]
        if not ids:
            if as_json:
                return print_json({"done": [], "failed": []})
            return note(f"no invocation matches; nothing {past}")
        if not yes:
            if as_json:
                raise CliError(f"{len(ids)} invocation(s) match: add --yes to {action} them")
            _list_matches(matches)
            typer.confirm(f"{action} {len(ids)} invocation(s)?", abort=True, err=True)
    done: list[str] = []
    failed: list[dict[str, Any]] = []
    _each(
        lambda i: api.send("PATCH", f"/invocations/{quote(i)}/{action}", **query),
        ids,
        action,
        done,
        failed,
    )
    if as_json:
        print_json({"done": done, "failed": failed})
    else:
        note(f"{past} {len(done)} of {len(ids)} invocation(s)")
        for f in failed:
            note(f"  {f['id']}: {f['status']} {f['detail']}")
    if failed:
        raise typer.Exit(1)


def _list_matches(matches: list[dict[str, Any]]) -> None:
    """The invocations a bulk action would touch, on stderr (stdout stays for ``--json``)."""
    rows = [(i["id"], i.get("target"), status(i.get("status", "?"))) for i in matches]
    table(None, ["id", "target", "status"], rows, err=True)


def _each(
    fn: Callable[[str], Any],
    ids: list[str],
    action: str,
    done: list[str],
    failed: list[dict[str, Any]],
) -> None:
    """Call ``fn`` for each id under a progress bar on stderr; sort the ids into done/failed."""
    columns = (TextColumn(f"{action}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console(err=True), transient=True) as progress:
        task = progress.add_task(action, total=len(ids))
        for inv_id in ids:
            try:
                fn(inv_id)
                done.append(inv_id)
            except ApiError as exc:
                failed.append({"id": inv_id, "status": exc.status, "detail": exc.detail})
            progress.advance(task)


def _action(name: str, past: str, doc: str) -> None:
    """Register ``invocations NAME [ID...] [filters] [--yes]``."""

    @invocations_app.command(name, help=doc)
    @fails_cleanly
    def command(
        ids: Annotated[list[str] | None, typer.Argument(metavar="ID", show_default=False)] = None,
        statuses: StatusOpt = None,
        service: ServiceOpt = None,
        handler: HandlerOpt = None,
        key: KeyOpt = None,
        yes: Annotated[
            bool, typer.Option("--yes", "-y", metavar="", help="act without asking")
        ] = False,
        admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
        token: AdminTokenOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        with admin(admin_url, token) as api:
            _act(name, past, ids or [], Filters(statuses, service, handler, key), yes, api, as_json)


_action(
    "cancel",
    "cancelled",
    "Cancel gracefully: the handler's next await raises a terminal 'cancelled' error, so its "
    "compensations run; callees are cancelled too.",
)
_action("kill", "killed", "Stop at once; the invocation ends 'killed'.")
_action("pause", "paused", "Stop driving an invocation (it keeps its key and timers).")
_action("purge", "purged", "Forget finished invocations: their record, journal and result.")
