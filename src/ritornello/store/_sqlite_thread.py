"""One thread owning one sqlite3 connection, fed by a queue of jobs; the writer's group commit.

The event loop never touches a connection: it puts ``(fn, arg, future)`` on the thread's queue
and awaits the future. The thread takes everything queued (up to ``batch_limit`` jobs), runs
the batch, and settles all of its futures with a single ``loop.call_soon_threadsafe``.

``run_transaction`` (the group commit below) is also what the writer process runs
(``_sqlite_process.py``, the default writer): one definition of a batch for both.

Writer (``transactional=True``), one batch = one transaction, run optimistically first::

    BEGIN IMMEDIATE
      job 1; job 2; ...      <- no savepoints: every job succeeds (the common case)
    COMMIT                 <- one fsync (synchronous=FULL) makes the whole batch durable
    settle futures         <- only now does any commit() of the batch return

and, when a job fails its own condition (ConflictError, FencedError among them, or a value
that cannot be bound), the transaction is rolled back and the same batch runs again with each
job in its own savepoint, so that only the failed job's writes are undone::

    ROLLBACK; BEGIN IMMEDIATE
      SAVEPOINT unit; job 1; RELEASE unit
      SAVEPOINT unit; job 2 -> ConflictError; ROLLBACK TO unit; RELEASE unit   (job 2 alone fails)
      ...
    COMMIT

A savepoint costs more than its two statements: every page a job changes is first copied to
the savepoint's sub-journal, which took about a third of the writer's time per unit. Running a
batch twice is harmless: a job is a function of its argument and the database (it keeps
nothing of a run that was rolled back), and nothing of the first run was committed or
reported. The outcome is the same as with savepoints alone: each job all or nothing, the
batch committed at once or not at all.

A job is a commit unit or a small write (a lease claim or renewal, a heartbeat, an inbox
ack). Jobs run in queue order, so a unit fenced at an epoch sees a claim queued before it,
even in the same batch.

A SQLite error outside a job's own conditions (I/O error, disk full, a failed COMMIT) rolls the
whole transaction back and fails every job of the batch with ``StoreError``: a batch is written
entirely or not at all, and no caller is told "committed" before COMMIT returned.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ritornello.store import crashpoints
from ritornello.store.errors import ConflictError, StoreError

JobFn = Callable[[sqlite3.Cursor, Any], Any]
# (succeeded, result or exception) of one job
Outcome = tuple[bool, Any]
# (fn, arg, future); fn None is the stop request (its future settles once the thread is done)
Job = tuple[JobFn | None, Any, "asyncio.Future[Any]"]
# (future, succeeded, result or exception)
_Result = tuple["asyncio.Future[Any]", bool, Any]

# Errors a job's own arguments cause (bad types, out-of-range ints): they fail that job only.
# (A job maps the constraint failures that are conflicts to ConflictError itself.)
_JOB_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.ProgrammingError,
    sqlite3.InterfaceError,
    sqlite3.DataError,
    TypeError,
    ValueError,
    OverflowError,
)


def _settle(results: list[_Result]) -> None:
    for future, ok, value in results:
        if future.done():  # the caller was cancelled; the job ran anyway
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _post(results: list[_Result]) -> None:
    """Settle ``results`` on their event loops: one call_soon_threadsafe per loop."""
    if not results:
        return
    loop = results[0][0].get_loop()
    by_loop: dict[asyncio.AbstractEventLoop, list[_Result]] | None = None
    for result in results:
        if result[0].get_loop() is not loop:
            by_loop = {}
            for r in results:
                by_loop.setdefault(r[0].get_loop(), []).append(r)
            break
    for target_loop, batch in by_loop.items() if by_loop else ((loop, results),):
        try:
            target_loop.call_soon_threadsafe(_settle, batch)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            pass


def _run_jobs(cur: sqlite3.Cursor, jobs: Sequence[tuple[JobFn, Any]]) -> list[Outcome] | None:
    """Run every job of ``jobs`` in the open transaction, without savepoints; None as soon as
    one fails its own condition (its writes and the others' are then in the transaction, to
    be rolled back). Any other error propagates: the whole batch fails."""
    results: list[Outcome] = []
    for fn, arg in jobs:
        try:
            value = fn(cur, arg)
        except (ConflictError, *_JOB_ERRORS):
            return None
        results.append((True, value))
        if crashpoints.ARMED and len(results) == 2:
            crashpoints.reach("mid-batch")  # two units written, none committed
    return results


def _run_jobs_isolated(cur: sqlite3.Cursor, jobs: Sequence[tuple[JobFn, Any]]) -> list[Outcome]:
    """Run every job of ``jobs`` in its own savepoint: a job that fails its condition leaves
    no trace and fails alone."""
    results: list[Outcome] = []
    for fn, arg in jobs:
        cur.execute("SAVEPOINT unit")
        try:
            value = fn(cur, arg)
        except ConflictError as e:
            cur.execute("ROLLBACK TO unit")
            cur.execute("RELEASE unit")
            results.append((False, e))
        except _JOB_ERRORS as e:
            cur.execute("ROLLBACK TO unit")
            cur.execute("RELEASE unit")
            error = StoreError(f"cannot store this unit: {e}")
            error.__cause__ = e
            results.append((False, error))
        else:
            cur.execute("RELEASE unit")
            results.append((True, value))
        if crashpoints.ARMED and len(results) == 2:
            crashpoints.reach("mid-batch")  # two units written, none committed
    return results


def run_transaction(
    conn: sqlite3.Connection, cur: sqlite3.Cursor, jobs: Sequence[tuple[JobFn, Any]]
) -> tuple[bool, list[Outcome]]:
    """Run ``jobs`` as one transaction (optimistically, then with savepoints if one fails its
    condition: the module docstring). Returns (committed, one outcome per job); not committed
    means every job failed with ``StoreError`` and nothing of the batch was written."""
    try:
        cur.execute("BEGIN IMMEDIATE")
        results = _run_jobs(cur, jobs)
        if results is None:  # a job failed its condition: again, each job in a savepoint
            cur.execute("ROLLBACK")
            cur.execute("BEGIN IMMEDIATE")
            results = _run_jobs_isolated(cur, jobs)
        cur.execute("COMMIT")
    except Exception as e:
        if conn.in_transaction:
            try:
                conn.rollback()
            except sqlite3.Error:
                pass
        return False, [(False, _store_error(e)) for _ in jobs]
    return True, results


def run_reads(
    conn: sqlite3.Connection, cur: sqlite3.Cursor, jobs: Sequence[tuple[JobFn, Any]]
) -> list[Outcome]:
    """Run read jobs one by one; a SQLite error fails its job as ``StoreError``."""
    results: list[Outcome] = []
    for fn, arg in jobs:
        try:
            results.append((True, fn(cur, arg)))
        except sqlite3.Error as e:
            if conn.in_transaction:
                conn.rollback()
            error = StoreError(f"store read failed: {e}")
            error.__cause__ = e
            results.append((False, error))
        except Exception as e:
            results.append((False, e))
    return results


def _store_error(e: BaseException) -> StoreError:
    error = StoreError(f"store I/O failed, nothing of this batch was written: {e}")
    error.__cause__ = e
    return error


class ConnectionThread:
    """A daemon thread with its own connection. ``connect`` runs on the thread."""

    def __init__(
        self,
        name: str,
        connect: Callable[[], sqlite3.Connection],
        *,
        transactional: bool,
        batch_limit: int,
    ) -> None:
        self._connect = connect
        self._transactional = transactional
        self._batch_limit = batch_limit
        self._queue: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._ready: asyncio.Future[None] | None = None
        self._failed = False
        self._failing = threading.Lock()
        #: committed transactions (writer) or batches run (reader)
        self.batches = 0

    def start(self) -> asyncio.Future[None]:
        """Start the thread; the future settles once the connection is open (or failed)."""
        self._ready = asyncio.get_running_loop().create_future()
        self._thread.start()
        return self._ready

    def submit(self, fn: JobFn, arg: Any, future: asyncio.Future[Any]) -> None:
        self._queue.put((fn, arg, future))

    def stop(self) -> asyncio.Future[None]:
        """Ask the thread to finish the jobs already queued, close its connection and exit."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._failing:
            if self._failed or not self._thread.is_alive():
                future.set_result(None)
            else:
                self._queue.put((None, None, future))
        return future

    def join(self) -> None:
        self._thread.join()

    def _run(self) -> None:
        assert self._ready is not None
        try:
            conn = self._connect()
        except BaseException as e:
            if not isinstance(e, StoreError):
                error = StoreError(f"cannot open the database: {e}")
                error.__cause__ = e
                e = error
            with self._failing:  # a stop() is either queued already or sees _failed
                self._failed = True
                results: list[_Result] = [(self._ready, False, e)]
                while True:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    results.append((job[2], job[0] is None, None if job[0] is None else e))
            _post(results)
            return
        _post([(self._ready, True, None)])
        stop: asyncio.Future[Any] | None = None
        try:
            cursor = conn.cursor()
            get, get_nowait, limit = self._queue.get, self._queue.get_nowait, self._batch_limit
            while stop is None:
                batch = [get()]
                while len(batch) < limit:
                    try:
                        batch.append(get_nowait())
                    except queue.Empty:
                        break
                for i, job in enumerate(batch):
                    if job[0] is None:
                        stop = job[2]
                        del batch[i:]  # nothing is queued after a stop request
                        break
                if batch:
                    _post(self._run_batch(conn, cursor, batch))
        finally:
            conn.close()
            if stop is not None:
                _post([(stop, True, None)])

    def _run_batch(
        self, conn: sqlite3.Connection, cur: sqlite3.Cursor, batch: list[Job]
    ) -> list[_Result]:
        jobs = [(fn, arg) for fn, arg, _ in batch if fn is not None]
        if self._transactional:
            committed, outcomes = run_transaction(conn, cur, jobs)
        else:
            committed, outcomes = True, run_reads(conn, cur, jobs)
        if committed:
            self.batches += 1
        return [(job[2], ok, value) for job, (ok, value) in zip(batch, outcomes, strict=True)]
