"""AWS Lambda durable functions (docs/aws-durable.md): handlers written with AWS's durable
execution SDK, unmodified, run on Ritornello's engine.

``_operations`` maps AWS's operation updates onto journal entries and folds them back,
``_runs`` holds the live runs and their checkpoint tokens, ``_adapter`` invokes the function,
``_history`` tells an execution's history from its journal, ``_stop`` keeps a stop's ``Error``.
The API the function checkpoints through is served on the ingress (``ingress._durable_api``).
"""

from ritornello.orchestrator.protocols.aws_durable._adapter import (
    HANDLER,
    WIRE,
    AwsDurableProtocol,
    discovery,
    execution_arn,
    invocation_of,
)
from ritornello.orchestrator.protocols.aws_durable._callbacks import (
    heartbeat_of,
    heartbeat_result,
    heartbeat_timer,
    timed_out,
)
from ritornello.orchestrator.protocols.aws_durable._history import TIMESTAMPS, history
from ritornello.orchestrator.protocols.aws_durable._operations import (
    UpdateError,
    check_updates,
    to_wire,
)
from ritornello.orchestrator.protocols.aws_durable._runs import (
    INVALID_TOKEN,
    Checkpoint,
    Reply,
    Run,
    Runs,
    names_function,
)
from ritornello.orchestrator.protocols.aws_durable._stop import (
    StopError,
    stop_error,
    stopped_error,
    stopped_result,
)

__all__ = [
    "HANDLER",
    "INVALID_TOKEN",
    "TIMESTAMPS",
    "WIRE",
    "AwsDurableProtocol",
    "Checkpoint",
    "Reply",
    "Run",
    "Runs",
    "StopError",
    "UpdateError",
    "check_updates",
    "discovery",
    "execution_arn",
    "heartbeat_of",
    "heartbeat_result",
    "heartbeat_timer",
    "history",
    "invocation_of",
    "names_function",
    "stop_error",
    "stopped_error",
    "stopped_result",
    "timed_out",
    "to_wire",
]
