"""Turn one endpoint answer into one commit unit: the transitions of an attempt's outcome.

Pure: no I/O, no clock reads (``now_ms`` is passed in), no core state except through the
``admit`` callback that places a new invocation in its object key's queue. The core commits
the returned unit through the runtime and acts on it once it is committed.

Transitions drawn (docs/orchestrator.md)::

    pending ──(key free)──▶ running ◀──(timer)── scheduled
                              │ ▲ ▲
             answer suspended │ │ └──(retry timer)── backing-off ◀── answer error
                              ▼ │                        ▲
                          suspended ──(completion)───────┘(attempt failed on resume)
                              running ── answer done ──▶ completed
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ritornello.protocol import (
    Entry,
    InvokeResponse,
    RetryPolicy,
    derive_id,
    parse_awakeable_id,
)
from ritornello.protocol._entries import WAITING_KINDS, is_signal
from ritornello.store.records import (
    FINAL_STATUSES,
    CommitUnit,
    InvocationRecord,
    InvocationWrite,
    Status,
    TimerRecord,
    with_changes,
    with_failure,
)

from .._json import dumps, loads
from ._invocation import permit_of
from ._journal import (
    NOT_READY_RESULT,
    PROMISE_ROW,
    WAITER_ROW,
    WORKFLOW_RUN,
    completion_text,
    failure_result,
    input_entry_of,
    result_text,
    signal_text,
    split_state,
    waiters_of,
)
from ._registry import Registry, Target

#: ms before an attach first reads its target again (``_timers.attach_poll_ms`` after).
ATTACH_POLL_MIN_MS = 100


class AnswerError(Exception):
    """An answer breaks the protocol (the attempt counts as failed and is retried)."""


#: The orchestrator's defaults (Restate's): 50 ms, x2, 60 s cap, 70 attempts, then pause.
DEFAULT_RETRY = RetryPolicy(
    initial_interval_ms=50,
    factor=2.0,
    max_interval_ms=60_000,
    max_attempts=70,
    on_max_attempts="pause",
)


def backoff_ms(policy: RetryPolicy, failed_attempt: int) -> int:
    """Delay before the attempt after ``failed_attempt`` (1-based), under a resolved policy."""
    initial = policy.initial_interval_ms or 50
    cap = policy.max_interval_ms or 60_000
    return int(min(cap, initial * (policy.factor or 2.0) ** max(0, failed_attempt - 1)))


@dataclass(slots=True)
class Outcome:
    """What an answer changes: the unit to commit, and what the core applies to its memory
    once that unit is committed."""

    unit: CommitUnit
    record: InvocationRecord
    new_entries: list[str] = field(default_factory=list)
    waitable: list[int] = field(default_factory=list)  # indices of new waiting entries
    created: list[InvocationRecord] = field(default_factory=list)
    state: list[tuple[str | None, str | None]] = field(default_factory=list)  # (name, json|None)
    #: new ``permit`` entries: index -> limit; permits given back by a step journaled here
    permits: dict[int, str] = field(default_factory=dict)
    released: list[int] = field(default_factory=list)


def _split_target(name: Any) -> tuple[str, str]:
    if not isinstance(name, str) or name.count("/") != 1:
        raise AnswerError(f"call target {name!r} is not 'Service/handler'")
    service, handler = name.split("/")
    return service, handler


def new_invocation(
    *,
    id: str,
    service: str,
    handler: str,
    key: str | None,
    handler_kind: str,
    deployment_id: str,
    seq: int,
    now_ms: int,
    status: str,
    caller: tuple[str, int] | None = None,
    idempotency_key: str | None = None,
    next_at: int | None = None,
    result: str | None = None,
    partition: int = 0,
) -> InvocationRecord:
    """A new invocation record (version 1, one journal entry: its input)."""
    return InvocationRecord(
        id=id,
        service=service,
        handler=handler,
        key=key,
        handler_kind=handler_kind,
        status=status,
        deployment_id=deployment_id,
        seq=seq,
        created_at=now_ms,
        modified_at=now_ms,
        caller_id=caller[0] if caller else None,
        caller_index=caller[1] if caller else None,
        idempotency_key=idempotency_key,
        next_at=next_at,
        result=result,
        partition=partition,
    )


def apply_answer(
    *,
    record: InvocationRecord,
    answer: InvokeResponse,
    journal_len: int,
    waitable: set[int],
    service_kind: str,
    registry: Registry,
    now_ms: int,
    next_seq: Callable[[], int],
    admit: Callable[[InvocationRecord], str],
    retry: RetryPolicy,
    extra_timer_removals: list[TimerRecord] | None = None,
    awakeables: dict[str, tuple[str, int]] | None = None,
    signals: dict[int, tuple[str, int]] | None = None,
    outputs: dict[int, str] | None = None,
    workflow_rows: dict[str, str] | None = None,
    started_workflows: set[tuple[str, str]] | None = None,
    existing: dict[tuple[str, str, str | None, str], InvocationRecord] | None = None,
    partition_of: Callable[[str, str | None, str], int] | None = None,
    retention_ms: int | None = None,
    instance_of: Callable[[str], str] | None = None,
) -> Outcome:
    """Build the commit unit for ``answer`` to an attempt of ``record``.

    ``awakeables`` maps the awakeable ids this answer completes, already checked against
    their journals by the engine, to (invocation id, entry index); ``signals`` maps the
    position in the answer of each ``signal`` entry that reaches an open target to (target,
    completion index); ``outputs`` the result of each ``attach``/``get_output`` entry's target
    that has finished, by the entry's position. ``workflow_rows`` are the
    workflow key's state rows, read under the key's lock (promises and their waiters);
    ``started_workflows`` the (workflow, id) pairs whose run already exists; ``existing`` the
    invocations that calls and sends with an idempotency key name, where they exist;
    ``partition_of(service, key, id)`` places a callee (default: partition 0).
    ``retention_ms``: a completed record gets ``expires_at = now_ms + retention_ms`` (what
    ``Engine._commit`` would stamp on it, set here to build the record once); None: left unset.
    ``instance_of(limit)``: the limit instance a ``permit`` entry asks of (default: the limit).

    Raises AnswerError if the answer breaks the protocol; the caller then applies
    ``failed_attempt`` instead.
    """
    unit = CommitUnit(timers_remove=list(extra_timer_removals or ()))
    out = Outcome(unit=unit, record=record)
    awakeables = awakeables or {}
    if workflow_rows:
        user_state, promises = split_state(workflow_rows)
        waiters = waiters_of(workflow_rows)
    else:  # not a workflow: nothing to split (the common case)
        user_state, promises, waiters = {}, {}, {}
    started = started_workflows or set()
    stateful = service_kind in ("object", "workflow") and record.handler_kind != "shared"
    result: str | None = None
    index = journal_len
    for n, entry in enumerate(answer.entries):
        kind = entry["kind"]
        last = n == len(answer.entries) - 1
        if kind in ("run", "sleep") and "limit" in entry:
            # A step's result (or the timer before its next attempt) gives back the permit
            # it held: asked just before it, or at the index ``permit`` names.
            out.released.append(permit_of(entry, index))
        if kind == "permit":
            limit = entry.get("name")
            if not isinstance(limit, str) or not limit:
                raise AnswerError(f"entry {index}: a permit entry needs a limit name")
            instance = instance_of(limit) if instance_of is not None else limit
            if instance != limit:  # a per-key limit: the instance is journaled with it
                entry = {**entry, "instance": instance}
            out.permits[index] = instance
        elif kind == "input":
            raise AnswerError(f"entry {index}: an input entry can only be entry 0")
        if kind == "output":
            if not (last and answer.status == "done"):
                raise AnswerError(f"entry {index}: output must be the last entry of a done answer")
            result = result_text(entry)
        elif kind in ("set", "clear", "clear_all"):
            if not stateful:
                raise AnswerError(f"entry {index}: {kind} from a handler that cannot write state")
            name = entry.get("name") if kind != "clear_all" else None
            if kind != "clear_all" and not isinstance(name, str):
                raise AnswerError(f"entry {index}: {kind} needs a state key name")
            if isinstance(name, str) and name.startswith("\x00"):
                raise AnswerError(f"entry {index}: state names starting with NUL are reserved")
            value = dumps(entry.get("value")) if kind == "set" else None
            if kind == "set" and isinstance(name, str):
                user_state[name] = value or "null"
            elif kind == "clear" and isinstance(name, str):
                user_state.pop(name, None)
            if kind == "clear_all" and service_kind == "workflow":
                # The engine's promise rows live beside the user's state: clear only the latter.
                for user_name in sorted(user_state):
                    out.state.append((user_name, None))
                    unit.state.append((record.service, record.key or "", user_name, None))
                user_state.clear()
            else:
                out.state.append((name, value))
                unit.state.append((record.service, record.key or "", name, value))
        elif kind in ("promise_get", "promise_complete", "promise_peek"):
            if service_kind != "workflow" or record.key is None:
                raise AnswerError(f"entry {index}: promises belong to workflows")
            _promise(out, record, entry, index, promises, waiters)
        elif kind in ("call", "send"):
            idem = entry.get("idempotency_key")
            if idem is not None and not isinstance(idem, str):
                raise AnswerError(f"entry {index}: idempotency_key must be a string")
            given = entry.get("headers")
            if given is not None and not (
                isinstance(given, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in given.items())
            ):
                raise AnswerError(f"entry {index}: headers must map strings to strings")
            service, handler = _split_target(entry.get("name"))
            key = entry.get("key") if isinstance(entry.get("key"), str) else None
            if "raw" in entry:
                entry = _raw_call(entry, index, registry.resolve(service, handler))
            twin = (existing or {}).get((service, handler, key, idem)) if idem else None
            if twin is not None:  # that invocation exists: this names it (and a call awaits it)
                entry = _to_existing(out, record, entry, index, twin, now_ms)
            else:
                _outbox(
                    out,
                    record,
                    entry,
                    index,
                    registry,
                    now_ms,
                    next_seq,
                    admit,
                    started,
                    partition_of,
                )
                made = out.created[-1] if out.created else None
                if idem and made is not None and made.idempotency_key == idem:
                    # a later entry of this answer with the same key names this callee
                    existing = {**(existing or {}), (service, handler, key, idem): made}
        elif kind == "awakeable":
            if parse_awakeable_id(str(entry.get("id"))) != (record.id, index):
                raise AnswerError(f"entry {index}: awakeable id does not name this entry")
        elif kind == "complete_awakeable":
            target = awakeables.get(str(entry.get("id")))
            if target is not None:  # unknown or forged ids complete nothing
                how = "failure" if "failure" in entry else "value"
                text = completion_text(target[1], dumps({how: entry.get(how)}))
                unit.completions.append((target[0], target[1], text))
        elif kind in ("attach", "get_output"):
            result = (outputs or {}).get(n)
            if result is None and kind == "get_output":
                result = NOT_READY_RESULT
            if result is not None:
                unit.completions.append((record.id, index, completion_text(index, result)))
            else:  # read the target again until it finishes (``_timers.attach_checked``)
                first = now_ms + ATTACH_POLL_MIN_MS
                unit.timers_add.append(
                    TimerRecord(first, record.id, "attach", index, record.partition)
                )
        elif kind == "signal":
            sent = (signals or {}).get(n)
            if sent is not None:  # an open target (``_drive._signals``): else nothing
                unit.completions.append((sent[0], sent[1], signal_text(sent[1], entry)))
        elif kind == "sleep":
            duration = entry.get("duration_ms")
            if not isinstance(duration, int) or isinstance(duration, bool) or duration < 0:
                raise AnswerError(f"entry {index}: sleep needs a non-negative duration_ms")
            entry = {**entry, "wake_at": now_ms + duration}
            unit.timers_add.append(
                TimerRecord(now_ms + duration, record.id, "sleep", index, record.partition)
            )
        if kind in WAITING_KINDS:
            out.waitable.append(index)
        out.new_entries.append(dumps(entry))
        unit.entries.append((record.id, index, out.new_entries[-1]))
        index += 1

    fields: dict[str, Any] = {
        "journal_len": index,
        "modified_at": now_ms,
        "version": record.version + 1,
        "next_at": None,
        "waiting": (),
    }
    if answer.status == "done":
        assert result is not None
        fields.update(status=Status.COMPLETED.value, result=result, last_error=None)
        if retention_ms is not None:
            fields["expires_at"] = now_ms + retention_ms
        terminal(out, record, result)
    elif answer.status == "suspended":
        all_waitable = waitable.union(out.waitable)
        for i in answer.waiting:
            if i not in all_waitable and not is_signal(i):
                raise AnswerError(f"suspended on entry {i}, which is not a call or sleep")
        fields.update(status=Status.SUSPENDED.value, waiting=tuple(answer.waiting))
    elif answer.status == "checkpoint":
        fields.update(status=Status.RUNNING.value)
    else:  # error: the entries before it are valid and kept
        error = answer.error or {}
        message = f"{error.get('kind', 'handler')}: {error.get('message')}"
        fields.update(_failure(out, record, message, now_ms, retry))
    out.record = with_changes(record, **fields)
    unit.invocations.insert(0, InvocationWrite(out.record, expect_version=record.version))
    return out


def failed_attempt(
    *,
    record: InvocationRecord,
    message: str,
    now_ms: int,
    retry: RetryPolicy,
    extra_timer_removals: list[TimerRecord] | None = None,
    throttled: bool = False,
) -> Outcome:
    """The unit for an attempt that produced no usable answer (transport error, timeout,
    malformed or protocol-breaking answer): nothing of it is kept; retry after backoff.
    ``throttled`` (the endpoint refused it for load): backed off without counting it."""
    out = Outcome(unit=CommitUnit(timers_remove=list(extra_timer_removals or ())), record=record)
    if throttled:
        fields = _throttled(out, record, message, now_ms)
    else:
        fields = _failure(out, record, message, now_ms, retry)
    out.record = with_changes(
        record, **fields, waiting=(), modified_at=now_ms, version=record.version + 1
    )
    out.unit.invocations.insert(0, InvocationWrite(out.record, expect_version=record.version))
    return out


def _failure(
    out: Outcome, record: InvocationRecord, message: str, now_ms: int, policy: RetryPolicy
) -> dict[str, Any]:
    """Record fields after attempt ``record.attempt`` failed: back off and retry, or — once the
    policy's attempts are spent — pause (resumable) or kill (terminal, the caller is told)."""
    error = message[:2000]
    history = with_failure(record.history, record.attempt, now_ms, error)  # the retry history
    if policy.max_attempts is None or record.attempt < policy.max_attempts:
        next_at = now_ms + backoff_ms(policy, record.attempt)
        out.unit.timers_add.append(TimerRecord(next_at, record.id, "retry", 0, record.partition))
        return {
            "status": Status.BACKING_OFF.value,
            "attempt": record.attempt + 1,
            "last_error": error,
            "next_at": next_at,
            "history": history,
        }
    if policy.on_max_attempts == "kill":
        result = failure_result(500, f"killed after {record.attempt} attempts: {error}")
        terminal(out, record, result)
        return {
            "status": Status.KILLED.value,
            "result": result,
            "last_error": error,
            "next_at": None,
            "history": history,
        }
    return {"status": Status.PAUSED.value, "last_error": error, "next_at": None, "history": history}


#: Backoff of throttled attempts: 100 ms, doubling per throttle in a row, at most 10 s.
THROTTLE_FIRST_MS, THROTTLE_MAX_MS = 100, 10_000
_THROTTLED = re.compile(r"throttled #(\d+): ")


def _throttled(out: Outcome, record: InvocationRecord, message: str, now_ms: int) -> dict[str, Any]:
    """Record fields after a throttled attempt: backing off, the attempt not counted (nor in
    the retry history); ``last_error`` counts the throttles in a row (``throttled #n: ...``),
    which doubles the delay each time."""
    found = _THROTTLED.match(record.last_error or "")
    n = int(found.group(1)) + 1 if found else 1
    delay = min(THROTTLE_MAX_MS, THROTTLE_FIRST_MS * 2 ** min(n - 1, 16))
    out.unit.timers_add.append(TimerRecord(now_ms + delay, record.id, "retry", 0, record.partition))
    return {
        "status": Status.BACKING_OFF.value,
        "last_error": f"throttled #{n}: {message}"[:2000],
        "next_at": now_ms + delay,
    }


def terminal(out: Outcome, record: InvocationRecord, result: str) -> None:
    """A terminal result: the caller (if any) gets it as a completion in the same unit."""
    if record.caller_id is not None and record.caller_index is not None:
        text = completion_text(record.caller_index, result)
        out.unit.completions.append((record.caller_id, record.caller_index, text))


def _outbox(
    out: Outcome,
    record: InvocationRecord,
    entry: Entry,
    index: int,
    registry: Registry,
    now_ms: int,
    next_seq: Callable[[], int],
    admit: Callable[[InvocationRecord], str],
    started: set[tuple[str, str]],
    partition_of: Callable[[str, str | None, str], int] | None,
) -> None:
    """A call or send creates its callee in the same unit as the caller's entry."""
    kind = entry["kind"]
    service, handler = _split_target(entry.get("name"))
    callee_id = entry.get("id")
    if callee_id != derive_id(record.id, index):
        raise AnswerError(f"entry {index}: {kind} id {callee_id!r} is not the derived id")
    key = entry.get("key")
    if key is not None and not isinstance(key, str):
        raise AnswerError(f"entry {index}: {kind} key must be a string or null")
    delay = entry.get("delay_ms", 0) if kind == "send" else 0
    if not isinstance(delay, int) or isinstance(delay, bool) or delay < 0:
        raise AnswerError(f"entry {index}: send delay_ms must be a non-negative integer")
    caller = (record.id, index) if kind == "call" else None
    target = registry.resolve(service, handler)
    problem = None
    if target is None:
        problem = (404, f"no handler {service}/{handler} is registered")
    elif target.service.kind == "service" and key is not None:
        problem = (400, f"{service} is a service: calls to it take no key")
    elif target.service.kind != "service" and key is None:
        problem = (400, f"{service} is keyed: calls to it need a key")
    elif target.handler.kind == "workflow" and (service, key) in started:
        problem = (409, f"workflow {service} {key!r} was already submitted")
    common: dict[str, Any] = {
        "id": callee_id,
        "service": service,
        "handler": handler,
        "key": key,
        "seq": next_seq(),
        "now_ms": now_ms,
        "caller": caller,
        "partition": partition_of(service, key, callee_id) if partition_of else 0,
    }
    input_value = entry.get("input")
    if problem is None and target is not None and entry.get("raw") is True:
        input_value, problem = _raw_input(input_value, target.handler.input_content_type)
    if problem is not None or target is None:
        code, message = problem or (404, "unknown target")
        callee = new_invocation(
            **common,
            handler_kind="exclusive",
            deployment_id="",
            status=Status.COMPLETED.value,
            result=failure_result(code, message),
        )
        if caller is not None:
            text = completion_text(index, failure_result(code, message))
            out.unit.completions.append((record.id, index, text))
    else:
        idem = entry.get("idempotency_key")
        callee = new_invocation(
            **common,
            handler_kind=target.handler.kind,
            deployment_id=target.deployment_id,
            status=Status.SCHEDULED.value if delay else Status.RUNNING.value,
            next_at=now_ms + delay if delay else None,
            idempotency_key=WORKFLOW_RUN
            if target.handler.kind == "workflow"
            else (idem if isinstance(idem, str) else None),
        )
        if target.handler.kind == "workflow":
            started.add((service, str(key)))
        if delay:
            out.unit.timers_add.append(
                TimerRecord(now_ms + delay, callee.id, "start", 0, callee.partition)
            )
        else:
            callee = with_changes(callee, status=admit(callee))
        out.created.append(callee)
    out.unit.invocations.append(InvocationWrite(callee))
    out.unit.entries.append((callee.id, 0, input_entry_of(input_value, _flow(entry))))


def _raw_call(entry: Entry, index: int, target: Target | None) -> Entry:
    """A generic call or send (``raw``: its input is the base64 of a request body, and a
    call wants the callee's answer as bytes): checked, and a call to a handler that answers
    raw bytes is marked with that content type, so the caller's SDK knows how to read the
    result (a JSON result is read as JSON text)."""
    if entry.get("raw") is not True or not isinstance(entry.get("input"), str):
        raise AnswerError(f"entry {index}: a raw call's input is the base64 text of its body")
    content_type = target.handler.output_content_type if target is not None else None
    if content_type is None:
        return entry
    return {**entry, "output_content_type": content_type}


def _raw_input(text: Any, content_type: str | None) -> tuple[Any, tuple[int, str] | None]:
    """A raw call's input for its callee: the base64 text as is for a raw-bytes handler;
    the JSON value the bytes hold for a JSON handler (else a 400 for the callee)."""
    if content_type is not None:
        return text, None
    try:
        return loads(base64.b64decode(str(text), validate=True)), None
    except (ValueError, TypeError):
        return None, (400, "the body of a generic call to a JSON handler must be JSON")


def _flow(entry: Entry) -> dict[str, str] | None:
    """The headers a call or send gives its callee's input: its ``headers`` (str to str,
    names lower-cased), then the flow-control ones (``priority``, ``limit_key``)."""
    priority, limit_key = entry.get("priority"), entry.get("limit_key")
    given = entry.get("headers")
    if priority is None and limit_key is None and not given:
        return None
    headers: dict[str, str] = {}
    if isinstance(given, dict):
        headers.update(
            (k.lower(), v) for k, v in given.items() if isinstance(k, str) and isinstance(v, str)
        )
    if type(priority) is int and 0 <= priority <= 10:
        headers["x-ritornello-priority"] = str(priority)
    if isinstance(limit_key, str):
        headers["x-ritornello-limit-key"] = limit_key
    return headers


def _to_existing(
    out: Outcome,
    record: InvocationRecord,
    entry: Entry,
    index: int,
    twin: InvocationRecord,
    now_ms: int,
) -> Entry:
    """A call or send whose idempotency key names an invocation that exists: nothing is
    created; the entry names that invocation, and a call gets its result — now if it has
    finished, else through an attach timer (``_timers.attach_checked``)."""
    entry = {**entry, "id": twin.id}
    if entry["kind"] == "call":
        if twin.status in FINAL_STATUSES and twin.result is not None:
            text = completion_text(index, twin.result)
            out.unit.completions.append((record.id, index, text))
        else:
            first = now_ms + ATTACH_POLL_MIN_MS
            out.unit.timers_add.append(
                TimerRecord(first, record.id, "attach", index, record.partition)
            )
    return entry


def _promise(
    out: Outcome,
    record: InvocationRecord,
    entry: Entry,
    index: int,
    promises: dict[str, str],
    waiters: dict[str, list[tuple[str, int, str]]],
) -> None:
    """A workflow promise entry: wait on it, or complete it and everyone waiting on it.

    Timeline (all under the workflow key's lock, so the two cannot miss each other)::

        waiter commits promise_get:  resolved? -> completion now   else -> waiter row
        resolver commits promise_complete: promise row + a completion for every waiter row
    """
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise AnswerError(f"entry {index}: a promise entry needs a name")
    kind = entry["kind"]
    service, key = record.service, record.key or ""
    if kind == "promise_get":
        if name in promises:
            text = completion_text(index, promises[name])
            out.unit.completions.append((record.id, index, text))
        else:
            row = f"{WAITER_ROW}{name}:{record.id}:{index}"
            out.unit.state.append((service, key, row, "1"))
            waiters.setdefault(name, []).append((record.id, index, row))
    elif kind == "promise_complete":
        if name in promises:
            failure = failure_result(409, f"promise {name!r} was already completed")
            out.unit.completions.append((record.id, index, completion_text(index, failure)))
            return
        how = "failure" if "failure" in entry else "value"
        result = dumps({how: entry.get(how)})
        promises[name] = result
        out.unit.state.append((service, key, PROMISE_ROW + name, result))
        out.unit.completions.append((record.id, index, completion_text(index, '{"value":null}')))
        for inv, waiting_index, row in waiters.pop(name, []):
            out.unit.completions.append(
                (inv, waiting_index, completion_text(waiting_index, result))
            )
            out.unit.state.append((service, key, row, None))
