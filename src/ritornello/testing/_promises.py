"""Completing a workflow's promise from a test: a shared handler the harness adds to every
workflow, answered here in the wire protocol, without the SDK.

Nothing outside a workflow can complete its promises (as in Restate): a handler of the
workflow does it with ``ctx.promise(name).resolve(v)``, journaled as a ``promise_complete``
entry that the orchestrator commits under the workflow key's lock, waking every waiter. So the
harness serves one more shared handler on each workflow, ``PROMISE_HANDLER``, whose input is
``{"name": ..., "value": ...}`` or ``{"name": ..., "failure": {"code", "message"}}`` and whose
answers are exactly those of such a handler::

    journal [input]                        -> suspended, entries [promise_complete], waiting [1]
    journal [input, promise_complete] + 1  -> done, output null (or the 409 failure if the
                                              promise was already completed)

It shows up among the workflow's invocations like any other handler; the workflow's own code
never sees it.
"""

from __future__ import annotations

from typing import Any

from ritornello.protocol import (
    DiscoveryResponse,
    Entry,
    HandlerInfo,
    InvokeRequest,
    InvokeResponse,
)

#: The name of the handler the harness adds to every workflow.
PROMISE_HANDLER = "_harness_complete_promise"


def with_promise_handler(discovery: DiscoveryResponse) -> DiscoveryResponse:
    """``discovery`` with ``PROMISE_HANDLER`` added to every workflow."""
    services = tuple(
        s.replace(handlers=(*s.handlers, HandlerInfo(PROMISE_HANDLER, "shared")))
        if s.kind == "workflow"
        else s
        for s in discovery.services
    )
    return discovery.replace(services=services)


def promise_input(name: str, result: dict[str, Any]) -> dict[str, Any]:
    """The handler's input: complete ``name`` with ``result`` (``{"value"}``/``{"failure"}``)."""
    return {"name": name, **result}


def promise_answer(request: InvokeRequest) -> InvokeResponse:
    """The handler's answer to ``request`` (see the module docstring)."""
    output: Entry = {"kind": "output", "value": None}
    if len(request.journal) == 1:
        given: Any = request.journal[0].get("value")
        if not isinstance(given, dict) or not isinstance(given.get("name"), str):
            output = {"kind": "output", "failure": {"code": 400, "message": "bad promise input"}}
            return InvokeResponse(status="done", entries=[output])
        entry: Entry = {"kind": "promise_complete", "name": given["name"]}
        if "failure" in given:
            entry["failure"] = given["failure"]
        else:
            entry["value"] = given.get("value")
        return InvokeResponse(status="suspended", entries=[entry], waiting=[1])
    done = {c["index"]: c for c in request.completions}.get(1)
    if done is None:
        return InvokeResponse(status="suspended", waiting=[1])
    if "failure" in done:
        output = {"kind": "output", "failure": done["failure"]}
    return InvokeResponse(status="done", entries=[output])
