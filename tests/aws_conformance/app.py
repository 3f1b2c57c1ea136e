"""One Lambda "deployment" holding every vendored conformance handler, for ``ritornello
lambda-emulator``: ``lambda_handler`` runs the handler of the function the invoke names (its
``context.function_name``, a template's logical id), as Lambda runs each template function's
``Handler``. The function's template ``Environment`` is set before its module is imported, as
Lambda sets it before the cold start (the emulator runs each function in processes of its own,
so one function's environment is not another's).
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from typing import Any

from tests.aws_conformance.templates import HANDLERS, functions

# the handlers import as in their Lambda package (lambda-build/ holds handlers/*): step.x
sys.path.insert(0, str(HANDLERS / "handlers"))
_FUNCTIONS = functions()
_ENV_LOCK = threading.Lock()


def lambda_handler(event: Any, context: Any) -> Any:
    function = _FUNCTIONS[context.function_name]
    module_name, _, attr = function.handler.rpartition(".")
    with _ENV_LOCK:
        os.environ.update(function.environment)
    handler = getattr(importlib.import_module(module_name), attr)
    return handler(event, context)
