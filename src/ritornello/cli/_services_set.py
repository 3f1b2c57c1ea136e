"""``ritornello services set SERVICE --public false --journal-retention 30d ...``: change a
service's settings (``PATCH /services/{service}``), and the settings lines ``services show``
prints."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ._client import DEFAULT_ADMIN_URL, AdminTokenOpt, AdminUrlOpt, JsonOpt, admin, fails_cleanly
from ._client import quote as _quote
from ._output import fields, print_json

#: The option of each PATCH field (Restate's names, dashes for underscores).
_DURATIONS = (
    "journal_retention",
    "idempotency_retention",
    "workflow_completion_retention",
    "inactivity_timeout",
    "abort_timeout",
)
_DURATION_HELP = "a duration: 30d, 1h 30m, 500ms, PT10S"


def settings_lines(svc: dict[str, Any]) -> None:
    """The settings of a service as ``services show`` prints them; overridden ones marked."""
    overridden = set(svc.get("overrides") or ())

    def mark(name: str, value: Any) -> Any:
        if value is None:
            return None
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return f"{text} (set by an operator)" if name in overridden else text

    meta = svc.get("metadata") or {}
    fields(
        [
            ("description", svc.get("documentation")),
            ("public", mark("public", svc.get("public"))),
            *((name.replace("_", " "), mark(name, svc.get(name))) for name in _DURATIONS),
            ("metadata", ", ".join(f"{k}={v}" for k, v in sorted(meta.items())) or None),
        ]
    )


def _bool(text: str | None) -> bool | None:
    if text is None:
        return None
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    raise typer.BadParameter("use true or false", param_hint="--public")


@fails_cleanly
def set_service(
    name: Annotated[str, typer.Argument(metavar="SERVICE")],
    public: Annotated[
        str | None,
        typer.Option("--public", metavar="true|false", help="false: the ingress refuses it"),
    ] = None,
    journal_retention: Annotated[
        str | None, typer.Option(metavar="DURATION", help=_DURATION_HELP)
    ] = None,
    idempotency_retention: Annotated[
        str | None, typer.Option(metavar="DURATION", help=_DURATION_HELP)
    ] = None,
    workflow_completion_retention: Annotated[
        str | None,
        typer.Option(metavar="DURATION", help="a workflow run's: 30d, 1h 30m, 500ms, PT10S"),
    ] = None,
    inactivity_timeout: Annotated[
        str | None, typer.Option(metavar="DURATION", help=_DURATION_HELP)
    ] = None,
    abort_timeout: Annotated[
        str | None, typer.Option(metavar="DURATION", help=_DURATION_HELP)
    ] = None,
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a service's settings. The change is stored, outlives restarts and
    re-registrations, and beats what the code declares until changed again."""
    body: dict[str, Any] = {
        "public": _bool(public),
        "journal_retention": journal_retention,
        "idempotency_retention": idempotency_retention,
        "workflow_completion_retention": workflow_completion_retention,
        "inactivity_timeout": inactivity_timeout,
        "abort_timeout": abort_timeout,
    }
    body = {k: v for k, v in body.items() if v is not None}
    if not body:
        raise typer.BadParameter(
            "give at least one setting: --public, --journal-retention, --idempotency-retention, "
            "--workflow-completion-retention, --inactivity-timeout or --abort-timeout"
        )
    with admin(admin_url, token) as api:
        svc = api.send("PATCH", f"/services/{_quote(name)}", body)
    if as_json:
        return print_json(svc)
    fields([("service", svc["name"])])
    settings_lines(svc)
