"""Serve ``py_app.app`` (the Restate Python SDK test endpoint) with hypercorn on 127.0.0.1 only:

    python tests/restate/apps/serve_py.py PORT            # HTTP/1.1: REQUEST_RESPONSE
    python tests/restate/apps/serve_py.py PORT --http2    # h2c, prior knowledge: BIDI_STREAM

Hypercorn itself answers HTTP/1.1 and cleartext HTTP/2 on the same port, whichever the client
speaks (a connection that opens with the HTTP/2 preface ``PRI * HTTP/2.0`` is HTTP/2 from its
first byte; an HTTP/1.1 request without a body may also ask ``Upgrade: h2c``), and the SDK picks
the manifest's ``protocolMode`` from the HTTP version its ``GET /discover`` arrived on. So that a
test learns which transport Ritornello really used, this runner holds each endpoint to one: by
default ``/discover`` and ``/invoke/...`` answer only HTTP/1.x, with ``--http2`` only HTTP/2;
the wrong one gets ``505 HTTP Version Not Supported``. ``/health`` answers both.

The same without this script (no version guard, hypercorn's default 5 s keep-alive)::

    hypercorn --bind 127.0.0.1:PORT --app-dir tests/restate/apps py_app:app

SIGTERM or SIGINT stops it gracefully (in-flight requests get 2 s). The SDK installs its own
SIGTERM handler on the first request (to release invocations waiting for the end of their input);
the event loop here chains handlers of one signal instead of replacing them, so both run.
"""

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))

from py_app import app as restate_app

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


class ChainingLoop(asyncio.SelectorEventLoop):
    """An event loop where ``add_signal_handler`` adds to the signal's handlers, not replaces."""

    def __init__(self) -> None:
        super().__init__()
        self._chains: dict[int, list[Callable[[], object]]] = {}

    def add_signal_handler(self, sig: int, callback: Callable[..., object], *args: Any) -> None:
        chain = self._chains.setdefault(sig, [])
        chain.append(lambda: callback(*args))
        handlers = list(chain)
        super().add_signal_handler(sig, lambda: [handler() for handler in handlers])

    def remove_signal_handler(self, sig: int) -> bool:
        self._chains.pop(sig, None)
        return super().remove_signal_handler(sig)


def guarded(http2: bool, both: bool = False) -> Callable[[Scope, Receive, Send], Any]:
    """``py_app.app`` behind a guard that holds discovery and invocations to one HTTP version
    (2 if ``http2``, else 1.x; ``both``: no guard) and that answers the lifespan protocol
    itself."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "http" and not both and not scope["path"].endswith("/health"):
            is_http2 = scope["http_version"] == "2"
            if is_http2 != http2:
                want = "HTTP/2 (h2c, prior knowledge)" if http2 else "HTTP/1.1"
                body = f"this endpoint is served over {want} only\n".encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 505,
                        "headers": [(b"content-type", b"text/plain")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await restate_app(scope, receive, send)

    return asgi


def config(port: int, tls: list[str] | None = None) -> Config:
    cfg = Config()
    cfg.bind = [f"127.0.0.1:{port}"]
    if tls:  # TLS, ALPN h2 and http/1.1 (hypercorn's default)
        cfg.certfile, cfg.keyfile = tls
    cfg.accesslog = None
    cfg.errorlog = "-"
    cfg.loglevel = "WARNING"
    cfg.graceful_timeout = 2.0
    # As the SDK's own test harness serves it: connections and streams are not capped, so a
    # long-lived HTTP/2 connection or a slow request/response exchange is never cut short.
    cfg.h2_max_concurrent_streams = 2**31 - 1
    cfg.keep_alive_max_requests = 2**31 - 1
    cfg.keep_alive_timeout = 2**31 - 1
    return cfg


async def main(port: int, http2: bool, both: bool, tls: list[str] | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(guarded(http2, both), config(port, tls), shutdown_trigger=stop.wait, mode="asgi")  # type: ignore[arg-type]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--http2", action="store_true", help="h2c only (the SDK: BIDI_STREAM)")
    parser.add_argument("--both", action="store_true", help="HTTP/1.1 and h2c, as hypercorn is")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=ChainingLoop) as runner:
        runner.run(main(args.port, args.http2, args.both, args.tls))
