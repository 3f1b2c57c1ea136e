"""Restate's journal in Ritornello's (``orchestrator/protocols/restate/_journal.py``), checked
against the real SDK core: the request ``encode_request`` builds is fed to restate-sdk's own VM
(``restate.vm.VMWrapper``, the shared core every Python endpoint runs), a handler-like sequence
runs on it, and ``decode_answer`` reads what the VM wrote. The entries it journals are then
replayed to a *new* VM, which must accept them (no journal mismatch), see its steps replayed
with the same values, and go on to its output.

Also: the JSON view of values, awakeables and cancellation as signals, what a suspension waits
on, and a fuzzer: whatever an endpoint answers, ``decode_answer`` returns an answer or raises
``Refused`` or ``FrameError``, never anything else."""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ritornello.orchestrator._json import dumpb
from ritornello.orchestrator.core import Invocation
from ritornello.orchestrator.core._answer import new_invocation
from ritornello.orchestrator.core._journal import CANCELLED_RESULT, SLEPT_RESULT, completion_text
from ritornello.orchestrator.protocols.restate._journal import (
    FrameError,
    Refused,
    decode_answer,
    encode_request,
    json_view,
    random_seed,
    value_bytes,
)
from ritornello.orchestrator.protocols.restate._proto import legacy_pb2
from ritornello.orchestrator.protocols.restate._proto import protocol_pb2 as pb
from ritornello.orchestrator.protocols.restate._wire import (
    MESSAGE_CLASSES,
    MessageType,
    decode_all,
    encode,
)
from ritornello.protocol import (
    InvokeResponse,
    derive_id,
    new_id,
    parse_awakeable_id,
)
from ritornello.protocol._entries import named_signal_index, signal_index
from ritornello.protocol._ids import restate_awakeable_id
from ritornello.store.records import InvocationRecord

vm_mod = pytest.importorskip("restate.vm")
VMWrapper = vm_mod.VMWrapper
S = vm_mod.SingleUnresolvedFuture
FirstCompleted = vm_mod.FirstCompletedUnresolvedFuture
Suspended = vm_mod.Suspended
DoProgressAnyCompleted = vm_mod.DoProgressAnyCompleted
DoProgressExecuteRun = vm_mod.DoProgressExecuteRun
DoProgressCancelSignalReceived = vm_mod.DoProgressCancelSignalReceived
VMFailure = vm_mod.Failure

T = MessageType
INPUT = json.dumps({"kind": "input", "value": {"x": 1}})


# ---------------------------------------------------------------------- helpers


def _rec(key: str | None = "k", kind: str = "exclusive") -> InvocationRecord:
    return new_invocation(
        id=new_id(),
        service="Svc",
        handler="h",
        key=key,
        handler_kind=kind,
        deployment_id="dp_x",
        seq=1,
        now_ms=1000,
        status="running",
    )


def _inv(
    rec: InvocationRecord,
    entries: list[str] | None = None,
    state: dict[str, str] | None = None,
    promises: dict[str, str] | None = None,
    input_entry: str = INPUT,
) -> Invocation:
    """``rec`` with its input, then ``entries`` (JSON texts), nothing completed yet."""
    return Invocation(
        rec, [input_entry, *(entries or [])], {}, set(), state=state, promises=promises
    )


def _then(inv: Invocation, answer: InvokeResponse) -> Invocation:
    """The invocation once ``answer`` is committed (its entries appended, as JSON texts)."""
    return Invocation(
        inv.rec,
        [*inv.entries, *(json.dumps(e) for e in answer.entries)],
        dict(inv.completions),
        set(),
        state=inv.state,
        promises=inv.promises,
    )


def _complete(inv: Invocation, index: int, **result: Any) -> None:
    inv.completions[index] = json.dumps({"index": index, **result})


def _now() -> int:
    return int(time.time() * 1000)


def _vm(inv: Invocation, version: int = 6, lazy: bool = False) -> Any:
    """A new SDK VM fed the request for ``inv`` (closed: request/response mode)."""
    request = encode_request(inv, version, lazy=lazy)
    vm = VMWrapper([("content-type", f"application/vnd.restate.invocation.v{version}")])
    assert vm.get_response_head()[0] == 200
    vm.notify_input(request)
    vm.notify_input_closed()
    assert vm.is_ready_to_execute()
    return vm


def _attempt(
    inv: Invocation,
    handler: Callable[[Any, dict[str, Any]], None],
    version: int = 6,
    lazy: bool = False,
) -> tuple[InvokeResponse, dict[str, Any], bytes]:
    """One attempt: the handler runs on a new VM; (the answer read, what it saw, the bytes)."""
    vm = _vm(inv, version, lazy)
    seen: dict[str, Any] = {"input": vm.sys_input()}
    handler(vm, seen)
    out = vm.take_output()
    return decode_answer(inv, out, version, _now()), seen, out


def _ready(vm: Any, *handles: int) -> bool:
    """Await the first of ``handles``: True once one is there, False if the VM suspended."""
    progress = vm.do_progress(FirstCompleted([S(h) for h in handles]))
    if isinstance(progress, Suspended):
        return False
    assert isinstance(progress, DoProgressAnyCompleted), progress
    return True


def _step(vm: Any, name: str, result: bytes, seen: dict[str, Any]) -> bool:
    """``ctx.run(name)`` as the SDK does it: executed and proposed unless replayed."""
    run = vm.sys_run(name)
    seen.setdefault("replayed", []).append(run.replayed)
    if not run.replayed:
        progress = vm.do_progress(S(run.handle))
        assert isinstance(progress, DoProgressExecuteRun) and progress.handle == run.handle
        vm.propose_run_completion_success(run.handle, result)
    if not _ready(vm, run.handle):
        return False
    seen.setdefault("runs", []).append(vm.take_notification(run.handle))
    return True


def _frames(raw: bytes, version: int = 6) -> list[tuple[MessageType, Any]]:
    return [(T(f.type), f.message(version)) for f in decode_all(raw, len(raw) + 1)]


def _payload(entry: dict[str, Any]) -> Any:
    """The command an entry replays (its ``rt``/``rb``), parsed."""
    return MESSAGE_CLASSES[entry["rt"]].FromString(base64.b64decode(entry["rb"]))


# ---------------------------------------------------------------------- round trips


def _handler(vm: Any, seen: dict[str, Any]) -> None:
    """run, set state, sleep, read state, set state, call; await the sleep, then the call;
    output."""
    if not _step(vm, "fetch", b'"ok"', seen):
        return
    vm.sys_set_state("b", b'{"y":2}')
    sleep = vm.sys_sleep(60_000)
    get = vm.sys_get_state("a")
    seen["a"] = vm.take_notification(get)
    vm.sys_set_state("c", b'"z"')
    call = vm.sys_call("Other", "go", b"[1]", key="kk")
    if not _ready(vm, sleep):
        return
    seen["slept"] = vm.take_notification(sleep)
    if not _ready(vm, call.result_handle):
        return
    seen["call"] = vm.take_notification(call.result_handle)
    assert _ready(vm, call.invocation_id_handle)
    seen["callee"] = vm.take_notification(call.invocation_id_handle)
    vm.sys_write_output_success(b'"done"')
    vm.sys_end()


@pytest.mark.parametrize("version", [5, 6])
def test_a_handler_runs_to_its_end_across_attempts(version: int) -> None:
    rec = _rec()
    inv = _inv(rec, state={"a": "1"})

    # 1: the step is proposed and awaited: the VM suspends on what it proposed -> checkpoint
    answer, seen, out = _attempt(inv, _handler, version)
    assert seen["input"].invocation_id == rec.id
    assert seen["input"].input_buffer == b'{"x":1}'
    assert seen["input"].key == "k"
    if version >= 6:
        assert seen["input"].random_seed == random_seed(rec.id)
    assert seen["replayed"] == [False]
    assert [t for t, _ in _frames(out, version)] == [
        T.RUN,
        T.PROPOSE_RUN_COMPLETION,
        T.SUSPENSION,
    ]
    assert answer.status == "checkpoint" and answer.waiting == []
    (run,) = answer.entries
    assert run == {
        "rt": T.RUN,
        "rb": run["rb"],
        "cid": 1,
        "kind": "run",
        "name": "fetch",
        "value": "ok",
    }
    assert _payload(run) == pb.RunCommandMessage(name="fetch", result_completion_id=1)

    # 2: replayed with its result, the step is not run again; the handler goes on to the sleep
    inv = _then(inv, answer)
    before = _now()
    answer, seen, _ = _attempt(inv, _handler, version)
    assert seen["replayed"] == [True] and seen["runs"] == [b'"ok"']
    assert seen["a"] == b"1"  # the eager state the request carried
    assert answer.status == "suspended"
    set_b, sleep, get_a, set_c, call = answer.entries
    assert {k: set_b[k] for k in ("rt", "kind", "name", "value")} == {
        "rt": T.SET_STATE,
        "kind": "set",
        "name": "b",
        "value": {"y": 2},
    }
    assert _payload(set_b) == pb.SetStateCommandMessage(
        key=b"b", value=pb.Value(content=b'{"y":2}')
    )
    assert (sleep["kind"], sleep["rt"], sleep["cid"]) == ("sleep", T.SLEEP, 2)
    assert 58_000 <= sleep["duration_ms"] <= 60_000
    assert _payload(sleep).wake_up_time >= before + 60_000
    assert (get_a["kind"], get_a["rt"], get_a["name"], get_a["value"]) == (
        "get",
        T.GET_EAGER_STATE,
        "a",
        1,
    )
    assert "cid" not in get_a and "rv" not in get_a
    assert (set_c["name"], set_c["value"]) == ("c", "z")
    # completion ids are the VM's (the eager read took 3), indices are the journal's
    assert {k: v for k, v in call.items() if k != "rb"} == {
        "rt": T.CALL,
        "cid": 5,
        "iid": 4,
        "kind": "call",
        "name": "Other/go",
        "key": "kk",
        "input": [1],
        "id": derive_id(rec.id, 6),
    }
    assert _payload(call).parameter == b"[1]"
    # the sleep is entry 3 (completion 2); the SDK always waits on cancel (signal 1) too
    assert answer.waiting == [-1, 3]

    # 3: the timer fired; the handler now waits on the call's result (entry 6, completion 5)
    inv = _then(inv, answer)
    inv.state = {"a": "1", "b": '{"y":2}', "c": '"z"'}
    inv.completions[3] = completion_text(3, SLEPT_RESULT)  # as the core writes it
    request = _frames(encode_request(inv, version, lazy=False), version)
    start = request[0][1]
    assert start.known_entries == len(request) - 1 == 10
    assert [t for t, _ in request[1:]] == [
        T.INPUT,
        T.RUN,
        T.RUN_COMPLETION,
        T.SET_STATE,
        T.SLEEP,
        T.SLEEP_COMPLETION,
        T.GET_EAGER_STATE,
        T.SET_STATE,
        T.CALL,
        T.CALL_INVOCATION_ID_COMPLETION,
    ]
    assert request[6][1].completion_id == 2
    assert request[6][1].HasField("void")
    assert request[10][1].invocation_id == derive_id(rec.id, 6)
    assert request[10][1].completion_id == 4
    answer, seen, _ = _attempt(inv, _handler, version)
    assert seen["slept"] is None
    assert answer == InvokeResponse(status="suspended", entries=[], waiting=[-1, 6])

    # 4: the callee answered: output and End
    _complete(inv, 6, value={"r": 3})
    answer, seen, out = _attempt(inv, _handler, version)
    assert seen["replayed"] == [True] and seen["runs"] == [b'"ok"']
    assert seen["call"] == b'{"r":3}'
    assert seen["callee"] == derive_id(rec.id, 6)
    assert [t for t, _ in _frames(out, version)] == [T.OUTPUT, T.END]
    assert answer == InvokeResponse(
        status="done", entries=[{"rt": T.OUTPUT, "kind": "output", "value": "done"}]
    )


def test_a_changed_handler_is_a_journal_mismatch() -> None:
    inv = _inv(_rec(), state={})
    answer, _, _ = _attempt(inv, lambda vm, seen: _step(vm, "fetch", b"1", seen))
    assert answer.status == "checkpoint"
    inv = _then(inv, answer)

    def changed(vm: Any, seen: dict[str, Any]) -> None:
        with pytest.raises(Exception, match=r"\(570\)"):
            vm.sys_run("other")

    answer, _, out = _attempt(inv, changed)
    ((t, error),) = _frames(out)
    assert t == T.ERROR and error.code == 570
    assert answer.status == "error" and answer.entries == []
    assert answer.error is not None and answer.error["kind"] == "journal_mismatch"
    assert answer.error["message"].startswith("[570] ")
    assert "name: fetch != other" in answer.error["message"]
    assert answer.error["message"].endswith("(command 1 'other')")


def test_a_handler_error_and_a_failed_output() -> None:
    def fails(vm: Any, seen: dict[str, Any]) -> None:
        vm.sys_set_state("s", b"2")
        vm.notify_error("boom", "at line 3")

    answer, _, _ = _attempt(_inv(_rec(), state={}), fails)
    assert answer.status == "error"
    assert answer.error == {"message": "[500] boom\nat line 3", "kind": "handler"}

    def rejects(vm: Any, seen: dict[str, Any]) -> None:
        vm.sys_write_output_failure(VMFailure(code=418, message="teapot"))
        vm.sys_end()

    answer, _, _ = _attempt(_inv(_rec(), state={}), rejects)
    assert answer == InvokeResponse(
        status="done",
        entries=[{"rt": T.OUTPUT, "kind": "output", "failure": {"code": 418, "message": "teapot"}}],
    )

    def empty(vm: Any, seen: dict[str, Any]) -> None:
        vm.sys_write_output_success(b"")
        vm.sys_end()

    answer, _, _ = _attempt(_inv(_rec(key=None)), empty)
    assert answer.entries == [{"rt": T.OUTPUT, "kind": "output", "value": None}]


def test_input_headers_and_an_unkeyed_invocation_reach_the_sdk() -> None:
    entry = json.dumps({"kind": "input", "value": "hi", "headers": {"x-a": "1"}})
    rec = _rec(key=None)
    vm = _vm(_inv(rec, input_entry=entry))
    got = vm.sys_input()
    assert (got.input_buffer, got.headers, got.key) == (b'"hi"', [("x-a", "1")], "")
    (_, start), _ = _frames(encode_request(_inv(rec), 6, lazy=False))
    assert start.partial_state and not start.state_map and start.key == ""
    assert start.id == rec.id.encode() and start.debug_id == rec.id
    assert start.retry_count_since_last_stored_entry == 0
    third = _inv(dataclasses.replace(rec, attempt=3))
    (_, start), _ = _frames(encode_request(third, 5, lazy=False))
    assert start.retry_count_since_last_stored_entry == 2
    assert start.random_seed == 0  # V6 only


def test_a_failed_step_and_non_json_step_results_replay_exactly() -> None:
    def steps(vm: Any, seen: dict[str, Any]) -> None:
        for name, result in (("bin", b"\x00\xffraw"), ("spaced", b'{"a": 1}'), ("void", b"")):
            if not _step(vm, name, result, seen):
                return
        run = vm.sys_run("fails")
        if not run.replayed:
            vm.do_progress(S(run.handle))
            vm.propose_run_completion_failure(run.handle, VMFailure(code=409, message="no"))
        if not _ready(vm, run.handle):
            return
        seen["failed"] = vm.take_notification(run.handle)
        vm.sys_write_output_success(b"1")
        vm.sys_end()

    inv = _inv(_rec(), state={})
    for _ in range(4):  # one checkpoint per step
        answer, seen, _ = _attempt(inv, steps)
        assert answer.status == "checkpoint"
        inv = _then(inv, answer)
    entries = [json.loads(e) for e in inv.entries[1:]]
    assert [(e["name"], e.get("value"), e.get("rv")) for e in entries[:3]] == [
        ("bin", None, base64.b64encode(b"\x00\xffraw").decode()),
        ("spaced", {"a": 1}, base64.b64encode(b'{"a": 1}').decode()),
        ("void", None, ""),
    ]
    assert entries[3]["failure"] == {"code": 409, "message": "no"}
    answer, seen, _ = _attempt(inv, steps)
    assert answer.status == "done"
    assert seen["replayed"] == [True] * 3
    assert seen["runs"] == [b"\x00\xffraw", b'{"a": 1}', b""]  # exactly as proposed
    assert seen["failed"] == VMFailure(code=409, message="no")


def test_a_step_not_awaited_is_journaled_and_its_result_comes_later() -> None:
    """A step whose result has not arrived is journaled as its command came (as Restate
    journals it); its result, proposed on a later attempt, is an entry of its own that replay
    sends as the step's RunCompletion."""

    def sleeps_then_steps(vm: Any, seen: dict[str, Any]) -> None:
        sleep = vm.sys_sleep(10)
        run = vm.sys_run("later")  # not awaited yet: the VM does not run it
        seen["replayed"] = run.replayed
        if not _ready(vm, sleep):
            return
        if isinstance(vm.do_progress(S(run.handle)), DoProgressExecuteRun):
            vm.propose_run_completion_success(run.handle, b"7")
        if _ready(vm, run.handle):
            vm.sys_write_output_success(vm.take_notification(run.handle))
            vm.sys_end()

    inv = _inv(_rec(), state={})
    answer, _, out = _attempt(inv, sleeps_then_steps)
    assert [t for t, _ in _frames(out)] == [T.SLEEP, T.RUN, T.SUSPENSION]
    assert [(e["kind"], "value" in e) for e in answer.entries] == [("sleep", False), ("run", False)]
    assert answer.status == "suspended" and answer.waiting == [-1, 1]
    inv = _then(inv, answer)
    _complete(inv, 1, value=None)
    answer, _, out = _attempt(inv, sleeps_then_steps)
    assert [t for t, _ in _frames(out)] == [T.PROPOSE_RUN_COMPLETION, T.SUSPENSION]
    assert answer.status == "checkpoint"
    assert [(e["kind"], e["name"], e["value"], e["rt"]) for e in answer.entries] == [
        ("run", "later", 7, T.RUN_COMPLETION)
    ]
    answer, _, _ = _attempt(_then(inv, answer), sleeps_then_steps)
    assert answer.status == "done" and answer.entries[0]["value"] == 7


def test_a_step_never_awaited_before_a_suspension_is_journaled() -> None:
    """``ctx.run`` not awaited, then a sleep awaited: the VM does not run the step in
    request/response mode; its command is journaled without a result, the sleep waited on."""
    inv = _inv(_rec(), state={})

    def never_awaits(vm: Any, seen: dict[str, Any]) -> None:
        vm.sys_run("a")
        sleep = vm.sys_sleep(100)
        assert not _ready(vm, sleep)

    answer, _, _ = _attempt(inv, never_awaits)
    assert answer.status == "suspended" and answer.waiting == [-1, 2]
    assert [e["kind"] for e in answer.entries] == ["run", "sleep"]


def test_a_proposal_after_later_commands_keeps_them() -> None:
    def both(vm: Any, seen: dict[str, Any]) -> None:
        run = vm.sys_run("a")
        sleep = vm.sys_sleep(100)
        progress = vm.do_progress(FirstCompleted([S(sleep), S(run.handle)]))
        assert isinstance(progress, DoProgressExecuteRun)
        vm.propose_run_completion_success(run.handle, b"true")
        assert not _ready(vm, sleep, run.handle)

    answer, _, out = _attempt(_inv(_rec(), state={}), both)
    assert [t for t, _ in _frames(out)] == [
        T.RUN,
        T.SLEEP,
        T.PROPOSE_RUN_COMPLETION,
        T.SUSPENSION,
    ]
    assert answer.status == "checkpoint"
    assert [(e["kind"], e.get("value")) for e in answer.entries] == [("run", True), ("sleep", None)]


def test_lazy_state_is_answered_from_the_state_read() -> None:
    def reads(vm: Any, seen: dict[str, Any]) -> None:
        got = {}
        for key in ("a", "missing"):
            handle = vm.sys_get_state(key)
            if not _ready(vm, handle):
                return
            got[key] = vm.take_notification(handle)
        keys = vm.sys_get_state_keys()
        if not _ready(vm, keys):
            return
        got["keys"] = vm.take_notification(keys)
        seen.update(got)
        vm.sys_write_output_success(b"null")
        vm.sys_end()

    inv = _inv(_rec(), state={"a": '{"n": 5}', "b": "2"})
    (_, start), _ = _frames(encode_request(inv, 6, lazy=True))
    assert start.partial_state and not start.state_map
    answers = []
    for _ in range(3):
        answer, seen, _ = _attempt(inv, reads, lazy=True)
        answers.append(answer)
        inv = _then(inv, answer)
    assert [a.status for a in answers] == ["checkpoint"] * 3
    assert [e for a in answers for e in a.entries] == [
        {
            "rt": T.GET_LAZY_STATE,
            "rb": answers[0].entries[0]["rb"],
            "cid": 1,
            "kind": "get",
            "name": "a",
            "value": {"n": 5},
            "rv": base64.b64encode(b'{"n": 5}').decode(),  # the bytes as stored
        },
        {
            "rt": T.GET_LAZY_STATE,
            "rb": answers[1].entries[0]["rb"],
            "cid": 2,
            "kind": "get",
            "name": "missing",
            "value": None,
            "void": True,
        },
        {
            "rt": T.GET_LAZY_STATE_KEYS,
            "rb": answers[2].entries[0]["rb"],
            "cid": 3,
            "kind": "keys",
            "value": ["a", "b"],
        },
    ]
    answer, seen, _ = _attempt(inv, reads, lazy=True)
    assert answer.status == "done"
    assert (seen["a"], seen["missing"], seen["keys"]) == (b'{"n": 5}', None, ["a", "b"])


def test_eager_state_follows_this_answers_writes() -> None:
    def writes(vm: Any, seen: dict[str, Any]) -> None:
        vm.sys_clear_all_state()
        vm.sys_set_state("x", b"1")
        seen["keys"] = vm.take_notification(vm.sys_get_state_keys())
        vm.sys_clear_state("x")
        seen["x"] = vm.take_notification(vm.sys_get_state("x"))
        vm.sys_write_output_success(b"0")
        vm.sys_end()

    answer, seen, _ = _attempt(_inv(_rec(), state={"a": "1"}), writes)
    assert (seen["keys"], seen["x"]) == (["x"], None)
    assert [(e["kind"], e.get("name"), e.get("value")) for e in answer.entries] == [
        ("clear_all", None, None),
        ("set", "x", 1),
        ("keys", None, ["x"]),
        ("clear", "x", None),
        ("get", "x", None),
        ("output", None, 0),
    ]
    assert _payload(answer.entries[4]).WhichOneof("result") == "void"


def test_workflow_promises_round_trip() -> None:
    def flow(vm: Any, seen: dict[str, Any]) -> None:
        got = vm.sys_get_promise("p")
        peek = vm.sys_peek_promise("q")
        done = vm.sys_complete_promise_success("r", b'{"v":1}')
        if not _ready(vm, got):
            return
        seen["p"] = vm.take_notification(got)
        assert _ready(vm, peek)
        seen["q"] = vm.take_notification(peek)
        if not _ready(vm, done):
            return
        seen["r"] = vm.take_notification(done)
        vm.sys_write_output_success(b"1")
        vm.sys_end()

    inv = _inv(_rec(key="w", kind="workflow"), state={}, promises={"q": '{"value":7}'})
    answer, _, _ = _attempt(inv, flow)
    assert answer.status == "suspended" and answer.waiting == [-1, 1]
    assert [(e["kind"], e["name"], e.get("value")) for e in answer.entries] == [
        ("promise_get", "p", None),
        ("promise_peek", "q", 7),
        ("promise_complete", "r", {"v": 1}),
    ]
    inv = _then(inv, answer)
    _complete(inv, 1, value="pv")
    _complete(inv, 3, value=None)
    answer, seen, _ = _attempt(inv, flow)
    assert answer.status == "done"
    assert (seen["p"], seen["q"], seen["r"]) == (b'"pv"', b"7", None)


# ---------------------------------------------------------------------- suspensions


def test_waiting_only_on_what_the_answer_resolved_is_a_checkpoint() -> None:
    def callee_id(vm: Any, seen: dict[str, Any]) -> None:
        call = vm.sys_call("O", "h", b"1")
        assert not _ready(vm, call.invocation_id_handle)

    def send(vm: Any, seen: dict[str, Any]) -> None:
        handle = vm.sys_send("O", "h", b"{}", delay=5000)
        assert not _ready(vm, handle)

    def lazy(vm: Any, seen: dict[str, Any]) -> None:
        assert not _ready(vm, vm.sys_get_state("a"))

    now = _now()
    for handler, lazy_state in ((callee_id, False), (send, False), (lazy, True)):
        inv = _inv(_rec(), state={})
        answer, _, _ = _attempt(inv, handler, lazy=lazy_state)
        assert answer.status == "checkpoint" and answer.waiting == [], handler
    (send_entry,) = _attempt(_inv(_rec(), state={}), send)[0].entries
    assert send_entry["kind"] == "send" and send_entry["iid"] == 1
    assert 4_000 <= send_entry["delay_ms"] <= 5_000 + _now() - now


def test_named_signals_are_waited_on_and_delivered() -> None:
    def signal(vm: Any, seen: dict[str, Any]) -> None:
        handle = vm.sys_signal("go")
        if _ready(vm, handle):
            seen["go"] = vm.take_notification(handle)
            vm.sys_write_output_success(b"0")
            vm.sys_end()

    inv = _inv(_rec(), state={})
    answer, _, _ = _attempt(inv, signal)
    index = named_signal_index("go")
    assert index < -(2**32)  # below every numbered signal
    assert answer == InvokeResponse(status="suspended", entries=[], waiting=[index, -1])
    inv.completions[index] = json.dumps({"index": index, "name": "go", "value": {"a": 1}})
    *_, (t, note) = _frames(encode_request(inv, 6, lazy=False))
    assert (t, note.name, note.value.content) == (T.SIGNAL_NOTIFICATION, "go", b'{"a":1}')
    answer, seen, _ = _attempt(inv, signal)
    assert seen["go"] == b'{"a":1}' and answer.status == "done"


def test_signals_sent_to_other_invocations() -> None:
    target = new_id()

    def sends(vm: Any, seen: dict[str, Any]) -> None:
        vm.sys_cancel(target)
        vm.sys_resolve_signal(target, "go", b"1")
        vm.sys_reject_signal(target, "stop", VMFailure(code=400, message="no"))
        vm.sys_resolve_awakeable(restate_awakeable_id(target, 17), b'"v"')
        vm.sys_reject_awakeable(restate_awakeable_id(target, 18), VMFailure(400, "rejected"))
        if _ready(vm, vm.sys_sleep(1)):
            vm.sys_write_output_success(b"0")
            vm.sys_end()

    inv = _inv(_rec(), state={})
    answer, _, _ = _attempt(inv, sends)
    assert answer.status == "suspended" and answer.waiting == [-1, 6]
    inv = _then(inv, answer)
    inv.completions[6] = completion_text(6, SLEPT_RESULT)
    done, _, _ = _attempt(inv, sends)  # the commands replay as they were sent
    assert done.status == "done" and done.entries == [
        {"rt": T.OUTPUT, "kind": "output", "value": 0}
    ]
    got = [{k: v for k, v in e.items() if k not in ("rt", "rb", "name")} for e in answer.entries]
    assert got == [
        {"kind": "signal", "id": target, "signal": 1},
        {"kind": "signal", "id": target, "signal_name": "go", "value": 1},
        {
            "kind": "signal",
            "id": target,
            "signal_name": "stop",
            "failure": {"code": 400, "message": "no"},
        },
        {"kind": "complete_awakeable", "id": restate_awakeable_id(target, 17), "value": "v"},
        {
            "kind": "complete_awakeable",
            "id": restate_awakeable_id(target, 18),
            "failure": {"code": 400, "message": "rejected"},
        },
        {"kind": "sleep", "cid": 1, "duration_ms": answer.entries[5]["duration_ms"]},
    ]
    assert [signal_index(e) for e in answer.entries[:3]] == [
        -1,
        named_signal_index("go"),
        named_signal_index("stop"),
    ]


def _answer(*messages: tuple[int, Any]) -> bytes:
    return b"".join(encode(t, m) for t, m in messages)


def _journal_with_call() -> Invocation:
    """A journal: input, then a call (invocation id notification 1, result completion 2)."""
    call = pb.CallCommandMessage(
        service_name="O",
        handler_name="h",
        parameter=b"1",
        invocation_id_notification_idx=1,
        result_completion_id=2,
    )
    entry = {
        "rt": T.CALL,
        "rb": base64.b64encode(call.SerializeToString()).decode(),
        "cid": 2,
        "iid": 1,
        "kind": "call",
        "name": "O/h",
        "key": None,
        "input": 1,
    }
    rec = _rec(key=None)
    entry["id"] = derive_id(rec.id, 1)
    return _inv(rec, [json.dumps(entry)])


def _suspension(
    completions: Sequence[int] = (), signals: Sequence[int] = (), named: Sequence[str] = ()
) -> tuple[int, Any]:
    return (
        T.SUSPENSION,
        legacy_pb2.SuspensionMessageV6(
            waiting_completions=completions, waiting_signals=signals, waiting_named_signals=named
        ),
    )


@pytest.mark.parametrize(
    ("completions", "signals", "named", "waiting"),
    [
        ([2], [], [], [1]),  # the call's result: the call's entry
        ([2], [1], [], [-1, 1]),
        ([], [17], [], [-17]),  # an awakeable
        ([], [1, 18, 17], [], [-18, -17, -1]),
        ([2], [], ["s"], [named_signal_index("s"), 1]),
        ([], [1], ["s", "t"], sorted([named_signal_index("s"), named_signal_index("t"), -1])),
    ],
)
def test_what_a_suspension_waits_on(
    completions: list[int], signals: list[int], named: list[str], waiting: list[int]
) -> None:
    inv = _journal_with_call()
    answer = decode_answer(inv, _answer(_suspension(completions, signals, named)), 6, 0)
    assert answer == InvokeResponse(status="suspended", entries=[], waiting=waiting)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (_answer(_suspension([9])), "suspended on completion 9, which no command allocated"),
        (_answer((T.END, pb.EndMessage())), "End without an output as the last command"),
        (b"", r"the answer ended without End, Suspension or Error \(truncated\?\)"),
        (
            _answer((T.END, pb.EndMessage()), (T.END, pb.EndMessage())),
            "a message \\(type 0x0003\\) after the end of the answer",
        ),
        (_answer((T.START, pb.StartMessage())), "unexpected message type 0x0000"),
        (
            _answer(
                (
                    T.ATTACH_INVOCATION,
                    pb.AttachInvocationCommandMessage(
                        workflow_target=pb.WorkflowTarget(workflow_name="W", workflow_key="k")
                    ),
                )
            ),
            "attaching by idempotency key or workflow key from a handler is not carried yet",
        ),
        (
            _answer((T.SEND_SIGNAL, pb.SendSignalCommandMessage(target_invocation_id="i", idx=5))),
            "a signal to i names no valid signal",
        ),
        (
            _answer((0xFC01, b"custom")),
            "unexpected message type 0xfc01 from the endpoint",
        ),
        (
            _answer(
                (T.PROPOSE_RUN_COMPLETION, pb.ProposeRunCompletionMessage(result_completion_id=2))
            ),
            "a proposal for completion 2, which is no step awaiting one",
        ),
        (
            _answer(
                (T.SET_STATE, pb.SetStateCommandMessage(key=b"\xff", value=pb.Value(content=b"1")))
            ),
            "a state key is not UTF-8 text",
        ),
        (
            _answer((T.OUTPUT, pb.OutputCommandMessage(value=pb.Value(content=b"\x80"))))
            + _answer((T.END, pb.EndMessage())),
            "the handler's output is 1 bytes that are not JSON",
        ),
    ],
)
def test_an_answer_that_cannot_be_carried_is_refused(answer: bytes, message: str) -> None:
    with pytest.raises(Refused, match=message):
        decode_answer(_journal_with_call(), answer, 6, 0)


def test_commands_before_an_error_are_journaled() -> None:
    """An Error keeps every command before it, a step without its result included."""
    raw = _answer(
        (T.SET_STATE, pb.SetStateCommandMessage(key=b"a", value=pb.Value(content=b"1"))),
        (T.RUN, pb.RunCommandMessage(name="x", result_completion_id=1)),
        (T.SET_STATE, pb.SetStateCommandMessage(key=b"b", value=pb.Value(content=b"2"))),
        (T.ERROR, pb.ErrorMessage(code=571, message="bad", related_command_index=2)),
    )
    answer = decode_answer(_inv(_rec(), state={}), raw, 6, 0)
    assert answer.status == "error"
    assert [(e["kind"], e["name"]) for e in answer.entries] == [
        ("set", "a"),
        ("run", "x"),
        ("set", "b"),
    ]
    assert "value" not in answer.entries[1]
    assert answer.error == {"message": "[571] bad (command 2)", "kind": "protocol"}
    with pytest.raises(Refused, match="End without an output"):
        decode_answer(
            _inv(_rec(), state={}),
            _answer(
                (T.OUTPUT, pb.OutputCommandMessage(value=pb.Value(content=b"1"))),
                (T.RUN, pb.RunCommandMessage(name="x", result_completion_id=1)),
                (T.END, pb.EndMessage()),
            ),
            6,
            0,
        )


# ---------------------------------------------------------------------- values


def test_json_view_rules() -> None:
    assert json_view(b"", "v") == (None, "")  # an empty value: null, its bytes kept
    assert json_view(b'{"a":1}', "v") == ({"a": 1}, None)
    assert json_view(b"null", "v") == (None, None)
    assert json_view(b'{"a": 1}', "v") == ({"a": 1}, base64.b64encode(b'{"a": 1}').decode())
    assert json_view(b"1.50", "v") == (1.5, base64.b64encode(b"1.50").decode())
    with pytest.raises(Refused, match=r"^a state value is 3 bytes that are not JSON; .*JSON serde"):
        json_view(b"\x00\xff\x01", "a state value")
    with pytest.raises(Refused, match="not JSON"):
        json_view(b"NaN", "v")
    assert json_view(b"\x00\xff", "v", opaque=True) == (
        None,
        base64.b64encode(b"\x00\xff").decode(),
    )
    assert json_view(b"NaN", "v", opaque=True) == (None, base64.b64encode(b"NaN").decode())
    assert value_bytes({"value": {"a": 1}}) == b'{"a":1}'
    assert value_bytes({}) == b"null"
    assert value_bytes({"input": [1]}, "input") == b"[1]"
    assert value_bytes({"value": None, "rv": ""}) == b""
    assert value_bytes({"value": None, "rv": base64.b64encode(b"\x01").decode()}) == b"\x01"


def _entry(raw: bytes) -> dict[str, Any]:
    value, rv = json_view(raw, "v", opaque=True)
    entry: dict[str, Any] = {"value": value}
    if rv is not None:
        entry["rv"] = rv
    return entry


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_value_bytes_gives_back_any_bytes(raw: bytes) -> None:
    assert value_bytes(_entry(raw)) == raw


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(st.characters(blacklist_categories=("Cs",)), max_size=5), inner, max_size=4
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_canonical_json_needs_no_raw_bytes(value: Any) -> None:
    raw = dumpb(value)
    got, rv = json_view(raw, "v")
    assert rv is None and got == value
    assert value_bytes({"value": got}) == raw
    spaced = json.dumps(value, indent=1).encode()
    if spaced != raw:
        got, rv = json_view(spaced, "v")
        assert got == value and value_bytes({"value": got, "rv": rv}) == spaced


@pytest.mark.parametrize("big", [b"18446744073709551616", b'{"n":-9223372036854775809}'])
def test_an_integer_past_64_bits_is_refused_not_stored_as_a_float(big: bytes) -> None:
    raw = _answer(
        (T.SET_STATE, pb.SetStateCommandMessage(key=b"n", value=pb.Value(content=big))),
        (T.OUTPUT, pb.OutputCommandMessage(value=pb.Value(content=big))),
        (T.END, pb.EndMessage()),
    )
    with pytest.raises(Refused, match="64 bits"):
        decode_answer(_inv(_rec(), state={}), raw, 6, 0)


# ---------------------------------------------------------------------- signals


def test_awakeables_are_signals_of_the_invocation() -> None:
    rec = _rec(key=None)

    def awaits(vm: Any, seen: dict[str, Any]) -> None:
        seen["ids"] = [vm.sys_awakeable() for _ in range(2)]
        (_, h1), (_, h2) = seen["ids"]
        if not _ready(vm, h1):
            return
        seen["first"] = vm.take_notification(h1)
        if not _ready(vm, h2):
            return
        seen["second"] = vm.take_notification(h2)
        vm.sys_write_output_success(b"0")
        vm.sys_end()

    inv = _inv(rec)
    answer, seen, _ = _attempt(inv, awaits)
    (first, _), (second, _) = seen["ids"]
    assert parse_awakeable_id(first) == (rec.id, -17)
    assert parse_awakeable_id(second) == (rec.id, -18)
    assert first == restate_awakeable_id(rec.id, 17)
    assert answer == InvokeResponse(status="suspended", entries=[], waiting=[-17, -1])

    _complete(inv, -17, value={"ok": True})
    _complete(inv, -18, failure={"code": 400, "message": "rejected"})
    *_, (t18, n18), (t17, n17) = _frames(encode_request(inv, 6, lazy=False))
    assert (t17, n17.idx, n17.value.content) == (T.SIGNAL_NOTIFICATION, 17, b'{"ok":true}')
    assert (t18, n18.idx, n18.WhichOneof("result")) == (T.SIGNAL_NOTIFICATION, 18, "failure")
    answer, seen, _ = _attempt(inv, awaits)
    assert [i for i, _ in seen["ids"]] == [first, second]  # the same ids on replay
    assert seen["first"] == b'{"ok":true}'
    assert seen["second"] == VMFailure(code=400, message="rejected")
    assert answer.status == "done"


def test_the_cancel_signal_reaches_the_handler() -> None:
    inv = _inv(_rec(), state={})
    _complete(inv, -1, value=None)
    *_, (t, note) = _frames(encode_request(inv, 6, lazy=False))
    assert (t, note.idx, note.WhichOneof("result")) == (T.SIGNAL_NOTIFICATION, 1, "void")
    vm = _vm(inv)
    vm.sys_input()
    sleep = vm.sys_sleep(10_000)
    assert isinstance(vm.do_progress(S(sleep)), DoProgressCancelSignalReceived)


def test_the_cores_cancel_completion_reaches_the_handler() -> None:
    """The core delivers cancel as ``CANCELLED_RESULT`` (a 409 failure): signal 1 goes out
    void, as Restate's server sends it."""
    inv = _inv(_rec(), state={})
    inv.completions[-1] = completion_text(-1, CANCELLED_RESULT)
    *_, (t, note) = _frames(encode_request(inv, 6, lazy=False))
    assert (t, note.idx, note.WhichOneof("result")) == (T.SIGNAL_NOTIFICATION, 1, "void")
    vm = _vm(inv)
    vm.sys_input()
    sleep = vm.sys_sleep(10_000)
    assert isinstance(vm.do_progress(S(sleep)), DoProgressCancelSignalReceived)


def test_an_entry_no_restate_endpoint_wrote_is_refused() -> None:
    for entry in (
        {"kind": "run", "name": "x", "value": 1},
        {"kind": "run", "name": "x", "value": 1, "rt": T.RUN},
        {"kind": "run", "name": "x", "value": 1, "rb": ""},
        {"kind": "sleep", "rt": "1036", "rb": ""},
    ):
        inv = _inv(_rec(), [json.dumps(entry)], state={})
        with pytest.raises(Refused, match=r"^entry 1 \((run|sleep)\) was not written by a Restate"):
            encode_request(inv, 6, lazy=False)


# ---------------------------------------------------------------------- fuzzing


@functools.cache
def _samples() -> list[tuple[Invocation, bytes]]:
    """Real answers of the SDK's VM, each with the invocation it answers."""
    out: list[tuple[Invocation, bytes]] = []
    inv = _inv(_rec(), state={"a": "1"})
    for index, result in ((None, None), (None, None), (3, None), (6, {"r": 3})):
        if index is not None:
            _complete(inv, index, value=result)
        answer, _, raw = _attempt(inv, _handler)
        out.append((inv, raw))
        if answer.status != "done":
            inv = _then(inv, answer)
    assert [decode_answer(i, raw, 6, 0).status for i, raw in out] == [
        "checkpoint",
        "suspended",
        "suspended",
        "done",
    ]

    def mismatch(vm: Any, seen: dict[str, Any]) -> None:
        with pytest.raises(Exception, match="570"):
            vm.sys_run("other")

    out.append((inv, _attempt(inv, mismatch)[2]))
    awakeable = _inv(_rec(key=None))
    out.append((awakeable, _attempt(awakeable, lambda vm, _: _ready(vm, vm.sys_awakeable()[1]))[2]))
    return out


def _decodes_or_refuses(inv: Invocation, raw: bytes) -> None:
    try:
        answer = decode_answer(inv, raw, 6, 0)
    except (Refused, FrameError):
        return
    assert isinstance(answer, InvokeResponse)
    assert answer.status in ("done", "suspended", "checkpoint", "error")
    json.dumps(answer.entries)  # plain JSON


def test_real_answers_truncated_anywhere() -> None:
    for inv, raw in _samples():
        decode_answer(inv, raw, 6, 0)  # whole, each is an answer
        for cut in range(len(raw)):
            with pytest.raises((Refused, FrameError)):
                decode_answer(inv, raw[:cut], 6, 0)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_damaged_real_answers(data: st.DataObject) -> None:
    inv, raw = data.draw(st.sampled_from(_samples()))
    damaged = bytearray(raw[: data.draw(st.integers(0, len(raw)))])
    for _ in range(data.draw(st.integers(0, 3))):
        if damaged:
            at = data.draw(st.integers(0, len(damaged) - 1))
            damaged[at] ^= data.draw(st.integers(1, 255))
    _decodes_or_refuses(inv, bytes(damaged))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(raw: bytes) -> None:
    _decodes_or_refuses(_journal_with_call(), raw)


_ANY_TYPE = [*MessageType, 0xFC00]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_frames_of_known_types(data: st.DataObject) -> None:
    """Valid frames of known types with random payloads (reaching the protobuf parser and
    every branch of the reader), then an ending."""
    frames = data.draw(
        st.lists(st.tuples(st.sampled_from(_ANY_TYPE), st.binary(max_size=30)), max_size=6)
    )
    end = data.draw(st.sampled_from([T.END, T.SUSPENSION, T.ERROR]))
    raw = b"".join(encode(t, p) for t, p in frames) + encode(end, data.draw(st.binary(max_size=12)))
    inv = data.draw(
        st.sampled_from([_journal_with_call(), _inv(_rec(), state={"a": "1"}, promises={})])
    )
    _decodes_or_refuses(inv, raw)


def test_a_suspension_on_a_step_it_did_not_run_replays_it_once() -> None:
    """Waiting on a step it sent without running: a checkpoint (the step's command is kept,
    the next attempt runs it); the same again with nothing new is refused, never a loop."""
    raw = _answer((T.RUN, pb.RunCommandMessage(name="x", result_completion_id=1)), _suspension([1]))
    inv = _inv(_rec(), state={})
    answer = decode_answer(inv, raw, 6, 0)
    assert answer.status == "checkpoint" and [e["kind"] for e in answer.entries] == ["run"]
    with pytest.raises(Refused, match="with nothing new"):
        decode_answer(_then(inv, answer), _answer(_suspension([1])), 6, 0)


def test_attach_and_get_output_are_engine_completed_commands() -> None:
    """AttachInvocation and GetInvocationOutput (by invocation id) become ``attach`` and
    ``get_output`` entries the engine completes; replay sends their completions (a
    ``get_output`` of an unfinished invocation: void)."""
    raw = _answer(
        (
            T.ATTACH_INVOCATION,
            pb.AttachInvocationCommandMessage(invocation_id="inv_x", result_completion_id=1),
        ),
        (
            T.GET_INVOCATION_OUTPUT,
            pb.GetInvocationOutputCommandMessage(invocation_id="inv_y", result_completion_id=2),
        ),
        _suspension([1, 2]),
    )
    inv = _inv(_rec(), state={})
    answer = decode_answer(inv, raw, 6, 0)
    assert answer.status == "suspended" and answer.waiting == [1, 2]
    assert [(e["kind"], e["id"], e["cid"]) for e in answer.entries] == [
        ("attach", "inv_x", 1),
        ("get_output", "inv_y", 2),
    ]
    inv = _then(inv, answer)
    _complete(inv, 1, value={"out": 1})
    _complete(inv, 2, value=None, void=True)
    frames = _frames(encode_request(inv, 6, lazy=False))
    assert [t for t, _ in frames][2:] == [
        T.ATTACH_INVOCATION,
        T.ATTACH_INVOCATION_COMPLETION,
        T.GET_INVOCATION_OUTPUT,
        T.GET_INVOCATION_OUTPUT_COMPLETION,
    ]
    (t1, n1), (t2, n2) = frames[3], frames[5]
    assert (t1, n1.completion_id, n1.value.content) == (
        T.ATTACH_INVOCATION_COMPLETION,
        1,
        b'{"out":1}',
    )
    assert (t2, n2.completion_id, n2.WhichOneof("result")) == (
        T.GET_INVOCATION_OUTPUT_COMPLETION,
        2,
        "void",
    )


def test_a_call_with_an_idempotency_key_carries_it() -> None:
    raw = _answer(
        (
            T.CALL,
            pb.CallCommandMessage(
                service_name="O", handler_name="h", idempotency_key="i", result_completion_id=2
            ),
        ),
        _suspension([2]),
    )
    answer = decode_answer(_inv(_rec(), state={}), raw, 6, 0)
    assert answer.entries[0]["idempotency_key"] == "i"
    assert answer.status == "suspended" and answer.waiting == [1]
