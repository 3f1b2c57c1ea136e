"""What Lambda's Python runtime does around one invoke of a ``lambda_handler(event, context)``:
the context object, the call, and the answer's bytes (the result, or a function error in
Lambda's shapes). Standard library only: a worker process (``_lambda_worker``) imports this and
the app, nothing of the orchestrator.
"""

from __future__ import annotations

import asyncio
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_PAYLOAD = 6 * 1024 * 1024  # Lambda's synchronous request and response limit

LambdaHandler = Callable[[Any, Any], Any]


@dataclass
class LambdaContext:
    """The parts of Lambda's context object handlers use."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    aws_request_id: str
    memory_limit_in_mb: int = 128
    log_group_name: str = ""
    log_stream_name: str = ""
    client_context: Any = None
    identity: Any = None
    deadline: float = field(default=0.0, repr=False)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def call_handler(
    handler: LambdaHandler, event: Any, context: LambdaContext, loop: asyncio.AbstractEventLoop
) -> tuple[bool, bytes]:
    """Call the handler with ``loop`` as the thread's current event loop, as Lambda's runtime
    thread has one (a handler that drives its coroutines on ``asyncio.get_event_loop()``, the
    Restate Python SDK's way, runs as on Lambda): (succeeded, JSON bytes of the result or of
    the function error). ``BaseException``s other than ``Exception`` (``SystemExit``) propagate:
    in a worker process they end it, which the emulator answers as a runtime exit."""
    asyncio.set_event_loop(loop)  # again each time: a handler's asyncio.run() unsets it
    try:
        result = handler(event, context)
    except Exception as exc:
        return False, error_payload(exc, context)
    try:
        out = json.dumps(result).encode()
    except (TypeError, ValueError) as exc:
        return False, json.dumps(
            {
                "errorMessage": f"Unable to marshal response: {exc}",
                "errorType": "Runtime.MarshalError",
                "requestId": context.aws_request_id,
                "stackTrace": [],
            }
        ).encode()
    if len(out) > MAX_PAYLOAD:
        return False, json.dumps(
            {
                "errorMessage": f"Response payload size ({len(out)} bytes) exceeded maximum "
                f"allowed payload size ({MAX_PAYLOAD} bytes).",
                "errorType": "Function.ResponseSizeTooLarge",
            }
        ).encode()
    return True, out


def error_payload(exc: BaseException, context: LambdaContext) -> bytes:
    """An exception raised by the handler, as Lambda's Python runtime reports it."""
    return json.dumps(
        {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "requestId": context.aws_request_id,
            "stackTrace": traceback.format_tb(exc.__traceback__),
        }
    ).encode()


def runtime_error(kind: str, message: str) -> bytes:
    """A function error raised by the runtime, not the handler (``Runtime.ExitError``,
    ``Sandbox.Timedout``, ``Runtime.ImportModuleError``): Lambda's ``{"errorType",
    "errorMessage"}``."""
    return json.dumps({"errorType": kind, "errorMessage": message}).encode()


def load_lambda_handler(path: str) -> LambdaHandler:
    """The ``lambda_handler`` of the Python file ``path``: a module-level callable of that name,
    or else the module's ``Endpoint`` (preferably named ``endpoint``) and its ``.lambda_handler()``.
    """
    from ritornello.cli._app_loader import find_endpoint, load_module

    module = load_module(path)
    handler = getattr(module, "lambda_handler", None)
    if callable(handler):
        return handler  # type: ignore[no-any-return]
    endpoint = find_endpoint(module)
    if endpoint is None:
        raise SystemExit(f"{path}: define a module-level `lambda_handler` or one Endpoint")
    return endpoint.lambda_handler()
