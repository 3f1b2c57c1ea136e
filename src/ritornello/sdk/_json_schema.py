"""JSON Schemas (draft 2020-12, as OpenAPI 3.1 uses) of handler inputs and outputs, from their
type hints.

- ``json_schema(hint, mode="validation")`` is the schema of the JSON that
  :mod:`ritornello.sdk._typed_json` reads as ``hint`` (``mode="validation"``) or writes for a
  value of it (``mode="serialization"``: the two differ only for pydantic models, whose own
  ``model_json_schema(mode=...)`` is used).
- ``handler_schemas(spec)`` is what discovery says of a handler's JSON: its input's schema,
  its output's, and whether the input is required.

Invariants: every named type (dataclass, TypedDict, named tuple, enum, pydantic model) is
described once, under ``$defs``, and referred to with ``{"$ref": "#/$defs/Name"}``, so
recursive types terminate; a schema with named types is ``{"$ref": ..., "$defs": {...}}``.
Names are unique within one schema (a second class of the same name gets ``Name2``) and match
``[A-Za-z0-9._-]+`` (OpenAPI's component names). An annotation this module does not know is
``{}`` (any JSON), as the walker passes it through unchanged; a schema is never stricter about
a known type than the walker's decoding except where noted (a set's ``uniqueItems``).

Standard library only, and imported only when discovery is answered: a handler module's
import never pays for it. ``datetime``, ``decimal`` and ``uuid`` are looked up in
``sys.modules`` as the walker does; pydantic is never imported.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import re
import types
import typing
from typing import Any, Literal, Union

from ritornello.sdk._hints import class_hints
from ritornello.sdk._typed_json import (
    _DICTS,
    _LISTS,
    _NONE,
    _SETS,
    _bind,
    _is_pydantic_model,
    _is_typeddict,
    _module_type,
    encode_json,
)

Schema = dict[str, Any]

#: Classes journaled as text, in the order a subclass must be tried before its base.
_TEXT_FORMATS = (
    ("datetime", "datetime", "date-time"),
    ("datetime", "date", "date"),
    ("datetime", "time", "time"),
    ("decimal", "Decimal", "decimal"),
    ("uuid", "UUID", "uuid"),
)
_SCALARS: dict[Any, Schema] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
}
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def json_schema(hint: Any, mode: str = "validation") -> Schema:
    """The JSON Schema of the JSON of ``hint`` (see the module's docstring)."""
    builder = _Builder(mode)
    schema = builder.schema(hint)
    if builder.defs:
        schema = {**schema, "$defs": builder.defs}
    return schema


def handler_schemas(spec: Any) -> tuple[Schema | None, Schema | None, bool]:
    """``(input schema, output schema, input required)`` of a ``HandlerSpec``.

    A schema is None where there is no JSON to describe: no input parameter, or raw bytes (a
    custom serde, or ``bytes``: the content type says what they are). An input with a
    default may be left out (null); one without is required."""
    from ritornello.sdk._serde import JsonSerde

    def hint_of(serde: Any, hint: Any) -> Any:
        if isinstance(serde, JsonSerde) and serde.type_hint is not None:
            return serde.type_hint
        return Any if hint is None else hint  # None: unannotated (``-> None`` is NoneType)

    input_schema: Schema | None = None
    if spec.input_param is not None and spec.input_content_type is None:
        input_schema = json_schema(hint_of(spec.input_serde, spec.input_hint), "validation")
    output_schema: Schema | None = None
    if spec.output_content_type is None:
        output_schema = json_schema(hint_of(spec.output_serde, spec.output_hint), "serialization")
    required = spec.input_param is not None and not spec.input_optional
    return input_schema, output_schema, required


class _Builder:
    """One schema's walk: the named types met so far, under ``$defs``."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.defs: dict[str, Schema] = {}
        self._names: dict[Any, str] = {}  # type (or generic alias) -> its name in defs

    def schema(self, tp: Any) -> Schema:
        if tp is None or tp is _NONE:
            return {"type": "null"}
        if tp is Any or tp is object or tp is inspect.Parameter.empty:
            return {}
        if isinstance(tp, (str, typing.TypeVar, typing.ForwardRef)):
            return {}  # unresolved: the walker passes the JSON through
        if type(tp) is type and tp in _SCALARS:
            return dict(_SCALARS[tp])
        origin = typing.get_origin(tp)
        if origin is not None:
            return self._generic(tp, origin, typing.get_args(tp))
        if isinstance(tp, typing.NewType):
            return self.schema(tp.__supertype__)
        if isinstance(tp, type):
            return self._class(tp)
        return {}

    # -- generics ---------------------------------------------------------------------------

    def _generic(self, tp: Any, origin: Any, args: tuple[Any, ...]) -> Schema:
        if origin in (typing.Annotated, typing.Required, typing.NotRequired):
            return self.schema(args[0])
        if origin is Union or origin is types.UnionType:
            return _any_of([self.schema(a) for a in args])
        if origin is Literal:
            return _choice([_json_of(a) for a in args])
        item = args[0] if args else Any
        if origin in _LISTS:
            return _array(self.schema(item) if args else None)
        if origin is tuple:
            return self._tuple(tp, args)
        if origin in _SETS:
            return {**_array(self.schema(item) if args else None), "uniqueItems": True}
        if origin in _DICTS:
            key, value = args if len(args) == 2 else (Any, Any)
            return _object(_key_schema(key), self.schema(value) if len(args) == 2 else None)
        if isinstance(origin, type) and (dataclasses.is_dataclass(origin) or _is_typeddict(origin)):
            bound = dict(zip(getattr(origin, "__parameters__", ()), args, strict=False))
            return self._named(tp, origin, bound)
        if isinstance(origin, type):
            return self._class(origin)
        return {}

    def _tuple(self, tp: Any, args: tuple[Any, ...]) -> Schema:
        if tp is typing.Tuple:  # noqa: UP006 - the bare alias has no arguments
            return {"type": "array"}
        if not args:  # tuple[()]
            return {"type": "array", "maxItems": 0}
        if len(args) == 2 and args[1] is Ellipsis:
            return _array(self.schema(args[0]))
        return {
            "type": "array",
            "prefixItems": [self.schema(a) for a in args],
            "minItems": len(args),
            "maxItems": len(args),
        }

    # -- classes ----------------------------------------------------------------------------

    def _class(self, tp: type) -> Schema:
        if issubclass(tp, enum.Enum) or dataclasses.is_dataclass(tp) or _is_typeddict(tp):
            return self._named(tp, tp, {})
        if _is_pydantic_model(tp):
            return self._pydantic(tp)
        if issubclass(tp, (bytes, bytearray)):
            return {"type": "string", "contentEncoding": "base64"}
        for module, name, fmt in _TEXT_FORMATS:
            cls = _module_type(module, name)
            if cls is not None and issubclass(tp, cls):
                return {"type": "string", "format": fmt}
        if issubclass(tp, tuple) and hasattr(tp, "_fields"):
            return self._named(tp, tp, {})
        if tp in (list, tuple):
            return {"type": "array"}
        if tp in (set, frozenset):
            return {"type": "array", "uniqueItems": True}
        if tp is dict:
            return {"type": "object"}
        return {}  # a class the walker does not know: the JSON as is

    def _named(self, key: Any, cls: type, bound: dict[Any, Any]) -> Schema:
        """A reference to ``cls``'s schema under ``$defs`` (described on first sight, named
        before its fields are walked so that recursion meets the name)."""
        try:
            hash(key)
            seen = key
        except TypeError:  # an alias with an unhashable argument: by its text
            seen = ("unhashable", repr(key))
        known = self._names.get(seen)
        if known is None:
            known = self._claim(_def_name(key))
            self._names[seen] = known
            self.defs[known] = {}
            self.defs[known] = self._describe(cls, bound, _title(key))
        return {"$ref": f"#/$defs/{known}"}

    def _claim(self, name: str) -> str:
        taken, n = name, 1
        while taken in self.defs:
            n += 1
            taken = f"{name}{n}"
        return taken

    def _describe(self, cls: type, bound: dict[Any, Any], title: str) -> Schema:
        out: Schema = {"title": title}
        doc = _docstring(cls)
        if doc:
            out["description"] = doc
        if issubclass(cls, enum.Enum):
            return {**out, **_choice([_json_of(m) for m in cls])}
        hints = class_hints(cls)
        if issubclass(cls, tuple):  # a named tuple: an array of its fields, in order
            names: tuple[str, ...] = typing.cast(Any, cls)._fields
            defaults: dict[str, Any] = typing.cast(Any, cls)._field_defaults
            items = [self.schema(hints.get(n, Any)) for n in names]
            out.update(type="array", minItems=len([n for n in names if n not in defaults]))
            out["maxItems"] = len(names)
            if items:
                out["prefixItems"] = items
            return out
        properties: Schema = {}
        required: list[str] = []
        if dataclasses.is_dataclass(cls):
            for f in dataclasses.fields(cls):
                prop = self.schema(_bind(hints.get(f.name, Any), bound))
                if f.default is not dataclasses.MISSING:
                    prop = _with_default(prop, f.default)
                elif f.default_factory is dataclasses.MISSING and f.init:
                    required.append(f.name)
                properties[f.name] = prop
        else:  # a TypedDict
            keys = set(getattr(cls, "__required_keys__", ()))
            for key, hint in hints.items():
                origin = typing.get_origin(hint)
                if origin is typing.Required:
                    keys.add(key)
                elif origin is typing.NotRequired:
                    keys.discard(key)
                properties[key] = self.schema(_bind(hint, bound))
            required = [k for k in hints if k in keys]
        out.update(type="object", properties=properties, additionalProperties=False)
        if required:
            out["required"] = required
        return out

    def _pydantic(self, tp: type) -> Schema:
        """The model's own schema (``model_json_schema``), its ``$defs`` merged into ours."""
        if tp in self._names:
            return {"$ref": f"#/$defs/{self._names[tp]}"}
        name = self._claim(_def_name(tp))
        self._names[tp] = name
        self.defs[name] = {}
        try:
            own: Schema = typing.cast(Any, tp).model_json_schema(mode=self.mode)
        except Exception:  # a field pydantic cannot describe: the model takes any JSON
            own = {"title": _title(tp)}
        nested = own.pop("$defs", {})
        renames: dict[str, str] = {}
        for old in nested:  # claimed first: the schemas refer to each other
            renames[old] = self._claim(old)
            self.defs[renames[old]] = {}
        for old, schema in nested.items():
            self.defs[renames[old]] = _renamed(schema, renames)
        self.defs[name] = _renamed(own, renames)
        return {"$ref": f"#/$defs/{name}"}


# -- small pieces ---------------------------------------------------------------------------


def _array(items: Schema | None) -> Schema:
    return {"type": "array"} if items is None else {"type": "array", "items": items}


def _object(keys: Schema | None, values: Schema | None) -> Schema:
    out: Schema = {"type": "object"}
    if keys:
        out["propertyNames"] = keys
    if values is not None:
        out["additionalProperties"] = values
    return out


def _any_of(options: list[Schema]) -> Schema:
    unique: list[Schema] = []
    for option in options:
        if option not in unique:
            unique.append(option)
    if any(not o for o in unique):
        return {}  # one option takes anything: so does the union
    return unique[0] if len(unique) == 1 else {"anyOf": unique}


def _choice(values: list[Any]) -> Schema:
    return {"const": values[0]} if len(values) == 1 else {"enum": values}


def _json_of(value: Any) -> Any:
    """A Literal's or an enum member's JSON (a member: its value's)."""
    if isinstance(value, enum.Enum):
        value = value.value
    return encode_json(value)


def _with_default(schema: Schema, default: Any) -> Schema:
    try:
        return {**schema, "default": encode_json(default)}
    except (TypeError, ValueError):
        return schema  # a default JSON cannot hold: described without it


def _key_schema(tp: Any) -> Schema | None:
    """What the object keys of ``dict[tp, ...]`` look like, as text (None: any string)."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if isinstance(tp, typing.NewType):
        return _key_schema(tp.__supertype__)
    if typing.get_origin(tp) is Literal or (isinstance(tp, type) and issubclass(tp, enum.Enum)):
        members = typing.get_args(tp) if typing.get_origin(tp) is Literal else list(tp)
        return {"enum": [_key_text(m) for m in members]}
    if tp is int:
        return {"pattern": "^-?[0-9]+$"}
    if tp is bool:
        return {"enum": ["true", "false"]}
    if isinstance(tp, type):
        for module, name, fmt in _TEXT_FORMATS:
            cls = _module_type(module, name)
            if cls is not None and issubclass(tp, cls):
                return {"format": fmt}
    return None


def _key_text(member: Any) -> str:
    """A Literal's or an enum member's text as an object key (as ``json.dumps`` writes it)."""
    value = _json_of(member)
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _def_name(tp: Any) -> str:
    """``Box``, ``Box_int`` for ``Box[int]``: a name OpenAPI takes for a component."""
    return _NAME_CHARS.sub("_", _type_text(tp)).strip("_") or "Type"


def _title(tp: Any) -> str:
    """``Box``, ``Box[int]``: a named type as Python writes it."""
    origin = typing.get_origin(tp)
    if origin is None:
        return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
    return f"{_title(origin)}[{', '.join(_title(a) for a in typing.get_args(tp))}]"


def _type_text(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is None:
        return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
    head = getattr(origin, "__name__", None) or str(origin).replace("typing.", "")
    return "_".join([head, *(_type_text(a) for a in typing.get_args(tp))])


def _docstring(cls: type) -> str | None:
    """The class's own docstring (not a dataclass's generated signature, not a base's)."""
    doc = cls.__dict__.get("__doc__")
    if not isinstance(doc, str) or doc.startswith(f"{cls.__name__}("):
        return None  # a dataclass's or a named tuple's generated one
    return inspect.cleandoc(doc) or None


def _renamed(schema: Any, renames: dict[str, str]) -> Any:
    """``schema`` with each ``#/$defs/old`` reference pointing at ``#/$defs/renames[old]``."""
    if isinstance(schema, dict):
        out = {k: _renamed(v, renames) for k, v in schema.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            out["$ref"] = "#/$defs/" + renames.get(ref[len("#/$defs/") :], ref[len("#/$defs/") :])
        return out
    if isinstance(schema, list):
        return [_renamed(v, renames) for v in schema]
    return schema
