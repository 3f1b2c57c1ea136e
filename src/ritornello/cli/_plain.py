"""A plain ``ritornello serve``, recognised without typer (see ``ritornello.cli``).

Standard library only: ``ritornello.cli.main`` imports it before deciding whether typer is
needed. ``_serve`` takes ``WRITER_MODULE`` from here too, so neither it nor ``_app`` imports
``ritornello.cli`` itself (the package imports them, never the reverse).
"""

from __future__ import annotations

from typing import Any

#: The SQLite writer process's module (``store/_sqlite_process.py``), prestarted by ``main``.
WRITER_MODULE = "ritornello.store._sqlite_process"

#: serve's options (``--name VALUE`` or ``--name=VALUE``) -> ``load_settings`` arguments.
_SERVE_OPTIONS = {
    "--store": "store",
    "--ingress-port": "ingress_port",
    "--admin-port": "admin_port",
    "--config": "config_file",
    "--host": "host",
    "--log-format": "log_format",
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
