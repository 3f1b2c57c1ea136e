"""The incremental fold (``protocols.aws_durable._fold``) against the whole fold
(``operations``): after every checkpoint and every completion, the same operations in the same
order, folded from scratch only when the journal was not just appended to; and through the
adapter (an engine on a SQLite file, the ingress's durable API called in process, the
function's Lambda invoke played by the test): one fold per run, every answer as the whole
fold of the stored journal, a callback completed mid-run included."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ritornello.orchestrator import Engine
from ritornello.orchestrator.core import KILLED_RESULT, completion_text
from ritornello.orchestrator.core._journal import unstamped
from ritornello.orchestrator.ingress import IngressApp
from ritornello.orchestrator.protocols.aws_durable import _adapter, to_wire
from ritornello.orchestrator.protocols.aws_durable._adapter import completed_marker
from ritornello.orchestrator.protocols.aws_durable._callbacks import (
    heartbeat_result,
    timeout_result,
)
from ritornello.orchestrator.protocols.aws_durable._fold import Fold, check_types
from ritornello.orchestrator.protocols.aws_durable._operations import (
    UpdateError,
    check_updates,
    entries_of,
    operations,
)
from ritornello.orchestrator.protocols.aws_durable._stop import stopped_result
from ritornello.store.sqlite import SqliteStore
from tests.asgi_call import asgi_call

INV = "inv_aaaaaaaaaaaaaaaaaaaaaaaaaa"
#: operation ids by type: a few, so updates meet the same operations again (as the SDK sends
#: them, an operation keeps its type; the execution's own id too, as a type that does not read
#: a step's details)
IDS = {
    "STEP": ("s1", "s2"),
    "WAIT": ("w1", "w2", INV),
    "CALLBACK": ("c1", "c2"),
    "CONTEXT": ("x1", "x2", INV),
    "CHAINED_INVOKE": ("i1", "i2"),
    "EXECUTION": (INV,),
}

_text = st.sampled_from(["42", '"x"', '{"k": [1, 2]}', "not json", ""])
_error = st.fixed_dictionaries(
    {"ErrorType": st.sampled_from(["E", "Boom"]), "ErrorMessage": st.sampled_from(["no", ""])}
)


@st.composite
def updates(draw: st.DrawFn) -> dict[str, Any]:
    """One operation update of any kind and action this backend journals."""
    kind, action = draw(
        st.sampled_from(
            [
                ("STEP", "START"),
                ("STEP", "SUCCEED"),
                ("STEP", "FAIL"),
                ("STEP", "RETRY"),
                ("STEP", "CANCEL"),
                ("WAIT", "START"),
                ("WAIT", "CANCEL"),
                ("CALLBACK", "START"),
                ("CALLBACK", "SUCCEED"),
                ("CALLBACK", "FAIL"),
                ("CONTEXT", "START"),
                ("CONTEXT", "SUCCEED"),
                ("CONTEXT", "FAIL"),
                ("CHAINED_INVOKE", "START"),
                ("CHAINED_INVOKE", "CANCEL"),
                ("EXECUTION", "SUCCEED"),
                ("EXECUTION", "FAIL"),
            ]
        )
    )
    op_id = draw(st.sampled_from(IDS[kind]))
    update: dict[str, Any] = {"Id": op_id, "Type": kind, "Action": action}
    for name in ("Name", "ParentId", "SubType"):
        if draw(st.booleans()):
            update[name] = draw(st.sampled_from(["n", "p", "Map"]))
    if draw(st.booleans()):
        update["Payload"] = draw(_text)
    if draw(st.booleans()):
        update["Error"] = draw(_error)
    if kind == "WAIT":
        update["WaitOptions"] = {"WaitSeconds": draw(st.integers(1, 5))}
    elif kind == "STEP" and action == "RETRY":
        update["StepOptions"] = {"NextAttemptDelaySeconds": draw(st.integers(0, 5))}
    elif kind == "CALLBACK" and action == "START" and draw(st.booleans()):
        options = {"TimeoutSeconds": draw(st.integers(0, 3))}
        options["HeartbeatTimeoutSeconds"] = draw(st.integers(0, 3))
        update["CallbackOptions"] = options
    elif kind == "CHAINED_INVOKE" and action == "START":
        update["ChainedInvokeOptions"] = {"FunctionName": "Other/run"}
    elif kind == "CONTEXT" and draw(st.booleans()):
        update["ContextOptions"] = {"ReplayChildren": True}
    return update


#: completions as the core stores them, of every kind a fold reads (a fired timer, a callback
#: resolved through either path, rejected or timed out, a callee's result, failure or stop, a
#: heartbeat), as result texts
RESULTS = st.sampled_from(
    [
        '{"value":null}',
        '{"value":{"a":1}}',
        '{"value":{"a":1},"text":"{\\"a\\": 1}"}',
        '{"failure":{"code":500,"message":"no"}}',
        '{"failure":{"code":500,"message":"no","aws":{"ErrorType":"X"}}}',
        timeout_result(False, 7000),
        timeout_result(True, 8000),
        KILLED_RESULT,
        str(stopped_result({"ErrorMessage": "stop"})),
        heartbeat_result(9000),
        '{"value":"done","at":6000}',
    ]
)

#: one step: a checkpoint of a few updates, the run's INVOCATION COMPLETED marker, or a
#: completion of some entry (picked by position among the entries so far)
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("checkpoint"), st.lists(updates(), min_size=1, max_size=3)),
        st.tuples(st.just("marker"), st.none()),
        st.tuples(st.just("complete"), st.tuples(st.integers(0, 1000), RESULTS)),
    ),
    max_size=30,
)


def appended(entries: list[str], batch: list[dict[str, Any]], at: int) -> None:
    """Journal ``batch`` as the core does: appended in place, a sleep with its ``wake_at``."""
    for entry in entries_of(check_updates(batch), INV, len(entries), at, lambda _: "Other/run"):
        if entry["kind"] == "sleep":
            entry["wake_at"] = at + entry["duration_ms"]
        entries.append(json.dumps(entry))


def same(fold: dict[str, Any], whole: dict[str, Any]) -> bool:
    """Equal operations, in the same order (a dict's == ignores it)."""
    return json.dumps(fold) == json.dumps(whole)


@settings(max_examples=300, deadline=None)
@given(STEPS, st.booleans())
def test_the_incremental_fold_is_the_whole_fold(
    steps: list[tuple[str, Any]], waits_first: bool
) -> None:
    entries = [json.dumps({"kind": "input", "value": {"n": 1}})]
    completions: dict[int, str] = {}
    fold = Fold(INV, 500)
    assert same(fold.update(entries, completions), operations(INV, entries, completions, 500))
    execution_touched = False
    for n, (what, arg) in enumerate(steps):
        at = 1000 + n
        if what == "checkpoint":
            appended(entries, arg, at)
        elif what == "marker":
            entries.append(json.dumps(completed_marker(at - 10, at)))
        else:
            pick, result = arg
            # mostly an entry that waits (as the core completes), sometimes any entry at all
            waiting = [
                i
                for i, t in enumerate(entries)
                if i not in completions and json.loads(t)["kind"] in ("sleep", "awakeable", "call")
            ]
            pool = waiting if waiting and (waits_first or pick % 3) else list(range(len(entries)))
            index = pool[pick % len(pool)]
            if index in completions:
                continue  # completions are fresh: written once
            completions[index] = completion_text(index, result)
            update = json.loads(entries[index]).get("aws") or {}
            execution_touched = execution_touched or update.get("Id") == INV
        ops = fold.update(entries, completions)
        assert same(ops, operations(INV, entries, completions, 500)), (what, arg)
    # folded once from scratch; again only when a completion reached the EXECUTION's own id
    assert fold.refolds == 1 or execution_touched


def test_a_journal_that_was_not_just_appended_to_is_folded_from_scratch() -> None:
    entries = [json.dumps({"kind": "input", "value": 1})]
    appended(
        entries,
        [{"Id": "w", "Type": "WAIT", "Action": "START", "WaitOptions": {"WaitSeconds": 1}}],
        1000,
    )
    appended(entries, [{"Id": "s", "Type": "STEP", "Action": "START"}], 1001)
    completions: dict[int, str] = {}
    fold = Fold(INV, 0)
    fold.update(entries, completions)
    assert fold.refolds == 1
    # a completion of an entry folded already: its operation folded again, nothing else
    completions[1] = completion_text(1, '{"value":null}')
    assert fold.update(entries, completions)["w"]["Status"] == "SUCCEEDED"
    assert fold.refolds == 1
    # the same journal as another list (read again): from scratch
    copy = list(entries)
    assert same(fold.update(copy, completions), operations(INV, copy, completions, 0))
    assert fold.refolds == 2
    # shorter (not the journal folded): from scratch
    del copy[2:]
    ops = fold.update(copy, completions)
    assert same(ops, operations(INV, copy, completions, 0)) and "s" not in ops
    assert fold.refolds == 3
    # fewer completions (one removed): from scratch
    completions.clear()
    assert fold.update(copy, completions)["w"]["Status"] == "STARTED"
    assert fold.refolds == 4
    # a holder of the operations sees every update (the run's, answered to the function)
    held = fold.operations
    copy.append(entries[2])
    fold.update(copy, completions)
    assert held is fold.operations and held["s"]["Status"] == "STARTED"


def test_an_update_that_changes_an_operations_type_is_refused() -> None:
    entries = [json.dumps({"kind": "input", "value": 1})]
    appended(
        entries,
        [{"Id": "w", "Type": "WAIT", "Action": "START", "WaitOptions": {"WaitSeconds": 1}}],
        1000,
    )
    ops = Fold(INV, 0).update(entries, {})
    step = {"Id": "s", "Type": "STEP", "Action": "START"}
    check_types(
        [step, {**step, "Action": "SUCCEED"}, {**step, "Id": "w", "Type": "WAIT"}], ops, INV
    )
    for updates, why in [
        ([{**step, "Id": "w"}], "Updates\\[0\\]: operation w is of type WAIT, not STEP"),
        ([step, {**step, "Type": "CONTEXT"}], "Updates\\[1\\]: operation s is of type STEP"),
        ([{**step, "Id": INV, "Type": "CONTEXT"}], "is of type EXECUTION, not CONTEXT"),
    ]:
        with pytest.raises(UpdateError, match=why):
            check_types(updates, ops, INV)
    check_types([{"Id": INV, "Type": "EXECUTION", "Action": "SUCCEED"}], ops, INV)


ARN = "arn:aws:lambda:us-east-1:123456789012:function:fold:1"
API = "/2025-12-01/"
JSON = {"content-type": "application/json"}


async def post(app: IngressApp, path: str, body: bytes) -> tuple[int, Any]:
    """One POST through the ingress app, in process: (status, the JSON answer)."""
    status, _, answer = await asgi_call(app, "POST", path, body, JSON)
    return status, json.loads(answer)


def test_a_run_folds_once_and_answers_each_checkpoint_as_the_whole_fold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folds: list[Fold] = []

    class Recorded(Fold):
        def __init__(self, execution_id: str, started_ms: int) -> None:
            super().__init__(execution_id, started_ms)
            folds.append(self)

    monkeypatch.setattr(_adapter, "Fold", Recorded)

    async def main() -> None:
        store = SqliteStore(tmp_path / "r.db")
        await store.open()
        engine = Engine(store, watchdog_interval_s=0)
        await engine.start()
        app = IngressApp(engine)
        record = await engine.register_durable_function(ARN, "Fold")
        found = engine.deployments.endpoint(record.id)
        assert found is not None

        async def function(event: bytes) -> bytes:
            """The durable function's run: steps, a callback completed while it runs."""
            given = json.loads(event)
            execution = quote(given["DurableExecutionArn"], safe="")
            token = given["CheckpointToken"]

            async def checkpoint(*updates: dict[str, Any]) -> dict[str, Any]:
                nonlocal token
                body = {"CheckpointToken": token, "Updates": list(updates)}
                path = f"{API}durable-executions/{execution}/checkpoint"
                status, answer = await post(app, path, json.dumps(body).encode())
                assert status == 200, answer
                token = answer["CheckpointToken"]
                return {op["Id"]: op for op in answer["NewExecutionState"]["Operations"]}

            for n in range(10):
                started = await checkpoint({"Id": f"s{n}", "Type": "STEP", "Action": "START"})
                assert list(started) == [f"s{n}"] and started[f"s{n}"]["Status"] == "STARTED"
                ended = await checkpoint(
                    {"Id": f"s{n}", "Type": "STEP", "Action": "SUCCEED", "Payload": str(n)}
                )
                assert ended[f"s{n}"]["StepDetails"] == {"Attempt": 0, "Result": str(n)}
            started = await checkpoint({"Id": "cb", "Type": "CALLBACK", "Action": "START"})
            callback = started["cb"]["CallbackDetails"]["CallbackId"]
            status, _ = await post(
                app, f"{API}durable-execution-callbacks/{callback}/succeed", b"1"
            )
            assert status == 200
            # an update that would change an operation's type: refused, nothing journaled
            path = f"{API}durable-executions/{execution}/checkpoint"
            wrong = {
                "Id": "s0",
                "Type": "WAIT",
                "Action": "START",
                "WaitOptions": {"WaitSeconds": 1},
            }
            body = json.dumps({"CheckpointToken": token, "Updates": [wrong]}).encode()
            status, answer = await post(app, path, body)
            assert status == 400 and "operation s0 is of type STEP, not WAIT" in answer["message"]
            await checkpoint({"Id": "last", "Type": "STEP", "Action": "START"})
            state = await checkpoint()  # a refresh: every operation as last committed
            assert state["cb"]["Status"] == "SUCCEEDED"
            assert state["cb"]["CallbackDetails"]["Result"] == "1"
            inv_id = given["DurableExecutionArn"].rpartition("/")[2]
            rec = await store.get_invocation(inv_id)
            assert rec is not None
            texts, done = await store.get_journal(inv_id)
            entries = [unstamped(t) for t in texts]  # as the core holds them (journal time)
            completions = {json.loads(t)["index"]: t for t in done}
            whole = operations(inv_id, entries, completions, rec.created_at)
            assert list(state.values()) == json.loads(
                json.dumps([to_wire(op) for op in whole.values()])
            )
            return json.dumps({"Status": "SUCCEEDED", "Result": '"ok"'}).encode()

        found[1].invoke_event = function
        target = engine.registry.resolve("Fold", "run")
        assert target is not None
        try:
            rec, _ = await engine.submit(target, None, "{}")
            result = await asyncio.wait_for(engine.wait_result(rec.id, created=rec), 20)
            assert json.loads(result) == {"value": "ok"}
        finally:
            await engine.stop()
            await store.close()

    asyncio.run(main())
    # one run: folded from scratch once, then only what each checkpoint added
    assert len(folds) == 1 and folds[0].refolds == 1
