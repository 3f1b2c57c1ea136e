"""HTTP to the admin and ingress APIs for the operator commands: base URL, bearer token, errors.

The operator commands speak only HTTP (never the store or the engine), so they work against any
orchestrator: a local ``ritornello dev``, a container, or the admin Lambda.

Errors end a command with one line on stderr and exit status 1, never a traceback:

    CliError                 what the command prints as ``error: ...``
     ├── Unreachable         nothing answers at the URL (refused, DNS, timeout)
     └── ApiError            the server answered 4xx/5xx; carries its status and detail

``fails_cleanly`` turns them into that line; bulk commands catch ``ApiError`` per item instead.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

if TYPE_CHECKING:  # imported when a command runs: `ritornello serve` starts without it
    import httpx

DEFAULT_ADMIN_URL = "http://127.0.0.1:9070"
DEFAULT_INGRESS_URL = "http://127.0.0.1:8080"

AdminUrlOpt = Annotated[
    str,
    typer.Option(
        "--admin-url",
        metavar="URL",
        envvar="RITORNELLO_ADMIN_URL",
        help="admin API base URL",
        show_envvar=True,
    ),
]
IngressUrlOpt = Annotated[
    str,
    typer.Option(
        "--ingress-url",
        metavar="URL",
        envvar="RITORNELLO_INGRESS_URL",
        help="ingress base URL",
        show_envvar=True,
    ),
]
AdminTokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        metavar="TOKEN",
        envvar="RITORNELLO_ADMIN_TOKEN",
        help="bearer token for the admin API",
        show_envvar=True,
        show_default=False,
    ),
]
IngressTokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        metavar="TOKEN",
        envvar="RITORNELLO_INGRESS_TOKEN",
        help="bearer token for the ingress",
        show_envvar=True,
        show_default=False,
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", metavar="", help="print JSON for scripts instead of tables")
]


class CliError(Exception):
    """A failure the command reports as one line and exit status 1."""


class Unreachable(CliError):
    """Nothing answered at the API's URL."""


class ApiError(CliError):
    """The API answered with an error status; ``detail`` is the server's own explanation."""

    def __init__(self, status: int, detail: str, url: str) -> None:
        super().__init__(f"{status} from {url}: {detail}")
        self.status = status
        self.detail = detail


def reworded(exc: ApiError, status: int, advice: dict[str, str]) -> CliError:
    """The server's error in the CLI's terms: where a ``status`` answer's advice names an API
    field or query parameter (``?force=true``, ``give a key``), the flag instead. Anything
    else is returned as it is."""
    if exc.status != status:
        return exc
    text = str(exc)
    for api_words, cli_words in advice.items():
        text = text.replace(api_words, cli_words)
    return CliError(text)


def _detail(resp: httpx.Response) -> str:
    """The server's explanation: FastAPI's ``detail`` (a string or validation errors), the
    ingress's ``message``, or the raw text."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip() or resp.reason_phrase
    if isinstance(body, dict):
        detail = body.get("detail", body.get("message"))
        if isinstance(detail, list):  # pydantic validation errors
            return "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                if isinstance(e, dict)
                else str(e)
                for e in detail
            )
        if detail is not None:
            return detail if isinstance(detail, str) else json.dumps(detail)
    return json.dumps(body)


class Client:
    """One API (admin or ingress) at ``base_url``; a context manager that closes its pool.

    Invariant: every response that is not 2xx raises ``ApiError``; every transport failure
    raises ``Unreachable`` naming the URL, so callers only ever see ``CliError``.
    """

    def __init__(
        self, base_url: str, token: str | None = None, *, what: str, timeout: float | None = 30
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.what = what
        import httpx

        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; the response when 2xx."""
        import httpx

        hdrs = dict(headers or {})
        if json_body is not None:
            content = json.dumps(json_body).encode()
        if content is not None:
            hdrs.setdefault("content-type", "application/json")
        try:
            resp = self._http.request(method, path, content=content, params=params, headers=hdrs)
        except httpx.TimeoutException:
            raise Unreachable(
                f"the {self.what} at {self.base_url} did not answer in time"
            ) from None
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise Unreachable(
                f"cannot reach the {self.what} at {self.base_url} ({reason})"
            ) from None
        if resp.status_code == 401:
            env = (
                "RITORNELLO_ADMIN_TOKEN" if self.what == "admin API" else "RITORNELLO_INGRESS_TOKEN"
            )
            raise ApiError(401, f"{_detail(resp)} (give a token with --token or {env})", path)
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, _detail(resp), f"{method} {path}")
        return resp

    def get(self, path: str, **params: Any) -> Any:
        """GET and parse JSON; ``None``-valued params are left out."""
        query = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=query).json()

    def send(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """A write (POST/PATCH/DELETE); the parsed JSON answer, or ``None`` when empty."""
        query = {k: v for k, v in params.items() if v is not None}
        resp = self.request(method, path, json_body=body, params=query)
        return resp.json() if resp.content else None


def admin(url: str, token: str | None) -> Client:
    """A client for the admin API."""
    return Client(url, token, what="admin API")


def ingress(url: str, token: str | None) -> Client:
    """A client for the ingress (calls take as long as the handler: no client timeout)."""
    return Client(url, token, what="ingress", timeout=None)


def quote(segment: str) -> str:
    """One path segment, percent-encoded (keys and ids may hold ``/`` or spaces)."""
    from urllib.parse import quote as _quote

    return _quote(segment, safe="")


P = ParamSpec("P")
R = TypeVar("R")


def fails_cleanly(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command: a ``CliError`` becomes ``error: ...`` on stderr and exit status 1."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except CliError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    return run


def pages(client: Client, path: str, key: str, params: list[tuple[str, Any]]) -> Iterator[Any]:
    """Every item of a cursor-paged listing (``{key: [...], "next_cursor": ...|null}``; the
    cursor is opaque). A page may be empty while the cursor goes on (the server filtered out
    all it read for that request), so only a null (or unchanged) cursor ends the walk."""
    cursor: Any = None
    while True:
        query = [*params, *([("cursor", cursor)] if cursor is not None else [])]
        body = client.request("GET", path, params=query).json()
        yield from body[key]
        following = body.get("next_cursor")
        if following is None or following == cursor:
            return
        cursor = following
