"""JSON values in and out of handlers: plain JSON, dataclasses, and pydantic models.

Everything the SDK journals goes through :func:`to_json`, which returns a *fresh* JSON value (a
round trip through the encoder), so what a handler sees on first execution is exactly what it
sees on replay (tuples become lists, dataclasses become objects), and later mutations by user
code never reach a journaled entry.

pydantic is never imported here: a model class can only exist if the user's code imported
pydantic already, so we look it up in ``sys.modules`` (no cold-start cost for handlers that do
not use it).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
import types
import typing
from typing import Any, Literal, Union


def _encode_default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if _is_pydantic_model(type(obj)):
        return obj.model_dump(mode="json")
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def to_json(value: Any) -> Any:
    """A fresh JSON value equal to ``value``. Raises TypeError or ValueError if it is not JSON."""
    return json.loads(dumps(value))


def dumps(value: Any) -> str:
    """``value`` as JSON text (dataclasses and pydantic models as objects; no NaN)."""
    return json.dumps(value, default=_encode_default, allow_nan=False, separators=(",", ":"))


def json_copy(value: Any) -> Any:
    """A deep copy of a JSON value (so user code cannot mutate a journaled one)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.loads(json.dumps(value))


def _is_pydantic_model(tp: Any) -> bool:
    pydantic = sys.modules.get("pydantic")
    if pydantic is None or not isinstance(tp, type):
        return False
    base: Any = getattr(pydantic, "BaseModel", None)
    return base is not None and issubclass(tp, base)


def type_hints(obj: Any) -> dict[str, Any]:
    """Resolved annotations of a function or class.

    When one annotation cannot be resolved (say ``ctx: Context`` imported only under
    ``TYPE_CHECKING``), the others are resolved one by one and that one is left out.
    """
    try:
        return typing.get_type_hints(obj)
    except Exception:
        pass
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    namespace: dict[str, Any] = getattr(obj, "__globals__", None) or (
        vars(module) if module is not None else {}
    )
    hints: dict[str, Any] = {}
    for name, annotation in getattr(obj, "__annotations__", {}).items():
        try:
            hints[name] = typing.get_type_hints(_Probe(annotation), namespace)["value"]
        except Exception:
            continue
    return hints


class _Probe:
    """An object with one annotation, so ``get_type_hints`` resolves it alone."""

    def __init__(self, annotation: Any) -> None:
        self.__annotations__ = {"value": annotation}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp)


def from_json(value: Any, tp: Any) -> Any:
    """Build a value of type ``tp`` from the JSON value ``value``.

    Handles ``Any`` and missing annotations (as is), the JSON scalars, ``list[X]``,
    ``dict[str, X]``, ``X | None`` and other unions, ``Literal``, dataclasses and pydantic
    models; other annotations pass the value through. Raises TypeError or ValueError when the
    value does not fit.
    """
    if tp is Any or tp is object or tp is inspect.Parameter.empty or isinstance(tp, str):
        return value
    if tp is None or tp is type(None):
        if value is not None:
            raise TypeError(f"expected null, got {_json_type(value)}")
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        for option in args:
            if option is type(None):
                continue
            try:
                return from_json(value, option)
            except (TypeError, ValueError):
                continue
        raise TypeError(f"expected {tp}, got {_json_type(value)}")
    if origin is Literal:
        if value not in args:
            raise ValueError(f"expected one of {list(args)}, got {value!r}")
        return value
    if tp is list or origin is list:
        if not isinstance(value, list):
            raise TypeError(f"expected an array, got {_json_type(value)}")
        return [from_json(v, args[0]) for v in value] if args else value
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {_json_type(value)}")
        if len(args) == 2:
            return {k: from_json(v, args[1]) for k, v in value.items()}
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build_dataclass(value, tp)
    if _is_pydantic_model(tp):
        return typing.cast(Any, tp).model_validate(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"expected a number, got {_json_type(value)}")
        return float(value)
    if tp in (int, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise TypeError(f"expected {_name(tp)}, got {_json_type(value)}")
        return value
    return value


def _build_dataclass(value: Any, tp: type) -> Any:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object for {tp.__name__}, got {_json_type(value)}")
    hints = type_hints(tp)
    fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise TypeError(f"{tp.__name__} has no field {unknown[0]!r}")
    kwargs: dict[str, Any] = {}
    for name, raw in value.items():
        try:
            kwargs[name] = from_json(raw, hints.get(name, Any))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{tp.__name__}.{name}: {exc}") from None
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise TypeError(f"{tp.__name__} is missing field {missing[0]!r}")
    return tp(**kwargs)
