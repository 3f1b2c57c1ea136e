"""The ``ritornello`` command's typer app: every command, and the typer side of ``serve``
and ``dev`` (``ritornello.cli.main`` starts a plain ``serve`` without it)."""

from __future__ import annotations

import json
import logging
from collections.abc import Coroutine
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer

from ritornello.cli._call import call
from ritornello.cli._check import check
from ritornello.cli._deployments import deployments_app, services_app
from ritornello.cli._help import Group
from ritornello.cli._invocations import invocations_app
from ritornello.cli._limits_cmd import limits_app
from ritornello.cli._restart import registered as _restart_commands
from ritornello.cli._schedules import schedules_app
from ritornello.cli._serve import PortInUseError, configure_logging, run_loop
from ritornello.cli._state import state_app
from ritornello.cli._store import store_app
from ritornello.orchestrator import ConfigError, Engine, Settings, load_settings

app = typer.Typer(
    name="ritornello",
    help="Ritornello: durable execution for async Python handlers.",
    no_args_is_help=True,
    add_completion=False,
    cls=Group,
)


def _show_version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"ritornello {version('ritornello')}")
        except PackageNotFoundError:  # a bare source tree, not installed
            typer.echo("ritornello (not installed: no version)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            metavar="",
            is_eager=True,
            callback=_show_version,
            help="print the version and exit",
        ),
    ] = False,
) -> None:
    """Ritornello: durable execution for async Python handlers."""


assert _restart_commands  # restart-as-new and resume, on invocations_app (cli/_restart.py)
app.add_typer(store_app)
app.command("check")(check)
for _group in (deployments_app, services_app, invocations_app, state_app, schedules_app):
    app.add_typer(_group)
app.add_typer(limits_app)
app.command("call")(call)

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        metavar="URL",
        help="sqlite:///PATH.db or dynamodb://TABLE?region=&bucket= [./.ritornello/...]",
    ),
]
IngressOpt = Annotated[
    int | None, typer.Option("--ingress-port", metavar="PORT", help="ingress port [8080]")
]
AdminOpt = Annotated[
    int | None, typer.Option("--admin-port", metavar="PORT", help="admin API port [9070]")
]
ConfigOpt = Annotated[
    str | None, typer.Option("--config", metavar="FILE", help="a ritornello.toml file")
]
HostOpt = Annotated[
    str | None, typer.Option("--host", metavar="ADDRESS", help="address to bind [127.0.0.1]")
]
LogFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--log-format", metavar="FORMAT", help="text, or json: one JSON object a line [text]"
    ),
]


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """Run the orchestrator; a store that cannot be opened (missing table, newer schema,
    locked file) or a port in use is a one-line error and exit status 1, not a traceback."""
    from ritornello.store import StoreError

    try:
        run_loop(coro)
    except (StoreError, PortInUseError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _settings(**kw: Any) -> Settings:
    try:
        settings = load_settings(**kw)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    configure_logging(settings)
    return settings


@app.command()
def serve(
    store: StoreOpt = None,
    ingress_port: IngressOpt = None,
    admin_port: AdminOpt = None,
    config: ConfigOpt = None,
    host: HostOpt = None,
    log_format: LogFormatOpt = None,
) -> None:
    """Run the orchestrator: ingress, admin API and the engine."""
    _serve(None, store, ingress_port, admin_port, config, host, log_format)


@app.command()
def dev(
    app_path: Annotated[str, typer.Argument(metavar="APP.py", help="file defining an Endpoint")],
    store: StoreOpt = None,
    ingress_port: IngressOpt = None,
    admin_port: AdminOpt = None,
    config: ConfigOpt = None,
    host: HostOpt = None,
    log_format: LogFormatOpt = None,
) -> None:
    """Orchestrator plus APP.py's endpoint in one process, registered as inproc://app."""
    _serve(app_path, store, ingress_port, admin_port, config, host, log_format)


def _serve(
    app_path: str | None,
    store: str | None,
    ingress_port: int | None,
    admin_port: int | None,
    config: str | None,
    host: str | None,
    log_format: str | None,
) -> None:
    from ritornello.cli._serve import run_orchestrator

    settings = _settings(
        config_file=config,
        store=store,
        ingress_port=ingress_port,
        admin_port=admin_port,
        host=host,
        log_format=log_format,
    )
    if app_path is None:
        _run(run_orchestrator(settings))
        return
    from ritornello.cli._app_loader import load_endpoint

    endpoint = load_endpoint(app_path)

    async def register(engine: Engine) -> None:
        dep = await engine.register_deployment("inproc://app")
        names = [s["name"] for s in json.loads(dep.services)["services"]]
        typer.echo(f"serving {', '.join(names)} from {app_path} (deployment {dep.id})")

    _run(run_orchestrator(settings, inprocess={"app": endpoint.inprocess()}, on_started=register))


@app.command("lambda-emulator")
def lambda_emulator(
    app_path: Annotated[
        str,
        typer.Argument(
            metavar="APP.py",
            help="file defining lambda_handler or an Endpoint; or a Node module "
            "(.mjs, .js, .cjs) exporting handler",
        ),
    ],
    port: Annotated[int, typer.Option("--port", metavar="PORT", help="port to listen on")] = 9001,
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="address to bind")
    ] = "127.0.0.1",
    reserved_concurrency: Annotated[
        int | None,
        typer.Option(
            "--reserved-concurrency",
            min=1,
            metavar="N",
            help="throttle (429 TooManyRequestsException) past this many running at once",
        ),
    ] = None,
) -> None:
    """Serve Lambda's Invoke API on loopback for APP.py's lambda_handler, or a Node module's
    exported handler (local development)."""
    from ritornello.cli._lambda_emulator import serve as serve_emulator

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve_emulator(app_path, host=host, port=port, reserved_concurrency=reserved_concurrency)
