"""Opening a connection to an endpoint through the host policy's resolver: one place for
both HTTP clients (``_pool``'s HTTP/1.1, ``_h2``'s HTTP/2)."""

from __future__ import annotations

import asyncio
import socket
import ssl as _ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

P = TypeVar("P", bound=asyncio.BaseProtocol)
#: (host, port) -> [(family, address)]: the addresses to try, in order (``_hosts``).
Resolver = Callable[[str, int], Awaitable[list[tuple[int, Any]]]]


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
