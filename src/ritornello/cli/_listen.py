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


def server(app: Any, host: str, port: int) -> Server:
    """A server for ``app`` on ``host:port`` that runs on the caller's loop."""
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
        )
    )
