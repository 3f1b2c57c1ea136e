"""The SQLite writer in a child process: group commit without sharing the event loop's GIL.

Why: with the writer on a thread, every ``execute`` gives the GIL up around SQLite's own work
and must win it back from the event loop, which holds it while it runs a burst of callbacks.
Under load a batch spent about three quarters of its wall time waiting for the GIL, and every
request waits for two batches (docs/performance.md, "Session 6: the writer process"). In its
own process the writer runs the same jobs (``run_transaction``, shared with the thread) on its
own interpreter and core.

Parent side (``WriterProcess``, on the event loop; no thread)::

    submit(fn, arg, future)   -> pending; a flush is scheduled for the end of this iteration
    flush                     -> one frame with every pending job, sent at once (pipelined:
                                 it does not wait for earlier frames to be answered)
    "done" / "results" frame  -> settle the oldest futures in flight, in order

Child side (``python -m ritornello.store._sqlite_process FD``)::

    config frame -> connect (open, WAL, schema) -> "ready" or "failed"
    loop: wait for a frame, take every frame that has arrived since (group commit),
          run their jobs in order as transactions of at most batch_limit jobs,
          answer each transaction after its COMMIT returned

Invariants:

- Jobs run in submission order, each transaction's after the previous one's, so a job sees
  every job submitted before it (a lease claim before a fenced unit), as on the thread; the
  answers come back in that order, which is how the parent matches them to futures.
- A future settles only from the child's answer, sent after COMMIT returned: a ``commit()``
  that returned is durable. Without an answer (the child died) a job's outcome is unknown: its
  future fails with ``UnavailableError`` ("may or may not have landed"), and the writer has
  failed for good: every later job fails with ``StoreError`` and ``failed`` is set, so that
  ``serve`` stops (and its restart recovers) instead of running on without a writer.
- Each job is sent as it is: a commit unit as plain tuples written with ``marshal`` (1.9 µs a
  unit against 6.5 for pickling the records), anything else pickled. A job that can be sent
  neither way fails alone with ``StoreError``, and so does one the child cannot read back.
- The child dies with the thread that started it (``PR_SET_PDEATHSIG``; on EOF too): a kill -9
  of the orchestrator leaves no writer behind to commit later, and SQLite rolls back the
  transaction it was in. It ignores SIGINT and SIGTERM: the parent stops it (``stop``) after
  the jobs already submitted. A crash point reached in the child kills the parent too.
- Frames are a 4-byte big-endian length, a kind byte (``M`` marshal, ``P`` pickle) and the
  payload. Only the parent and its child hold the socket pair, so loading a peer's frame is
  loading our own data.
- One event loop: the loop that ran ``start`` is the only one that may submit.
"""

from __future__ import annotations

import asyncio
import collections
import marshal
import os
import pickle
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Callable
from typing import Any, cast

from ritornello import _child
from ritornello.store._sqlite_thread import JobFn, Outcome, run_transaction
from ritornello.store.errors import StoreError, UnavailableError
from ritornello.store.records import CommitUnit, unit_from_tuple, unit_to_tuple

_LENGTH = struct.Struct(">I")
_STOP = "stop"
_M = ord("M")
_UNIT, _PICKLED = 0, 1  # how a job is sent: a commit unit as tuples, or (fn, arg) pickled

Job = tuple[JobFn, Any, "asyncio.Future[Any]"]


def _frame(message: object, *, plain: bool = False) -> bytes:
    """A frame: length, then ``M`` and ``marshal`` (``plain``: str, int, None, bytes, lists
    and tuples only, and several times faster) or ``P`` and ``pickle``."""
    if plain:
        payload = b"M" + marshal.dumps(cast(Any, message))
    else:
        payload = b"P" + pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(payload)) + payload


def _split(buffer: bytearray) -> list[Any]:
    """Remove the complete frames at the front of ``buffer``; return their messages."""
    messages: list[Any] = []
    start, end = 0, len(buffer)
    while end - start >= 4:
        (size,) = _LENGTH.unpack_from(buffer, start)
        if end - start - 4 < size:
            break
        body = buffer[start + 5 : start + 4 + size]
        messages.append(marshal.loads(body) if buffer[start + 4] == _M else pickle.loads(body))
        start += 4 + size
    del buffer[:start]
    return messages


class _Reader(asyncio.Protocol):
    """Splits the child's byte stream into frames for ``WriterProcess``."""

    def __init__(self, owner: WriterProcess) -> None:
        self._owner = owner
        self._buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        for message in _split(self._buffer):
            self._owner._received(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._lost()


class WriterProcess:
    """A child process that owns the writer connection; same interface as the writer
    ``ConnectionThread`` (``start``, ``submit``, ``stop``, ``join``, ``batches``).

    ``connect`` and its ``args`` are sent to the child by reference (a module-level function
    and picklable arguments), as are the job functions."""

    def __init__(
        self,
        name: str,
        connect: Callable[..., sqlite3.Connection],
        args: tuple[Any, ...],
        *,
        unit_fn: JobFn,
        batch_limit: int,
    ) -> None:
        self.name = name
        self._unit_fn = unit_fn
        self._connect = connect
        self._args = args
        self._batch_limit = batch_limit
        self._pending: list[Job] = []
        self._flush_soon = False
        #: futures of the jobs sent and not answered yet, oldest first
        self._inflight: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._ready: asyncio.Future[None] | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._stopping = False
        self._failure: StoreError | None = None
        self._transport: asyncio.Transport | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: committed transactions
        self.batches = 0
        #: set to the error once the child is gone without being asked to stop
        self.failed: asyncio.Future[StoreError] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn the child and wait until its connection is open (or raise its error)."""
        self._loop = loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._stopped = loop.create_future()
        self.failed = loop.create_future()
        ours: socket.socket | None = None
        try:
            self._process, ours = _child.take(__name__) or _child.spawn(__name__)
            self._transport, _ = await loop.create_unix_connection(lambda: _Reader(self), sock=ours)
        except BaseException:
            if ours is not None:
                ours.close()
            self._stopped.set_result(None)
            raise
        self._transport.write(_frame((self._connect, self._args, self._batch_limit, self._unit_fn)))
        await self._ready

    def submit(self, fn: JobFn, arg: Any, future: asyncio.Future[Any]) -> None:
        if self._failure is not None or self._stopping:
            future.set_exception(self._failure or StoreError(f"{self.name}: stopped"))
            return
        if future.get_loop() is not self._loop:
            future.set_exception(
                StoreError(f"{self.name}: the store was opened on another event loop")
            )
            return
        self._pending.append((fn, arg, future))
        if not self._flush_soon:
            self._flush_soon = True
            self._loop.call_soon(self._flush)

    def stop(self) -> asyncio.Future[None]:
        """Stop after the jobs already submitted; the future settles once the child exited."""
        if self._stopped is None:  # never started
            self._stopped = asyncio.get_running_loop().create_future()
            self._stopped.set_result(None)
        if not self._stopping:
            self._stopping = True
            self._flush()
            if self._transport is not None and not self._transport.is_closing():
                self._transport.write(_frame(_STOP))
        return self._stopped

    def join(self) -> None:
        """Reap the child (it has exited once ``stop``'s future settled)."""
        if self._process is not None:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    # --- plumbing -----------------------------------------------------------------------

    def _flush(self) -> None:
        """Send the jobs submitted since the last flush as one frame (once per loop
        iteration, not waiting for earlier frames' answers: the child takes every frame that
        has arrived into its next transaction). Measured against holding jobs back while two
        frames are unanswered (fewer writes): the same CPU per request and throughput."""
        self._flush_soon = False
        batch, self._pending = self._pending, []
        if not batch or self._transport is None or self._failure is not None:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(self._failure or StoreError(f"{self.name}: not open"))
            return
        unit_fn = self._unit_fn
        try:
            payload = _frame(
                [
                    (_UNIT, unit_to_tuple(arg))
                    if fn is unit_fn and type(arg) is CommitUnit
                    else (_PICKLED, pickle.dumps((fn, arg), protocol=pickle.HIGHEST_PROTOCOL))
                    for fn, arg, _ in batch
                ],
                plain=True,
            )
        except Exception:  # some job cannot be sent: find it, send the others
            jobs: list[tuple[int, Any]] = []
            kept: list[Job] = []
            for job in batch:
                try:
                    jobs.append(self._encode(job[0], job[1]))
                except Exception as e:
                    error = StoreError(f"cannot store this unit: {e}")
                    error.__cause__ = e
                    if not job[2].done():
                        job[2].set_exception(error)
                else:
                    kept.append(job)
            if not kept:
                return
            batch, payload = kept, _frame(jobs, plain=True)
        self._inflight.extend(future for _, _, future in batch)
        self._transport.write(payload)

    def _encode(self, fn: JobFn, arg: Any) -> tuple[int, Any]:
        """One job's wire form, checked: a unit as tuples if marshal can write them, else
        pickled (a value of another type, such as a str subclass); raises if neither can."""
        if fn is self._unit_fn and type(arg) is CommitUnit:
            try:
                encoded = (_UNIT, unit_to_tuple(arg))
                marshal.dumps(encoded)
                return encoded
            except ValueError:
                pass
        return (_PICKLED, pickle.dumps((fn, arg), protocol=pickle.HIGHEST_PROTOCOL))

    def _received(self, message: Any) -> None:
        kind = message[0]
        if kind == "done":  # the oldest n jobs in flight succeeded with None (commits)
            self.batches += message[1]
            popleft = self._inflight.popleft
            for _ in range(message[2]):
                future = popleft()
                if not future.done():  # else the caller was cancelled; the job ran anyway
                    future.set_result(None)
        elif kind == "results":  # the outcomes of the oldest jobs in flight, in order
            committed, outcomes = message[1], message[2]
            if committed:
                self.batches += 1
            popleft = self._inflight.popleft
            for ok, value in outcomes:
                future = popleft()
                if future.done():  # the caller was cancelled; the job ran anyway
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        elif kind == "ready":
            assert self._ready is not None
            self._ready.set_result(None)
        elif kind == "failed":  # the connection could not be opened
            assert self._ready is not None
            self._failure = message[1]
            self._ready.set_exception(message[1])
            self._ready.exception()  # retrieved: start() raises it

    def _lost(self) -> None:
        """The child closed its end: it stopped as asked, or it died."""
        code = None if self._process is None else self._process.poll()
        if not self._stopping or self._inflight or self._pending:
            pid = self.pid
            failure = self._failure or StoreError(
                f"{self.name}: the SQLite writer process (pid {pid}) is gone (exit code {code})"
            )
            self._failure = failure
            if self.failed is not None and not self.failed.done():
                self.failed.set_result(failure)
            unknown = UnavailableError(
                f"{self.name}: the SQLite writer process (pid {pid}) died during this commit; "
                "it may or may not have been written"
            )
            for future in self._inflight:
                if not future.done():
                    future.set_exception(unknown)
            for _, _, future in self._pending:
                if not future.done():
                    future.set_exception(failure)
            self._inflight.clear()
            self._pending = []
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(failure)
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)
        if self._transport is not None:
            self._transport.close()


# --- the child ------------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux); then check that
    the parent did not die before we asked."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: EOF on the socket stops us instead
        pass
    if os.getppid() != parent:
        os._exit(0)


def _receive(sock: socket.socket, buffer: bytearray) -> tuple[list[Any], bool]:
    """Wait for at least one complete frame, then take every frame that has arrived without
    waiting more: (messages, the parent closed its end)."""
    messages = _split(buffer)
    while not messages:
        data = sock.recv(1 << 20)
        if not data:
            return [], True
        buffer += data
        messages = _split(buffer)
    while True:
        try:
            data = sock.recv(1 << 20, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return messages + _split(buffer), False
        if not data:
            return messages + _split(buffer), True
        buffer += data


def _decode(unit_fn: JobFn, kind: int, value: Any) -> tuple[JobFn, Any]:
    """A job as the parent sent it; one that cannot be read back becomes a job that fails
    alone (a ValueError fails its job only: ``_sqlite_thread``)."""
    try:
        if kind == _UNIT:
            return unit_fn, unit_from_tuple(value)
        fn, arg = pickle.loads(value)
        return fn, arg
    except Exception as e:
        return _undecodable, f"cannot read this job in the writer process: {e!r}"


def _undecodable(cur: Any, message: str) -> None:
    raise ValueError(message)


def _send_outcomes(sock: socket.socket, committed: bool, outcomes: list[Outcome]) -> None:
    if all(outcome == (True, None) for outcome in outcomes):
        sock.sendall(_frame(("done", int(committed), len(outcomes)), plain=True))
        return
    try:
        sock.sendall(_frame(("results", committed, outcomes)))
    except (pickle.PicklingError, TypeError, AttributeError):  # a result or error we cannot send
        safe = [
            (ok, value)
            if _picklable(value)
            else (False, StoreError(f"cannot report this job's outcome: {value!r}"))
            for ok, value in outcomes
        ]
        sock.sendall(_frame(("results", committed, safe)))


def _picklable(value: object) -> bool:
    try:
        pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return False
    return True


def main(fd: int) -> None:
    """The child: open the connection the parent names, then run its batches until it says
    stop or goes away."""
    from ritornello.store import crashpoints

    parent = os.getppid()
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    crashpoints.KILL_ALSO = parent  # a crash point reached here kills the orchestrator too
    sock = socket.socket(fileno=fd)
    buffer = bytearray()
    messages, closed = _receive(sock, buffer)
    if not messages:
        return
    connect, args, limit, unit_fn = messages.pop(0)
    try:
        conn = connect(*args)
    except BaseException as e:
        error = e if isinstance(e, StoreError) else StoreError(f"cannot open the database: {e}")
        sock.sendall(_frame(("failed", error if _picklable(error) else StoreError(str(error)))))
        return
    sock.sendall(_frame(("ready",)))
    cursor = conn.cursor()
    try:
        while True:
            jobs: list[tuple[JobFn, Any]] = []
            stop = closed
            for message in messages:
                if message == _STOP:
                    stop = True
                    break  # the parent sends nothing after it
                jobs.extend(_decode(unit_fn, kind, value) for kind, value in message)
            for start in range(0, len(jobs), limit):
                chunk = jobs[start : start + limit]
                _send_outcomes(sock, *run_transaction(conn, cursor, chunk))
            if stop:
                break
            messages, closed = _receive(sock, buffer)
    finally:
        conn.close()
        sock.close()


if __name__ == "__main__":
    main(int(sys.argv[1]))
