"""``ritornello invocations restart-as-new`` and ``resume``: back from a bad deploy.

``restart-as-new ID [--from N] [--deployment latest|keep|ID] [--dry-run]`` starts a new
invocation with the same input that keeps the journal before entry N, on the chosen deployment
(``PATCH /invocations/{id}/restart-as-new``); ``--dry-run`` only replays the kept prefix
against that deployment's code and says whether it matches (exit status 1 when it does not).
``resume [ID...] [filters] [--deployment ...]`` resumes paused invocations, on another
deployment if asked. Both register on ``invocations_app``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ._client import DEFAULT_ADMIN_URL, AdminTokenOpt, AdminUrlOpt, JsonOpt, admin, fails_cleanly
from ._client import quote as quoted
from ._invocations import (
    Filters,
    HandlerOpt,
    KeyOpt,
    ServiceOpt,
    StatusOpt,
    _act,
    invocations_app,
)
from ._output import fields, note, print_json

DeploymentOpt = Annotated[
    str | None,
    typer.Option(
        "--deployment",
        metavar="latest|keep|ID",
        help="the deployment it goes on with: the newest serving its service, its own, or an id",
    ),
]


@invocations_app.command(
    "resume",
    help="Resume a paused invocation with a fresh retry budget; --deployment moves it to "
    "another deployment's code.",
)
@fails_cleanly
def resume(
    ids: Annotated[list[str] | None, typer.Argument(metavar="ID", show_default=False)] = None,
    deployment: DeploymentOpt = None,
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
    """Resume paused invocations (one, several, or every match of the filters)."""
    with admin(admin_url, token) as api:
        filters = Filters(statuses, service, handler, key)
        query = {"deployment": deployment} if deployment is not None else {}
        _act("resume", "resumed", ids or [], filters, yes, api, as_json, query)


@invocations_app.command(
    "restart-as-new",
    help="Start a new invocation with the same input that keeps the journal before entry N "
    "and runs on from there, on the chosen deployment (a completed or killed invocation "
    "only). --dry-run replays the kept entries against the deployment's code instead and "
    "exits 1 on a mismatch.",
)
@fails_cleanly
def restart_as_new(
    invocation_id: Annotated[str, typer.Argument(metavar="ID", show_default=False)],
    from_: Annotated[
        int | None,
        typer.Option(
            "--from",
            metavar="N",
            min=0,
            help="keep the journal before entry N (default: only the input)",
        ),
    ] = None,
    deployment: DeploymentOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            metavar="",
            help="replay the kept entries against the deployment's code; start nothing",
        ),
    ] = False,
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Restart a finished invocation as a new one (or dry-run it)."""
    params: dict[str, Any] = {"from": from_, "deployment": deployment}
    if dry_run:
        params["dry_run"] = "true"
    with admin(admin_url, token) as api:
        body = api.send("PATCH", f"/invocations/{quoted(invocation_id)}/restart-as-new", **params)
    if as_json:
        print_json(body)
    elif not dry_run:
        note(f"restarted {invocation_id} as {body['new_invocation_id']}")
    else:
        mismatch = body.get("mismatch") or {}
        fields(
            [
                ("deployment", body.get("deployment_id")),
                ("kept", f"{body.get('kept')} entries"),
                ("matches", "yes" if body.get("matches") else "no"),
                ("index", mismatch.get("index")),
                ("journal has", mismatch.get("journal_has")),
                ("handler did", mismatch.get("handler_did")),
                ("", body.get("message")),
            ]
        )
    if dry_run and not body.get("matches"):
        raise typer.Exit(1)


#: The commands this module registers on ``invocations_app`` (imported for that effect).
registered = ("resume", "restart-as-new")
