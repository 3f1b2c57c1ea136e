"""``ritornello lambda-emulator APP.py``: Lambda's Invoke REST API on loopback for a local handler.

(``APP.mjs``, ``.js`` or ``.cjs``: a Node module's exported ``handler``, served by the same contract
by lambda_emulator.mjs in Node; see ``node_command``.)

It serves ``POST /2015-03-31/functions/{FunctionName}/invocations`` (any function name, partial or
full ARN, any ``:QUALIFIER`` or ``?Qualifier=``) by calling the ``lambda_handler`` APP.py defines
(a module-level callable of that name, or an ``Endpoint``'s ``.lambda_handler()``) with the JSON
payload and a minimal context object, so boto3 pointed at it (``endpoint_url`` or
``AWS_ENDPOINT_URL_LAMBDA``, dummy credentials, any region) works unchanged. As on AWS:

* 200 with the handler's JSON result and ``X-Amz-Executed-Version``;
* a handler exception: 200 with ``X-Amz-Function-Error: Unhandled`` and
  ``{"errorMessage", "errorType", "stackTrace"}``;
* a request payload over 6 MiB: 413 ``RequestEntityTooLargeException``; a result over 6 MiB:
  a ``Function.ResponseSizeTooLarge`` function error; a payload that is not JSON: 400
  ``InvalidRequestContentException``;
* ``X-Amz-Invocation-Type: Event`` answers 202 and runs the handler in the background;
  ``DryRun`` answers 204;
* a function that exits or crashes mid-invoke (``os._exit``, a segfault, a kill): 200 with
  ``X-Amz-Function-Error: Unhandled`` and ``{"errorType": "Runtime.ExitError", "errorMessage":
  "RequestId: ID Error: Runtime exited with error: exit status 1"}``, and the next invoke gets
  a fresh sandbox; past the function timeout (900 s): ``Sandbox.Timedout``.

``serve`` runs each function (a function name and version, as invoked) in worker processes of
its own (``_lambda_workers``): one invoke per worker at a time, a new worker (a cold start) for
each concurrent one, workers ended with the emulator, even a ``kill -9``-ed one. Each worker's
handler runs on its main thread with an event loop set as the current one, as Lambda's runtime
thread has: a handler that drives its coroutines on ``asyncio.get_event_loop()`` (the Restate
Python SDK's) runs as it does on Lambda.

``LambdaEmulator(handler)`` (tests) calls a handler in this process instead, each invoke on a
thread of a pool with an event loop of its own (no crash isolation, no function timeout).
Not emulated: signatures (any credentials pass), logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from ritornello.cli._lambda_runtime import (
    MAX_PAYLOAD,
    LambdaContext,
    LambdaHandler,
    call_handler,
    load_lambda_handler,
)
from ritornello.cli._lambda_workers import WorkerInitError, WorkerPool
from ritornello.orchestrator import asgi_lifespan

__all__ = ["LambdaContext", "LambdaEmulator", "load_lambda_handler", "node_command", "serve"]

log = logging.getLogger("ritornello.lambda_emulator")

ACCOUNT = "123456789012"
REGION = "us-east-1"

_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_Receive = Callable[[], Awaitable[dict[str, Any]]]

_PATH = re.compile(r"/2015-03-31/functions/(?P<name>[^/]+)/invocations/?")
_FULL_ARN = re.compile(
    r"arn:[a-z-]+:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:(?P<rest>.+)"
)


def _function(name: str, qualifier: str | None) -> tuple[str, str, str]:
    """(function name, version or alias, invoked ARN) for a FunctionName path parameter."""
    region, account, rest = REGION, ACCOUNT, name
    m = _FULL_ARN.fullmatch(name)
    if m is not None:
        region, account, rest = m["region"], m["account"], m["rest"]
    elif re.match(r"\d{12}:function:", name):
        account, _, rest = name.split(":", 2)
    fn, _, in_name = rest.partition(":")
    qualifier = qualifier or in_name or None
    arn = f"arn:aws:lambda:{region}:{account}:function:{fn}"
    if qualifier:
        arn += f":{qualifier}"
    return fn, qualifier or "$LATEST", arn


class LambdaEmulator:
    """A raw ASGI app speaking Lambda's Invoke API for one app's ``lambda_handler(event,
    context)``: run by ``workers`` (a process per function), else ``handler`` called here."""

    def __init__(
        self,
        handler: LambdaHandler | None = None,
        *,
        workers: WorkerPool | None = None,
        max_workers: int = 64,
        function_timeout_s: float = 900.0,
        reserved_concurrency: int | None = None,
    ) -> None:
        if (handler is None) == (workers is None):
            raise ValueError("give a handler or workers")
        self.handler = handler
        self.workers = workers
        self.function_timeout_s = function_timeout_s
        #: Like a function's reserved concurrency: an Invoke past this many running at once
        #: is throttled (429 TooManyRequestsException), as Lambda does. None: no bound.
        self.reserved_concurrency = reserved_concurrency
        self.running = 0
        self.throttled = 0
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="lambda-emulator")
        self._background: set[asyncio.Future[tuple[bool, bytes]]] = set()
        self._thread = threading.local()  # each worker thread's event loop
        self._loops: list[asyncio.AbstractEventLoop] = []  # all of them, closed by close()
        self._loops_lock = threading.Lock()

    def close(self) -> None:
        if self.workers is not None:
            self.workers.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._loops_lock:
            loops, self._loops = self._loops, []
        for loop in loops:
            if not loop.is_running():  # one still running a handler is left to it
                loop.close()

    async def __call__(self, scope: dict[str, Any], receive: _Receive, send: _Send) -> None:
        if scope["type"] == "lifespan":
            await asgi_lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body, too_large = await _read_body(receive, MAX_PAYLOAD)
        m = _PATH.fullmatch(scope["path"])
        if m is None or scope["method"] != "POST":
            route = f"{scope['method']} {scope['path']}"
            await _error(send, 404, "ResourceNotFoundException", f"no route {route}")
            return
        if too_large:
            await _error(
                send,
                413,
                "RequestEntityTooLargeException",
                f"Request must be smaller than {MAX_PAYLOAD} bytes "
                "for the InvokeFunction operation",
            )
            return
        try:
            event = json.loads(body) if body.strip() else {}
        except ValueError as exc:
            await _error(
                send, 400, "InvalidRequestContentException", f"Could not parse request body: {exc}"
            )
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        fn, version, arn = _function(m["name"], (query.get("Qualifier") or [None])[0])
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = str(uuid.uuid4())
        context = LambdaContext(
            function_name=fn,
            function_version=version,
            invoked_function_arn=arn,
            aws_request_id=request_id,
            log_group_name=f"/aws/lambda/{fn}",
            log_stream_name=f"emulator/{request_id}",
            deadline=time.monotonic() + self.function_timeout_s,
        )
        executed = version if version.isdigit() else "$LATEST"
        common = [
            (b"x-amzn-requestid", request_id.encode()),
            (b"x-amz-executed-version", executed.encode()),
        ]
        kind = headers.get("x-amz-invocation-type", "RequestResponse")
        if kind == "DryRun":
            await _respond(send, 204, b"", common)
            return
        if self.reserved_concurrency is not None and self.running >= self.reserved_concurrency:
            self.throttled += 1
            log.info(
                "throttled an Invoke of %s: %d running (reserved concurrency)", fn, self.running
            )
            await _error(send, 429, "TooManyRequestsException", "Rate Exceeded.")
            return
        loop = asyncio.get_running_loop()
        self.running += 1
        future = loop.run_in_executor(self._pool, self._run, event, body, context)
        future.add_done_callback(self._ended)
        if kind == "Event":
            self._background.add(future)
            future.add_done_callback(self._background.discard)
            await _respond(send, 202, b"", common)
            return
        ok, out = await future
        if not ok:
            common.append((b"x-amz-function-error", b"Unhandled"))
        await _respond(send, 200, out, [(b"content-type", b"application/json"), *common])

    def _ended(self, _: asyncio.Future[tuple[bool, bytes]]) -> None:
        self.running -= 1

    def _run(self, event: Any, body: bytes, context: LambdaContext) -> tuple[bool, bytes]:
        """Run one invoke on an invoke thread: (succeeded, JSON bytes of the result or error)."""
        if self.workers is not None:
            header = {
                "function_name": context.function_name,
                "function_version": context.function_version,
                "invoked_function_arn": context.invoked_function_arn,
                "aws_request_id": context.aws_request_id,
                "log_group_name": context.log_group_name,
                "log_stream_name": context.log_stream_name,
                "timeout_ms": int(self.function_timeout_s * 1000),
            }
            key = (context.function_name, context.function_version)
            return self.workers.run(key, header, body, self.function_timeout_s)
        assert self.handler is not None
        loop: asyncio.AbstractEventLoop | None = getattr(self._thread, "loop", None)
        if loop is None or loop.is_closed():
            loop = self._thread.loop = asyncio.new_event_loop()
            with self._loops_lock:
                self._loops.append(loop)
        return call_handler(self.handler, event, context, loop)


async def _read_body(receive: _Receive, limit: int) -> tuple[bytes, bool]:
    """The request body, and whether it was over ``limit`` (then it is read and dropped, so the
    connection stays usable)."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            break
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        more = msg.get("more_body", False)
    if size > limit:
        return b"", True
    return b"".join(chunks), False


async def _respond(
    send: _Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _error(send: _Send, status: int, code: str, message: str) -> None:
    """An AWS service error, shaped as Lambda sends it (botocore reads x-amzn-ErrorType)."""
    body = json.dumps({"Type": "User", "message": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"x-amzn-errortype", code.encode()),
        (b"x-amzn-requestid", str(uuid.uuid4()).encode()),
    ]
    await _respond(send, status, body, headers)


NODE_SUFFIXES = (".mjs", ".js", ".cjs")
NODE_EMULATOR = Path(__file__).with_name("lambda_emulator.mjs")


def node_command(
    app_path: str, *, host: str, port: int, reserved_concurrency: int | None
) -> list[str]:
    """The command serving a Node module's exported ``handler``: the same Invoke API, by
    lambda_emulator.mjs (shipped beside this module, Node's standard library only), so the
    handler runs in Node as Lambda's Node runtime runs it."""
    node = shutil.which("node")
    if node is None:
        raise SystemExit(f"{app_path}: a Node handler needs `node` on PATH")
    command = [node, str(NODE_EMULATOR), app_path, "--host", host, "--port", str(port)]
    if reserved_concurrency is not None:
        command += ["--reserved-concurrency", str(reserved_concurrency)]
    return command


def serve(
    app_path: str,
    *,
    host: str = "127.0.0.1",
    port: int = 9001,
    reserved_concurrency: int | None = None,
) -> None:
    """Serve APP.py's handler until SIGINT/SIGTERM; APP.mjs/.js/.cjs: hand this process over to
    Node (exec: the signals reach it, its exit is the command's)."""
    if app_path.endswith(NODE_SUFFIXES):
        command = node_command(
            app_path, host=host, port=port, reserved_concurrency=reserved_concurrency
        )
        os.execv(command[0], command)
    import uvicorn

    workers = WorkerPool(app_path)
    try:
        workers.start()  # the app imported once before serving: one that does not load stops here
    except WorkerInitError as exc:
        raise SystemExit(exc.message) from None
    emulator = LambdaEmulator(workers=workers, reserved_concurrency=reserved_concurrency)
    print(
        f"Lambda Invoke API for {app_path} on http://{host}:{port} "
        f"(AWS_ENDPOINT_URL_LAMBDA=http://{host}:{port})",
        flush=True,
    )
    try:
        uvicorn.run(emulator, host=host, port=port, log_level="warning", lifespan="off")
    finally:
        emulator.close()
