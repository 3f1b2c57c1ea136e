"""Lambda's durable-execution API (``/2025-12-01/...``) on the ingress port, rest-json as
botocore sends and parses it, so an AWS durable function needs only ``AWS_ENDPOINT_URL_LAMBDA``
= the ingress URL (docs/aws-durable.md).

=====================================================================  =========================
``POST /2025-12-01/durable-executions/{arn}/checkpoint``               CheckpointDurableExecution
``GET  /2025-12-01/durable-executions/{arn}/state``                    GetDurableExecutionState
``GET  /2025-12-01/durable-executions/{arn}``                          GetDurableExecution
``GET  /2025-12-01/durable-executions/{arn}/history``                  GetDurableExecutionHistory
``GET  /2025-12-01/functions/{name}/durable-executions``               ListDurableExecutions-
                                                                       ByFunction
``POST /2025-12-01/durable-executions/{arn}/stop``                     StopDurableExecution
``POST /2025-12-01/durable-execution-callbacks/{id}/succeed|fail``     SendDurableExecution-
``POST /2025-12-01/durable-execution-callbacks/{id}/heartbeat``        Callback{Success,...}
=====================================================================  =========================

Errors are Lambda's: the ``x-amzn-ErrorType`` header names the exception (boto3 raises that
class) and the body is ``{"Type": "User"|"Service", "message": ...}``. Malformed input is a 400
``InvalidParameterValueException`` and changes nothing (guarantee 5).

Authorization: the checkpoint token (``protocols.aws_durable.Runs``) is the capability for
checkpoint and state; a callback id (130 random bits) for its callback; SigV4 signatures are
not verified (docs/aws-durable.md says what a deployment does instead).

Several orchestrators: checkpoint and state requests of an execution whose partition another
orchestrator leads are forwarded there, once, before routing (``_forward.Forwarder``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs, unquote

from ritornello.protocol import parse_awakeable_id
from ritornello.store import FINAL_STATUSES, InvocationRecord

from .._json import dumpb, dumps, loads
from ..errors import NotFoundError, OrchestratorError, StateConflictError
from ..protocols.aws_durable import (
    INVALID_TOKEN,
    TIMESTAMPS,
    AwsDurableProtocol,
    Checkpoint,
    Reply,
    StopError,
    UpdateError,
    check_updates,
    deadline_of,
    execution_arn,
    heartbeat_of,
    heartbeat_result,
    heartbeat_timer,
    history,
    invocation_of,
    is_timed_out,
    names_function,
    stop_error,
    stopped_error,
    stopped_result,
    timed_out,
    to_wire,
)
from ..runtime import Engine
from ._auth import BearerToken, authorization
from ._forward import Forwarder, ForwardError
from ._input import read_body
from ._status import http_status

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

#: The API's path prefix (its version, as Lambda's service model has it).
PREFIX = "/2025-12-01/"
#: Seconds a checkpoint request waits for its updates to be committed.
CHECKPOINT_WAIT_S = 60.0
_BAD = "InvalidParameterValueException"
_GONE = "ResourceNotFoundException"


class ApiError(Exception):
    """An answer in Lambda's error shape."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def is_durable_path(scope: Scope) -> bool:
    """Whether the request is for this API (checked before the ingress's own routes)."""
    path: str = scope.get("path", "")
    return path.startswith(PREFIX)


class DurableApi:
    """The durable-execution API over one engine."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_body_bytes: int,
        token: BearerToken | None = None,
        ingress_token: str = "",
    ) -> None:
        self.engine = engine
        self.max_body_bytes = max_body_bytes
        #: checkpoint and state requests of executions led elsewhere go there (``_forward``)
        self.forwarder = Forwarder(
            engine, ingress_token=ingress_token, max_body_bytes=max_body_bytes
        )
        #: the ingress token, when one is set: the execution operations (get, history, list,
        #: stop) need it (``Authorization: Bearer``), as every other ingress path does; the
        #: function's own calls (checkpoint, state) and callbacks carry their capability
        self._token = token

    def _operator(self, scope: Scope) -> None:
        """Refuse an execution operation without the ingress token, when one is set."""
        if self._token is not None and not self._token.matches(authorization(scope)):
            raise ApiError(
                403,
                "AccessDeniedException",
                "this ingress has a token: the execution operations need Authorization: "
                "Bearer <ingress_token> (or use the admin API: /invocations)",
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            receive, answer = await self.forwarder.route(scope, receive)
            if answer is not None:  # the owner's answer, passed on unchanged
                status, headers, body = answer
            else:
                status, body = await self._route(scope, receive)
                headers = [(b"content-type", b"application/json")]
        except (ApiError, ForwardError) as exc:
            status = exc.status
            who = "User" if exc.status < 500 else "Service"
            body = dumpb({"Type": who, "message": exc.message})
            headers = [
                (b"content-type", b"application/json"),
                (b"x-amzn-errortype", exc.kind.encode()),
            ]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _route(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        raw = raw_path.split(b"?", 1)[0].decode("latin-1")
        try:
            segs = [unquote(s, errors="strict") for s in raw[len(PREFIX) :].split("/")]
        except UnicodeDecodeError:
            raise ApiError(400, _BAD, "the path is not valid UTF-8") from None
        method = scope["method"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        try:
            if len(segs) in (2, 3) and segs[0] == "durable-executions":
                inv_id = invocation_of(segs[1])
                if inv_id is None:
                    raise ApiError(404, _GONE, f"no durable execution {segs[1]}")
                op = segs[2] if len(segs) == 3 else ""
                if (method, op) == ("POST", "checkpoint"):
                    return await self._checkpoint(inv_id, await self._json(scope, receive))
                if (method, op) == ("GET", "state"):
                    return self._state(inv_id, query)
                if (method, op) == ("GET", ""):
                    self._operator(scope)
                    return await self._describe(inv_id, segs[1])
                if (method, op) == ("GET", "history"):
                    self._operator(scope)
                    return await self._history(inv_id, segs[1], query)
                if (method, op) == ("POST", "stop"):
                    self._operator(scope)
                    return await self._stop(inv_id, await self._body(receive))
            if segs[0] == "functions" and segs[2:] == ["durable-executions"] and method == "GET":
                self._operator(scope)
                return await self._list(segs[1], query)
            if len(segs) == 3 and segs[0] == "durable-execution-callbacks" and method == "POST":
                return await self._callback(segs[1], segs[2], scope, receive)
        except OrchestratorError as exc:
            status = http_status(exc)
            if isinstance(exc, NotFoundError):
                raise ApiError(404, _GONE, str(exc)) from None
            if isinstance(exc, StateConflictError):
                raise ApiError(400, _BAD, str(exc)) from None
            kind = _BAD if status < 500 else "ServiceException"
            raise ApiError(status if status < 500 else 500, kind, str(exc)) from None
        raise ApiError(404, "UnknownOperationException", f"no durable API route {method} {raw}")

    async def _json(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        body = await self._body(receive)
        try:
            data = loads(body) if body else {}
        except ValueError:
            raise ApiError(400, _BAD, "the request body is not JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, _BAD, "the request body must be a JSON object")
        return data

    async def _body(self, receive: Receive) -> bytes:
        return await read_body(
            receive,
            self.max_body_bytes,
            lambda: ApiError(413, "RequestTooLargeException", "the request body is too large"),
        )

    async def _checkpoint(self, inv_id: str, data: dict[str, Any]) -> tuple[int, bytes]:
        runs = self.engine.deployments.aws_durable
        token = data.get("CheckpointToken")
        if not isinstance(token, str):
            raise ApiError(400, _BAD, "CheckpointToken must be a string")
        try:
            updates = check_updates(data.get("Updates", []))
        except UpdateError as exc:
            raise ApiError(400, _BAD, str(exc)) from None
        run = runs.live(token, inv_id)
        if run is None:
            raise ApiError(400, _BAD, f"{INVALID_TOKEN}: not the execution's live run")
        if not updates:  # a refresh: the operations as committed, nothing to journal
            state = [to_wire(op) for op in run.operations.values()]
            return 200, dumpb(
                {"CheckpointToken": run.token, "NewExecutionState": {"Operations": state}}
            )
        reply: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        run.inbox.put_nowait(Checkpoint(updates, reply))
        try:
            status, kind, body = await asyncio.wait_for(asyncio.shield(reply), CHECKPOINT_WAIT_S)
        except TimeoutError:
            raise ApiError(
                500, "ServiceException", "the checkpoint was not committed in time"
            ) from None
        if kind is not None:
            raise ApiError(status, kind, str(body.get("message")))
        return status, dumpb(body)

    async def _stop(self, inv_id: str, body: bytes) -> tuple[int, bytes]:
        """StopDurableExecution: a kill whose failure keeps the stop's ``Error`` (``_stop``);
        a malformed ``Error`` is a 400 and stops nothing."""
        try:
            error = stop_error(body)
        except StopError as exc:
            raise ApiError(400, _BAD, str(exc)) from None
        await self.engine.kill(inv_id, stopped_result(error))
        return 200, dumpb({"StopTimestamp": time.time()})

    def _state(self, inv_id: str, query: dict[str, list[str]]) -> tuple[int, bytes]:
        token = (query.get("CheckpointToken") or [""])[0]
        run = self.engine.deployments.aws_durable.live(token, inv_id)
        if run is None:
            raise ApiError(400, _BAD, f"{INVALID_TOKEN}: not the execution's live run")
        state = [to_wire(op) for op in run.operations.values()]
        return 200, dumpb({"Operations": state})

    async def _execution(self, inv_id: str, arn: str) -> tuple[InvocationRecord, str]:
        """An execution's invocation and its function's ARN (404 when it is none)."""
        rec = await self.engine.store.get_invocation(inv_id)
        found = self.engine.deployments.endpoint(rec.deployment_id) if rec is not None else None
        if rec is None or found is None or not isinstance(found[0], AwsDurableProtocol):
            raise ApiError(404, _GONE, f"no durable execution {arn}")
        return rec, found[0].function_arn

    async def _describe(self, inv_id: str, arn: str) -> tuple[int, bytes]:
        rec, function_arn = await self._execution(inv_id, arn)
        entries, _ = await self.engine.store.get_journal(inv_id)
        first = loads(entries[0]) if entries else {}
        out = _summary(rec, function_arn)
        out["InputPayload"] = dumps(first.get("value"))
        out["Version"] = function_arn.rpartition(":")[2]
        deadline = deadline_of(entries)
        if deadline is not None:  # registered with execution_timeout_s when it started
            out["DurableConfig"] = {"ExecutionTimeout": deadline.seconds}
            if out["Status"] == "RUNNING":
                out["ExpectedExecutionTimeoutTimestamp"] = deadline.at_ms / 1000
        if rec.status == "killed":  # stopped: the Error the stop gave, if it gave one
            out["Error"] = stopped_error(rec.result)
        elif out["Status"] == "TIMED_OUT":  # the Error AWS's ExecutionTimedOut carries
            out["Error"] = loads(rec.result or "{}")["failure"]["aws"]
        elif rec.result is not None:
            result = loads(rec.result)
            if "failure" in result:
                out["Error"] = {"ErrorMessage": str(result["failure"].get("message"))}
            else:
                out["Result"] = dumps(result.get("value"))
        return 200, dumpb(out)

    async def _history(
        self, inv_id: str, arn: str, query: dict[str, list[str]]
    ) -> tuple[int, bytes]:
        rec, _ = await self._execution(inv_id, arn)
        entries, texts = await self.engine.store.get_journal(inv_id)
        completions = {int(loads(t)["index"]): t for t in texts}
        status = _status(rec)
        ended = (_ENDED[status], rec.modified_at) if status != "RUNNING" else None
        arns = {s: a for a, s in self.engine.deployments.aws_durable.functions.items()}
        events = history(inv_id, entries, completions, rec.created_at, ended, rec.result, arns)
        if _flag(query, "ReverseOrder"):
            events.reverse()
        start, size = _page(query)
        page = events[start : start + size]
        for event in page:
            if "EventTimestamp" in event:
                event["EventTimestamp"] /= 1000
            for details, name in TIMESTAMPS:
                holder = event.get(details)
                if isinstance(holder, dict) and isinstance(holder.get(name), int):
                    holder[name] /= 1000
        out: dict[str, Any] = {"Events": page}
        if start + size < len(events):
            out["NextMarker"] = str(start + size)
        return 200, dumpb(out)

    async def _list(self, function: str, query: dict[str, list[str]]) -> tuple[int, bytes]:
        """ListDurableExecutionsByFunction: the executions of the registered durable functions
        ``function`` names (a name, a partial or a full ARN; ``Qualifier`` narrows it)."""
        qualifier = (query.get("Qualifier") or [""])[0] or None
        targets = {
            dep_id: adapter.function_arn
            for dep_id in list(self.engine.registry.deployments)
            if (found := self.engine.deployments.endpoint(dep_id)) is not None
            and isinstance(adapter := found[0], AwsDurableProtocol)
            and names_function(function, qualifier, adapter.function_arn)
        }
        if not targets:
            raise ApiError(404, _GONE, f"no durable function {function}")
        wanted = set(query.get("Statuses") or ())
        start, size = _page(query)
        found_execs = []
        for dep_id, function_arn in targets.items():
            service = loads(self.engine.registry.deployments[dep_id].services)["services"][0]
            for rec in await self.engine.store.list_invocations(
                service=service["name"], limit=10_000
            ):
                if rec.deployment_id == dep_id and (not wanted or _status(rec) in wanted):
                    found_execs.append(_summary(rec, function_arn))
        found_execs.sort(key=lambda e: e["StartTimestamp"], reverse=_flag(query, "ReverseOrder"))
        out: dict[str, Any] = {"DurableExecutions": found_execs[start : start + size]}
        if start + size < len(found_execs):
            out["NextMarker"] = str(start + size)
        return 200, dumpb(out)

    async def _callback(
        self, callback_id: str, op: str, scope: Scope, receive: Receive
    ) -> tuple[int, bytes]:
        if op not in ("succeed", "fail", "heartbeat"):
            raise ApiError(404, "UnknownOperationException", f"no callback operation {op}")
        named = parse_awakeable_id(callback_id)
        if named is None or named[1] < 1:
            raise ApiError(404, _GONE, f"no callback {callback_id}")
        body = await self._body(receive)
        entries, texts = await self.engine.store.get_journal(named[0])
        entry = loads(entries[named[1]]) if named[1] < len(entries) else {}
        if entry.get("id") != callback_id or entry.get("kind") != "awakeable":
            raise ApiError(404, _GONE, f"no callback {callback_id}")
        completions = {int(loads(t)["index"]): t for t in texts}
        if named[1] in completions:  # completed, or timed out (docs/aws-durable.md)
            how = "timed out" if timed_out(loads(completions[named[1]])) else "completed"
            raise ApiError(400, _BAD, f"callback {callback_id} is already {how}")
        if op == "heartbeat":
            return await self._heartbeat(callback_id, named, entries, completions)
        if op == "succeed":
            # the value (for Ritornello's readers) and the exact text sent (the SDK's Result)
            text = body.decode("utf-8", "replace")
            value = text if text.strip() else "null"
            try:
                loads(value)
            except ValueError:  # not JSON: its value is the text as a JSON string
                value = dumps(text)
            at = int(time.time() * 1000)  # the history's event time
            result = '{"value":' + value + ',"text":' + dumps(text) + ',"at":' + str(at) + "}"
        else:
            try:
                error = loads(body) if body else {}
            except ValueError:
                raise ApiError(400, _BAD, "the error is not a JSON object") from None
            if not isinstance(error, dict):
                raise ApiError(400, _BAD, "the error is not a JSON object")
            message = error.get("ErrorMessage") or "the callback failed"
            failure = {"code": 500, "message": str(message), "aws": error}
            result = dumps({"failure": failure, "at": int(time.time() * 1000)})
        await self.engine.complete_awakeable(callback_id, result)
        return 200, b"{}"

    async def _heartbeat(
        self, callback_id: str, named: tuple[str, int], entries: list[str], done: dict[int, str]
    ) -> tuple[int, bytes]:
        """A heartbeat completes the callback's heartbeat timer early, through the awakeable
        path (fresh: durable, and refused once the timer fired); the adapter journals the
        next timer. Without a heartbeat timeout it changes nothing."""
        rec = await self.engine.store.get_invocation(named[0])
        if rec is None:
            raise ApiError(404, _GONE, f"no callback {callback_id}")
        if rec.status in FINAL_STATUSES:
            raise ApiError(400, _BAD, f"callback {callback_id}: its execution is {rec.status}")
        found = heartbeat_timer(entries, named[1])
        if found is None:
            return 200, b"{}"
        index, timer = found
        if index not in done:
            try:
                await self.engine.complete_awakeable(
                    str(timer["id"]), heartbeat_result(int(time.time() * 1000))
                )
                return 200, b"{}"
            except StateConflictError as exc:  # its timer fired, a heartbeat came just before,
                _, texts = await self.engine.store.get_journal(named[0])  # or it is finished
                done = {int(loads(t)["index"]): t for t in texts}
                if index not in done:
                    raise ApiError(400, _BAD, str(exc)) from None
        if heartbeat_of(done.get(index)) is None:  # it fired: the callback times out
            raise ApiError(400, _BAD, f"callback {callback_id}: its heartbeat timed out")
        return 200, b"{}"  # a heartbeat just before this one renews the timer


#: The history's terminal event of each status (``Execution<it>``).
_ENDED = {
    "SUCCEEDED": "Succeeded",
    "FAILED": "Failed",
    "STOPPED": "Stopped",
    "TIMED_OUT": "TimedOut",
}


def _status(rec: InvocationRecord) -> str:
    """An invocation's status as a durable execution's (TIMED_OUT: its execution timeout's
    result, ``protocols.aws_durable._deadline``)."""
    if rec.status == "killed":
        return "STOPPED"
    if rec.status != "completed":
        return "RUNNING"
    if rec.result is None or '"failure"' not in rec.result[:12]:
        return "SUCCEEDED"
    return "TIMED_OUT" if is_timed_out(rec.result) else "FAILED"


def _summary(rec: InvocationRecord, function_arn: str) -> dict[str, Any]:
    """What every answer says of an execution."""
    status = _status(rec)
    out: dict[str, Any] = {
        "DurableExecutionArn": execution_arn(function_arn, rec.id),
        "DurableExecutionName": rec.id,
        "FunctionArn": function_arn,
        "Status": status,
        "StartTimestamp": rec.created_at / 1000,
    }
    if status != "RUNNING":
        out["EndTimestamp"] = rec.modified_at / 1000
    return out


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return (query.get(name) or ["false"])[0].lower() == "true"


def _page(query: dict[str, list[str]]) -> tuple[int, int]:
    """(start, size) from ``Marker`` and ``MaxItems`` (400 when they are not numbers)."""
    try:
        start = int((query.get("Marker") or ["0"])[0])
        size = int((query.get("MaxItems") or ["1000"])[0])
    except ValueError:
        raise ApiError(400, _BAD, "Marker and MaxItems must be integers") from None
    if start < 0 or not 1 <= size <= 1000:
        raise ApiError(400, _BAD, "Marker must be >= 0 and MaxItems from 1 to 1000")
    return start, size
