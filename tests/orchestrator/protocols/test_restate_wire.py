"""The wire of Restate's service protocol (``orchestrator/protocols/restate/_wire.py``): every
message type encodes and decodes back to itself, the bytes Restate's SDKs send decode to the
fields they mean, a stream reads the same in chunks of any size, and whatever else arrives
(garbage, a truncated or corrupted stream, an oversized frame) yields frames or ``FrameError``,
never another exception, and never buffers more than the limit."""

from __future__ import annotations

import re
import tracemalloc
from importlib import resources

import pytest
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from ritornello.orchestrator.protocols.restate._proto import legacy_pb2
from ritornello.orchestrator.protocols.restate._proto import protocol_pb2 as pb
from ritornello.orchestrator.protocols.restate._wire import (
    HEADER,
    MESSAGE_CLASSES,
    REQUESTED_ACK,
    SUPPORTED_VERSIONS,
    Frame,
    FrameDecoder,
    FrameError,
    MessageType,
    allows_ack,
    decode_all,
    encode,
    is_command,
    is_control,
    is_custom,
    is_notification,
    message_class,
)

LIMIT = 1 << 16
T = MessageType

_value = pb.Value(content=b'{"a":1}')
_failure = pb.Failure(code=500, message="boom", metadata=[pb.FailureMetadata(key="k", value="v")])
_future = pb.Future(
    waiting_completions=[1, 2],
    waiting_signals=[1],
    waiting_named_signals=["s"],
    nested_futures=[pb.Future(waiting_completions=[3])],
    combinator_type=pb.FIRST_COMPLETED,
)

#: A message with fields set, for every known type (the suspension one is V7's).
SAMPLES: dict[MessageType, Message] = {
    T.START: pb.StartMessage(
        id=b"\x01\x02",
        debug_id="inv_1",
        known_entries=2,
        state_map=[pb.StartMessage.StateEntry(key=b"k", value=b"v")],
        partial_state=True,
        key="key",
        retry_count_since_last_stored_entry=1,
        duration_since_last_stored_entry=1500,
        random_seed=42,
        scope="sc",
        limit_key="lk",
        idempotency_key="ik",
    ),
    T.SUSPENSION: pb.SuspensionMessage(awaiting_on=_future),
    T.ERROR: pb.ErrorMessage(
        code=571,
        message="violation",
        stacktrace="at x",
        related_command_index=3,
        related_command_name="n",
        related_command_type=0x040C,
        next_retry_delay=100,
        behavior=pb.PAUSE,
    ),
    T.END: pb.EndMessage(),
    T.COMMAND_ACK: pb.CommandAckMessage(command_index=4),
    T.PROPOSE_RUN_COMPLETION: pb.ProposeRunCompletionMessage(result_completion_id=2, value=b"42"),
    T.AWAITING_ON: pb.AwaitingOnMessage(awaiting_on=_future, executing_side_effects=True),
    T.PROPOSE_RUN_COMPLETION_ACK: pb.ProposeRunCompletionAckMessage(completion_id=2),
    T.INPUT: pb.InputCommandMessage(
        headers=[pb.Header(key="h", value="v")], value=_value, name="input"
    ),
    T.OUTPUT: pb.OutputCommandMessage(failure=_failure, name="out"),
    T.GET_LAZY_STATE: pb.GetLazyStateCommandMessage(key=b"k", result_completion_id=1),
    T.SET_STATE: pb.SetStateCommandMessage(key=b"k", value=_value),
    T.CLEAR_STATE: pb.ClearStateCommandMessage(key=b"k"),
    T.CLEAR_ALL_STATE: pb.ClearAllStateCommandMessage(name="clear"),
    T.GET_LAZY_STATE_KEYS: pb.GetLazyStateKeysCommandMessage(result_completion_id=5),
    T.GET_EAGER_STATE: pb.GetEagerStateCommandMessage(key=b"k", value=_value),
    T.GET_EAGER_STATE_KEYS: pb.GetEagerStateKeysCommandMessage(
        value=pb.StateKeys(keys=[b"a", b"b"])
    ),
    T.GET_PROMISE: pb.GetPromiseCommandMessage(key="p", result_completion_id=6),
    T.PEEK_PROMISE: pb.PeekPromiseCommandMessage(key="p", result_completion_id=7),
    T.COMPLETE_PROMISE: pb.CompletePromiseCommandMessage(
        key="p", completion_value=_value, result_completion_id=8
    ),
    T.SLEEP: pb.SleepCommandMessage(wake_up_time=1_700_000_000_000, result_completion_id=1),
    T.CALL: pb.CallCommandMessage(
        service_name="Svc",
        handler_name="h",
        parameter=b"{}",
        headers=[pb.Header(key="x", value="y")],
        key="k",
        idempotency_key="ik",
        scope="sc",
        limit_key="lk",
        invocation_id_notification_idx=2,
        result_completion_id=3,
    ),
    T.ONE_WAY_CALL: pb.OneWayCallCommandMessage(
        service_name="Svc",
        handler_name="h",
        parameter=b"{}",
        invoke_time=1_700_000_000_000,
        invocation_id_notification_idx=4,
    ),
    T.SEND_SIGNAL: pb.SendSignalCommandMessage(
        target_invocation_id="inv_2", name="sig", value=_value, entry_name="e"
    ),
    T.RUN: pb.RunCommandMessage(result_completion_id=2, name="myrun"),
    T.ATTACH_INVOCATION: pb.AttachInvocationCommandMessage(
        workflow_target=pb.WorkflowTarget(workflow_name="W", workflow_key="k"),
        result_completion_id=9,
    ),
    T.GET_INVOCATION_OUTPUT: pb.GetInvocationOutputCommandMessage(
        idempotent_request_target=pb.IdempotentRequestTarget(
            service_name="S", handler_name="h", idempotency_key="ik"
        ),
        result_completion_id=10,
    ),
    T.COMPLETE_AWAKEABLE: pb.CompleteAwakeableCommandMessage(
        awakeable_id="sign_1", failure=_failure
    ),
    T.GET_LAZY_STATE_COMPLETION: pb.GetLazyStateCompletionNotificationMessage(
        completion_id=1, void=pb.Void()
    ),
    T.GET_LAZY_STATE_KEYS_COMPLETION: pb.GetLazyStateKeysCompletionNotificationMessage(
        completion_id=5, state_keys=pb.StateKeys(keys=[b"a"])
    ),
    T.GET_PROMISE_COMPLETION: pb.GetPromiseCompletionNotificationMessage(
        completion_id=6, value=_value
    ),
    T.PEEK_PROMISE_COMPLETION: pb.PeekPromiseCompletionNotificationMessage(
        completion_id=7, void=pb.Void()
    ),
    T.COMPLETE_PROMISE_COMPLETION: pb.CompletePromiseCompletionNotificationMessage(
        completion_id=8, failure=_failure
    ),
    T.SLEEP_COMPLETION: pb.SleepCompletionNotificationMessage(completion_id=1, void=pb.Void()),
    T.CALL_COMPLETION: pb.CallCompletionNotificationMessage(completion_id=3, value=_value),
    T.CALL_INVOCATION_ID_COMPLETION: pb.CallInvocationIdCompletionNotificationMessage(
        completion_id=2, invocation_id="inv_3"
    ),
    T.RUN_COMPLETION: pb.RunCompletionNotificationMessage(completion_id=2, value=_value),
    T.ATTACH_INVOCATION_COMPLETION: pb.AttachInvocationCompletionNotificationMessage(
        completion_id=9, value=_value
    ),
    T.GET_INVOCATION_OUTPUT_COMPLETION: pb.GetInvocationOutputCompletionNotificationMessage(
        completion_id=10, void=pb.Void()
    ),
    T.SIGNAL_NOTIFICATION: pb.SignalNotificationMessage(idx=1, void=pb.Void()),
}
SUSPENSION_V6 = legacy_pb2.SuspensionMessageV6(
    waiting_completions=[1, 3], waiting_signals=[1], waiting_named_signals=["s"]
)


def _sample(t: MessageType, version: int) -> Message:
    return SUSPENSION_V6 if t == T.SUSPENSION and version < 7 else SAMPLES[t]


def _stream(version: int) -> bytes:
    """Every known type once, then two custom entries."""
    frames = [encode(t, _sample(t, version)) for t in MessageType]
    return b"".join(frames) + encode(0xFC00, b"opaque") + encode(0xFFFF, b"", REQUESTED_ACK)


def test_the_table_is_the_servers() -> None:
    """Each type's class is the message the proto file numbers with it (``// Type: ...``)."""
    assert set(SAMPLES) == set(MessageType) == set(MESSAGE_CLASSES)
    package = resources.files("ritornello.orchestrator.protocols.restate._proto")
    numbered: dict[int, str] = {}
    for name in ("protocol.proto", "legacy.proto"):
        text = package.joinpath(name).read_text()
        for base, plus, message in re.findall(
            r"// Type: (0x[0-9A-Fa-f]+)(?: \+ ([0-9A-Fa-f]+))?.*?\nmessage (\w+)", text, re.S
        ):
            # the proto numbers SendSignal "0x04000 + 10": a typo for 0x0400 (the server's 0x0410)
            base = "0x0400" if base == "0x04000" else base
            numbered.setdefault(int(base, 16) + int(plus or "0", 16), message)
    assert numbered == {t: cls.__name__ for t, cls in MESSAGE_CLASSES.items()}
    assert message_class(T.SUSPENSION, 5) is legacy_pb2.SuspensionMessageV6
    assert message_class(T.SUSPENSION, 6) is legacy_pb2.SuspensionMessageV6
    assert message_class(T.SUSPENSION, 7) is pb.SuspensionMessage
    assert message_class(0xFC07, 7) is None


def test_ranges() -> None:
    for t in MessageType:
        assert [is_control(t), is_command(t), is_notification(t), is_custom(t)].count(True) == 1
    assert is_control(T.START) and is_control(0x03FF) and not is_control(0x0400)
    assert is_command(T.INPUT) and is_command(0x7FFF) and not is_command(0x8000)
    assert is_notification(T.SIGNAL_NOTIFICATION) and not is_notification(0xFC00)
    assert is_custom(0xFC00) and is_custom(0xFFFF) and not is_custom(0xFBFF)
    assert allows_ack(T.PROPOSE_RUN_COMPLETION) and allows_ack(T.SLEEP) and allows_ack(0xFC01)
    assert not allows_ack(T.START) and not allows_ack(T.SLEEP_COMPLETION)


@pytest.mark.parametrize("version", sorted(SUPPORTED_VERSIONS))
def test_every_type_round_trips(version: int) -> None:
    data = _stream(version)
    frames = decode_all(data, LIMIT)
    assert [f.type for f in frames] == [*MessageType, 0xFC00, 0xFFFF]
    for frame in frames[: len(MessageType)]:
        expected = _sample(MessageType(frame.type), version)
        decoded = frame.message(version)
        assert type(decoded) is type(expected)
        assert decoded == expected
        assert frame.flags == 0 and not frame.requested_ack
    assert frames[-2] == Frame(0xFC00, 0, b"opaque")
    assert frames[-2].message(version) is None
    assert frames[-1].requested_ack and frames[-1].payload == b""
    assert b"".join(f.to_bytes() for f in frames) == data


def test_sdk_bytes_at_v6() -> None:
    """What the Python SDK's VM sends at V6 (docs/restate-protocol-research.md §2)."""

    def frame(t: int, payload_hex: str) -> bytes:
        payload = bytes.fromhex(payload_hex)
        return HEADER.pack(t, 0, len(payload)) + payload

    wake_ms = 1_700_000_000_000
    wire = (
        frame(0x040C, "08" + _varint(wake_ms).hex() + "5801")
        + frame(0x0411, "5802" + "6205" + b"myrun".hex())
        + frame(0x0407, "0a016b" + "6a00")
        + frame(0x0402, "0a016b" + "5801")
        + frame(
            0x040D,
            "0a03" + b"Svc".hex() + "1201" + b"h".hex() + "1a02" + b"{}".hex() + "5002" + "5803",
        )
    )
    sleep, run, eager, lazy, call = (f.message(6) for f in decode_all(wire, LIMIT))

    assert isinstance(sleep, pb.SleepCommandMessage)
    assert (sleep.wake_up_time, sleep.result_completion_id) == (wake_ms, 1)
    assert isinstance(run, pb.RunCommandMessage)
    assert (run.result_completion_id, run.name) == (2, "myrun")
    assert isinstance(eager, pb.GetEagerStateCommandMessage)
    assert (eager.key, eager.WhichOneof("result")) == (b"k", "void")
    assert isinstance(lazy, pb.GetLazyStateCommandMessage)
    assert (lazy.key, lazy.result_completion_id) == (b"k", 1)
    assert isinstance(call, pb.CallCommandMessage)
    assert (call.service_name, call.handler_name, call.parameter) == ("Svc", "h", b"{}")
    assert (call.invocation_id_notification_idx, call.result_completion_id) == (2, 3)
    # and the codec writes these very bytes
    messages = (sleep, run, eager, lazy, call)
    types = (T.SLEEP, T.RUN, T.GET_EAGER_STATE, T.GET_LAZY_STATE, T.CALL)
    assert b"".join(encode(t, m) for t, m in zip(types, messages, strict=True)) == wire


def test_requested_ack_at_v7() -> None:
    """SC's V7 run proposal ``0005 8000 ...``: the flag is read where the server reads it."""
    data = encode(T.PROPOSE_RUN_COMPLETION, SAMPLES[T.PROPOSE_RUN_COMPLETION], REQUESTED_ACK)
    assert data[:4] == bytes.fromhex("00058000")
    (frame,) = decode_all(data, LIMIT)
    assert frame.requested_ack and frame.message(7) == SAMPLES[T.PROPOSE_RUN_COMPLETION]
    (start,) = decode_all(encode(T.START, pb.StartMessage(), REQUESTED_ACK), LIMIT)
    assert start.flags == REQUESTED_ACK and not start.requested_ack


def test_byte_by_byte() -> None:
    data = _stream(7)
    decoder = FrameDecoder(LIMIT)
    frames: list[Frame] = []
    for i in range(len(data)):
        frames += decoder.feed(data[i : i + 1])
        assert decoder.buffered < HEADER.size + LIMIT
    decoder.close()
    assert frames == decode_all(data, LIMIT)
    assert decoder.buffered == 0


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_any_chunking(data: st.DataObject) -> None:
    stream = _stream(data.draw(st.sampled_from(sorted(SUPPORTED_VERSIONS))))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    decoder = FrameDecoder(LIMIT)
    frames: list[Frame] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        frames += decoder.feed(stream[start:end])
    decoder.close()
    assert frames == decode_all(stream, LIMIT)


def test_errors_say_what_and_where() -> None:
    sleep = encode(T.SLEEP, SAMPLES[T.SLEEP])
    n = len(sleep)
    truncated_header = f"^truncated frame header at byte {n}$"
    with pytest.raises(FrameError, match=truncated_header):
        decode_all(sleep + sleep[:3], LIMIT)
    with pytest.raises(
        FrameError, match=f"^truncated 0x040C frame at byte 0: declares {n - 8} payload bytes"
    ):
        decode_all(sleep[:-1], LIMIT)
    with pytest.raises(FrameError, match=f"^unknown message type 0x040F at byte {n}$"):
        decode_all(sleep + HEADER.pack(0x040F, 0, 0), LIMIT)
    with pytest.raises(FrameError, match=r"^unknown message type 0x0008"):
        decode_all(HEADER.pack(0x0008, 0, 0), LIMIT)
    with pytest.raises(
        FrameError, match=r"^frame of type 0x0400 declares 17 bytes, more than the limit 16$"
    ):
        decode_all(HEADER.pack(0x0400, 0, 17), 16)
    bad = Frame(T.SLEEP, 0, b"\x08")  # a varint cut short
    with pytest.raises(FrameError, match=r"^malformed 0x040C \(SleepCommandMessage\) payload"):
        bad.message(7)
    with pytest.raises(FrameError, match=r"^malformed 0x0000 \(StartMessage\) payload"):
        Frame(T.START, 0, b"\x12\x01\xe9").message(7)  # debug_id not UTF-8
    with pytest.raises(ValueError, match="unsupported service protocol version 4"):
        Frame(T.END, 0, b"").message(4)

    decoder = FrameDecoder(LIMIT)
    assert decoder.feed(sleep + sleep[:5]) == decode_all(sleep, LIMIT)
    with pytest.raises(FrameError, match=truncated_header):
        decoder.close()
    with pytest.raises(FrameError, match=truncated_header):
        decoder.feed(sleep[5:])  # a failed decoder stays failed


def test_encode_refuses_what_it_cannot_write() -> None:
    with pytest.raises(ValueError, match="unknown message type 0x040F"):
        encode(0x040F, b"")
    with pytest.raises(ValueError, match="flags"):
        encode(T.END, b"", 0x10000)
    with pytest.raises(ValueError, match=r"RunCommandMessage is not a payload of type 0x040C"):
        encode(T.SLEEP, pb.RunCommandMessage())
    assert encode(T.SUSPENSION, SUSPENSION_V6)[:2] == b"\x00\x01"
    assert encode(0xFC00, pb.RunCommandMessage(name="x"))  # a custom entry is opaque


def test_an_oversized_frame_is_refused_before_its_payload() -> None:
    header = HEADER.pack(T.OUTPUT, 0, 0xFFFFFFFF)
    decoder = FrameDecoder(LIMIT)
    with pytest.raises(FrameError, match="declares 4294967295 bytes, more than the limit"):
        decoder.feed(header)
    # within the limit, only what arrived is held, never the declared length
    tracemalloc.start()
    try:
        decoder = FrameDecoder(0xFFFFFFFF)
        assert decoder.feed(header + b"x" * 100) == []
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert decoder.buffered == 108 and peak < 1 << 20
    with pytest.raises(FrameError, match="declares 4294967295 payload bytes"):
        decoder.close()


def _read_all(data: bytes, chunk: int) -> None:
    """Decode ``data`` both ways and parse every frame at every version: only ``FrameError``
    may escape."""
    try:
        frames = decode_all(data, LIMIT)
    except FrameError:
        frames = None
    decoder = FrameDecoder(LIMIT)
    chunked: list[Frame] = []
    try:
        for i in range(0, len(data), chunk):
            chunked += decoder.feed(data[i : i + chunk])
        decoder.close()
    except FrameError:
        assert frames is None
        return
    assert chunked == frames
    for frame in frames:
        for version in SUPPORTED_VERSIONS:
            try:
                frame.message(version)
            except FrameError:
                pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(1, 64))
def test_fuzz_arbitrary_bytes(data: bytes, chunk: int) -> None:
    _read_all(data, chunk)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_known_headers_random_payloads(data: st.DataObject) -> None:
    """Random payloads behind valid headers reach the protobuf parser."""
    frames = data.draw(
        st.lists(
            st.tuples(st.sampled_from([*MessageType, 0xFC00]), st.binary(max_size=40)),
            max_size=8,
        )
    )
    _read_all(b"".join(encode(t, p) for t, p in frames), data.draw(st.integers(1, 64)))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_damaged_streams(data: st.DataObject) -> None:
    stream = _stream(data.draw(st.sampled_from(sorted(SUPPORTED_VERSIONS))))
    damaged = bytearray(stream[: data.draw(st.integers(0, len(stream)))])
    if damaged and data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(damaged) - 1))
        damaged[at] ^= data.draw(st.integers(1, 255))
    _read_all(bytes(damaged), data.draw(st.integers(1, 64)))


def test_deeply_nested_payload_is_a_frame_error() -> None:
    """A suspension nesting futures far deeper than the parser allows."""
    inner = b""
    for _ in range(2000):
        inner = b"\x22" + _varint(len(inner)) + inner  # Future.nested_futures = 4
    payload = b"\x22" + _varint(len(inner)) + inner  # SuspensionMessage.awaiting_on = 4
    (frame,) = decode_all(encode(T.SUSPENSION, payload), 1 << 20)
    with pytest.raises(FrameError, match="SuspensionMessage"):
        frame.message(7)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
