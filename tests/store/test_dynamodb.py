"""What is DynamoDB-specific (the conformance suite covers the rest): initialization, S3 for
large values, unicode keys, retries after ambiguous failures, cost accounting, several
processes on one table, large purges, the ``store init`` command. Against moto over HTTP."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ritornello.cli import app
from ritornello.store import (
    CommitUnit,
    ConflictError,
    InvocationWrite,
    StoreError,
    TimerRecord,
    UnavailableError,
    open_store,
)
from ritornello.store._dynamo_client import DynamoClient
from ritornello.store.dynamodb import DynamoStore

from .conftest import Run, dynamo_url, inv, make_dynamo_store

BIG = '"' + "x" * 2_000_000 + '"'  # a 2 MB JSON text


@pytest.fixture
def ddb(tmp_path: Path, run: Run[Any]) -> Any:
    store = make_dynamo_store(tmp_path)
    run(store.open())
    yield store
    run(store.close())


def test_open_without_init_names_the_command(tmp_path: Path, run: Run[Any]) -> None:
    store = DynamoStore.from_url(dynamo_url(tmp_path))
    with pytest.raises(StoreError, match="ritornello store init --store URL"):
        run(store.open())
    run(store.close())


def test_urls(tmp_path: Path) -> None:
    store = open_store(dynamo_url(tmp_path, partitions=3))
    assert isinstance(store, DynamoStore)
    assert store.settings.partitions == 3 and store.settings.region == "eu-west-1"
    with pytest.raises(ValueError, match="unknown option"):
        DynamoStore.from_url("dynamodb://t?colour=red")
    with pytest.raises(ValueError):
        DynamoStore.from_url("dynamodb://t?partitions=0")
    with pytest.raises(ValueError):
        open_store("dynamodb:///")


def test_partitions_come_from_the_table(tmp_path: Path, run: Run[Any]) -> None:
    make_dynamo_store(tmp_path, partitions=8)
    other = DynamoStore.from_url(dynamo_url(tmp_path, partitions=3))
    run(other.open())
    assert other.partitions == 8
    run(other.close())


def test_large_values_go_through_s3(ddb: DynamoStore, run: Run[Any]) -> None:
    record = inv(status="completed", result=BIG)
    unit = CommitUnit(
        invocations=[InvocationWrite(record)],
        entries=[("inv_1", 0, BIG), ("inv_1", 1, "{}")],
        completions=[("inv_1", 1, BIG)],
        state=[("Counter", "alice", "big", BIG)],
    )
    ddb.stats.reset()
    run(ddb.commit(unit))
    assert ddb.stats.s3_requests["PutObject"] == 4
    assert run(ddb.get_invocation("inv_1")) == record
    assert run(ddb.get_journal("inv_1")) == ([BIG, "{}"], [BIG])
    assert run(ddb.get_state("Counter", "alice")) == {"big": BIG}


def test_large_values_without_a_bucket_fail_clearly(tmp_path: Path, run: Run[Any]) -> None:
    store = make_dynamo_store(tmp_path, bucket=None)
    run(store.open())
    with pytest.raises(StoreError, match="bucket="):
        run(store.commit(CommitUnit(entries=[("inv_1", 0, BIG)])))
    assert run(store.get_journal("inv_1")) == ([], [])
    run(store.close())


def test_any_unicode_in_names(ddb: DynamoStore, run: Run[Any]) -> None:
    odd = '\x00é🙂#"[],\\'
    record = inv(f"inv{odd}", service=f"S{odd}", key=odd, idempotency_key=odd)
    unit = CommitUnit(
        invocations=[InvocationWrite(record)],
        entries=[(record.id, 0, '"\\u0000"')],
        state=[(f"S{odd}", odd, odd, "1"), (f"S{odd}", "", "", "2")],
        timers_add=[TimerRecord(5, record.id, "sleep", 0)],
    )
    run(ddb.commit(unit))
    assert run(ddb.get_invocation(record.id)) == record
    assert run(ddb.find_idempotent(f"S{odd}", "add", odd, odd)) == record
    assert run(ddb.find_idempotent(f"S{odd}", "add", None, odd)) is None
    assert run(ddb.get_state(f"S{odd}", odd)) == {odd: "1"}
    assert run(ddb.get_state(f"S{odd}", "")) == {"": "2"}
    assert run(ddb.list_timers()) == [TimerRecord(5, record.id, "sleep", 0)]
    long_key = "k" * 5000  # past DynamoDB's key size: hashed
    run(ddb.commit(CommitUnit(state=[("Counter", long_key, long_key, "3")])))
    assert run(ddb.get_state("Counter", long_key)) == {long_key: "3"}


def test_a_retry_after_an_ambiguous_failure_is_a_no_op(
    ddb: DynamoStore, run: Run[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transaction lands but its answer is lost: the retry resends the same request with
    the same ClientRequestToken (moto ignores tokens: the store sees its items are there)."""
    tokens: list[str] = []
    call = DynamoClient.call

    def lossy(self: DynamoClient, operation: str, **kwargs: Any) -> dict[str, Any]:
        if operation == "TransactWriteItems":
            tokens.append(kwargs["ClientRequestToken"])
        response = call(self, operation, **kwargs)
        if len(tokens) == 1 and operation == "TransactWriteItems":
            raise UnavailableError("connection reset after the request was sent")
        return response

    monkeypatch.setattr(DynamoClient, "call", lossy)
    unit = CommitUnit(
        invocations=[InvocationWrite(inv())], entries=[("inv_1", 0, "{}")], notify=[(0, "inv_1")]
    )
    with pytest.raises(UnavailableError):
        run(ddb.commit(unit))
    run(ddb.commit(unit))  # the retry: no ConflictError, nothing applied twice
    assert len(tokens) == 2 and tokens[0] == tokens[1]
    assert run(ddb.get_journal("inv_1")) == (["{}"], [])
    assert [m[1] for m in run(ddb.read_inbox(0))] == ["inv_1"]
    # a different unit writing the same entry still conflicts
    with pytest.raises(ConflictError):
        run(ddb.commit(CommitUnit(entries=[("inv_1", 0, "{}")])))


def test_stats_of_a_one_entry_commit(ddb: DynamoStore, run: Run[Any]) -> None:
    ddb.stats.reset()
    run(ddb.commit(CommitUnit(entries=[("inv_1", 0, '{"step": 1}')])))
    snap = ddb.stats.snapshot()
    assert snap["requests"] == {"TransactWriteItems": 1}
    # the entry and a ConditionCheck that the invocation's tail does not hold its index
    assert snap["items_written"] == 2 and snap["write_units"] == 4.0
    ddb.stats.reset()
    assert ddb.stats.snapshot()["requests"] == {}
    run(ddb.get_journal("inv_1"))
    snap = ddb.stats.snapshot()
    assert snap["requests"] == {"Query": 1} and snap["read_units"] == 1.0


def test_two_stores_on_one_table(tmp_path: Path, run: Run[Any]) -> None:
    a, b = make_dynamo_store(tmp_path), make_dynamo_store(tmp_path)
    run(a.open())
    run(b.open())
    v1 = inv()
    run(a.commit(CommitUnit(invocations=[InvocationWrite(v1)], entries=[("inv_1", 0, "{}")])))
    assert run(b.get_invocation("inv_1")) == v1
    v2 = dataclasses.replace(v1, version=2, status="suspended")
    run(b.commit(CommitUnit(invocations=[InvocationWrite(v2, expect_version=1)])))
    stale = dataclasses.replace(v1, version=2, status="completed")
    with pytest.raises(ConflictError):
        run(a.commit(CommitUnit(invocations=[InvocationWrite(stale, expect_version=1)])))
    lease = run(a.claim_lease(0, "node-a", None, 1))
    assert run(b.list_leases()) == [lease]
    assert run(a.get_invocation("inv_1")) == v2
    run(a.close())
    run(b.close())


def test_a_purge_past_the_transaction_limit(ddb: DynamoStore, run: Run[Any]) -> None:
    record = inv(status="completed", idempotency_key="ik")
    entries = [("inv_1", i, "{}") for i in range(90)]
    run(ddb.commit(CommitUnit(invocations=[InvocationWrite(record)], entries=entries)))
    more = [("inv_1", i, "{}") for i in range(90, 180)]
    run(ddb.commit(CommitUnit(entries=more, timers_add=[TimerRecord(1, "inv_1", "retry")])))
    run(ddb.commit(CommitUnit(purge=["inv_1"], state=[("Counter", "alice", None, None)])))
    assert run(ddb.get_invocation("inv_1")) is None
    assert run(ddb.get_journal("inv_1")) == ([], [])
    assert run(ddb.list_timers()) == []
    assert run(ddb.find_idempotent("Counter", "add", "alice", "ik")) is None


def test_a_unit_past_the_transaction_limit_fails_clearly(ddb: DynamoStore, run: Run[Any]) -> None:
    unit = CommitUnit(entries=[("inv_1", i, "{}") for i in range(101)])
    with pytest.raises(StoreError, match="at most 100"):
        run(ddb.commit(unit))


def test_cli_store_init(tmp_path: Path) -> None:
    runner = CliRunner()
    url = dynamo_url(tmp_path, bucket="ritornello-cli")
    first = runner.invoke(app, ["store", "init", "--store", url])
    assert first.exit_code == 0, first.output
    assert "created DynamoDB table" in first.output and "S3 bucket ritornello-cli" in first.output
    again = runner.invoke(app, ["store", "init", "--store", url])
    assert again.exit_code == 0 and "exists" in again.output
    db = tmp_path / "sq" / "r.db"
    local = runner.invoke(app, ["store", "init", "--store", f"sqlite:///{db}"])
    assert local.exit_code == 0, local.output
    assert db.exists()


def test_serve_against_a_missing_table_says_which_command_creates_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.procs import ROOT, free_port

    url = dynamo_url(tmp_path / "never-created")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ritornello",
            "serve",
            "--store",
            url,
            "--ingress-port",
            str(free_port()),
            "--admin-port",
            str(free_port()),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "ritornello store init --store" in done.stderr
    assert "Traceback" not in done.stderr
