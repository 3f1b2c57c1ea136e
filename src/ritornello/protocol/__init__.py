"""The wire contract between the orchestrator and handler endpoints (spec: docs/protocol.md).

Standard library only: both the SDK (inside a handler Lambda) and the orchestrator import it.
"""

from ritornello.protocol._entries import (
    ENTRY_KINDS,
    HANDLER_KINDS,
    SERVICE_KINDS,
    Completion,
    Entry,
    Failure,
    completion_failure,
    completion_value,
)
from ritornello.protocol._envelope import (
    DISCOVER_EVENT,
    ENCODING_KEY,
    EnvelopeError,
    gzip_base64,
    gzip_envelope,
    inflate_base64,
)
from ritornello.protocol._ids import (
    derive_id,
    new_awakeable_id,
    new_deployment_id,
    new_id,
    parse_awakeable_id,
    restate_awakeable_id,
)
from ritornello.protocol._messages import (
    STREAM_ACK,
    STREAM_HEADER,
    DiscoveryResponse,
    HandlerInfo,
    InvokeRequest,
    InvokeResponse,
    ProtocolError,
    RetryPolicy,
    ServiceInfo,
)
from ritornello.protocol._settings import (
    Settings,
    duration_ms,
    format_duration,
    parse_duration,
)
from ritornello.protocol._signing import SignatureError, Signer, Verifier
from ritornello.protocol._version import PROTOCOL_VERSION

__all__ = [
    "DISCOVER_EVENT",
    "ENCODING_KEY",
    "ENTRY_KINDS",
    "HANDLER_KINDS",
    "PROTOCOL_VERSION",
    "SERVICE_KINDS",
    "STREAM_ACK",
    "STREAM_HEADER",
    "Completion",
    "DiscoveryResponse",
    "Entry",
    "EnvelopeError",
    "Failure",
    "HandlerInfo",
    "InvokeRequest",
    "InvokeResponse",
    "ProtocolError",
    "RetryPolicy",
    "ServiceInfo",
    "Settings",
    "SignatureError",
    "Signer",
    "Verifier",
    "completion_failure",
    "completion_value",
    "derive_id",
    "duration_ms",
    "format_duration",
    "gzip_base64",
    "gzip_envelope",
    "inflate_base64",
    "new_awakeable_id",
    "new_deployment_id",
    "new_id",
    "parse_awakeable_id",
    "parse_duration",
    "restate_awakeable_id",
]
