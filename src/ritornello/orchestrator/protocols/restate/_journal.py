"""Restate's journal in Ritornello's: one request built from a stored journal, one answer
read into new journal entries (pure: no I/O; the adapter sends and receives the bytes).

The journal is Ritornello's (docs/protocol.md), so the engine, the store, the admin API, UI and
CLI treat a Restate-SDK invocation like any other: each *command* the endpoint sends becomes one
entry of the matching kind (``SetState`` a ``set``, ``Call`` a ``call`` with the derived callee
id, ``Sleep`` a ``sleep``, ``Run`` a ``run`` holding its proposed result...). Each such entry
also keeps what replay needs to send back exactly what the endpoint wrote:

- ``rt``: the command's message type; ``rb``: its protobuf payload, base64, as received (the
  endpoint checks replayed commands against its handler's; they go back byte for byte);
- ``cid``: its result completion id; ``iid``: a call's or send's invocation-id notification id;
- ``rv``: the exact bytes of a value (base64) when its JSON view does not re-encode to them
  (an empty value, non-canonical JSON, or a step's non-JSON bytes).

*Notifications* are not stored as entries: replay derives them from the journal. A step's
result lives in its ``run`` entry; a lazy state read's in its ``get`` entry; a callee's id is
the entry's derived id; the rest (a timer fired, a callee's result, a promise) are the
engine's completions at the entry's index. Signals are completions at negative indices: -1 is
cancel (signal 1), -N is awakeable signal N (N >= 17), as ``parse_awakeable_id`` reads a
``sign_1`` id, and a named signal sits at ``named_signal_index(name)`` (below -2**32) with its
name in the completion.

Invariants:

- a step is journaled as its command arrives, as Restate journals it, with its result when
  the proposal came in the same answer (the common case); a result that comes in a later
  answer (the step was not awaited before a suspension, or failed and ran again) is an entry
  of its own (``rt`` the RunCompletion notification), which replay sends in its place. A step
  without a result is sent without one, so the endpoint runs it again;
- known_entries counts every message sent after Start;
- an answer that waits on a completion it made itself (a step it proposed, a lazy read, a
  callee id) is a ``checkpoint``: committed, then replayed at once with that notification;
- every value the engine keeps is JSON (state, inputs, outputs, promise and awakeable
  results); a non-JSON one is a failed attempt saying so, never stored.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from ritornello.protocol import InvokeResponse, derive_id
from ritornello.protocol._entries import INVOCATION_PERMIT, named_signal_index, signal_index

from ..._json import IntegerRangeError, check_int64, dumpb, loads
from ...core import Invocation
from ._proto import protocol_pb2 as pb
from ._wire import Frame, FrameError, MessageType, decode_all, encode

T = MessageType
#: The completion index of a signal: cancel is signal 1, awakeables 17 and up.
CANCEL_SIGNAL = 1
#: Notifications a command's entry carries itself (see module doc), by command type.
_SELF_COMPLETED = {T.RUN, T.GET_LAZY_STATE, T.GET_LAZY_STATE_KEYS, T.PEEK_PROMISE}
#: Notification type of the engine's completion of a waiting command, by command type.
_COMPLETION_OF = {
    T.SLEEP: T.SLEEP_COMPLETION,
    T.CALL: T.CALL_COMPLETION,
    T.GET_PROMISE: T.GET_PROMISE_COMPLETION,
    T.COMPLETE_PROMISE: T.COMPLETE_PROMISE_COMPLETION,
    T.ATTACH_INVOCATION: T.ATTACH_INVOCATION_COMPLETION,
    T.GET_INVOCATION_OUTPUT: T.GET_INVOCATION_OUTPUT_COMPLETION,
}
#: Commands whose notification a replay would rebuild the same even if their answer were
#: lost (a callee's id is derived from the entry's index; a lazy read is of the key's state,
#: held by the invocation): an open bidi exchange sends them at once, before the commit.
_REPRODUCIBLE = {T.CALL, T.ONE_WAY_CALL, T.GET_LAZY_STATE, T.GET_LAZY_STATE_KEYS}
#: Completions that carry no value when they succeed.
_VOID = {T.SLEEP, T.COMPLETE_PROMISE}
JOURNAL_MISMATCH, PROTOCOL_VIOLATION = 570, 571


class Refused(Exception):
    """The journal or the answer cannot be carried (a clear failed attempt, nothing kept)."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


def random_seed(invocation_id: str) -> int:
    """The seed of ``ctx.rand`` (V6): the same on every attempt of an invocation."""
    return int.from_bytes(hashlib.sha256(invocation_id.encode()).digest()[:8], "big")


# ---------------------------------------------------------------------- values


def value_bytes(entry: dict[str, Any], field: str = "value") -> bytes:
    """The exact bytes of an entry's value: ``rv`` when kept, else its JSON."""
    raw = entry.get("rv")
    if raw is not None:
        return _unb64(raw)
    return dumpb(entry.get(field))


def json_view(raw: bytes, what: str, *, opaque: bool = False) -> tuple[Any, str | None]:
    """(JSON value, ``rv`` or None) of a value the endpoint sent. Empty bytes are ``null``
    with ``rv`` kept. Non-JSON bytes: ``Refused``, unless ``opaque`` (a step's result, which
    only replay reads): then ``null`` with the bytes in ``rv``."""
    if not raw:
        return None, ""
    try:
        value = loads(raw)
        check_int64(raw)  # orjson would have read a wider integer as a float
    except IntegerRangeError as exc:
        if opaque:
            return None, _b64(raw)
        raise Refused(f"{what}: {exc}") from None
    except ValueError:
        if opaque:
            return None, _b64(raw)
        raise Refused(
            f"{what} is {len(raw)} bytes that are not JSON; Ritornello keeps a Restate "
            "endpoint's values as JSON (use the SDK's JSON serde)"
        ) from None
    return value, (None if dumpb(value) == raw else _b64(raw))


def _failure(f: pb.Failure) -> dict[str, Any]:
    return {"code": f.code or 500, "message": f.message}


def _pb_failure(failure: Any) -> pb.Failure:
    if not isinstance(failure, dict):
        failure = {}
    code = failure.get("code")
    return pb.Failure(
        code=code if isinstance(code, int) and 0 <= code < 2**32 else 500,
        message=str(failure.get("message", "")),
    )


def _set_result(note: pb.NotificationTemplate, result: dict[str, Any], void: bool) -> None:
    """A stored result (``{"value"}`` or ``{"failure"}``) into a notification."""
    if "failure" in result:
        note.failure.CopyFrom(_pb_failure(result["failure"]))
    elif void:
        note.void.SetInParent()
    else:
        note.value.content = dumpb(result.get("value"))


def _note(t: int, note: pb.NotificationTemplate) -> bytes:
    """A notification of type ``t``: every notification has the template's fields."""
    return encode(t, note.SerializeToString())


# ---------------------------------------------------------------------- request


def encode_request(inv: Invocation, version: int, *, lazy: bool) -> bytes:
    """Start, then the journal as commands and notifications (known_entries of them).

    Raises ``Refused`` when the journal holds an entry no Restate endpoint wrote (the
    deployment was replaced by one of another protocol under a running invocation)."""
    rec = inv.rec
    entries = [loads(text) for text in inv.entries]
    first = entries[0]
    messages = [
        encode(
            T.INPUT,
            pb.InputCommandMessage(
                headers=[
                    pb.Header(key=k, value=v) for k, v in (first.get("headers") or {}).items()
                ],
                value=pb.Value(content=value_bytes(first)),
            ),
        )
    ]
    completions = inv.completions
    for index in range(1, len(entries)):
        entry = entries[index]
        t, payload = entry.get("rt"), entry.get("rb")
        if t == T.RUN_COMPLETION:  # a step's late result: its notification, no command
            messages.extend(_notifications(T.RUN, entry, None))
            continue
        if not isinstance(t, int) or not isinstance(payload, str):
            raise Refused(
                f"entry {index} ({entry.get('kind')}) was not written by a Restate endpoint: "
                "this invocation cannot be replayed to one"
            )
        raw = _unb64(payload)
        messages.append(encode(t, raw))
        messages.extend(_notifications(t, entry, completions.get(index)))
    for index in sorted(i for i in completions if i < 0 and i != INVOCATION_PERMIT):
        result = loads(completions[index])
        name = result.get("name")
        if isinstance(name, str):
            note = pb.NotificationTemplate(signal_name=name)
        else:
            note = pb.NotificationTemplate(signal_id=-index)
        if index == -CANCEL_SIGNAL:
            note.void.SetInParent()  # cancel is void on the wire, whatever the engine keeps
        else:
            _set_result(note, result, void=False)
        messages.append(_note(T.SIGNAL_NOTIFICATION, note))
    start = pb.StartMessage(
        id=rec.id.encode(),
        debug_id=rec.id,
        known_entries=len(messages),
        key=rec.key or "",
        retry_count_since_last_stored_entry=max(0, rec.attempt - 1),
    )
    if version >= 6:
        start.random_seed = random_seed(rec.id)
    if rec.key is not None and inv.state is not None and not lazy:
        start.state_map.extend(
            pb.StartMessage.StateEntry(key=name.encode(), value=text.encode())
            for name, text in inv.state.items()
        )
    else:
        start.partial_state = True
    return encode(T.START, start) + b"".join(messages)


def run_results(entries: list[dict[str, Any]]) -> bytes:
    """The RunCompletion notifications of steps whose results were just committed."""
    return b"".join(
        note
        for entry in entries
        if _has_result(entry)
        for note in _notifications(T.RUN, entry, None)
    )


def _has_result(entry: dict[str, Any]) -> bool:
    return "value" in entry or "failure" in entry or "rv" in entry


def _notifications(t: int, entry: dict[str, Any], completion: str | None) -> list[bytes]:
    """The notifications replay sends after command ``entry``."""
    out: list[bytes] = []
    cid = entry.get("cid", 0)
    if t in _SELF_COMPLETED:
        note = pb.NotificationTemplate(completion_id=cid)
        if t == T.RUN:
            if not _has_result(entry):
                return out  # the step ran on no attempt yet, or failed: it runs again
            if "failure" in entry:
                note.failure.CopyFrom(_pb_failure(entry["failure"]))
            else:
                note.value.content = value_bytes(entry)
            out.append(_note(T.RUN_COMPLETION, note))
        elif t in (T.GET_LAZY_STATE, T.PEEK_PROMISE):
            if "failure" in entry:
                note.failure.CopyFrom(_pb_failure(entry["failure"]))
            elif entry.get("void"):
                note.void.SetInParent()
            else:
                note.value.content = value_bytes(entry)
            kind = (
                T.GET_LAZY_STATE_COMPLETION if t == T.GET_LAZY_STATE else T.PEEK_PROMISE_COMPLETION
            )
            out.append(_note(kind, note))
        else:
            note.state_keys.keys.extend(k.encode() for k in entry.get("value") or ())
            out.append(_note(T.GET_LAZY_STATE_KEYS_COMPLETION, note))
    elif t in (T.CALL, T.ONE_WAY_CALL):
        note = pb.NotificationTemplate(completion_id=entry.get("iid", 0))
        note.invocation_id = str(entry.get("id"))
        out.append(_note(T.CALL_INVOCATION_ID_COMPLETION, note))
    if completion is not None and t in _COMPLETION_OF:
        note = pb.NotificationTemplate(completion_id=cid)
        result = loads(completion)
        _set_result(note, result, void=t in _VOID or result.get("void") is True)
        out.append(_note(_COMPLETION_OF[MessageType(t)], note))
    return out


# ---------------------------------------------------------------------- answer


class Reader:
    """Reads one answer's messages into new entries (``decode_answer``; an open bidi
    stream reads with one per stretch between its checkpoints)."""

    def __init__(self, inv: Invocation, version: int, now_ms: int) -> None:
        self.inv = inv
        self.version = version
        self.now_ms = now_ms
        self.entries: list[dict[str, Any]] = []
        #: completion id -> entry index, over the journal and the new entries
        self.cids: dict[int, int] = {}
        #: completion ids this answer resolved itself (replay will carry them)
        self.fresh: set[int] = set()
        #: notifications an open exchange may send before the commit (``_REPRODUCIBLE``)
        self.immediate: list[bytes] = []
        #: steps of this answer without their result yet: completion id -> position in
        #: ``entries``
        self.pending_runs: dict[int, int] = {}
        #: steps of the journal without their result: completion id -> the step's name
        self.open_runs: dict[int, str] = {}
        rec = inv.rec
        self.state: dict[str, bytes] | None = (
            {k: v.encode() for k, v in inv.state.items()} if inv.state is not None else None
        )
        if rec.key is not None and self.state is None:
            self.state = {}
        for index, text in enumerate(inv.entries[1:], 1):
            entry = loads(text)
            t, cid = entry.get("rt"), entry.get("cid")
            if t == T.RUN_COMPLETION:  # a step's late result (``propose``)
                self.open_runs.pop(cid, None)
                continue
            for field in ("cid", "iid"):
                if isinstance(entry.get(field), int):
                    self.cids[entry[field]] = index
            if t == T.RUN and not _has_result(entry):
                self.open_runs[cid] = str(entry.get("name", ""))

    @property
    def next_index(self) -> int:
        return len(self.inv.entries) + len(self.entries)

    def command(self, frame: Frame) -> None:
        t = frame.type
        msg: Any = frame.message(self.version)
        index = self.next_index
        entry: dict[str, Any] = {"rt": t, "rb": _b64(frame.payload)}
        cid = getattr(msg, "result_completion_id", 0)
        if cid:
            entry["cid"] = cid
            self.cids[cid] = index
        if t == T.OUTPUT:
            del entry["rb"]  # never replayed: the invocation ends with it
            if msg.WhichOneof("result") == "failure":
                entry.update(kind="output", failure=_failure(msg.failure))
            else:
                value, _ = json_view(msg.value.content, "the handler's output")
                entry.update(kind="output", value=value)
        elif t == T.GET_EAGER_STATE:
            value = None
            if msg.WhichOneof("result") == "value":
                value, _ = json_view(msg.value.content, "a state value")
            entry.update(kind="get", name=self._key(msg.key), value=value)
        elif t == T.GET_LAZY_STATE:
            name = self._key(msg.key)
            found = (self.state or {}).get(name)
            entry.update(kind="get", name=name)
            if found is None:
                entry.update(value=None, void=True)
            else:
                entry["value"], rv = json_view(found, "a state value")
                if rv is not None:
                    entry["rv"] = rv
            self.fresh.add(cid)
        elif t == T.SET_STATE:
            name = self._key(msg.key)
            value, _ = json_view(msg.value.content, f"state value {name!r}")
            entry.update(kind="set", name=name, value=value)
            if self.state is not None:
                self.state[name] = dumpb(value)
        elif t == T.CLEAR_STATE:
            name = self._key(msg.key)
            entry.update(kind="clear", name=name)
            if self.state is not None:
                self.state.pop(name, None)
        elif t == T.CLEAR_ALL_STATE:
            entry.update(kind="clear_all")
            if self.state is not None:
                self.state.clear()
        elif t == T.GET_EAGER_STATE_KEYS:
            entry.update(kind="keys", value=sorted(self._key(k) for k in msg.value.keys))
        elif t == T.GET_LAZY_STATE_KEYS:
            entry.update(kind="keys", value=sorted(self.state or ()))
            self.fresh.add(cid)
        elif t == T.SLEEP:
            wake = msg.wake_up_time
            entry.update(kind="sleep", name=msg.name, duration_ms=max(0, wake - self.now_ms))
        elif t in (T.CALL, T.ONE_WAY_CALL):
            self._call(t, msg, entry, index)
        elif t == T.RUN:
            entry.update(kind="run", name=msg.name)
            self.pending_runs[cid] = len(self.entries)
        elif t in (T.GET_PROMISE, T.PEEK_PROMISE, T.COMPLETE_PROMISE):
            self._promise(t, msg, entry)
        elif t == T.SEND_SIGNAL:
            self._signal(msg, entry)
        elif t in (T.ATTACH_INVOCATION, T.GET_INVOCATION_OUTPUT):
            if msg.WhichOneof("target") != "invocation_id":
                raise Refused(
                    "attaching by idempotency key or workflow key from a handler is not "
                    "carried yet (by invocation id it is)"
                )
            kind = "attach" if t == T.ATTACH_INVOCATION else "get_output"
            entry.update(kind=kind, id=msg.invocation_id, name=msg.name)
        elif t == T.COMPLETE_AWAKEABLE:
            entry.update(kind="complete_awakeable", id=msg.awakeable_id)
            if msg.WhichOneof("result") == "failure":
                entry["failure"] = _failure(msg.failure)
            else:
                entry["value"], _ = json_view(msg.value.content, "an awakeable's value")
        else:
            name = MessageType(t).name if t in MessageType._value2member_map_ else hex(t)
            raise Refused(f"the endpoint sent {name}, which Ritornello does not carry yet")
        self.entries.append(entry)
        if t in _REPRODUCIBLE:
            self.immediate.extend(_notifications(t, entry, None))

    def _signal(self, msg: Any, entry: dict[str, Any]) -> None:
        """A signal to an invocation: cancel (1), an awakeable (17+) or a named one."""
        entry.update(kind="signal", id=msg.target_invocation_id, name=msg.entry_name)
        if msg.WhichOneof("signal_id") == "name":
            entry["signal_name"] = msg.name
        else:
            entry["signal"] = msg.idx
        result = msg.WhichOneof("result")
        if result == "failure":
            entry["failure"] = _failure(msg.failure)
        elif result == "value":
            entry["value"], _ = json_view(msg.value.content, "a signal's value")
        if signal_index(entry) is None:
            raise Refused(f"a signal to {msg.target_invocation_id} names no valid signal")

    def _promise(self, t: int, msg: Any, entry: dict[str, Any]) -> None:
        """A workflow promise: get and complete are the engine's (under the workflow key's
        lock); a peek is answered from the promises read for this attempt."""
        if t == T.GET_PROMISE:
            entry.update(kind="promise_get", name=msg.key)
        elif t == T.COMPLETE_PROMISE:
            entry.update(kind="promise_complete", name=msg.key)
            if msg.WhichOneof("completion") == "completion_failure":
                entry["failure"] = _failure(msg.completion_failure)
            else:
                what = f"promise {msg.key!r}'s value"
                entry["value"], _ = json_view(msg.completion_value.content, what)
        else:
            entry.update(kind="promise_peek", name=msg.key)
            found = (self.inv.promises or {}).get(msg.key)
            result = loads(found) if found is not None else None
            if result is None:
                entry.update(value=None, void=True)
            elif "failure" in result:
                entry["failure"] = result["failure"]
            else:
                entry["value"] = result.get("value")
            self.fresh.add(msg.result_completion_id)

    def _key(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused("a state key is not UTF-8 text") from None

    def _call(self, t: int, msg: Any, entry: dict[str, Any], index: int) -> None:
        value, _ = json_view(msg.parameter, f"the input of {msg.service_name}/{msg.handler_name}")
        entry.update(
            kind="call" if t == T.CALL else "send",
            name=f"{msg.service_name}/{msg.handler_name}",
            key=msg.key or None,
            input=value,
            id=derive_id(self.inv.rec.id, index),
        )
        if msg.HasField("idempotency_key"):  # the engine finds an invocation it names
            entry["idempotency_key"] = msg.idempotency_key
        iid = msg.invocation_id_notification_idx
        if iid:
            entry["iid"] = iid
            self.cids[iid] = index
            self.fresh.add(iid)
        if t == T.ONE_WAY_CALL and msg.invoke_time:
            entry["delay_ms"] = max(0, msg.invoke_time - self.now_ms)

    def propose(self, frame: Frame) -> None:
        """A step's result: into its ``run`` entry when that came in this answer (the common
        case), else a result entry of its own after the journaled step (``rt`` the
        RunCompletion notification, which replay sends in its place)."""
        msg: Any = frame.message(self.version)
        cid = msg.result_completion_id
        at = self.pending_runs.pop(cid, None)
        if at is not None:
            entry = self.entries[at]
        elif cid in self.open_runs:
            name = self.open_runs.pop(cid)
            entry = {"kind": "run", "name": name, "rt": int(T.RUN_COMPLETION), "cid": cid}
            self.entries.append(entry)
        else:
            raise Refused(f"a proposal for completion {cid}, which is no step awaiting one")
        if msg.WhichOneof("result") == "failure":
            entry["failure"] = _failure(msg.failure)
        else:
            entry["value"], rv = json_view(msg.value, "a step's result", opaque=True)
            if rv is not None:
                entry["rv"] = rv
        self.fresh.add(cid)

    def read(self, frame: Frame) -> bool:
        """Take one message of the answer; True when it ends it (End, Suspension, Error)."""
        t = frame.type
        if 0x0400 <= t < 0x8000:
            self.command(frame)
        elif t == T.PROPOSE_RUN_COMPLETION:
            self.propose(frame)
        elif t in (T.END, T.SUSPENSION, T.ERROR):
            return True
        else:
            raise Refused(f"unexpected message type {t:#06x} from the endpoint")
        return False

    def checkpoint(self) -> InvokeResponse:
        """The entries so far as a stretch of an open exchange (``_bidi``)."""
        entries: Any = self.entries
        return InvokeResponse(status="checkpoint", entries=entries)

    def finish(self, end: Frame) -> InvokeResponse:
        """The answer that ``end`` (End, Suspension or Error) closes."""
        entries: Any = self.entries
        if end.type == T.END:
            if not entries or entries[-1].get("kind") != "output":
                raise Refused("End without an output as the last command")
            return InvokeResponse(status="done", entries=entries)
        if end.type == T.ERROR:
            msg: Any = end.message(self.version)
            kind = {JOURNAL_MISMATCH: "journal_mismatch", PROTOCOL_VIOLATION: "protocol"}.get(
                msg.code, "handler"
            )
            text = f"[{msg.code}] {msg.message}"
            if msg.HasField("related_command_name") or msg.HasField("related_command_index"):
                text += f" (command {msg.related_command_index}"
                text += f" {msg.related_command_name!r})" if msg.related_command_name else ")"
            if msg.stacktrace:
                text += "\n" + msg.stacktrace[:1500]
            return InvokeResponse(
                status="error", entries=entries, error={"message": text, "kind": kind}
            )
        waiting, resolved = self.waiting(end.message(self.version))
        if resolved or not waiting:
            if not entries:
                raise Refused(
                    "suspended on what it was already sent (or on a step it did not run), "
                    "with nothing new"
                )
            return InvokeResponse(status="checkpoint", entries=entries)
        return InvokeResponse(status="suspended", entries=entries, waiting=waiting)

    def waiting(self, msg: Any) -> tuple[list[int], bool]:
        """(the indices a suspension waits on, whether one of them is resolved already)."""
        indices: list[int] = []
        resolved = False
        for cid in msg.waiting_completions:
            index = self.cids.get(cid)
            if index is None:
                raise Refused(f"suspended on completion {cid}, which no command allocated")
            if cid in self.fresh or cid in self.pending_runs or cid in self.open_runs:
                resolved = True  # replayed with it; or a step it runs when replayed
            else:
                indices.append(index)
        for signal in msg.waiting_signals:
            indices.append(-signal)
        for name in msg.waiting_named_signals:
            indices.append(named_signal_index(name))
        return sorted(set(indices)), resolved


def decode_answer(inv: Invocation, raw: bytes, version: int, now_ms: int) -> InvokeResponse:
    """An endpoint's answer to one attempt, as Ritornello's ``InvokeResponse``.

    ``Refused`` (or ``FrameError``) when it breaks the protocol or cannot be carried: the
    attempt fails and nothing of it is kept."""
    reader = Reader(inv, version, now_ms)
    end: Frame | None = None
    for frame in decode_all(raw, max(len(raw), 1)):
        if end is not None:
            raise Refused(f"a message (type {frame.type:#06x}) after the end of the answer")
        if reader.read(frame):
            end = frame
    if end is None:
        raise Refused("the answer ended without End, Suspension or Error (truncated?)")
    return reader.finish(end)


__all__ = [
    "FrameError",
    "Reader",
    "Refused",
    "decode_answer",
    "encode_request",
    "random_seed",
    "run_results",
]
