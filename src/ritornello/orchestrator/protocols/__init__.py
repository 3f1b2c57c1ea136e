"""Wire protocols: how the runtime speaks to each kind of endpoint (``ProtocolAdapter``).

Ritornello's own (``_ritornello``: docs/protocol.md) and Restate's service protocol
(``restate``: docs/restate-protocol.md). A deployment's discovery answer says which it speaks
(``read_discovery`` reads either).
"""

from ritornello.orchestrator.protocols._base import Exchange, ProtocolAdapter
from ritornello.orchestrator.protocols._ritornello import (
    RitornelloProtocol,
    decode_answer,
    decode_discovery,
    encode_request,
)
from ritornello.orchestrator.protocols.restate import RestateProtocol, read_discovery

__all__ = [
    "Exchange",
    "ProtocolAdapter",
    "RestateProtocol",
    "RitornelloProtocol",
    "decode_answer",
    "decode_discovery",
    "encode_request",
    "read_discovery",
]
