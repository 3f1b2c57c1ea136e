"""The ``ritornello`` command (typer + rich; the commands are in ``_app``).

``main`` starts a plain ``ritornello serve`` — nothing but serve's own options, each with a
value (``_plain`` tells one) — without importing typer: typer, rich, the operator commands and
pydantic (which typer converts options with) are about a fifth of a second, and a restarted
orchestrator has work in flight waiting for it. Anything else (``--help``, an unknown or
malformed option, a setting that does not load, every other command) goes through typer, which
reports it. Without the ``server`` extra (typer, uvicorn, FastAPI, ...) a command that needs
it ends with one line naming the extra to install, not an import traceback.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ritornello.cli._plain import WRITER_MODULE, plain_serve

if TYPE_CHECKING:
    from ritornello.cli._app import app

__all__ = ["app", "main"]


#: Top-level modules of the ``server`` extra's packages (pyproject.toml) and of what they
#: bring along: without the extra, the commands that need one of them say how to install it.
SERVER_MODULES = frozenset(
    {
        "boto3", "botocore", "click", "croniter", "fastapi", "google", "h2", "httptools",
        "httpx", "mangum", "orjson", "prometheus_client", "pydantic", "pynamodb", "rich",
        "starlette", "typer", "uvicorn", "uvloop",
    }
)  # fmt: skip


def main() -> None:
    """Console-script entry point."""
    try:
        _main()
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in SERVER_MODULES:
            raise
        sys.stderr.write(
            f"error: this command needs the server extra ({missing} is not installed): "
            "pip install 'ritornello[server]'\n"
        )
        raise SystemExit(1) from None


def _main() -> None:
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
