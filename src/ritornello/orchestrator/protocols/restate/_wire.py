"""The wire of Restate's service protocol, versions V5 to V7, as the server side speaks it.

A stream (a request or response body) is a sequence of frames, each an 8-byte big-endian
header followed by its payload (docs/restate-protocol-research.md §2)::

    u16 type | u16 flags | u32 payload length

The payload of a known type is one protobuf message of that type's class (``_proto``); the
payload of a custom entry (types 0xFC00 to 0xFFFF) is opaque bytes, kept and replayed as they
are. The type numbers are those of the server's codec table (Restate
``crates/service-protocol-v4/src/message_codec/mod.rs``); only the suspension message changed
shape across these versions (``legacy_pb2.SuspensionMessageV6`` before V7).

Invariants:

- ``encode`` writes only known or custom types, flags and lengths that fit their fields, and a
  known type's payload of that type's class: what it writes, ``FrameDecoder`` reads back as the
  same frame.
- The decoders never hold more than one frame's header and ``max_frame_bytes`` of payload per
  frame: a header declaring more is refused before its payload is buffered.
- The decoders and ``Frame.message`` raise ``FrameError`` for anything that is not a valid
  stream (truncated, unknown type, oversized, malformed payload), never another exception.
  Unlike the server, which reads any unknown type with one of the top six bits set as a
  custom entry, an unknown type outside 0xFC00 to 0xFFFF is refused.
- A decoder that raised ``FrameError`` stays failed: a stream has no resynchronisation point.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from google.protobuf.message import DecodeError, Message

from ._proto import legacy_pb2, protocol_pb2


class MessageType(IntEnum):
    """Every known frame type: control 0x0000-0x03FF, commands 0x0400-0x7FFF, notifications
    0x8000-0xFBFF. Custom entries (0xFC00-0xFFFF) have no member."""

    START = 0x0000
    SUSPENSION = 0x0001
    ERROR = 0x0002
    END = 0x0003
    COMMAND_ACK = 0x0004
    PROPOSE_RUN_COMPLETION = 0x0005
    AWAITING_ON = 0x0006  # V7
    PROPOSE_RUN_COMPLETION_ACK = 0x0007  # V7

    INPUT = 0x0400
    OUTPUT = 0x0401
    GET_LAZY_STATE = 0x0402
    SET_STATE = 0x0403
    CLEAR_STATE = 0x0404
    CLEAR_ALL_STATE = 0x0405
    GET_LAZY_STATE_KEYS = 0x0406
    GET_EAGER_STATE = 0x0407
    GET_EAGER_STATE_KEYS = 0x0408
    GET_PROMISE = 0x0409
    PEEK_PROMISE = 0x040A
    COMPLETE_PROMISE = 0x040B
    SLEEP = 0x040C
    CALL = 0x040D
    ONE_WAY_CALL = 0x040E
    SEND_SIGNAL = 0x0410  # 0x040F is unused
    RUN = 0x0411
    ATTACH_INVOCATION = 0x0412
    GET_INVOCATION_OUTPUT = 0x0413
    COMPLETE_AWAKEABLE = 0x0414

    GET_LAZY_STATE_COMPLETION = 0x8002
    GET_LAZY_STATE_KEYS_COMPLETION = 0x8006
    GET_PROMISE_COMPLETION = 0x8009
    PEEK_PROMISE_COMPLETION = 0x800A
    COMPLETE_PROMISE_COMPLETION = 0x800B
    SLEEP_COMPLETION = 0x800C
    CALL_COMPLETION = 0x800D
    CALL_INVOCATION_ID_COMPLETION = 0x800E
    RUN_COMPLETION = 0x8011
    ATTACH_INVOCATION_COMPLETION = 0x8012
    GET_INVOCATION_OUTPUT_COMPLETION = 0x8013
    SIGNAL_NOTIFICATION = 0xFBFF


class FrameError(ValueError):
    """The bytes are not a valid stream of frames (or a payload not a valid message)."""


#: The protocol versions this codec reads and writes.
SUPPORTED_VERSIONS: Final = frozenset({5, 6, 7})

#: The frame header: type, flags, payload length (big-endian).
HEADER: Final = struct.Struct(">HHI")

#: The flag bit by which an SDK asks for an acknowledgement (CommandAck for a command,
#: ProposeRunCompletionAck for a run proposal at V7).
REQUESTED_ACK: Final = 0x8000

#: The class of each known type's payload. The suspension message's is V7's
#: (``protocol_pb2.SuspensionMessage``); before V7 it is ``legacy_pb2.SuspensionMessageV6``
#: (``message_class`` tells, by version).
MESSAGE_CLASSES: Final[dict[int, type[Message]]] = {
    MessageType.START: protocol_pb2.StartMessage,
    MessageType.SUSPENSION: protocol_pb2.SuspensionMessage,
    MessageType.ERROR: protocol_pb2.ErrorMessage,
    MessageType.END: protocol_pb2.EndMessage,
    MessageType.COMMAND_ACK: protocol_pb2.CommandAckMessage,
    MessageType.PROPOSE_RUN_COMPLETION: protocol_pb2.ProposeRunCompletionMessage,
    MessageType.AWAITING_ON: protocol_pb2.AwaitingOnMessage,
    MessageType.PROPOSE_RUN_COMPLETION_ACK: protocol_pb2.ProposeRunCompletionAckMessage,
    MessageType.INPUT: protocol_pb2.InputCommandMessage,
    MessageType.OUTPUT: protocol_pb2.OutputCommandMessage,
    MessageType.GET_LAZY_STATE: protocol_pb2.GetLazyStateCommandMessage,
    MessageType.SET_STATE: protocol_pb2.SetStateCommandMessage,
    MessageType.CLEAR_STATE: protocol_pb2.ClearStateCommandMessage,
    MessageType.CLEAR_ALL_STATE: protocol_pb2.ClearAllStateCommandMessage,
    MessageType.GET_LAZY_STATE_KEYS: protocol_pb2.GetLazyStateKeysCommandMessage,
    MessageType.GET_EAGER_STATE: protocol_pb2.GetEagerStateCommandMessage,
    MessageType.GET_EAGER_STATE_KEYS: protocol_pb2.GetEagerStateKeysCommandMessage,
    MessageType.GET_PROMISE: protocol_pb2.GetPromiseCommandMessage,
    MessageType.PEEK_PROMISE: protocol_pb2.PeekPromiseCommandMessage,
    MessageType.COMPLETE_PROMISE: protocol_pb2.CompletePromiseCommandMessage,
    MessageType.SLEEP: protocol_pb2.SleepCommandMessage,
    MessageType.CALL: protocol_pb2.CallCommandMessage,
    MessageType.ONE_WAY_CALL: protocol_pb2.OneWayCallCommandMessage,
    MessageType.SEND_SIGNAL: protocol_pb2.SendSignalCommandMessage,
    MessageType.RUN: protocol_pb2.RunCommandMessage,
    MessageType.ATTACH_INVOCATION: protocol_pb2.AttachInvocationCommandMessage,
    MessageType.GET_INVOCATION_OUTPUT: protocol_pb2.GetInvocationOutputCommandMessage,
    MessageType.COMPLETE_AWAKEABLE: protocol_pb2.CompleteAwakeableCommandMessage,
    MessageType.GET_LAZY_STATE_COMPLETION: (protocol_pb2.GetLazyStateCompletionNotificationMessage),
    MessageType.GET_LAZY_STATE_KEYS_COMPLETION: (
        protocol_pb2.GetLazyStateKeysCompletionNotificationMessage
    ),
    MessageType.GET_PROMISE_COMPLETION: protocol_pb2.GetPromiseCompletionNotificationMessage,
    MessageType.PEEK_PROMISE_COMPLETION: protocol_pb2.PeekPromiseCompletionNotificationMessage,
    MessageType.COMPLETE_PROMISE_COMPLETION: (
        protocol_pb2.CompletePromiseCompletionNotificationMessage
    ),
    MessageType.SLEEP_COMPLETION: protocol_pb2.SleepCompletionNotificationMessage,
    MessageType.CALL_COMPLETION: protocol_pb2.CallCompletionNotificationMessage,
    MessageType.CALL_INVOCATION_ID_COMPLETION: (
        protocol_pb2.CallInvocationIdCompletionNotificationMessage
    ),
    MessageType.RUN_COMPLETION: protocol_pb2.RunCompletionNotificationMessage,
    MessageType.ATTACH_INVOCATION_COMPLETION: (
        protocol_pb2.AttachInvocationCompletionNotificationMessage
    ),
    MessageType.GET_INVOCATION_OUTPUT_COMPLETION: (
        protocol_pb2.GetInvocationOutputCompletionNotificationMessage
    ),
    MessageType.SIGNAL_NOTIFICATION: protocol_pb2.SignalNotificationMessage,
}

# What ``encode`` accepts for each known type: its class at any supported version.
_ENCODABLE: Final[dict[int, tuple[type[Message], ...]]] = {
    t: (cls, legacy_pb2.SuspensionMessageV6) if t == MessageType.SUSPENSION else (cls,)
    for t, cls in MESSAGE_CLASSES.items()
}


def is_control(t: int) -> bool:
    """Whether ``t`` lies in the control range (0x0000-0x03FF), known or not."""
    return 0 <= t <= 0x03FF


def is_command(t: int) -> bool:
    """Whether ``t`` lies in the command range (0x0400-0x7FFF), known or not."""
    return 0x0400 <= t <= 0x7FFF


def is_notification(t: int) -> bool:
    """Whether ``t`` lies in the notification range (0x8000-0xFBFF), known or not."""
    return 0x8000 <= t <= 0xFBFF


def is_custom(t: int) -> bool:
    """Whether ``t`` is a custom entry type (0xFC00-0xFFFF): opaque, persisted and replayed."""
    return 0xFC00 <= t <= 0xFFFF


def allows_ack(t: int) -> bool:
    """Whether the server reads ``REQUESTED_ACK`` on a frame of type ``t``: a run proposal, a
    known command or a custom entry (on any other type the bit is ignored)."""
    return (
        t == MessageType.PROPOSE_RUN_COMPLETION
        or is_custom(t)
        or (is_command(t) and t in MESSAGE_CLASSES)
    )


def message_class(t: int, version: int) -> type[Message] | None:
    """The payload class of type ``t`` at protocol ``version``; None for a custom entry.

    ``FrameError`` for a type neither known nor custom; ``ValueError`` for a version outside
    ``SUPPORTED_VERSIONS``.
    """
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"unsupported service protocol version {version}")
    if t == MessageType.SUSPENSION and version < 7:
        return legacy_pb2.SuspensionMessageV6
    cls = MESSAGE_CLASSES.get(t)
    if cls is None and not is_custom(t):
        raise FrameError(f"unknown message type 0x{t:04X}")
    return cls


def encode(t: int, message: Message | bytes, flags: int = 0) -> bytes:
    """One frame: the header of type ``t`` with ``flags``, then ``message`` serialized (or the
    given bytes as they are).

    ``ValueError`` for a type neither known nor custom, flags or a length that do not fit
    their fields, or a message of another class than type ``t``'s (at any version).
    """
    if not (t in MESSAGE_CLASSES or is_custom(t)):
        raise ValueError(f"unknown message type 0x{t:04X}")
    if not 0 <= flags <= 0xFFFF:
        raise ValueError(f"flags 0x{flags:X} do not fit 16 bits")
    if isinstance(message, Message):
        expected = _ENCODABLE.get(t)
        if expected is not None and not isinstance(message, expected):
            raise ValueError(
                f"a {type(message).__name__} is not a payload of type 0x{t:04X}"
                f" ({expected[0].__name__})"
            )
        payload = message.SerializeToString()
    else:
        payload = bytes(message)
    if len(payload) > 0xFFFFFFFF:
        raise ValueError(f"a payload of {len(payload)} bytes does not fit 32 bits")
    return HEADER.pack(t, flags, len(payload)) + payload


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame as read: its type (known or custom), raw flags and payload bytes."""

    type: int
    flags: int
    payload: bytes

    @property
    def requested_ack(self) -> bool:
        """Whether the SDK asked for an acknowledgement (the flag, where the server reads it:
        see ``allows_ack``)."""
        return bool(self.flags & REQUESTED_ACK) and allows_ack(self.type)

    def message(self, version: int) -> Message | None:
        """The payload parsed with its class at protocol ``version``; None for a custom entry
        (its ``payload`` is the entry).

        ``FrameError`` when the payload is not a valid message of that class; ``ValueError``
        for a version outside ``SUPPORTED_VERSIONS``.
        """
        cls = message_class(self.type, version)
        if cls is None:
            return None
        try:
            return cls.FromString(self.payload)
        except (DecodeError, UnicodeDecodeError) as e:  # the latter from the pure-Python parser
            raise FrameError(f"malformed 0x{self.type:04X} ({cls.__name__}) payload: {e}") from None

    def to_bytes(self) -> bytes:
        """The frame as it was on the wire (header and payload)."""
        return HEADER.pack(self.type, self.flags, len(self.payload)) + self.payload


def _check_limit(max_frame_bytes: int) -> int:
    if not 0 <= max_frame_bytes <= 0xFFFFFFFF:
        raise ValueError(f"max_frame_bytes must be within 0..2**32-1, not {max_frame_bytes}")
    return max_frame_bytes


def _scan(buf: bytes | bytearray, base: int, max_frame_bytes: int, frames: list[Frame]) -> int:
    """Append to ``frames`` the whole frames at the start of ``buf`` (whose first byte is byte
    ``base`` of the stream); return how many bytes they took. ``FrameError`` on a header
    of an unknown type or declaring more than ``max_frame_bytes``."""
    size = len(buf)
    header = HEADER.size
    pos = 0
    while size - pos >= header:
        t, flags, length = HEADER.unpack_from(buf, pos)
        if t not in MESSAGE_CLASSES and not is_custom(t):
            raise FrameError(f"unknown message type 0x{t:04X} at byte {base + pos}")
        if length > max_frame_bytes:
            raise FrameError(
                f"frame of type 0x{t:04X} declares {length} bytes,"
                f" more than the limit {max_frame_bytes}"
            )
        end = pos + header + length
        if end > size:
            break
        frames.append(Frame(t, flags, bytes(buf[pos + header : end])))
        pos = end
    return pos


def _truncation(buf: bytes | bytearray, base: int) -> FrameError:
    """The error for a stream that ends with ``buf``, the bytes of a partial frame."""
    if len(buf) < HEADER.size:
        return FrameError(f"truncated frame header at byte {base}")
    t, _, length = HEADER.unpack_from(buf, 0)
    return FrameError(
        f"truncated 0x{t:04X} frame at byte {base}: declares {length} payload bytes,"
        f" the stream ends after {len(buf) - HEADER.size}"
    )


class FrameDecoder:
    """Reads frames from a stream given in chunks of any size.

    Holds at most the bytes of one partial frame, bounded by ``max_frame_bytes`` of payload
    (a header declaring more is refused before its payload arrives). Once it raised
    ``FrameError`` it raises it again on every call; frames before the bad bytes in the chunk
    that raised are not returned.
    """

    __slots__ = ("_buf", "_error", "_max", "_offset")

    def __init__(self, max_frame_bytes: int) -> None:
        self._max = _check_limit(max_frame_bytes)
        self._buf = bytearray()
        self._offset = 0  # stream position of self._buf[0]
        self._error: str | None = None  # why the stream is invalid, once it is

    @property
    def buffered(self) -> int:
        """How many bytes of a partial frame are held."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by ``data``, in order; ``FrameError`` on an invalid stream."""
        if self._error is not None:
            raise FrameError(self._error)
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        try:
            taken = _scan(buf, self._offset, self._max, frames)
        except FrameError as e:
            self._error = str(e)
            raise
        if taken:
            del buf[:taken]
            self._offset += taken
        return frames

    def close(self) -> None:
        """The stream ended: ``FrameError`` if it ended within a frame."""
        if self._error is not None:
            raise FrameError(self._error)
        if self._buf:
            error = _truncation(self._buf, self._offset)
            self._error = str(error)
            raise error


def decode_all(data: bytes, max_frame_bytes: int) -> list[Frame]:
    """Every frame of a whole body, in order; ``FrameError`` if it is not exactly a sequence
    of valid frames (a truncated tail included)."""
    frames: list[Frame] = []
    taken = _scan(data, 0, _check_limit(max_frame_bytes), frames)
    if taken != len(data):
        raise _truncation(data[taken:], taken)
    return frames
