"""The orchestrator process's HTTP servers: uvicorn (httptools) on the process's own loop.

Imported off the event loop while the engine recovers (``_serve``): uvicorn is not needed
until the process listens, which it does only once recovery has started what was in flight.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from typing import Any

import uvicorn


class Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process that hosts several."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def server(app: Any, host: str, port: int, *, proxy_headers: bool = True) -> Server:
    """A server for ``app`` on ``host:port`` that runs on the caller's loop.
    ``proxy_headers=False`` leaves out uvicorn's X-Forwarded-* middleware (the ingress reads
    no client address: one call less per request)."""
    return Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="httptools",
            loop="none",
            proxy_headers=proxy_headers,
        )
    )
