"""Wire protocols: how the runtime speaks to each kind of endpoint (``ProtocolAdapter``).

Today one protocol, Ritornello's own (``_ritornello``: docs/protocol.md). Another protocol
(Restate's service protocol, AWS's durable-execution API) is another adapter here.
"""

from ritornello.orchestrator.protocols._base import Exchange, ProtocolAdapter
from ritornello.orchestrator.protocols._ritornello import (
    RitornelloProtocol,
    decode_answer,
    decode_discovery,
    encode_request,
)

__all__ = [
    "Exchange",
    "ProtocolAdapter",
    "RitornelloProtocol",
    "decode_answer",
    "decode_discovery",
    "encode_request",
]
