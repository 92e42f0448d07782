"""A faster ``__init__`` for the frozen, slotted dataclasses built on every request.

A frozen dataclass's generated ``__init__`` sets each field with
``object.__setattr__(self, name, value)``: a global lookup, an attribute lookup and a generic
attribute write per field, about twice the cost of a plain class. For the few records the
middleware builds per request (a page view of 13 fields, the visitor context) that is a
tenth of its own work. :func:`fast_init` replaces ``__init__`` with one of the same signature
that writes each slot through its member descriptor, bound once. Everything else stays the
dataclass's: fields, ``repr``, equality, hashing, and assignment raising
``FrozenInstanceError``.

>>> from dataclasses import FrozenInstanceError, dataclass, field
>>> @fast_init
... @dataclass(frozen=True, slots=True)
... class Point:
...     x: float
...     y: float = 0.0
...     tags: tuple[str, ...] = field(default_factory=tuple)
>>> Point(1.0), Point(1.0, y=2.0, tags=("a",)) == Point(1.0, 2.0, ("a",))
(Point(x=1.0, y=0.0, tags=()), True)
>>> try:
...     Point(1.0).x = 2.0
... except FrozenInstanceError:
...     print("still frozen")
still frozen
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

_FACTORY = object()  # "use the default factory" in a generated signature


def fast_init(cls: type[T]) -> type[T]:
    """Give the frozen, slotted dataclass ``cls`` a faster ``__init__`` (same signature)."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"fast_init needs a frozen dataclass with slots=True, not {cls!r}")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"fast_init does not run __post_init__ ({cls.__name__} has one)")
    namespace: dict[str, Any] = {"_FACTORY": _FACTORY}
    signature: list[str] = []
    body: list[str] = []
    keyword_only = False
    for i, f in enumerate(dataclasses.fields(cls)):  # type: ignore[arg-type]
        if not f.init:
            raise TypeError(f"fast_init does not handle init=False fields ({f.name})")
        if f.kw_only and not keyword_only:
            signature.append("*")
            keyword_only = True
        namespace[f"_set{i}"] = getattr(cls, f.name).__set__
        value = f.name
        if f.default is not dataclasses.MISSING:
            namespace[f"_default{i}"] = f.default
            signature.append(f"{f.name}=_default{i}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory{i}"] = f.default_factory
            signature.append(f"{f.name}=_FACTORY")
            value = f"_factory{i}() if {f.name} is _FACTORY else {f.name}"
        else:
            signature.append(f.name)
        body.append(f"    _set{i}(self, {value})")
    source = f"def __init__(self, {', '.join(signature)}):\n" + "\n".join(body or ["    pass"])
    exec(source, namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    type.__setattr__(cls, "__init__", init)
    return cls
