"""The ``ritornello`` command (typer + rich; the commands are in ``_app``).

``main`` starts a plain ``ritornello serve`` — nothing but serve's own options, each with a
value (``_plain`` tells one) — without importing typer: typer, rich, the operator commands and
pydantic (which typer converts options with) are about a fifth of a second, and a restarted
orchestrator has work in flight waiting for it. Anything else (``--help``, an unknown or
malformed option, a setting that does not load, every other command) goes through typer, which
reports it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ritornello.cli._plain import WRITER_MODULE, plain_serve

if TYPE_CHECKING:
    from ritornello.cli._app import app

__all__ = ["app", "main"]


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
