"""Wire protocols: how the runtime speaks to each kind of endpoint (``ProtocolAdapter``).

Ritornello's own (``_ritornello``: docs/protocol.md) and Restate's service protocol
(``restate``: docs/restate-protocol.md); AWS Lambda durable functions (``aws_durable``:
docs/aws-durable.md), registered by ARN and service name. A deployment's discovery answer (or,
for a durable function, its stored record) says which it speaks (``read_discovery`` reads the
first two).
"""

from ritornello.orchestrator.protocols._base import Exchange, ProtocolAdapter
from ritornello.orchestrator.protocols._ritornello import (
    RitornelloProtocol,
    decode_answer,
    decode_discovery,
    encode_request,
)
from ritornello.orchestrator.protocols.aws_durable import AwsDurableProtocol
from ritornello.orchestrator.protocols.restate import RestateProtocol, read_discovery

__all__ = [
    "AwsDurableProtocol",
    "Exchange",
    "ProtocolAdapter",
    "RestateProtocol",
    "RitornelloProtocol",
    "decode_answer",
    "decode_discovery",
    "encode_request",
    "read_discovery",
]
