"""``ritornello limits ...``: named limits over the admin API (``/limits``, docs/limits.md).

``set`` replaces a limit's whole definition with the flags given (a flag left out is not kept
from the old definition); the server checks the values (``parse_limit``), so a bad one is its
400 and its words. ``delete`` asks first unless ``--yes``, like the bulk invocation actions.
``list`` fits 80 columns: a borderless table whose two-word headers and burst take a second
line when one line each would be wider than the terminal.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich import box
from rich.measure import Measurement
from rich.table import Table

from ._client import (
    DEFAULT_ADMIN_URL,
    AdminTokenOpt,
    AdminUrlOpt,
    ApiError,
    CliError,
    JsonOpt,
    admin,
    fails_cleanly,
    quote,
    reworded,
)
from ._output import cell, console, duration, fields, note, print_json, when

limits_app = typer.Typer(
    name="limits",
    help="Named limits: how many limited steps run at once, and how often.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="the limit's name")]


def rate_text(limit: dict[str, Any]) -> str | None:
    """``50/1s burst 10`` (the burst only when above 1), or None without a rate."""
    rate = limit.get("rate")
    if rate is None:
        return None
    number = str(int(rate)) if float(rate).is_integer() else str(rate)  # 50, 0.5, 1000000
    text = f"{number}/{limit.get('per') or '1s'}"
    burst = limit.get("burst")
    return f"{text} burst {burst}" if burst is not None and burst > 1 else text


def _last_minute(value: int | None) -> str:
    """A last-minute count (null: this orchestrator does not count that limit)."""
    return "- (not counted by this orchestrator)" if value is None else str(value)


_COLUMNS = ("name", "concurrency", "rate", "source", "in flight", "waiting", "oldest wait")
_RIGHT = frozenset({"concurrency", "in flight", "waiting", "oldest wait"})


def _grid(limits: list[dict[str, Any]], *, compact: bool) -> Table:
    """The limits as a borderless table; ``compact`` breaks the two-word headers and the
    rate's burst onto a second line, so a name of 24 characters still fits 80 columns."""
    out = Table(
        box=box.SIMPLE_HEAVY,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        header_style="bold",
    )
    for col in _COLUMNS:  # only the name may fold: every other cell is short
        out.add_column(
            col.replace(" ", "\n") if compact and col != "name" else col,
            overflow="fold",
            no_wrap=col != "name",
            justify="right" if col in _RIGHT else "left",
        )
    for lim in limits:
        rate = rate_text(lim)
        out.add_row(
            *(
                cell(c)
                for c in (
                    lim["name"],
                    None if lim.get("concurrency") is None else str(lim["concurrency"]),
                    rate.replace(" burst", "\nburst") if compact and rate else rate,
                    lim.get("source"),
                    str(lim.get("in_flight", 0)),
                    str(lim.get("waiting", 0)),
                    duration(lim.get("oldest_wait_ms")),
                )
            )
        )
    return out


def _table(limits: list[dict[str, Any]]) -> None:
    """The limits on stdout, no wider than the terminal (80 columns and up)."""
    out = console()
    grid = _grid(limits, compact=False)
    natural = Measurement.get(out, out.options.update(max_width=10_000), grid).maximum
    out.print(grid if natural <= out.width else _grid(limits, compact=True))


def _show(limit: dict[str, Any]) -> None:
    fields(
        [
            ("name", limit["name"]),
            ("concurrency", limit.get("concurrency")),
            ("rate", rate_text(limit)),
            ("per key", "yes" if limit.get("per_key") else None),
            ("source", limit.get("source")),
            ("version", limit.get("version")),
            ("updated", when(limit.get("updated_at"))),
            ("in flight", str(limit.get("in_flight", 0))),
            ("waiting", str(limit.get("waiting", 0))),
            ("oldest wait", duration(limit.get("oldest_wait_ms"))),
            ("granted (1 min)", _last_minute(limit.get("granted_last_minute"))),
            ("refused (1 min)", _last_minute(limit.get("refused_last_minute"))),
        ]
    )


@limits_app.command("list")
@fails_cleanly
def list_limits(
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every limit (admin API, ritornello.toml, code) and how it is used now."""
    with admin(admin_url, token) as api:
        body = api.get("/limits")
    if as_json:
        return print_json(body)
    if not body["limits"]:
        return note("no limit is defined: ritornello limits set NAME --concurrency N")
    _table(body["limits"])


@limits_app.command("show")
@fails_cleanly
def show(
    name: NameArg,
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One limit: its definition, where it comes from, and its figures."""
    with admin(admin_url, token) as api:
        limit = api.get(f"/limits/{quote(name)}")
    if as_json:
        return print_json(limit)
    _show(limit)


@limits_app.command("set")
@fails_cleanly
def set_limit(
    name: NameArg,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", metavar="N", help="at most this many permits out at once"),
    ] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", metavar="R", help="at most this many grants per --per")
    ] = None,
    per: Annotated[
        str | None,
        typer.Option("--per", metavar="PERIOD", help="the rate's period: 1s, 1m, 1h or 1d [1s]"),
    ] = None,
    burst: Annotated[
        int | None,
        typer.Option("--burst", metavar="N", help="grants at once after a quiet spell [1]"),
    ] = None,
    per_key: Annotated[
        bool,
        typer.Option("--per-key", metavar="", help="one instance per limit key, each with it all"),
    ] = False,
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create or replace a limit with the flags given (a flag left out is not kept)."""
    given = {"concurrency": concurrency, "rate": rate, "per": per, "burst": burst}
    body: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if per_key:
        body["per_key"] = True
    if not body:
        raise CliError("give --concurrency, --rate (with --per and --burst), or both")
    with admin(admin_url, token) as api:
        resp = api.request("PUT", f"/limits/{quote(name)}", json_body=body)
    limit = resp.json()
    if as_json:
        return print_json(limit)
    note(f"{'created' if resp.status_code == 201 else 'replaced'} limit {name}")
    _show(limit)


@limits_app.command("delete")
@fails_cleanly
def delete(
    name: NameArg,
    force: Annotated[
        bool,
        typer.Option("--force", metavar="", help="delete even while permits are out or waited for"),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", metavar="", help="act without asking")
    ] = False,
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove the admin API's definition (ritornello.toml's or the code's applies again).
    Refused while permits are out or waited for, unless --force (those invocations fail)."""
    if not yes:
        if as_json:
            raise CliError(f"add --yes to delete limit {name}")
        typer.confirm(f"delete limit {name}?", abort=True, err=True)
    with admin(admin_url, token) as api:
        try:
            body = api.send("DELETE", f"/limits/{quote(name)}", force="true" if force else None)
        except ApiError as exc:
            raise reworded(exc, 409, {"?force=true": "--force"}) from None
    if as_json:
        return print_json(body)
    note(f"deleted limit {name}")
