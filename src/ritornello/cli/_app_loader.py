"""Load a user's endpoint module (``ritornello dev APP.py``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from ritornello.sdk import Endpoint


def load_endpoint(path: str) -> Endpoint:
    """The ``Endpoint`` defined in the Python file ``path`` (prefers a variable named
    ``endpoint``; otherwise the only Endpoint in the module)."""
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
    found: dict[str, Any] = {k: v for k, v in vars(module).items() if isinstance(v, Endpoint)}
    if "endpoint" in found:
        return found["endpoint"]  # type: ignore[no-any-return]
    if len(found) == 1:
        return next(iter(found.values()))  # type: ignore[no-any-return]
    raise SystemExit(f"{path}: define one Endpoint (ideally named `endpoint`); found {len(found)}")
