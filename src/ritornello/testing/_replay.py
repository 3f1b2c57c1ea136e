"""Replay a journal against the current handler code, with no orchestrator, and report the
first divergence (what Temporal's ``Replayer`` does for workflow histories).

The history becomes an ``InvokeRequest`` that the SDK runs in process (``Endpoint.invoke``),
exactly as it would run an attempt the orchestrator sent: the SDK's replay machine matches the
handler's n-th action against entry n and answers ``journal_mismatch`` at the first that
differs.

**No step runs.** A replayed step returns its journaled result without running its function;
a step *past* the journal's end would run it. So the request's journal ends with a sentinel
entry where the history ends (in place of its output, for a finished invocation) that no
action can match: the handler's first action past the end is a mismatch at the sentinel's
index, answered before that action does anything, and its name says what the handler would
have done (``output``: it finishes there). A finished invocation replays cleanly when that
action is ``output``.

``check_replay`` (the harness's own invocations) then runs the history once more without the
sentinel, to compare the output the replay produces with the journaled one. That second run
reaches no new step unless the handler behaves differently between two replays in a row.

What replay cannot see: a step's arguments and the values a handler computes from what it read
(only kinds, names and keys are matched, as the SDK matches them); actions of fan-out branches
that did not exist when the history was written (they are new, not replayed).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ritornello.protocol import Completion, Entry, InvokeRequest, InvokeResponse
from ritornello.sdk import Endpoint
from ritornello.sdk._machine import describe

from ._history import History
from ._report import Divergence, ReplayReport
from .errors import HarnessError

#: Where the history ends: a step name no handler uses.
SENTINEL: Entry = {"kind": "run", "name": "\x00the end of the exported journal"}
_MISMATCH = re.compile(
    r"journal mismatch at index (\d+)(?: \(in child context [^)]*\))?: (.*)", re.DOTALL
)
_DID = ", the handler did "

Services = Endpoint | Iterable[Any]


def as_endpoint(services: Services) -> Endpoint:
    """An ``Endpoint`` as given, or one serving the given services."""
    if isinstance(services, Endpoint):
        return services
    return Endpoint(list(services))


def replay(history: str | Path | dict[str, Any] | History, services: Services) -> ReplayReport:
    """Replay ``history`` (a file written by ``ritornello invocations export``, its JSON
    text, the parsed document, or a ``History``) against ``services`` (an ``Endpoint``, or the
    services themselves) and report the first divergence. No step function runs. For code
    that already runs an event loop: ``replay_async``."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(replay_async(history, services))
    raise HarnessError("replay() runs its own event loop: in async code, await replay_async()")


async def replay_async(
    history: str | Path | dict[str, Any] | History, services: Services
) -> ReplayReport:
    """``replay``, awaited."""
    return await run_replay(History.load(history), as_endpoint(services), compare_output=False)


async def run_replay(history: History, endpoint: Endpoint, *, compare_output: bool) -> ReplayReport:
    """Replay ``history`` against ``endpoint`` (see the module docstring)."""
    if endpoint.handler(history.service, history.handler) is None:
        raise HarnessError(f"the code has no handler {history.target} to replay the history on")
    journal = history.journal
    end = len(journal) - 1 if history.finished else len(journal)
    answer = await endpoint.invoke(_request(history, [*journal[:end], SENTINEL]))
    found = _past_end(answer, journal, end)
    divergence: Divergence | None = None
    next_action: str | None = None
    if isinstance(found, Divergence):
        divergence = found
    elif not history.finished:
        next_action = found
    elif found != "output":  # the journal finished here; the code goes on
        divergence = Divergence("mismatch", end, "output", found)
    report = ReplayReport(
        history.invocation_id,
        history.target,
        history.key,
        len(journal),
        history.finished,
        divergence,
        next_action,
    )
    if divergence is None and history.finished and compare_output:
        return await _compare_output(history, endpoint, report)
    return report


def _past_end(answer: InvokeResponse, journal: list[Entry], end: int) -> str | Divergence:
    """What the handler did at index ``end`` (where the sentinel is), or where it diverged
    from ``journal`` before it."""
    error = answer.error or {}
    message = str(error.get("message", ""))
    if answer.status == "error" and error.get("kind") == "journal_mismatch":
        if str(error.get("index", "")).isdigit() and "handler_did" in error:
            index, did = int(error["index"]), str(error["handler_did"])  # the SDK's fields
        else:  # an SDK that words it only: read the message
            found = _MISMATCH.match(message)
            if found is None:
                return Divergence("mismatch", None, None, message, message)
            index, rest = int(found.group(1)), found.group(2)
            did = rest.rpartition(_DID)[2]
        if index == end:
            return did
        has = describe(journal[index]) if index < len(journal) else None
        return Divergence("mismatch", index, has, did, message)
    if answer.status == "error" and error.get("kind") == "protocol":
        raise HarnessError(f"the code cannot replay this history: {message}")
    if answer.status == "error":
        return Divergence("error", None, None, message, message)
    if answer.status == "suspended":
        return f"wait on entries {answer.waiting}"
    return answer.status  # (a checkpoint or an answer before the end: not expected)


async def _compare_output(
    history: History, endpoint: Endpoint, clean: ReplayReport
) -> ReplayReport:
    """Run the finished history without its output; compare the output it produces."""
    end = len(history.journal) - 1
    answer = await endpoint.invoke(_request(history, history.journal[:end]))
    journaled = _result(history.journal[end])
    produced = _result(answer.entries[-1]) if answer.status == "done" and answer.entries else None
    divergence = None
    if produced is None:
        what = f"{answer.status} {answer.error or answer.waiting or ''}".strip()
        divergence = Divergence("output", end, f"output {journaled}", what)
    elif produced != journaled:
        divergence = Divergence("output", end, f"output {journaled}", f"output {produced}")
    return replace(clean, divergence=divergence, output=produced)


def _result(entry: Entry) -> dict[str, Any]:
    if "failure" in entry:
        return {"failure": entry["failure"]}
    return {"value": entry.get("value")}


def _request(history: History, journal: list[Entry]) -> InvokeRequest:
    """The attempt that replays ``journal``: the history's completions of its entries (and
    the cancellation signal), the object's state empty (reads replay their journaled values)."""
    completions: list[Completion] = [
        c
        for c in history.completions
        if c.get("index") == -1 or 0 < int(c.get("index", 0)) < len(journal)
    ]
    return InvokeRequest(
        id=history.invocation_id,
        service=history.service,
        handler=history.handler,
        key=history.key,
        attempt=1,
        journal=[_strip(e) for e in journal],
        completions=[{k: v for k, v in c.items() if k != "at"} for c in completions],  # type: ignore[misc]
        state={} if history.key is not None else None,
    )


def _strip(entry: Entry) -> Entry:
    """An entry as an attempt carries it (the commit time ``at`` left out)."""
    return {k: v for k, v in entry.items() if k != "at"}  # type: ignore[return-value]
