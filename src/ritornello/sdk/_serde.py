"""Values in and out of the journal: typed JSON by default, or bytes from a serde.

Every value the SDK journals goes through :func:`encode`, and every journaled value handler
code sees comes out of :func:`decode` (docs/sdk.md, "Types and serdes"):

- ``encode(value, type_hint=None, serde=None)`` returns a *fresh* JSON value: nothing in it is
  shared with ``value``, so later mutations by user code never reach a journaled entry.
  Without a serde, Python values become JSON (dataclasses and pydantic models objects, dates
  ISO 8601 text, decimals exact text, bytes base64, enums their value, tuples and sets
  arrays); with a serde (other than :class:`JsonSerde`), the value is journaled as the
  base64 text of ``serde.serialize(value)``.
- ``decode(json, type_hint=None, serde=None)`` returns a fresh value built from the hint
  (or ``serde.deserialize`` of the base64-decoded bytes); with neither, a deep copy of the JSON.

Invariants: both are pure (same input, same output, no state), and for every value ``v`` of a
supported type ``T``, ``decode(encode(v, T), T) == v``. A replay decodes the journaled JSON,
so handler code that sees ``decode(encode(result))`` on the first execution sees the identical
value on every replay. A value that does not fit its hint is a TypeError (wrong JSON type) or
ValueError (bad text, unknown member) whose message starts with the path to it
(``Order.items[2].price: expected a decimal string, got a number``).

No module is imported for a type user code does not use: ``datetime``, ``decimal``, ``uuid``
and pydantic are looked up in ``sys.modules`` (a value or a hint of such a type means its
module is loaded already), so handlers that never use them pay nothing at import time.
"""

from __future__ import annotations

import binascii
import collections.abc as abc
import dataclasses
import enum
import functools
import inspect
import json
import re
import sys
import types
import typing
import weakref
from typing import Any, ClassVar, Literal, Protocol, Union, runtime_checkable

#: The content type of raw bytes when a serde names none.
OCTET_STREAM = "application/octet-stream"

_NONE = type(None)
_EMPTY = inspect.Parameter.empty
_LISTS = frozenset(
    {list, abc.Sequence, abc.MutableSequence, abc.Iterable, abc.Collection, abc.Reversible}
)
_DICTS = frozenset({dict, abc.Mapping, abc.MutableMapping})
_SETS: dict[Any, type] = {set: set, frozenset: frozenset, abc.Set: set, abc.MutableSet: set}
_AWAITABLES = frozenset({abc.Coroutine, abc.Awaitable})


# -- serdes ---------------------------------------------------------------------------------


@runtime_checkable
class Serde(Protocol):
    """Brings its own bytes: ``serialize(value) -> bytes`` and ``deserialize(bytes) -> value``.

    A value a serde encodes is journaled as the base64 text of its bytes. A serde may have a
    ``content_type`` attribute (a handler's raw input or output at the ingress; default
    ``application/octet-stream``): it is optional, so it is not part of this protocol."""

    def serialize(self, value: Any) -> bytes:
        """The bytes of ``value``."""
        ...

    def deserialize(self, data: bytes) -> Any:
        """The value of ``data``."""
        ...


class JsonSerde:
    """The default: JSON, typed by ``type_hint`` (when given, it wins over the call's own
    hint). Values it encodes are journaled as JSON itself, not as base64 bytes."""

    # plain classes, not dataclasses: each dataclass costs the handler's import ~0.5 ms
    __slots__ = ("type_hint",)
    content_type: ClassVar[str] = "application/json"

    def __init__(self, type_hint: Any = None) -> None:
        self.type_hint = type_hint

    def __repr__(self) -> str:
        return f"JsonSerde({self.type_hint!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.type_hint == self.type_hint

    def __hash__(self) -> int:
        return hash((type(self), repr(self.type_hint)))

    def serialize(self, value: Any) -> bytes:
        """UTF-8 JSON text of ``encode(value, type_hint)``."""
        return _dump(encode(value, self.type_hint)).encode()

    def deserialize(self, data: bytes) -> Any:
        """``decode`` of the JSON ``data`` (empty bytes: None)."""
        if not data:
            return None
        return decode(json.loads(data), self.type_hint)


class BytesSerde:
    """Raw bytes, as they are: ``serialize`` takes bytes (or a bytearray or memoryview),
    ``deserialize`` gives bytes; ``content_type`` is what the ingress says they are."""

    __slots__ = ("content_type",)

    def __init__(self, content_type: str = OCTET_STREAM) -> None:
        self.content_type = content_type

    def __repr__(self) -> str:
        return f"BytesSerde({self.content_type!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.content_type == self.content_type

    def __hash__(self) -> int:
        return hash((type(self), self.content_type))

    def serialize(self, value: Any) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"BytesSerde serializes bytes, not {type(value).__name__}")
        return bytes(value)

    def deserialize(self, data: bytes) -> bytes:
        return bytes(data)


def check_serde(serde: Any, what: str = "serde") -> None:
    """TypeError unless ``serde`` is None or implements :class:`Serde`."""
    if serde is None:
        return
    if not isinstance(serde, Serde):
        raise TypeError(
            f"{what} must have serialize(value) -> bytes and deserialize(bytes), "
            f"not {type(serde).__name__}"
        )
    declared = getattr(serde, "content_type", None)
    if declared is not None and not (
        isinstance(declared, str)
        and declared.strip()
        and declared.isascii()
        and declared.isprintable()
    ):
        raise ValueError(f"{what}.content_type must be a content type, not {declared!r}")


def is_json_serde(serde: Any) -> bool:
    """Whether values of ``serde`` are journaled as JSON (none, or an unchanged JsonSerde)."""
    return serde is None or (
        isinstance(serde, JsonSerde)
        and type(serde).serialize is JsonSerde.serialize
        and type(serde).deserialize is JsonSerde.deserialize
    )


def content_type_of(serde: Any) -> str:
    """A serde's ``content_type``, ``application/octet-stream`` when it names none."""
    declared = getattr(serde, "content_type", None)
    return declared if isinstance(declared, str) and declared else OCTET_STREAM


# -- the SDK's single entry points ----------------------------------------------------------


def encode(value: Any, type_hint: Any = None, serde: Any = None) -> Any:
    """The JSON value to journal for ``value`` (fresh: later mutations never reach it).

    Without a serde the value's own type decides its JSON (the hint is not needed to encode);
    with one, the base64 text of ``serde.serialize(value)``."""
    if not is_json_serde(serde):
        check_serde(serde)
        data = serde.serialize(value)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"{type(serde).__name__}.serialize returned {type(data).__name__}, not bytes"
            )
        return b64encode(bytes(data))
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


def decode(value: Any, type_hint: Any = None, serde: Any = None) -> Any:
    """The value handler code sees for the journaled JSON ``value`` (identical on replay).

    ``type_hint=None`` is untyped: a deep copy of the JSON (pass ``type(None)`` to demand
    null). With a serde other than JsonSerde, ``value`` is base64 text (null is None)."""
    if not is_json_serde(serde):
        check_serde(serde)
        if value is None:
            return None
        return serde.deserialize(b64decode(value, ""))
    if isinstance(serde, JsonSerde) and serde.type_hint is not None:
        type_hint = serde.type_hint
    if type_hint is None:
        return json_copy(value)
    return _decode(value, type_hint, "")


def return_hint(fn: Any) -> Any:
    """The resolved return annotation of a step function, or None for "untyped".

    ``async def f() -> X`` and ``def f() -> Awaitable[X]`` (or ``Coroutine[..., X]``) are
    ``X``; a ``functools.partial`` is its function's; a lambda, a builtin, a class, a
    function without a return annotation, or one that does not resolve are None."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if isinstance(fn, type) or not callable(fn):
        return None
    if not isinstance(fn, (types.FunctionType, types.MethodType)):
        call = type(fn).__call__
        if not isinstance(call, types.FunctionType):
            return None  # a builtin, a C callable: untyped
        fn = types.MethodType(call, fn)
    target = fn.__func__ if isinstance(fn, types.MethodType) else fn
    try:
        cached = _RETURNS[target]
    except (KeyError, TypeError):
        cached = _return_annotation(target)
        try:
            _RETURNS[target] = cached
        except TypeError:
            pass
    return cached


_RETURNS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _return_annotation(fn: Any) -> Any:
    if getattr(fn, "__name__", "") == "<lambda>" or "return" not in getattr(
        fn, "__annotations__", {}
    ):
        return None
    hint = type_hints(fn).get("return")
    if hint is None:
        return None  # it did not resolve (`-> None` resolves to NoneType, not to None)
    if typing.get_origin(hint) in _AWAITABLES:
        args = typing.get_args(hint)
        return args[-1] if args else None
    if hint in _AWAITABLES:
        return None
    return hint


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


def _dump(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def type_hints(obj: Any, *, extras: bool = False) -> dict[str, Any]:
    """Resolved annotations of a function or class (``extras``: keep ``Annotated``,
    ``Required`` and ``NotRequired``).

    When one annotation cannot be resolved (say ``ctx: Context`` imported only under
    ``TYPE_CHECKING``), the others are resolved one by one and that one is left out.
    """
    try:
        return typing.get_type_hints(obj, include_extras=extras)
    except Exception:
        pass
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    namespace: dict[str, Any] = getattr(obj, "__globals__", None) or (
        vars(module) if module is not None else {}
    )
    local = dict(vars(obj)) if isinstance(obj, type) else None
    hints: dict[str, Any] = {}
    for name, annotation in getattr(obj, "__annotations__", {}).items():
        try:
            probe = _Probe(annotation)
            hints[name] = typing.get_type_hints(probe, namespace, local, include_extras=extras)[
                "value"
            ]
        except Exception:
            continue
    return hints


class _Probe:
    """An object with one annotation, so ``get_type_hints`` resolves it alone."""

    def __init__(self, annotation: Any) -> None:
        self.__annotations__ = {"value": annotation}


_CLASS_HINTS: weakref.WeakKeyDictionary[type, dict[str, Any]] = weakref.WeakKeyDictionary()


def _class_hints(tp: type) -> dict[str, Any]:
    """``type_hints(tp, extras=True)``, cached once every annotation resolved."""
    try:
        return _CLASS_HINTS[tp]
    except (KeyError, TypeError):
        pass
    hints = type_hints(tp, extras=True)
    if len(hints) >= len(getattr(tp, "__annotations__", {})):
        try:
            _CLASS_HINTS[tp] = hints
        except TypeError:
            pass
    return hints


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
        dataclasses.is_dataclass(value) and not isinstance(value, type)
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
    name = path or type(value).__name__
    return {
        f.name: _encode(getattr(value, f.name), f"{name}.{f.name}", active)
        for f in dataclasses.fields(value)
    }


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
        if dataclasses.is_dataclass(origin):
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
    if dataclasses.is_dataclass(tp):
        return _decode_dataclass(value, tp, path, {})
    if _is_typeddict(tp):
        return _decode_typeddict(value, tp, path, {})
    if _is_pydantic_model(tp):
        try:
            return typing.cast(Any, tp).model_validate_json(_dump(value))
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
    hints = _class_hints(tp)
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
    hints = _class_hints(tp)
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
    hints = _class_hints(tp)
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
