"""``ritornello store ...``: create what a store needs before the first ``serve``."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from ritornello.orchestrator import ConfigError, load_settings
from ritornello.store import StoreError, open_store

store_app = typer.Typer(
    name="store", help="Create what a store needs (init).", no_args_is_help=True
)


@store_app.command("init")
def init(
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            metavar="URL",
            help="sqlite:///PATH.db or dynamodb://TABLE?region=&bucket=&partitions=",
        ),
    ] = None,
    config: Annotated[
        str | None, typer.Option("--config", metavar="FILE", help="a ritornello.toml file")
    ] = None,
) -> None:
    """Create the store: a DynamoDB table (on-demand, TTL) and its S3 bucket, or a SQLite
    file. Safe to run again: what exists is left as it is."""
    try:
        url = load_settings(config_file=config, store=store).store
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        lines = asyncio.run(_init(url))
    except (StoreError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for line in lines:
        typer.echo(line)


async def _init(url: str) -> list[str]:
    if url.startswith("dynamodb://"):
        from ritornello.store.dynamodb import DynamoStore

        return await DynamoStore.from_url(url).init()
    store = open_store(url)
    async with store:
        pass
    return [f"store {url} is ready ({store.partitions} partition(s))"]
