"""``ritornello state get|set``: a virtual object's (or workflow's) state over the admin API.

``set`` replaces the whole state of one key. With ``--version`` the write happens only if the
state is still at that version (what ``get`` printed), so an operator's edit never overwrites a
handler's write it has not seen; the server answers 409 otherwise.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from ritornello.orchestrator import JsonInputError, json_input_of

from ._client import (
    DEFAULT_ADMIN_URL,
    AdminTokenOpt,
    AdminUrlOpt,
    CliError,
    JsonOpt,
    admin,
    fails_cleanly,
    quote,
)
from ._output import fields, note, print_json, table

state_app = typer.Typer(name="state", help="Read and replace object state.", no_args_is_help=True)

ServiceArg = Annotated[str, typer.Argument(metavar="SERVICE", help="a virtual object or workflow")]
KeyArg = Annotated[str, typer.Argument(metavar="KEY", help="the object key or workflow id")]


def parse_json(text: str, what: str, *, check: bool = True) -> Any:
    """``text`` as JSON (``-`` reads stdin), or a CliError naming ``what``. With ``check``, a
    value the server would refuse (NaN, ``1e999``, an integer past 64 bits, nesting past 128
    levels: the engine's one check, ``json_input_of``) is refused here, before any request."""
    if text == "-":
        import sys

        text = sys.stdin.read()
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deep" if isinstance(exc, RecursionError) else exc
        raise CliError(f"{what} is not valid JSON ({reason}): {text[:80]!r}") from None
    if check:
        check_json(value, what)
    return value


def check_json(value: Any, what: str) -> None:
    """A CliError if the server would refuse ``value`` (``json_input_of``)."""
    try:
        json_input_of(value, what)
    except JsonInputError as exc:
        raise CliError(str(exc)) from None


@state_app.command("get")
@fails_cleanly
def get(
    service: ServiceArg,
    key: KeyArg,
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every state entry of SERVICE/KEY and the state's version."""
    with admin(admin_url, token) as api:
        body = api.get(f"/services/{quote(service)}/state/{quote(key)}")
    if as_json:
        return print_json(body)
    fields([("object", f"{service}/{key}"), ("version", str(body.get("version")))])
    state: dict[str, Any] = body.get("state") or {}
    table(None, ["name", "value"], [(name, json.dumps(v)) for name, v in sorted(state.items())])


@state_app.command("set")
@fails_cleanly
def set_state(
    service: ServiceArg,
    key: KeyArg,
    new_state: Annotated[
        str, typer.Argument(metavar="JSON", help='{"name": value, ...}, or - for stdin')
    ],
    version: Annotated[
        str | None,
        typer.Option(
            "--version", metavar="VERSION", help="write only if the state is at this version"
        ),
    ] = None,
    admin_url: AdminUrlOpt = DEFAULT_ADMIN_URL,
    token: AdminTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Replace the whole state of SERVICE/KEY with JSON (an object: name -> value)."""
    value = parse_json(new_state, "the state", check=False)
    if not isinstance(value, dict):
        raise CliError('the state must be a JSON object: {"name": value, ...}')
    for name, item in value.items():  # each value is checked on its own, as the server does
        check_json(item, f"state value {name!r}")
    body = {"object_key": key, "new_state": value, "version": version}
    with admin(admin_url, token) as api:
        answer = api.send("POST", f"/services/{quote(service)}/state", body)
    if as_json:
        return print_json(answer)
    new_version = answer.get("version") if isinstance(answer, dict) else None
    note(f"state of {service}/{key} replaced (version {new_version})")
