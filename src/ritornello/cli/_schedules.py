"""``ritornello schedules ...``: cron schedules over the admin API (``/schedules``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ._client import (
    DEFAULT_ADMIN_URL,
    AdminTokenOpt,
    AdminUrlOpt,
    ApiError,
    JsonOpt,
    admin,
    fails_cleanly,
    quote,
    reworded,
)
from ._output import fields, narrow, note, print_json, table, when
from ._state import parse_json

schedules_app = typer.Typer(
    name="schedules", help="Cron schedules that invoke handlers.", no_args_is_help=True
)

IdArg = Annotated[str, typer.Argument(metavar="ID", help="a schedule id (sch_...)")]


def _show(s: dict[str, Any]) -> None:
    fields(
        [
            ("id", s["id"]),
            ("cron", s.get("cron")),
            ("timezone", s.get("timezone")),
            ("target", s.get("target")),
            ("key", s.get("key")),
            ("input", s.get("input")),
            ("overlap", s.get("overlap")),
            ("paused", "yes" if s.get("paused") else "no"),
            ("created", when(s.get("created_at"))),
            ("last fire", when(s.get("last_fire_at"))),
            ("next fire", when(s.get("next_fire_at"))),
            ("last invocation", s.get("last_invocation_id")),
        ]
    )


@schedules_app.command("create")
@fails_cleanly
def create(
    cron: Annotated[
        str, typer.Option("--cron", metavar="EXPR", help="a cron expression, e.g. '*/5 * * * *'")
    ],
    target: Annotated[
        str, typer.Option("--target", metavar="TARGET", help="Service/handler or Object/handler")
    ],
    key: Annotated[
        str | None, typer.Option("--key", metavar="KEY", help="object key / workflow id")
    ] = None,
    input_json: Annotated[
        str | None, typer.Option("--input", metavar="JSON", help="the handler's input, as JSON")
    ] = None,
    overlap: Annotated[
        str,
        typer.Option(
            "--overlap", metavar="skip|allow", help="skip: no fire while the last one runs; allow"
        ),
    ] = "skip",
    timezone: Annotated[
        str, typer.Option("--timezone", metavar="ZONE", help="IANA zone for the cron")
    ] = "UTC",
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a schedule: each fire is an ordinary invocation of TARGET."""
    body = {
        "cron": cron,
        "target": target,
        "key": key,
        "input": None if input_json is None else parse_json(input_json, "--input"),
        "overlap": overlap,
        "timezone": timezone,
    }
    with admin(admin_url, token) as api:
        try:
            sched = api.send("POST", "/schedules", body)
        except ApiError as exc:
            raise reworded(exc, 400, {": give a key": ": give a key with --key"}) from None
    if as_json:
        return print_json(sched)
    note(f"created schedule {sched['id']}")
    _show(sched)


@schedules_app.command("list")
@fails_cleanly
def list_schedules(
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every schedule."""
    with admin(admin_url, token) as api:
        body = api.get("/schedules")
    if as_json:
        return print_json(body)
    short = narrow()  # times as mm-dd HH:MM, so each stays on one line
    rows = [
        (
            s["id"],
            s.get("cron"),
            s.get("target"),
            s.get("key"),
            "paused" if s.get("paused") else "active",
            when(s.get("last_fire_at"), short=short),
            when(s.get("next_fire_at"), short=short),
        )
        for s in body["schedules"]
    ]
    cols = ["id", "cron", "target", "key", "state", "last fire", "next fire"]
    whole = ("state", "last fire", "next fire") if short else ("state",)
    table(None, cols, rows, whole=whole)


@schedules_app.command("show")
@fails_cleanly
def show(
    schedule_id: IdArg,
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One schedule."""
    with admin(admin_url, token) as api:
        sched = api.get(f"/schedules/{quote(schedule_id)}")
    if as_json:
        return print_json(sched)
    _show(sched)


def _change(method: str, verb: str, suffix: str) -> None:
    """Register ``schedules VERB ID``."""

    @schedules_app.command(verb, help=f"{verb.capitalize()} a schedule.")
    @fails_cleanly
    def command(
        schedule_id: IdArg,
        admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
        token: AdminTokenOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        with admin(admin_url, token) as api:
            body = api.send(method, f"/schedules/{quote(schedule_id)}{suffix}")
        if as_json:
            return print_json(body if body is not None else {"id": schedule_id})
        note(f"{verb}d schedule {schedule_id}")  # paused, resumed, deleted


_change("PATCH", "pause", "/pause")
_change("PATCH", "resume", "/resume")
_change("DELETE", "delete", "")
