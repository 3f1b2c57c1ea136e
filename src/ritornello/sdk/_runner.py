"""One attempt, end to end: check the request, drive the handler, answer.

The endpoints (ASGI, in-process) decode bytes and find the handler; everything after that
happens here, the same for every transport.
"""

from __future__ import annotations

import logging
from typing import Any

from ritornello.protocol import Entry, InvokeRequest, InvokeResponse
from ritornello.sdk._invocation import CURRENT_MACHINE, InvocationContext, Persist
from ritornello.sdk._machine import Machine, check_request, error_response
from ritornello.sdk._serde import decode, encode
from ritornello.sdk._service import HandlerSpec
from ritornello.sdk.errors import JournalMismatchError, Suspended, TerminalError

logger = logging.getLogger("ritornello.sdk")


async def run_attempt(
    spec: HandlerSpec,
    request: InvokeRequest,
    *,
    durability: str,
    always_replay: bool,
    persist: Persist | None = None,
) -> InvokeResponse:
    """Run one attempt of ``request`` against ``spec`` and return the answer.

    Never raises for anything the handler does: its outcome is in the answer. Before answering
    it waits for every step still executing, so a finished step is never lost. With
    ``persist`` (a streamed attempt) a step that would need a checkpoint first persists
    through it and goes on; the answer then holds only the entries not persisted that way.
    """
    problem = check_request(request)
    if problem is None and spec.service_kind in ("object", "workflow") and request.key is None:
        problem = f"{spec.target} is a {spec.service_kind} handler: the request needs a key"
    if problem is not None:
        return error_response("protocol", problem)
    machine = Machine(request, always_replay=always_replay, replay_only=request.replay_only)
    ctx = InvocationContext(
        request, spec, machine, step_checkpoints=durability == "step", persist=persist
    )
    token = CURRENT_MACHINE.set(machine)
    try:
        await _drive(spec, ctx, machine)
        await ctx.wait_for_steps()
    finally:
        CURRENT_MACHINE.reset(token)
    response = machine.response()
    logger.debug("%s %s attempt %d: %s", spec.target, request.id, request.attempt, response.status)
    return response


def _arguments(spec: HandlerSpec, value: Any) -> tuple[Any, ...]:
    if spec.input_param is None:
        if value is not None:
            raise TerminalError(f"{spec.target} takes no input", status_code=400)
        return ()
    if value is None and spec.input_optional:
        return ()
    try:
        return (decode(value, spec.input_hint, spec.input_serde),)
    except Exception as exc:  # decoding is a pure function of the input: no retry can help
        raise TerminalError(f"bad input for {spec.target}: {exc}", status_code=400) from None


async def _drive(spec: HandlerSpec, ctx: InvocationContext, machine: Machine) -> None:
    output: Entry
    try:
        result = await spec.fn(ctx, *_arguments(spec, machine.input))
        output = {"kind": "output", "value": encode(result, spec.output_hint, spec.output_serde)}
    except Suspended:
        return
    except TerminalError as exc:
        output = {"kind": "output", "failure": {"code": exc.status_code, "message": exc.message}}
    except Exception as exc:
        if not machine.ended:
            logger.warning("handler %s of %s failed", spec.target, ctx.invocation_id, exc_info=True)
        machine.fail_handler(f"{type(exc).__name__}: {exc}")
        return
    try:
        machine.finish(output)
    except (Suspended, JournalMismatchError):
        pass
