"""Checkpoint channels of Lambda runs: a Lambda attempt as a streamed attempt whose checkpoints
come over the ingress (docs/protocol.md, "Checkpoint channel").

Lambda has no stream: an answer ends the Lambda run. So the Lambda invoker puts a *channel* in
the ``InvokeRequest`` — the URL of this orchestrator's ingress route and a token for the run —
and the SDK POSTs each checkpoint there while the run goes on. To the engine a channel is an
``InvokeStream`` like an HTTP stream (``ChannelRun``): ``next`` yields a checkpoint POSTed on
the channel or, last, the Lambda's own answer; ``ack`` answers the POST waiting with the ack
line once its entries are committed (the driver commits them exactly as any streamed
checkpoint); ``finish``/``abort`` answer it 409 instead, so the run starts nothing more.

The token is a capability: ``inv.attempt.nonce.mac``, the MAC (HMAC-SHA256 under a random key of
this process) binding it to the invocation, the attempt and the run, as the AWS durable runs'
tokens are (``protocols.aws_durable._runs``). So:

* a forged or altered token fails its MAC (403);
* a token of a run that ended here — finished, stopped, superseded by a new attempt, its driver
  gone — names no live run (409): a zombie Lambda cannot write;
* after a restart every token fails (the key is this process's): the re-driven attempt starts a
  new run with a new token.

Timeline (a run of two checkpoints; a completion arrives during the second step)::

    engine          ChannelRun                      Lambda (SDK)
    open_stream ──▶ token t, Invoke(request+t) ───▶ step 1 runs
                                   ◀── POST checkpoint(t) [entries of step 1]
    next() ◀─────── the checkpoint's line
    commit; ack() ─▶ 200 ack #1 ──────────────────▶ step 2 runs
                                   ◀── POST checkpoint(t) [entries of step 2]
    next() ◀─────── the checkpoint's line
    commit; a completion arrived: finish() ─▶ 409 ─▶ the run ends; its answer is dropped
    a new Invoke carrying the completion (a new run, a new token)

Counters (``Channels.counters``: the engine's, so ``GET /metrics`` shows them as
``ritornello_engine_events_total{event="channel_..."}``): ``channel_runs`` (Lambda runs sent with
a channel), ``channel_fallbacks`` (runs whose own answer was a checkpoint: they answered per
step, the channel unused or given up), ``channel_acks_missed`` (runs whose answer was refused
because they saw fewer acks than were sent); the ingress route counts the POSTs
(``ingress._channel``).

Invariants: a POST is answered 200 (an ack) only after the entries it carried were committed;
the Lambda's own answer is read only if the SDK saw every ack sent (its ``channel_acks``), and a
run whose checkpoint was handed to the engine and then left unanswered is spoiled, so an answer
that could repeat committed entries is refused, never journaled; every POST gets exactly one
answer, whatever way the run ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections import Counter
from collections.abc import Awaitable

from ritornello.protocol import STREAM_ACK, Signer

from ._base import InvokerError, InvokeStream

log = logging.getLogger("ritornello.engine")

#: The ingress route the channel POSTs to (docs/protocol.md, "Checkpoint channel").
CHANNEL_PATH = "/ritornello/v1/lambda/checkpoint"
#: The request header carrying the run's token.
TOKEN_HEADER = "x-ritornello-channel-token"

#: What a channel POST is answered: (HTTP status, body).
Reply = tuple[int, bytes]


def _message(text: str) -> bytes:
    import json

    return json.dumps({"message": text}).encode()


class ChannelRun(InvokeStream):
    """One Lambda run with a checkpoint channel, seen by the engine as a streamed attempt."""

    def __init__(
        self,
        channels: Channels,
        invocation_id: str,
        attempt: int,
        nonce: str,
        token: str,
        signer: Signer | None,
    ) -> None:
        self.channels = channels
        self.invocation_id = invocation_id
        self.attempt = attempt
        self.nonce = nonce
        self.token = token
        self._signer = signer
        #: the signed envelope's ``bind`` (set by the invoker's thread before the Lambda runs)
        self.bind: str | None = None
        #: the Lambda Invoke of this run (set by the invoker): the run's own answer, and the
        #: acks the SDK says it received (its ``channel_acks``; None: not said)
        self.result: asyncio.Future[tuple[bytes, int | None]] | None = None
        #: the run's own answer is a checkpoint: it answered per step (set by the invoker's
        #: thread before ``result`` is done; counted when the answer is read)
        self.per_step = False
        self._inbox: asyncio.Queue[tuple[bytes, asyncio.Future[Reply]]] = asyncio.Queue()
        self._pending: asyncio.Future[Reply] | None = None
        self._acks = 0
        self._spoiled = ""
        self.closed = False
        #: the Lambda answered: no ack can reach the run any more
        self.ended = False

    # -- the ingress's side

    def deliver(self, body: bytes) -> Awaitable[Reply]:
        """A checkpoint POSTed on this run's channel; its answer, once the engine decided."""
        reply: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        if self.closed:
            reply.set_result((409, _message("this run's attempt is over: start nothing more")))
        else:
            self._inbox.put_nowait((body, reply))
        return reply

    def spoil(self, why: str) -> None:
        """A checkpoint handed to the engine went unanswered (its POST gave up)."""
        self._spoiled = self._spoiled or why

    # -- the engine's side

    async def next(self, timeout_s: float | None = None) -> bytes:
        if self._spoiled:
            raise InvokerError(f"checkpoint channel: {self._spoiled}")
        if self.closed or self.result is None:
            raise InvokerError("checkpoint channel: the run is over")
        got = asyncio.ensure_future(self._inbox.get())
        try:
            done, _ = await asyncio.wait(
                (got, self.result), timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:
            got.cancel()
            raise
        if got in done:
            body, reply = got.result()
            self._pending = reply
            return body
        got.cancel()
        if self.result in done:
            self.ended = True
            self._close("the run answered")
            if self._spoiled:
                raise InvokerError(f"checkpoint channel: {self._spoiled}")
            answer, acks = self.result.result()  # its InvokerError, if the Invoke failed
            if (acks or 0) != self._acks:
                # it did not see every ack sent (a connection cut after the commit, a proxy's
                # error): its answer may hold entries committed already. Refused, not read.
                self.channels.counters["channel_acks_missed"] += 1
                raise InvokerError(
                    f"checkpoint channel: the run saw {acks or 0} of {self._acks} acks; "
                    "its answer is not read (retried from the journal)"
                )
            if self.per_step:
                self.channels.counters["channel_fallbacks"] += 1
            return answer
        raise TimeoutError

    def ack(self) -> None:
        reply, self._pending = self._pending, None
        if reply is None:
            return
        self._acks += 1
        if self._signer is not None and self.bind is not None:
            line = self._signer.lambda_ack(self.bind, self._acks)
        else:
            line = STREAM_ACK
        if not reply.done():
            reply.set_result((200, line))

    def finish(self) -> None:
        self._close("something reached the invocation: it goes on in a new request")

    def abort(self) -> None:
        self._close("the attempt ended")

    def _close(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.channels.drop(self)
        stop = (409, _message(f"stop: {why}"))
        reply, self._pending = self._pending, None
        if reply is not None and not reply.done():
            reply.set_result(stop)
        while not self._inbox.empty():
            _, waiting = self._inbox.get_nowait()
            if not waiting.done():
                waiting.set_result(stop)
        result = self.result
        if result is not None and not result.done():
            # the run's own answer is dropped, never read (its exception retrieved)
            result.add_done_callback(_drop)


def _drop(future: asyncio.Future[tuple[bytes, int | None]]) -> None:
    if not future.cancelled():
        future.exception()


class Channels:
    """The live Lambda runs with a checkpoint channel that this process drives."""

    def __init__(self, key: bytes | None = None, counters: Counter[str] | None = None) -> None:
        self._key = key or secrets.token_bytes(32)
        #: the events worth a metric (the engine's counters when it made these)
        self.counters: Counter[str] = Counter() if counters is None else counters
        self._live: dict[str, ChannelRun] = {}  # by nonce
        self._of: dict[str, ChannelRun] = {}  # the live run of each invocation
        #: the URL channel POSTs go to ("": no channel is offered)
        self.url = ""

    def advertise(self, base_url: str) -> None:
        """Offer channels at ``base_url`` (this process's ingress, as Lambda functions reach
        it); "" offers none."""
        self.url = base_url.rstrip("/") + CHANNEL_PATH if base_url else ""

    def __len__(self) -> int:
        return len(self._live)

    def _mac(self, invocation_id: str, attempt: int, nonce: str) -> str:
        text = f"{invocation_id}.{attempt}.{nonce}".encode()
        return hmac.new(self._key, text, hashlib.sha256).hexdigest()

    def open(self, invocation_id: str, attempt: int, signer: Signer | None) -> ChannelRun:
        """A new run of ``invocation_id``'s attempt; the runs it had here are superseded."""
        old = self._of.get(invocation_id)
        if old is not None:
            old.abort()
        nonce = secrets.token_hex(8)
        token = f"{invocation_id}.{attempt}.{nonce}.{self._mac(invocation_id, attempt, nonce)}"
        run = ChannelRun(self, invocation_id, attempt, nonce, token, signer)
        self._live[nonce] = run
        self._of[invocation_id] = run
        self.counters["channel_runs"] += 1
        return run

    def drop(self, run: ChannelRun) -> None:
        if self._live.get(run.nonce) is run:
            del self._live[run.nonce]
        if self._of.get(run.invocation_id) is run:
            del self._of[run.invocation_id]

    def genuine(self, token: str) -> bool:
        """Whether ``token`` was made by this process (its MAC checks out)."""
        parts = token.rsplit(".", 3)
        if len(parts) != 4 or not parts[1].isdigit():
            return False
        inv, attempt, nonce, mac = parts
        return hmac.compare_digest(self._mac(inv, int(attempt), nonce), mac)

    def live(self, token: str) -> ChannelRun | None:
        """The live run ``token`` (genuine) names, or None."""
        run = self._live.get(token.rsplit(".", 3)[2])
        return run if run is not None and hmac.compare_digest(run.token, token) else None
