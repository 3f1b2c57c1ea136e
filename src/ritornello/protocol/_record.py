"""Small value classes without ``dataclasses``.

A ``@dataclass`` generates and compiles its methods when its class is created: about 0.4 ms per
class, at the import of every module that defines one. The protocol's messages and the SDK's
value classes are on a handler module's import path (a Lambda's cold start), so they are plain
classes with their fields in order in ``_fields`` (and ``__slots__ = _fields``: a literal
``__slots__`` would be sorted by the linter) and a written ``__init__``, compiled into bytecode
once, and take equality, hashing, ``repr`` and ``replace`` from :class:`Record`.

Invariants: a record's fields are its ``_fields``, in the order ``__init__`` takes them; two
records are equal when they are of the same class with equal fields; a record is never changed
after ``__init__`` (``replace`` makes a changed copy). :class:`FrozenRecord` enforces the last
one (assignment raises ``AttributeError``) for the classes users build themselves; the hot
path's messages rely on the convention, so their ``__init__`` stays a plain assignment per
field.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self


class Record:
    """Equality, hash, ``repr``, pickling and ``replace`` from ``_fields``."""

    #: The fields, in the order ``__init__`` takes them; a subclass's ``__slots__``.
    _fields: ClassVar[tuple[str, ...]] = ()
    __slots__ = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in self._fields])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__qualname__}({fields})"

    def __reduce__(self) -> tuple[type[Self], tuple[Any, ...]]:
        # pickled as a constructor call (``__init__`` takes the fields in order), which
        # also works for a frozen record, whose slots cannot be set from outside
        return type(self), self._values()

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (field name -> value); an unknown name is a TypeError."""
        values = {name: getattr(self, name) for name in self._fields}
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"{type(self).__qualname__} has no field {sorted(unknown)[0]!r}")
        values.update(changes)
        return type(self)(**values)


class FrozenRecord(Record):
    """A :class:`Record` whose fields cannot be assigned after ``__init__``, which sets them
    with :meth:`_init`."""

    __slots__ = ()

    def _init(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__qualname__} is frozen: cannot assign {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__qualname__} is frozen: cannot delete {name!r}")
