"""``Channels`` and ``ChannelRun`` (orchestrator/invokers/_channel.py): the tokens of Lambda runs'
checkpoint channels, and a run as the engine drives it (checkpoints in, acks out, the Lambda's
own answer last). The route and the SDK around them: tests/integration/test_lambda_channel.py."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import pytest

from ritornello.orchestrator.ingress import advertised_url
from ritornello.orchestrator.invokers import ChannelRun, Channels, InvokerError
from ritornello.protocol import STREAM_ACK, Signer, Verifier

CHECKPOINT = b'{"version":1,"status":"checkpoint","entries":[]}'


def test_tokens_are_genuine_only_as_made_here() -> None:
    counters: Counter[str] = Counter()
    channels, other = Channels(counters=counters), Channels()
    assert channels.counters is counters  # the engine's own, read by GET /metrics
    run = channels.open("inv_a", 3, None)
    assert channels.genuine(run.token) and channels.live(run.token) is run
    inv, attempt, nonce, mac = run.token.rsplit(".", 3)
    assert (inv, attempt) == ("inv_a", "3")
    for forged in (
        f"inv_b.{attempt}.{nonce}.{mac}",  # another invocation
        f"{inv}.4.{nonce}.{mac}",  # another attempt
        f"{inv}.{attempt}.{'0' * len(nonce)}.{mac}",  # another run
        f"{inv}.{attempt}.{nonce}.{'0' * len(mac)}",
        "garbage",
        "a.b.c.d",
    ):
        assert not channels.genuine(forged), forged
    assert not other.genuine(run.token)  # another process (or this one after a restart)


def test_a_new_run_supersedes_the_old_one() -> None:
    async def main() -> None:
        channels = Channels()
        old = channels.open("inv_a", 1, None)
        new = channels.open("inv_a", 2, None)
        assert old.closed and channels.live(old.token) is None
        assert channels.genuine(old.token)  # genuine, but not live: a zombie's (409)
        assert channels.live(new.token) is new and len(channels) == 1
        status, _ = await old.deliver(CHECKPOINT)
        assert status == 409
        new.abort()
        assert len(channels) == 0

    asyncio.run(main())


Result = asyncio.Future[tuple[bytes, int | None]]


def _run(signer: Signer | None = None) -> tuple[Channels, ChannelRun, Result]:
    channels = Channels()
    run = channels.open("inv_a", 1, signer)
    result: Result = asyncio.get_running_loop().create_future()
    run.result = result
    return channels, run, result


def test_checkpoints_are_acked_in_order_and_the_answer_ends_the_run() -> None:
    async def main() -> None:
        channels, run, result = _run()
        for _ in range(3):
            reply = run.deliver(CHECKPOINT)
            assert await run.next(1) == CHECKPOINT
            assert not reply.done()  # answered only once the engine committed it
            run.ack()
            assert await reply == (200, STREAM_ACK)
        result.set_result((b'{"version":1,"status":"done","entries":[]}', 3))
        assert json.loads(await run.next(1))["status"] == "done"
        assert run.ended and run.closed and len(channels) == 0
        assert channels.counters == {"channel_runs": 1}  # no fallback, no ack missed

    asyncio.run(main())


def test_a_run_that_answered_per_step_is_counted_a_fallback() -> None:
    # the SDK could not reach the channel (or had given it up for the invocation): its answer
    # is the checkpoint itself, read as without a channel, and counted
    async def main() -> None:
        channels, run, result = _run()
        run.per_step = True  # as the invoker's thread sets it for a checkpoint answer
        result.set_result((CHECKPOINT, 0))
        assert await run.next(1) == CHECKPOINT
        assert channels.counters == {"channel_runs": 1, "channel_fallbacks": 1}

    asyncio.run(main())


@pytest.mark.parametrize("seen", [None, 0, 1, 3])
def test_an_answer_from_a_run_that_missed_an_ack_is_refused(seen: int | None) -> None:
    # The SDK saw fewer acks than were sent (a connection cut after the commit, a proxy's 502):
    # its answer may repeat committed entries, so it is refused rather than journaled.
    async def main() -> None:
        _, run, result = _run()
        for _ in range(2):
            run.deliver(CHECKPOINT)
            await run.next(1)
            run.ack()
        result.set_result((CHECKPOINT.replace(b"[]", b'[{"kind":"set","name":"k"}]'), seen))
        with pytest.raises(InvokerError, match=f"saw {seen or 0} of 2 acks"):
            await run.next(1)
        assert run.channels.counters["channel_acks_missed"] == 1

    asyncio.run(main())


def test_signed_acks_are_the_ones_the_sdk_checks() -> None:
    async def main() -> None:
        secret = "s3cret"
        signer = Signer(secret)
        _, run, _ = _run(signer)
        payload, run.bind = signer.lambda_envelope(b'{"type":"invoke"}', time.time())
        _, check = Verifier([secret]).open_lambda_acked(json.loads(payload), time.time())
        assert check is not None
        for _ in range(2):
            reply = run.deliver(CHECKPOINT)
            await run.next(1)
            run.ack()
            status, line = await reply
            assert status == 200 and check(line)
        assert not check(line)  # the same ack again is not the one due

    asyncio.run(main())


def test_a_stop_answers_the_waiting_checkpoint_409_and_drops_the_answer() -> None:
    async def main() -> None:
        channels, run, result = _run()
        reply = run.deliver(CHECKPOINT)
        await run.next(1)
        queued = run.deliver(CHECKPOINT)  # (a second one would wait behind it)
        run.finish()
        assert (await reply)[0] == 409 and (await queued)[0] == 409
        assert channels.live(run.token) is None
        result.set_exception(InvokerError("dropped, never read"))  # retrieved: no warning
        await asyncio.sleep(0)
        with pytest.raises(InvokerError):
            await run.next(1)

    asyncio.run(main())


def test_a_spoiled_run_refuses_its_answer() -> None:
    async def main() -> None:
        _, run, result = _run()
        run.deliver(CHECKPOINT)
        await run.next(1)
        run.spoil("a checkpoint was not decided in time")
        result.set_result((b'{"version":1,"status":"checkpoint","entries":[]}', 0))
        with pytest.raises(InvokerError, match="not decided in time"):
            await run.next(1)

    asyncio.run(main())


def test_next_times_out() -> None:
    async def main() -> None:
        _, run, _ = _run()
        with pytest.raises(TimeoutError):
            await run.next(0.05)

    asyncio.run(main())


def test_the_advertised_url() -> None:
    assert advertised_url("", "127.0.0.1", 8080) == "http://127.0.0.1:8080"
    assert advertised_url("", "::1", 8080) == "http://[::1]:8080"
    assert advertised_url("https://orch.example/", "0.0.0.0", 8080) == "https://orch.example"
    for host, port in (("0.0.0.0", 8080), ("::", 8080), ("", 8080), ("127.0.0.1", 0)):
        assert advertised_url("", host, port) == "", (host, port)  # no channel offered
    channels = Channels()
    channels.advertise("")
    assert channels.url == ""
    channels.advertise("http://10.0.0.5:8080/")
    assert channels.url == "http://10.0.0.5:8080/ritornello/v1/lambda/checkpoint"
