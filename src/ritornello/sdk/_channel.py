"""The checkpoint channel of a Lambda attempt: checkpoints POSTed to the orchestrator from inside
one Lambda run, which goes on once each is acknowledged (docs/protocol.md, "Checkpoint channel").

Without it a Lambda answers ``checkpoint`` before every step that must follow an unpersisted
result, and the orchestrator invokes it again: a ten-step handler is ten Lambda invocations,
each replaying the journal so far. With a channel (an ``InvokeRequest`` whose ``channel`` names
the orchestrator's URL and a token for this run) the SDK POSTs that checkpoint instead, the
orchestrator commits it exactly as it commits a streamed checkpoint, and its answer — an ack —
lets the handler go on in the same run. Standard library only; ``http.client`` is imported on
the first checkpoint sent, so a cold start that never uses a channel does not pay for it.

What an answer means (the orchestrator's side answers only these):

===========================  =================================================================
200 and the ack due          committed: the step runs (``ACK``)
200 and anything else        not an ack (a v2 ack whose MAC is wrong, a replayed one): the run
                             ends with an ``error`` answer and no entries (``BROKEN``)
409, 403                     committed, but something reached the invocation meanwhile; or
                             the run is not live there (its attempt is over, superseded, or
                             from before a restart: a zombie): the run ends (``STOP``),
                             starting nothing
any other status; a          nothing was committed: the run answers the checkpoint as its
connection refused or not    Lambda result, as without a channel (``FALLBACK``), and this
made within the connect      process does not use the channel again for that invocation
timeout
a failure after the          unknown whether it was committed: the run ends with an ``error``
request was sent (reset,     answer and no entries (``BROKEN``); a keep-alive connection found
no answer in time)           closed before any answer is retried once on a fresh one
===========================  =================================================================

Invariants:

- No step starts after a checkpoint unless the answer was the ack due (``AckCheck`` for a
  request signed v2: bound to the envelope and counted; else the plain ``{"type":"ack"}``).
- ``LambdaChannel.request`` is the request the orchestrator would send now: the journal plus
  every acknowledged entry (``_stream.continued``), so an answer of the run is relative to it;
  the answer says how many acks the run received (``channel_acks``), and the orchestrator reads
  it only if that is every ack it sent.
- Entries whose commit is unknown are never answered again (no duplicate can be journaled);
  entries answered as the Lambda result (``FALLBACK``) were refused before any commit.
- One keep-alive connection per orchestrator address for the life of the process, used by one
  checkpoint at a time (Lambda runs one invocation at a time per process; a guard lock holds a
  host that does not).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from ritornello.protocol import Entry, InvokeRequest, InvokeResponse
from ritornello.sdk._invocation import Persist
from ritornello.sdk._machine import error_response
from ritornello.sdk._stream import continued, plain_ack

#: The request header carrying the channel's token.
TOKEN_HEADER = "x-ritornello-channel-token"

ACK = "ack"
STOP = "stop"
FALLBACK = "fallback"
BROKEN = "broken"

#: Invocations whose channel failed in this process (the channel is not tried again for them).
_FELL_BACK_MAX = 1024


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        return default
    return value if value > 0 else default


class ChannelSettings:
    """The SDK's channel timeouts, read from the environment once per adapter (the switch,
    ``RITORNELLO_CHANNEL``, is ``_lambda.channel_enabled``)."""

    __slots__ = ("ack_timeout_s", "connect_timeout_s")

    def __init__(self) -> None:
        #: how long connecting to the orchestrator may take before the run falls back
        self.connect_timeout_s = _env_seconds("RITORNELLO_CHANNEL_CONNECT_TIMEOUT_S", 1.0)
        #: how long the ack may take once the checkpoint was sent
        self.ack_timeout_s = _env_seconds("RITORNELLO_CHANNEL_ACK_TIMEOUT_S", 120.0)


class _Unreachable(Exception):
    """Nothing was sent: the connection could not be made."""


class _Connections:
    """One keep-alive ``http.client`` connection per orchestrator address, for the process."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str, int], Any] = {}
        self._lock = threading.Lock()

    def post(
        self, url: str, token: str, body: bytes, connect_s: float, read_s: float
    ) -> tuple[int, bytes]:
        """POST ``body`` to ``url``; (status, answer body). ``_Unreachable`` when no connection
        could be made; any other ``OSError``/``HTTPException`` when it broke after sending."""
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        secure = parts.scheme == "https"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _Unreachable(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if secure else 80)
        where = (parts.scheme, parts.hostname, port)
        path = parts.path or "/"
        headers = {
            TOKEN_HEADER: token,
            "content-type": "application/json",
            "content-length": str(len(body)),
        }
        with self._lock:
            for tries in (0, 1):
                conn = self._open.pop(where, None)
                fresh = conn is None
                if conn is None:
                    cls = http.client.HTTPSConnection if secure else http.client.HTTPConnection
                    conn = cls(parts.hostname, port, timeout=connect_s)
                    try:
                        conn.connect()
                    except OSError as exc:
                        conn.close()
                        raise _Unreachable(f"cannot connect to {url}: {exc}") from None
                conn.sock.settimeout(read_s)
                try:
                    conn.request("POST", path, body, headers)
                    answer = conn.getresponse()
                    data = answer.read()
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    conn.close()
                    if fresh or tries:
                        raise
                    continue  # a kept connection the server had closed: once more, fresh
                except BaseException:
                    conn.close()
                    raise
                if answer.will_close:
                    conn.close()
                else:
                    self._open[where] = conn
                return answer.status, data
        raise AssertionError("unreachable")


CONNECTIONS = _Connections()


class FellBack:
    """The invocations whose channel failed in this process, most recent last (bounded)."""

    def __init__(self, limit: int = _FELL_BACK_MAX) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def __contains__(self, invocation_id: object) -> bool:
        return invocation_id in self._ids

    def add(self, invocation_id: str) -> None:
        self._ids[invocation_id] = None
        self._ids.move_to_end(invocation_id)
        while len(self._ids) > self._limit:
            self._ids.popitem(last=False)


FELL_BACK = FellBack()


class LambdaChannel:
    """The checkpoints of one Lambda run, and the request as committed so far."""

    def __init__(
        self,
        request: InvokeRequest,
        settings: ChannelSettings,
        is_ack: Callable[[bytes], bool] = plain_ack,
        connections: _Connections = CONNECTIONS,
    ) -> None:
        assert request.channel is not None
        self.request = request.replace(channel=None)
        self.url = request.channel["url"]
        self.token = request.channel["token"]
        self.settings = settings
        #: None while the channel is open; else why it closed (``STOP``, ``FALLBACK``,
        #: ``BROKEN``)
        self.outcome: str | None = None
        self.why = ""
        self.acks = 0
        self._is_ack = is_ack
        self._connections = connections

    async def checkpoint(self, entries: list[Entry]) -> bool:
        """Send ``entries`` as a checkpoint; True once acknowledged (committed)."""
        if self.outcome is not None:
            return False
        body = InvokeResponse(status="checkpoint", entries=entries).encode()
        outcome, why = await asyncio.to_thread(self._send, body)
        if outcome == ACK:
            self.acks += 1
            self.request = continued(self.request, entries)
            return True
        self.outcome, self.why = outcome, why
        return False

    def _send(self, body: bytes) -> tuple[str, str]:
        settings = self.settings
        try:
            status, data = self._connections.post(
                self.url, self.token, body, settings.connect_timeout_s, settings.ack_timeout_s
            )
        except _Unreachable as exc:
            return FALLBACK, str(exc)
        except Exception as exc:  # OSError, HTTPException: it broke after sending
            return BROKEN, f"the checkpoint channel broke after sending: {exc!r}"
        if status == 200:
            if self._is_ack(data):
                return ACK, ""
            return BROKEN, "the checkpoint channel answered something that is not the ack due"
        text = data[:200].decode("utf-8", "replace")
        if status in (403, 409):
            return STOP, f"the orchestrator stopped the run ({status}): {text}"
        return FALLBACK, f"the checkpoint channel answered {status}: {text}"


async def run_on_channel(
    channel: LambdaChannel,
    invoke: Callable[[InvokeRequest, Persist], Awaitable[InvokeResponse]],
) -> InvokeResponse:
    """Run the attempt of ``channel.request``, checkpointing through the channel, until an
    answer is not an acknowledged checkpoint; the answer the Lambda returns (see the module
    docstring for what it is once the channel closed)."""
    while True:
        response = await invoke(channel.request, channel.checkpoint)
        if (
            channel.outcome is None
            and response.status == "checkpoint"
            and await channel.checkpoint(response.entries)
        ):
            continue  # acknowledged: re-run from the journal as committed
        if channel.outcome is None or channel.outcome == FALLBACK:
            return response
        if channel.outcome == STOP:
            return InvokeResponse(status="checkpoint", entries=[])
        return error_response("protocol", channel.why)
