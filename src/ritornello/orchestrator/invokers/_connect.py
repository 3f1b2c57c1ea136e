"""Opening a connection to an endpoint through the host policy's resolver: one place for
both HTTP clients (``_pool``'s HTTP/1.1, ``_h2``'s HTTP/2)."""

from __future__ import annotations

import asyncio
import socket
import ssl as _ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import SplitResult, urlsplit

P = TypeVar("P", bound=asyncio.BaseProtocol)
#: (host, port) -> [(family, address)]: the addresses to try, in order (``_hosts``).
Resolver = Callable[[str, int], Awaitable[list[tuple[int, Any]]]]


def parse_base_url(base_url: str) -> tuple[SplitResult, str, int, int]:
    """(the URL's parts, host, port, the scheme's default port) of an endpoint's base URL;
    ``ValueError`` unless it is ``http``/``https`` with a host, and no credentials, query or
    fragment."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme in {base_url!r} (expected http or https)")
    if not parts.hostname:
        raise ValueError(f"no host in {base_url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"credentials in URLs are not supported: {base_url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"base URL must not have a query or fragment: {base_url!r}")
    default_port = 443 if parts.scheme == "https" else 80
    return parts, parts.hostname, parts.port or default_port, default_port


async def connect_first(
    loop: asyncio.AbstractEventLoop,
    resolve: Resolver,
    host: str,
    port: int,
    protocol: Callable[[], P],
    ssl: _ssl.SSLContext | None,
) -> P:
    """A connection (with TCP_NODELAY, TLS when ``ssl``) to the first address ``resolve``
    gives for ``host:port`` that accepts one; the last ``OSError`` if none does. A socket is
    never leaked: closed on any failure or cancellation before the protocol owns it."""
    error: OSError | None = None
    for family, address in await resolve(host, port):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        try:
            _, conn = await loop.create_connection(
                protocol,
                sock=sock,
                ssl=ssl,
                server_hostname=host if ssl is not None else None,
            )
        except BaseException:
            sock.close()
            raise
        return conn
    raise error if error is not None else OSError(f"no address to connect to for {host}")
