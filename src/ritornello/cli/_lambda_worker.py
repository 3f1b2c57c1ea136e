"""One function's sandbox: ``python -m ritornello.cli._lambda_worker APP.py FD``, started by the
emulator (``_lambda_workers``) for one function and serving its invokes one at a time, as a
Lambda execution environment does.

The emulator and the worker speak over one stream socket (``FD``, a socketpair end) in frames:
``!II`` (header length, body length), a JSON header, a body. Start-up: the worker imports APP
(the cold start, once) and sends ``{"ready": true}``, or ``{"init_error", "type"}`` and exits 1.
Then each request is a header (the context's fields, ``timeout_ms``) and the event's JSON bytes;
each reply ``{"ok": bool}`` and the result's (or function error's) JSON bytes.

Invariants:

* the handler runs on the main thread, one invoke at a time (the emulator sends the next
  request only after the reply);
* a reader thread owns the socket's reading side: EOF (the emulator closed it, exited or was
  killed, even ``kill -9``: the kernel closes its end) ends the worker at once with
  ``os._exit``, mid-invoke too, so no worker outlives its emulator;
* anything that ends the process mid-invoke (``os._exit``, ``SystemExit``, a signal, a
  segfault) leaves the reply unsent: the emulator answers it as Lambda answers a runtime exit.

SIGINT is ignored: Ctrl-C at a terminal reaches the whole process group; the emulator ends its
workers itself.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import queue
import signal
import socket
import struct
import sys
import threading
import time
from typing import Any

from ritornello.cli._lambda_runtime import LambdaContext, call_handler, load_lambda_handler

_HEAD = struct.Struct("!II")


def send_frame(sock: socket.socket, header: dict[str, Any], body: bytes = b"") -> None:
    """Write one frame (blocking)."""
    head = json.dumps(header).encode()
    sock.sendall(_HEAD.pack(len(head), len(body)) + head + body)


def recv_frame(sock: socket.socket) -> tuple[dict[str, Any], bytes] | None:
    """Read one frame (blocking); None at EOF (the other end closed or died)."""
    head = _recv_exactly(sock, _HEAD.size)
    if head is None:
        return None
    head_len, body_len = _HEAD.unpack(head)
    header = _recv_exactly(sock, head_len)
    body = _recv_exactly(sock, body_len) if body_len else b""
    if header is None or body is None:
        return None
    return json.loads(header), body


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < n:
        try:
            chunk = sock.recv(min(n - len(chunks), 1 << 20))
        except ConnectionError:
            return None
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def _read_requests(
    sock: socket.socket, requests: queue.Queue[tuple[dict[str, Any], bytes]]
) -> None:
    """The reader thread: requests to the main thread; at EOF, end the process now."""
    while True:
        frame = recv_frame(sock)
        if frame is None:
            os._exit(0)
        requests.put(frame)


def main(app_path: str, fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if isinstance(sys.stdout, io.TextIOWrapper):  # a line logged before a crash is not lost
        sys.stdout.reconfigure(line_buffering=True)
    os.set_inheritable(fd, False)  # the handler's own child processes do not get it
    sock = socket.socket(fileno=fd)
    try:
        handler = load_lambda_handler(app_path)
    except SystemExit as exc:  # the app has no handler: Lambda's Runtime.HandlerNotFound
        send_frame(sock, {"init_error": str(exc.code), "type": "Runtime.HandlerNotFound"})
        os._exit(1)
    except Exception as exc:
        name = os.path.splitext(os.path.basename(app_path))[0]
        message = f"Unable to import module '{name}': {type(exc).__name__}: {exc}"
        send_frame(sock, {"init_error": message, "type": "Runtime.ImportModuleError"})
        os._exit(1)
    requests: queue.Queue[tuple[dict[str, Any], bytes]] = queue.Queue()
    threading.Thread(target=_read_requests, args=(sock, requests), daemon=True).start()
    send_frame(sock, {"ready": True})
    loop = asyncio.new_event_loop()
    while True:
        header, body = requests.get()
        context = LambdaContext(
            function_name=header["function_name"],
            function_version=header["function_version"],
            invoked_function_arn=header["invoked_function_arn"],
            aws_request_id=header["aws_request_id"],
            log_group_name=header["log_group_name"],
            log_stream_name=header["log_stream_name"],
            deadline=time.monotonic() + header["timeout_ms"] / 1000,
        )
        event = json.loads(body) if body.strip() else {}
        ok, out = call_handler(handler, event, context, loop)
        sys.stdout.flush()
        sys.stderr.flush()
        send_frame(sock, {"ok": ok}, out)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
