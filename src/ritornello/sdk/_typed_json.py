"""Typed JSON: Python values to fresh JSON values and back, guided by type hints.

- ``encode_json(value)`` is ``value`` as a *fresh* JSON value (nothing in it is shared with
  ``value``): dataclasses and pydantic models become objects, dates ISO 8601 text, decimals
  exact text, UUIDs text, bytes base64, enums their value, tuples and sets arrays (a set in
  sorted order, or in the order of its items' JSON text when they do not sort). The value's
  own type decides its JSON: no hint is needed to encode.
- ``decode_json(json, type_hint)`` is a fresh value of ``type_hint`` built from ``json``
  (``type_hint=None``: a deep copy of the JSON). Annotations it does not know, and classes it
  does not know, get the JSON as is.

Invariants: both are pure (same input, same output, no state; the class hints they resolve
are cached by :mod:`ritornello.sdk._hints`), and for every value ``v`` of a supported type
``T``, ``decode_json(encode_json(v), T) == v``. A value that does not fit is a TypeError
(wrong JSON type, a type JSON cannot hold) or a ValueError (bad text, unknown member, NaN, a
circular reference) whose message starts with the path to it
(``Order.items[2].price: expected a decimal string, got a number``).

No module is imported for a type user code does not use: ``datetime``, ``decimal``, ``uuid``
and pydantic are looked up in ``sys.modules`` (a value or a hint of such a type means its
module is loaded already), so handlers that never use them pay nothing at import time.
"""

from __future__ import annotations

import binascii
import collections.abc as abc
import enum
import inspect
import json
import re
import sys
import types
import typing
from typing import Any, Literal, Union

from ritornello.sdk._hints import class_hints

_NONE = type(None)
_EMPTY = inspect.Parameter.empty
_LISTS = frozenset(
    {list, abc.Sequence, abc.MutableSequence, abc.Iterable, abc.Collection, abc.Reversible}
)
_DICTS = frozenset({dict, abc.Mapping, abc.MutableMapping})
_SETS: dict[Any, type] = {set: set, frozenset: frozenset, abc.Set: set, abc.MutableSet: set}


# -- the walker's entry points --------------------------------------------------------------


def encode_json(value: Any) -> Any:
    """``value`` as a fresh JSON value (later mutations of ``value`` never reach it)."""
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return value
    if kind is float:
        return _encode(value, "", set())
    try:  # plain JSON (the usual case): the C encoder, round trip for a fresh copy
        return json.loads(json.dumps(value, allow_nan=False, separators=(",", ":")))
    except (TypeError, ValueError):
        pass  # a type JSON does not know: the walker says which, and where
    return _encode(value, "", set())


def decode_json(value: Any, type_hint: Any) -> Any:
    """A fresh value of ``type_hint`` from the JSON ``value``; ``type_hint=None`` is untyped:
    a deep copy of the JSON (pass ``type(None)`` to demand null)."""
    if type_hint is None:
        return json_copy(value)
    if type(value) is type_hint and type_hint in _SCALARS:
        return value  # the usual step result: a str, int or bool of that very type
    return _decode(value, type_hint, "")


_SCALARS = frozenset({str, int, bool})


# -- helpers the SDK shares -----------------------------------------------------------------


def b64encode(data: bytes) -> str:
    """Standard base64 with padding, as text."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def b64decode(value: Any, path: str) -> bytes:
    """The bytes of strict standard base64 text (TypeError/ValueError naming ``path``)."""
    if not isinstance(value, str):
        raise TypeError(_at(path, f"expected a base64 string, got {_json_type(value)}"))
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        raise ValueError(_at(path, f"expected base64 text, got {_short(value)}")) from None


def json_copy(value: Any) -> Any:
    """A deep copy of a JSON value (so user code cannot mutate a journaled one)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.loads(json.dumps(value))


def dumps(value: Any) -> str:
    """Compact JSON text of a JSON value, non-ASCII characters as they are."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=False)


# -- describing what went wrong -------------------------------------------------------------


def _at(path: str, message: str) -> str:
    return f"{path}: {message}" if path else message


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


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _module_type(module: str, name: str) -> Any:
    """A class of a standard library module, if user code has loaded the module."""
    found = sys.modules.get(module)
    return getattr(found, name, None) if found is not None else None


def _is_typeddict(tp: type) -> bool:
    """A TypedDict class, of ``typing`` or of ``typing_extensions`` (its own on 3.11)."""
    return issubclass(tp, dict) and hasattr(tp, "__required_keys__") and hasattr(tp, "__total__")


def _is_pydantic_model(tp: Any) -> bool:
    base = _module_type("pydantic", "BaseModel")
    return base is not None and isinstance(tp, type) and issubclass(tp, base)


# -- encoding -------------------------------------------------------------------------------


def _text_of(value: Any) -> str | None:
    """The text of a value journaled as a string (dates, decimals, UUIDs), else None."""
    date, time = _module_type("datetime", "date"), _module_type("datetime", "time")
    if date is not None and isinstance(value, (date, time)):
        return str(value.isoformat())
    decimal = _module_type("decimal", "Decimal")
    if decimal is not None and isinstance(value, decimal):
        return str(value)
    uuid = _module_type("uuid", "UUID")
    if uuid is not None and isinstance(value, uuid):
        return str(value)
    return None


def _encode(value: Any, path: str, active: set[int]) -> Any:
    """``value`` as a fresh JSON value; ``active``: the containers being encoded (cycles)."""
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if kind is str or kind is int:
        return value
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(_at(path, f"{value} is not a JSON number"))
        return value
    if isinstance(value, enum.Enum):
        return _encode(value.value, path, active)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return _encode(float.__float__(value), path, active)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return b64encode(bytes(value))
    text = _text_of(value)
    if text is not None:
        return text
    if isinstance(value, (list, tuple, dict, set, frozenset)) or (
        _is_dataclass(value) and not isinstance(value, type)
    ):
        if id(value) in active:
            raise ValueError(_at(path, "circular reference"))
        active.add(id(value))
        try:
            return _encode_container(value, path, active)
        finally:
            active.discard(id(value))
    if _is_pydantic_model(type(value)):
        return _encode(value.model_dump(mode="json"), path, active)
    raise TypeError(_at(path, f"Object of type {kind.__name__} is not JSON serializable"))


def _encode_container(value: Any, path: str, active: set[int]) -> Any:
    if isinstance(value, (list, tuple)):
        return [_encode(v, f"{path}[{i}]", active) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {_key(k, path): _encode(v, f"{path}[{k!r}]", active) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        try:
            items = sorted(value)
        except TypeError:  # not orderable: in the order of their JSON text (deterministic)
            encoded = [_encode(v, f"{path}[]", active) for v in value]
            return sorted(encoded, key=lambda e: json.dumps(e, sort_keys=True))
        return [_encode(v, f"{path}[{i}]", active) for i, v in enumerate(items)]
    import dataclasses  # a dataclass exists: its module imported dataclasses already

    name = path or type(value).__name__
    return {
        f.name: _encode(getattr(value, f.name), f"{name}.{f.name}", active)
        for f in dataclasses.fields(value)
    }


def _is_dataclass(obj: Any) -> bool:
    """``dataclasses.is_dataclass`` (the same test) without importing ``dataclasses`` at a
    handler module's import: a dataclass, or an instance of one."""
    return hasattr(obj if isinstance(obj, type) else type(obj), "__dataclass_fields__")


def _key(key: Any, path: str) -> str:
    """An object key as JSON text has it (as ``json.dumps`` writes int, float, bool keys)."""
    if type(key) is str:
        return key
    if isinstance(key, enum.Enum):
        return _key(key.value, path)
    if isinstance(key, str):
        return str.__str__(key)
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        if key != key or key in (float("inf"), float("-inf")):
            raise ValueError(_at(path, f"key {key} is not a JSON number"))
        return float.__repr__(key)
    if key is None:
        return "null"
    text = _text_of(key)
    if text is None:
        raise TypeError(
            _at(
                path,
                f"a key of type {type(key).__name__} cannot be JSON: use str, int, "
                "float, bool, an enum, a date, a decimal or a UUID",
            )
        )
    return text


# -- decoding -------------------------------------------------------------------------------


def _decode(value: Any, tp: Any, path: str) -> Any:
    if tp is Any or tp is object or tp is _EMPTY or isinstance(tp, (str, typing.TypeVar)):
        return json_copy(value)
    if tp is None or tp is _NONE:
        if value is not None:
            raise TypeError(_at(path, f"expected null, got {_json_type(value)}"))
        return None
    origin = typing.get_origin(tp)
    if origin is not None:
        return _decode_generic(value, tp, origin, typing.get_args(tp), path)
    if isinstance(tp, typing.NewType):
        return _decode(value, tp.__supertype__, path)
    if isinstance(tp, type):
        return _decode_class(value, tp, path)
    return json_copy(value)  # an annotation we do not know: as is


def _decode_generic(value: Any, tp: Any, origin: Any, args: tuple[Any, ...], path: str) -> Any:
    if origin is typing.Annotated or origin is typing.Required or origin is typing.NotRequired:
        return _decode(value, args[0], path)
    if origin is Union or origin is types.UnionType:
        return _decode_union(value, tp, args, path)
    if origin is Literal:
        for option in args:
            if _literal_is(option, value):
                return option
        raise ValueError(_at(path, f"expected one of {list(args)!r}, got {_short(value)}"))
    item = args[0] if args else Any
    if origin in _LISTS:
        _expect(value, list, path)
        return [_decode(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        return _decode_tuple(value, tp, args, path)
    if origin in _SETS:
        _expect(value, list, path)
        items = [_decode(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        return _set_of(_SETS[origin], items, path)
    if origin in _DICTS:
        _expect(value, dict, path)
        key_tp, value_tp = args if len(args) == 2 else (Any, Any)
        return {
            _decode_key(k, key_tp, path): _decode(v, value_tp, f"{path}[{k!r}]")
            for k, v in value.items()
        }
    if isinstance(origin, type):  # a generic class: Box[int], Page[Item]
        params = getattr(origin, "__parameters__", ())
        bound = dict(zip(params, args, strict=False))
        if _is_dataclass(origin):
            return _decode_dataclass(value, origin, path, bound)
        if _is_typeddict(origin):
            return _decode_typeddict(value, origin, path, bound)
        return _decode_class(value, origin, path)
    return json_copy(value)


def _expect(value: Any, kind: type, path: str) -> None:
    if not isinstance(value, kind):
        wanted = "an array" if kind is list else "an object"
        raise TypeError(_at(path, f"expected {wanted}, got {_json_type(value)}"))


def _set_of(kind: type, items: list[Any], path: str) -> Any:
    try:
        return kind(items)
    except TypeError as exc:
        raise TypeError(_at(path, f"set items must be hashable: {exc}")) from None


def _literal_is(option: Any, value: Any) -> bool:
    if isinstance(option, enum.Enum):
        try:
            return bool(_encode(option.value, "", set()) == value)
        except (TypeError, ValueError):
            return False
    return type(option) is type(value) and option == value


def _decode_union(value: Any, tp: Any, args: tuple[Any, ...], path: str) -> Any:
    if value is None and _NONE in args:
        return None
    options = [a for a in args if a is not _NONE]
    if len(options) == 1:  # Optional[X]: X's own error is the clearer one
        return _decode(value, options[0], path)
    for option in options:  # in order: the first that fits wins
        try:
            return _decode(value, option, path)
        except (TypeError, ValueError):
            continue
    raise TypeError(_at(path, f"expected {_type_name(tp)}, got {_json_type(value)}"))


def _decode_tuple(value: Any, tp: Any, args: tuple[Any, ...], path: str) -> Any:
    _expect(value, list, path)
    if tp is typing.Tuple:  # noqa: UP006 - the bare alias has no arguments
        return tuple(json_copy(value))
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_decode(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
    if len(value) != len(args):
        raise TypeError(_at(path, f"expected an array of {len(args)} items, got {len(value)}"))
    return tuple(
        _decode(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
    )


def _decode_class(value: Any, tp: type, path: str) -> Any:
    if tp is str or tp is int or tp is bool:
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise TypeError(_at(path, f"expected {tp.__name__}, got {_json_type(value)}"))
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(_at(path, f"expected a number, got {_json_type(value)}"))
        return float(value)
    if issubclass(tp, enum.Enum):
        return _decode_enum(value, tp, path)
    if _is_dataclass(tp):
        return _decode_dataclass(value, tp, path, {})
    if _is_typeddict(tp):
        return _decode_typeddict(value, tp, path, {})
    if _is_pydantic_model(tp):
        try:
            return typing.cast(Any, tp).model_validate_json(dumps(value))
        except ValueError as exc:
            raise ValueError(_at(path, str(exc))) from None
    if issubclass(tp, (bytes, bytearray)):
        return tp(b64decode(value, path))
    text_type = _text_type(tp)
    if text_type is not None:
        return _decode_text(value, tp, text_type, path)
    if issubclass(tp, tuple) and hasattr(tp, "_fields"):
        return _decode_named_tuple(value, tp, path)
    if tp in (list, tuple, set, frozenset):
        _expect(value, list, path)
        return json_copy(value) if tp is list else _set_of(tp, json_copy(value), path)
    if tp is dict:
        _expect(value, dict, path)
        return json_copy(value)
    return json_copy(value)  # a class we do not know: as is


def _text_type(tp: type) -> str | None:
    """What kind of text a class is journaled as: ``datetime``, ``date``, ``time``,
    ``decimal``, ``uuid``, or None."""
    for module, name, what in (
        ("datetime", "datetime", "an ISO 8601 datetime"),
        ("datetime", "date", "an ISO 8601 date"),
        ("datetime", "time", "an ISO 8601 time"),
        ("decimal", "Decimal", "a decimal"),
        ("uuid", "UUID", "a UUID"),
    ):
        cls = _module_type(module, name)
        if cls is not None and issubclass(tp, cls):
            return what
    return None


def _decode_text(value: Any, tp: type, what: str, path: str) -> Any:
    if not isinstance(value, str):
        raise TypeError(_at(path, f"expected {what} string, got {_json_type(value)}"))
    try:
        if what.startswith("an ISO"):
            return _fromisoformat(tp, value)
        return tp(value)
    except (ValueError, ArithmeticError):  # decimal.InvalidOperation is an ArithmeticError
        raise ValueError(_at(path, f"expected {what} string, got {_short(value)}")) from None


#: A UTC offset with a fraction of a second, as ``isoformat`` writes one.
_FINE_OFFSET = re.compile(r"([+-])(\d\d):(\d\d):(\d\d)\.(\d{6})$")


def _fromisoformat(tp: Any, text: str) -> Any:
    """``tp.fromisoformat(text)``; Python 3.11 reads an offset with a fraction of a second
    below one second as UTC, so such an offset is read here."""
    result = tp.fromisoformat(text)
    fine = _FINE_OFFSET.search(text) if getattr(result, "tzinfo", None) is not None else None
    if fine is not None:
        dt = sys.modules["datetime"]
        sign, hours, minutes, seconds, micros = fine.groups()
        offset = dt.timedelta(
            hours=int(hours), minutes=int(minutes), seconds=int(seconds), microseconds=int(micros)
        )
        result = result.replace(tzinfo=dt.timezone(-offset if sign == "-" else offset))
    return result


def _decode_enum(value: Any, tp: type[enum.Enum], path: str) -> Any:
    try:
        return tp(value)
    except (ValueError, TypeError):
        pass
    for member in tp:  # values that are not JSON themselves (a tuple, a date)
        if _literal_is(member, value):
            return member
    values = ", ".join(_short(m.value) for m in tp)
    raise ValueError(_at(path, f"expected one of {tp.__name__} [{values}], got {_short(value)}"))


def _bind(hint: Any, bound: dict[Any, Any]) -> Any:
    """``hint`` with the type variables of a generic class replaced by its arguments."""
    if not bound:
        return hint
    if isinstance(hint, typing.TypeVar):
        return bound.get(hint, Any)
    params = getattr(hint, "__parameters__", ())
    if params:
        try:
            return hint[tuple(bound.get(p, Any) for p in params)]
        except TypeError:
            return hint
    return hint


def _decode_dataclass(value: Any, tp: type, path: str, bound: dict[Any, Any]) -> Any:
    if not isinstance(value, dict):
        raise TypeError(_at(path, f"expected an object for {tp.__name__}, got {_json_type(value)}"))
    import dataclasses  # a dataclass exists: its module imported dataclasses already

    hints = class_hints(tp)
    fields = {f.name: f for f in dataclasses.fields(tp)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise TypeError(_at(path, f"{tp.__name__} has no field {unknown[0]!r}"))
    name = path or tp.__name__
    init: dict[str, Any] = {}
    later: dict[str, Any] = {}
    for key, raw in value.items():
        decoded = _decode(raw, _bind(hints.get(key, Any), bound), f"{name}.{key}")
        (init if fields[key].init else later)[key] = decoded
    missing = [
        n
        for n, f in fields.items()
        if f.init
        and n not in init
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise TypeError(_at(path, f"{tp.__name__} is missing field {missing[0]!r}"))
    obj = tp(**init)
    for key, decoded in later.items():  # fields outside __init__: as they were encoded
        object.__setattr__(obj, key, decoded)
    return obj


def _decode_typeddict(value: Any, tp: type, path: str, bound: dict[Any, Any]) -> Any:
    if not isinstance(value, dict):
        raise TypeError(_at(path, f"expected an object for {tp.__name__}, got {_json_type(value)}"))
    hints = class_hints(tp)
    required = set(getattr(tp, "__required_keys__", ()))
    for key, hint in hints.items():  # explicit qualifiers win (they may be strings at class
        origin = typing.get_origin(hint)  # creation, with `from __future__ import annotations`)
        if origin is typing.Required:
            required.add(key)
        elif origin is typing.NotRequired:
            required.discard(key)
    unknown = sorted(set(value) - set(hints))
    if unknown:
        raise TypeError(_at(path, f"{tp.__name__} has no key {unknown[0]!r}"))
    missing = sorted(required - set(value))
    if missing:
        raise TypeError(_at(path, f"{tp.__name__} is missing key {missing[0]!r}"))
    name = path or tp.__name__
    return {k: _decode(v, _bind(hints[k], bound), f"{name}.{k}") for k, v in value.items()}


def _decode_named_tuple(value: Any, tp: type, path: str) -> Any:
    _expect(value, list, path)
    names: tuple[str, ...] = typing.cast(Any, tp)._fields
    defaults: dict[str, Any] = typing.cast(Any, tp)._field_defaults
    needed = len([n for n in names if n not in defaults])
    if not needed <= len(value) <= len(names):
        raise TypeError(_at(path, f"expected an array of {len(names)} items, got {len(value)}"))
    hints = class_hints(tp)
    name = path or tp.__name__
    return tp(
        *(_decode(v, hints.get(n, Any), f"{name}.{n}") for n, v in zip(names, value, strict=False))
    )


def _decode_key(key: str, tp: Any, path: str) -> Any:
    """An object key (JSON text) as ``tp``: str, int, float, bool, enum, Literal, or any
    type journaled as text (dates, decimals, UUIDs)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _decode_key(key, typing.get_args(tp)[0], path)
    if isinstance(tp, typing.NewType):
        return _decode_key(key, tp.__supertype__, path)
    if origin is Union or origin is types.UnionType:
        for option in typing.get_args(tp):
            try:
                return _decode_key(key, option, path)
            except (TypeError, ValueError):
                continue
        raise ValueError(_at(path, f"key {key!r} is not a {_type_name(tp)}"))
    if origin is Literal or (isinstance(tp, type) and issubclass(tp, enum.Enum)):
        options = typing.get_args(tp) if origin is Literal else list(tp)
        for option in options:
            try:
                if _key(option, path) == key:
                    return option
            except (TypeError, ValueError):
                continue
        raise ValueError(_at(path, f"key {key!r} is not one of {_type_name(tp)}"))
    if tp in (int, float, bool):
        parsed: Any
        try:
            parsed = {"true": True, "false": False}[key] if tp is bool else tp(key)
        except (KeyError, ValueError):
            parsed = None
        if parsed is None or _key(parsed, path) != key:
            raise ValueError(_at(path, f"key {key!r} is not a {tp.__name__}"))
        return parsed
    if tp is _NONE:
        if key != "null":
            raise ValueError(_at(path, f"key {key!r} is not null"))
        return None
    if isinstance(tp, type) and _text_type(tp) is not None:
        return _decode(key, tp, f"{path}[{key!r}]")
    return key
