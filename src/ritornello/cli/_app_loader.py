"""Load a user's app file (``ritornello dev APP.py``, ``ritornello lambda-emulator APP.py``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from ritornello.sdk import Endpoint


def load_module(path: str) -> ModuleType:
    """Import the Python file ``path`` as a module (its directory goes on ``sys.path``, so it
    can import its neighbours, as the examples do)."""
    file = Path(path)
    if not file.is_file():
        raise SystemExit(f"{path}: no such file")
    sys.path.insert(0, str(file.resolve().parent))
    spec = importlib.util.spec_from_file_location(file.stem, file)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[file.stem] = module
    spec.loader.exec_module(module)
    return module


def find_endpoint(module: ModuleType) -> Endpoint | None:
    """The module's Endpoint: the one named ``endpoint``, else the only one, else None."""
    found = {k: v for k, v in vars(module).items() if isinstance(v, Endpoint)}
    if "endpoint" in found:
        return found["endpoint"]
    return next(iter(found.values())) if len(found) == 1 else None


def load_endpoint(path: str) -> Endpoint:
    """The ``Endpoint`` defined in the Python file ``path``."""
    endpoint = find_endpoint(load_module(path))
    if endpoint is None:
        raise SystemExit(f"{path}: define one Endpoint (ideally named `endpoint`)")
    return endpoint
