"""``ritornello call Service/handler [JSON]``: invoke a handler through the ingress.

The same paths as any client: ``POST /restate/call/{Service}/{handler}`` or, with ``--key``,
``/restate/call/{Object}/{key}/{handler}``; ``--send`` uses ``/restate/send/...`` (one-way,
answers at once with the invocation id). The output is the handler's JSON result on stdout; the
invocation id (``x-restate-id``) goes to stderr. A handler's terminal error is an error here:
its status and message, exit status 1.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ._client import (
    DEFAULT_INGRESS_URL,
    CliError,
    IngressTokenOpt,
    IngressUrlOpt,
    JsonOpt,
    fails_cleanly,
    ingress,
    quote,
)
from ._output import note, print_json
from ._state import parse_json


@fails_cleanly
def call(
    target: Annotated[str, typer.Argument(metavar="Service/handler", help="what to invoke")],
    body: Annotated[
        str | None, typer.Argument(metavar="[JSON]", help="the input, as JSON (- for stdin)")
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", metavar="KEY", help="virtual object key or workflow id")
    ] = None,
    send: Annotated[
        bool,
        typer.Option("--send", metavar="", help="one-way: answer with the invocation id at once"),
    ] = False,
    delay: Annotated[
        str | None,
        typer.Option(
            "--delay", metavar="DELAY", help="with --send: start later (10s, 500ms, PT1M)"
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", metavar="KEY", help="same key, same invocation"),
    ] = None,
    debounce: Annotated[
        str | None,
        typer.Option(
            "--debounce",
            metavar="DELAY",
            help="with --send and --idempotency-key: keep the last (5s)",
        ),
    ] = None,
    priority: Annotated[
        int | None,
        typer.Option(
            "--priority", metavar="N", min=0, max=10, help="waits for permits by it (0-10) [5]"
        ),
    ] = None,
    limit_key: Annotated[
        str | None,
        typer.Option("--limit-key", metavar="KEY", help="the instance of a per-key limit"),
    ] = None,
    ingress_url: IngressUrlOpt = DEFAULT_INGRESS_URL,
    token: IngressTokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Call a handler through the ingress and print its result."""
    service, sep, handler = target.partition("/")
    if not sep or not service or not handler or "/" in handler:
        raise CliError(f"target must be Service/handler, not {target!r}")
    if delay is not None and not send:
        raise CliError("--delay goes with --send")
    if debounce is not None and not (send and idempotency_key):
        raise CliError("--debounce goes with --send and --idempotency-key")
    value = None if body is None else parse_json(body, "input")
    segments = [service, *([key] if key is not None else []), handler]
    path = f"/restate/{'send' if send else 'call'}/" + "/".join(quote(s) for s in segments)
    headers = {"idempotency-key": idempotency_key} if idempotency_key else {}
    if priority is not None:
        headers["x-ritornello-priority"] = str(priority)
    if limit_key is not None:
        headers["x-ritornello-limit-key"] = limit_key
    given = {"delay": delay, "debounce": debounce}
    params = {k: v for k, v in given.items() if v is not None} or None
    with ingress(ingress_url, token) as api:
        resp = api.request(
            "POST", path, content=json.dumps(value).encode(), params=params, headers=headers
        )
    result = resp.json() if resp.content else None
    invocation_id = resp.headers.get("x-restate-id")
    if as_json:
        if send:
            return print_json(result)
        return print_json({"invocation_id": invocation_id, "output": result})
    if send:
        answer = result if isinstance(result, dict) else {}
        note(f"sent ({answer.get('status')})")
        return typer.echo(answer.get("invocationId"))
    if invocation_id:
        note(f"invocation {invocation_id}")
    print_json(result)
