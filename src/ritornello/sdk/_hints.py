"""Resolving annotations: the hints of a function, a class, and a step's return value.

- ``type_hints(obj, extras=False)`` is ``typing.get_type_hints`` that does not give up: when
  one annotation does not resolve (say ``ctx: Context`` imported only under
  ``TYPE_CHECKING``), the others are resolved one by one and that one is left out.
- ``return_hint(fn)`` is the type a step function's result is journaled as: ``X`` for
  ``async def f() -> X`` and for ``def f() -> Awaitable[X]`` (or ``Coroutine[..., X]``), None
  ("untyped") for anything it cannot tell.
- ``class_hints(tp)`` is ``type_hints(tp, extras=True)`` for the typed-JSON walker, which
  asks for it on every dataclass, TypedDict and named tuple it decodes.

Invariants: none of them raises for an annotation (what does not resolve is left out, or
None); each resolves in the namespace of the annotated object's own module, never this one's.
Results are cached in dictionaries keyed weakly by the function or class; a class's hints are
cached only once every annotation resolved, so a forward reference defined later is tried
again on the next call.
"""

from __future__ import annotations

import collections.abc as abc
import functools
import sys
import types
import typing
import weakref
from typing import Any

_AWAITABLES = frozenset({abc.Coroutine, abc.Awaitable})


def return_hint(fn: Any) -> Any:
    """The resolved return annotation of a step function, or None for "untyped".

    ``async def f() -> X`` and ``def f() -> Awaitable[X]`` (or ``Coroutine[..., X]``) are
    ``X``; a ``functools.partial`` is its function's; a lambda, a builtin, a class, a
    function without a return annotation, or one that does not resolve are None."""
    if type(fn) is types.FunctionType:  # (the usual step: a plain function)
        target: Any = fn
    else:
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
    annotations = getattr(target, "__annotations__", None) or {}
    if "return" not in annotations or getattr(target, "__name__", "") == "<lambda>":
        return None
    raw = annotations["return"]
    # Cached by code object: a step function defined inside the handler is a new function
    # on every attempt, with the same code (and, unless it changed, the same annotation).
    key = getattr(target, "__code__", target)
    known = _RETURNS.get(key)
    if known is not None and (known[0] is raw or known[0] == raw):
        return known[1]
    resolved = _return_annotation(target)
    if len(_RETURNS) >= _RETURNS_MAX:  # code made at run time (exec): never grow unbounded
        _RETURNS.clear()
    _RETURNS[key] = (raw, resolved)
    return resolved


#: code object (or function) -> (its raw return annotation, resolved). A plain dict: a
#: weak one costs more per lookup than resolving is worth saving on the hot path.
_RETURNS: dict[Any, tuple[Any, Any]] = {}
_RETURNS_MAX = 4096


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


def class_hints(tp: type) -> dict[str, Any]:
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
