"""``ritornello check``: run the invariant checker (``orchestrator/check/``) over a store.

A SQLite store is opened read-only (no lock taken), so the check can run beside a live
orchestrator; exit status 0 when clean, 1 when anything is violated, 2 when the store cannot
be read.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ritornello.orchestrator import ConfigError, load_settings
from ritornello.orchestrator.check import CheckReport, check_store
from ritornello.store import StoreError, open_store


def readonly_url(url: str) -> str:
    """``url`` with ``readonly=1`` added if it is a SQLite URL that does not say."""
    if not url.startswith("sqlite:") or "readonly=" in url.partition("?")[2]:
        return url
    return url + ("&" if "?" in url else "?") + "readonly=1"


def check(
    store: Annotated[
        str | None,
        typer.Option("--store", metavar="URL", help="sqlite:///PATH.db or dynamodb://TABLE?..."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", metavar="", help="print the report as JSON")
    ] = False,
    expect_terminal: Annotated[
        bool,
        typer.Option(
            "--expect-terminal",
            metavar="",
            help="every invocation (or every --expect id) must be finished",
        ),
    ] = False,
    expect: Annotated[
        list[str] | None,
        typer.Option(
            "--expect", metavar="ID", help="an acknowledged invocation id that must exist (repeat)"
        ),
    ] = None,
    recheck: Annotated[
        float,
        typer.Option(
            "--recheck",
            metavar="SECONDS",
            help="beside a live orchestrator: check again after SECONDS, keep what recurs",
        ),
    ] = 0.0,
    config: Annotated[
        str | None, typer.Option("--config", metavar="FILE", help="a ritornello.toml file")
    ] = None,
) -> None:
    """Check the store's invariants (journals, states, calls, liveness, timers, keys,
    schedules)."""
    try:
        url = load_settings(config_file=config, store=store).store
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        report = asyncio.run(_check(readonly_url(url), expect, expect_terminal, recheck))
    except (StoreError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        payload = {
            "ok": report.ok,
            "invocations": report.invocations,
            "entries": report.entries,
            "completions": report.completions,
            "timers": report.timers,
            "schedules": report.schedules,
            "overdue_timers": report.overdue_timers,
            "unlisted": report.unlisted,
            "violations": [asdict(v) for v in report.violations],
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        _print(report)
    if not report.ok:
        raise typer.Exit(1)


async def _check(
    url: str, expect: list[str] | None, expect_terminal: bool, recheck: float
) -> CheckReport:
    async with open_store(url) as store:
        return await check_store(
            store, expect_ids=expect or None, expect_terminal=expect_terminal, recheck_s=recheck
        )


def _print(report: CheckReport) -> None:
    console = Console(soft_wrap=True)
    counts = (
        f"{report.invocations} invocations, {report.entries} entries, {report.timers} timers,"
        f" {report.schedules} schedules checked"
    )
    if report.ok:
        console.print(f"clean: {counts}", markup=False, highlight=False)
        return
    table = Table(
        "kind", "invocation/schedule", "message", title=f"{len(report.violations)} violations"
    )
    for v in report.violations:
        table.add_row(v.kind, v.invocation_id or "-", v.message)
    console.print(table)
    console.print(f"{counts}", markup=False, highlight=False)
