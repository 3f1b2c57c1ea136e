"""AWS Lambda durable functions (docs/aws-durable.md): handlers written with AWS's durable
execution SDK, unmodified, run on Ritornello's engine.

``_operations`` maps AWS's operation updates onto journal entries and folds them back,
``_runs`` holds the live runs and their checkpoint tokens, ``_adapter`` invokes the function,
``_history`` tells an execution's history from its journal, ``_stop`` keeps a stop's ``Error``,
``_deadline`` times executions out (``execution_timeout_s``).
The API the function checkpoints through is served on the ingress (``ingress._durable_api``).
"""

from ritornello.orchestrator.protocols.aws_durable._adapter import (
    HANDLER,
    WIRE,
    AwsDurableProtocol,
    discovery,
    execution_arn,
    execution_timeout_of,
    invocation_of,
)
from ritornello.orchestrator.protocols.aws_durable._callbacks import (
    heartbeat_of,
    heartbeat_result,
    heartbeat_timer,
    timed_out,
)
from ritornello.orchestrator.protocols.aws_durable._deadline import (
    MAX_TIMEOUT_S,
    check_timeout,
    deadline_of,
    is_timed_out,
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
    "MAX_TIMEOUT_S",
    "TIMESTAMPS",
    "WIRE",
    "AwsDurableProtocol",
    "Checkpoint",
    "Reply",
    "Run",
    "Runs",
    "StopError",
    "UpdateError",
    "check_timeout",
    "check_updates",
    "deadline_of",
    "discovery",
    "execution_arn",
    "execution_timeout_of",
    "heartbeat_of",
    "heartbeat_result",
    "heartbeat_timer",
    "history",
    "invocation_of",
    "is_timed_out",
    "names_function",
    "stop_error",
    "stopped_error",
    "stopped_result",
    "timed_out",
    "to_wire",
]
