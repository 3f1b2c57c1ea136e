"""The ``ritornello`` command (typer + rich; the commands are in ``_app``).

``main`` starts a plain ``ritornello serve`` — nothing but serve's own options, each with a
value — without importing typer: typer, rich, the operator commands and pydantic (which typer
converts options with) are about a fifth of a second, and a restarted orchestrator has work
in flight waiting for it. Anything else (``--help``, an unknown or malformed option, a setting
that does not load, every other command) goes through typer, which reports it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ritornello.cli._app import app

__all__ = ["app", "main"]

#: The SQLite writer process's module (``store/_sqlite_process.py``), prestarted by ``main``.
WRITER_MODULE = "ritornello.store._sqlite_process"

#: serve's options (``--name VALUE`` or ``--name=VALUE``) -> ``load_settings`` arguments.
_SERVE_OPTIONS = {
    "--store": "store",
    "--ingress-port": "ingress_port",
    "--admin-port": "admin_port",
    "--config": "config_file",
    "--host": "host",
}


def plain_serve(args: list[str]) -> dict[str, Any] | None:
    """The settings overrides of ``serve ARGS`` when ARGS are only serve's own options, each
    with a non-empty value not starting with ``-`` (ports: digits); otherwise None."""
    if not args or args[0] != "serve":
        return None
    found: dict[str, Any] = {}
    rest = iter(args[1:])
    for arg in rest:
        name, eq, value = arg.partition("=")
        if name not in _SERVE_OPTIONS:
            return None
        if not eq:
            value = next(rest, "")
        if not value or value.startswith("-"):
            return None
        found[_SERVE_OPTIONS[name]] = value
    for port in ("ingress_port", "admin_port"):
        if port in found:
            if not (found[port].isascii() and found[port].isdigit()):
                return None
            found[port] = int(found[port])
    return found


def main() -> None:
    """Console-script entry point."""
    options = plain_serve(sys.argv[1:])
    if options is not None:
        from ritornello import _child

        # The SQLite writer process starts up on the other core while serve imports.
        _child.prestart(WRITER_MODULE)
        from ritornello.cli._serve import serve_plainly

        if serve_plainly(options):
            return
    from ritornello.cli._app import app

    app()


def __getattr__(name: str) -> Any:
    if name == "app":  # the typer app, imported on first use
        from ritornello.cli._app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
