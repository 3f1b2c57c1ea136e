"""Kill -9 a process in the middle of committing; every acknowledged unit must be there, whole,
and no unit may be there in part.

A child process runs 16 concurrent committers. Each unit creates invocation ``U`` with three
journal entries, a completion, a state value and a timer, and bumps its committer's counter
invocation (a conditional update). The child prints ``U`` once ``commit()`` returned. The
parent SIGKILLs it at a random moment, reopens the database and checks. Run with each writer:
on a thread of the child, and in a writer process of its own (a grandchild), which must die
with the child (``PR_SET_PDEATHSIG``): one left behind could still commit.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ritornello.store.sqlite import SqliteStore
from tests.procs import alive, identity, parent_pid

CHILD = r"""
import asyncio, dataclasses, sys
from ritornello.store import CommitUnit, InvocationRecord, InvocationWrite, TimerRecord
from ritornello.store.sqlite import SqliteStore

path, prefix, writer = sys.argv[1], sys.argv[2], sys.argv[3]

def record(id, seq, version):
    return InvocationRecord(id=id, service="S", handler="h", key=id, handler_kind="exclusive",
                            status="running", deployment_id="dp", seq=seq, created_at=1,
                            modified_at=1, version=version)

async def committer(store, w):
    counter = f"{prefix}-counter-{w}"
    current = await store.get_invocation(counter)
    n = 0
    while True:
        uid = f"{prefix}-{w}-{n}"
        if current is None:
            bump = InvocationWrite(record(counter, 0, 1))
        else:
            bump = InvocationWrite(dataclasses.replace(current, version=current.version + 1),
                                   expect_version=current.version)
        unit = CommitUnit(
            invocations=[InvocationWrite(record(uid, n, 1)), bump],
            entries=[(uid, i, '{"kind":"run","value":"%s"}' % ("x" * 50 * i)) for i in range(3)],
            completions=[(uid, 1, '{"index":1,"value":null}')],
            state=[("S", uid, "n", str(n))],
            timers_add=[TimerRecord(n, uid, "sleep", 1)],
        )
        await store.commit(unit)
        current = bump.record
        sys.stdout.write(uid + "\n")
        sys.stdout.flush()
        n += 1

async def main():
    store = SqliteStore(path, writer=writer)
    await store.open()
    print("ready", store._writer.pid if writer == "process" else 0, flush=True)
    await asyncio.gather(*(committer(store, w) for w in range(16)))

asyncio.run(main())
"""


def _run_child(script: Path, db: Path, prefix: str, delay: float, writer: str) -> list[str]:
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db), prefix, writer],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    grandchild: tuple[int, str] | None = None
    try:
        ready = proc.stdout.readline()
        assert ready.startswith("ready "), ready + proc.stderr.read()
        writer_pid = int(ready.split()[1])
        if writer == "process":
            assert parent_pid(writer_pid) == proc.pid, ready
            grandchild = identity(writer_pid)
            assert grandchild is not None, ready
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()))
        reader.start()
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # the writer process dies with the process that started it (before the reader ends:
        # it holds the same stdout)
        deadline = time.monotonic() + 5
        while grandchild is not None and alive(grandchild) and time.monotonic() < deadline:
            time.sleep(0.02)
        outlived = grandchild is not None and alive(grandchild)
        reader.join(0 if outlived else None)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if grandchild is not None and alive(grandchild):  # failed: leave nothing behind
            os.kill(grandchild[0], signal.SIGKILL)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not outlived, f"the writer process {grandchild} outlived its parent"
    return [line[:-1] for line in lines if line.endswith("\n")]  # a torn last line: not acked


def _check(db: Path, prefix: str, acked: list[str]) -> None:
    conn = sqlite3.connect(db)
    try:

        def ids(query: str) -> set[str]:
            return {row[0] for row in conn.execute(query, (prefix + "-%",))}

        units = ids("SELECT id FROM invocations WHERE id LIKE ? AND id NOT LIKE '%counter%'")
        journal = dict(
            conn.execute(
                "SELECT invocation_id, count(*) FROM journal WHERE invocation_id LIKE ? "
                "GROUP BY invocation_id",
                (prefix + "-%",),
            ).fetchall()
        )
        completions = ids("SELECT invocation_id FROM completions WHERE invocation_id LIKE ?")
        state = ids("SELECT key FROM state WHERE key LIKE ?")
        timers = ids("SELECT invocation_id FROM timers WHERE invocation_id LIKE ?")
        counters = dict(
            conn.execute(
                "SELECT id, version FROM invocations WHERE id LIKE ?", (prefix + "-counter-%",)
            ).fetchall()
        )
    finally:
        conn.close()
    missing = set(acked) - units
    assert not missing, f"acknowledged but lost: {sorted(missing)[:5]}"
    # no unit in part: every trace of a unit comes with all of it
    assert set(journal) == units and set(journal.values()) <= {3}
    assert completions == units and state == units and timers == units
    # each committer's counter was bumped exactly once per unit of it that is present
    for w in range(16):
        present = sum(1 for u in units if u.startswith(f"{prefix}-{w}-"))
        version = counters.get(f"{prefix}-counter-{w}", 0)
        assert version == present, (w, version, present)


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_acknowledged_units_survive_sigkill(
    writer: str, tmp_path: Path, run: Callable[[Awaitable[Any]], Any]
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    db = tmp_path / "crash" / "r.db"
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    total = 0
    for round in range(4):
        prefix = f"r{round}"
        acked = _run_child(script, db, prefix, delay=rng.uniform(0.05, 0.4), writer=writer)
        total += len(acked)
        _check(db, prefix, acked)
        # the killed process's lock is gone: the database opens normally
        run(_open_close(db))
    assert total > 0, f"the child never acknowledged a commit (seed {seed})"


async def _open_close(db: Path) -> None:
    async with SqliteStore(db) as store:
        assert await store.max_seq() >= 0
