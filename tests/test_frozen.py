"""fast_init: the same constructor as the dataclass's, only faster."""

from __future__ import annotations

import dataclasses
from dataclasses import FrozenInstanceError, dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from personalize.context import Device, Source, VisitorContext
from personalize.profiles.cookie import CookieState, LoadedCookie
from personalize.profiles.pageviews import Hit
from personalize.util.frozen import fast_init


@dataclass(frozen=True, slots=True)
class Plain:
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)
    d: int | None = field(default=None, kw_only=True)


@fast_init
@dataclass(frozen=True, slots=True)
class Fast:  # the same fields as Plain
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)
    d: int | None = field(default=None, kw_only=True)


@dataclass(frozen=True, slots=True)
class PlainWide:
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)
    d: int | None = field(default=None, kw_only=True)
    g: float = field(default=0.5, kw_only=True)
    h: str | None = field(default=None, kw_only=True)


@fast_init
@dataclass(frozen=True, slots=True)
class Wide:  # the same fields as PlainWide: enough for the twin-class constructor
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)
    d: int | None = field(default=None, kw_only=True)
    g: float = field(default=0.5, kw_only=True)
    h: str | None = field(default=None, kw_only=True)


def as_tuple(obj: Any) -> tuple[Any, ...]:
    return tuple(getattr(obj, f.name) for f in dataclasses.fields(obj))


@given(
    a=st.integers(),
    rest=st.fixed_dictionaries(
        {}, optional={"b": st.text(), "c": st.lists(st.integers()), "d": st.integers()}
    ),
)
def test_same_values_as_the_dataclass_constructor(a: int, rest: dict[str, Any]) -> None:
    assert as_tuple(Fast(a, **rest)) == as_tuple(Plain(a, **rest))
    assert as_tuple(Fast(a=a, **rest)) == as_tuple(Plain(a=a, **rest))


@given(
    a=st.integers(),
    rest=st.fixed_dictionaries(
        {},
        optional={
            "b": st.text(),
            "c": st.lists(st.integers()),
            "g": st.floats(allow_nan=False),
            "h": st.none() | st.text(),
            "d": st.integers(),
        },
    ),
)
def test_the_twin_class_constructor_gives_the_same_values(a: int, rest: dict[str, Any]) -> None:
    wide = Wide(a, **rest)
    assert type(wide) is Wide and "__init__" not in Wide.__dict__  # built by __new__
    assert as_tuple(wide) == as_tuple(PlainWide(a, **rest))
    assert as_tuple(Wide(a=a, **rest)) == as_tuple(PlainWide(a=a, **rest))


def test_copies_and_pickles_go_through_the_constructor() -> None:
    import copy
    import pickle

    for record in (Wide(1, c=[2], d=3), Fast(1, d=2), Hit(1.0, "/", device_id="d")):
        assert copy.copy(record) == record and copy.deepcopy(record) == record
        assert pickle.loads(pickle.dumps(record)) == record
    context = VisitorContext(path="/x")
    assert copy.deepcopy(context) == context and pickle.loads(pickle.dumps(context)) == context


def test_subclasses_construct_like_dataclasses() -> None:
    class Same(Wide):
        pass

    @dataclass(frozen=True, slots=True)
    class More(Wide):
        g: int = 7

    same, more = Same(1, "x", d=4), More(1, g=8)
    assert type(same) is Same and as_tuple(same) == (1, "x", [], 4, 0.5, None)
    assert type(more) is More and (more.a, more.g, more.c) == (1, 8, [])
    assert copy_of(more) == more
    with pytest.raises(FrozenInstanceError):
        more.g = 9  # type: ignore[misc]


def copy_of(record: Any) -> Any:
    import copy

    return copy.copy(record)


def test_default_factories_give_a_fresh_value_each_time() -> None:
    first, second = Fast(1), Fast(2)
    assert first.c == [] and first.c is not second.c


@pytest.mark.parametrize(
    "call",
    [
        lambda cls: cls(),  # a required field missing
        lambda cls: cls(1, "b", [], 4),  # d is keyword-only
        lambda cls: cls(1, e=5),  # no such field
        lambda cls: cls(1, a=1),  # given twice
    ],
)
def test_the_same_calls_are_refused(call: Any) -> None:
    for cls in (Plain, Fast, PlainWide, Wide):
        with pytest.raises(TypeError):
            call(cls)


def test_the_request_records_stay_frozen_hashable_dataclasses() -> None:
    hit = Hit(1.0, "/", channel="internal", device_id="d")
    assert hit == Hit(ts=1.0, path="/", channel="internal", device_id="d")
    assert hit.source is None and hash(hit) == hash(Hit(1.0, "/", "internal", device_id="d"))
    context = VisitorContext(path="/x")
    assert context.device == Device() and context.source == Source() and context.geo is None
    loaded = LoadedCookie(CookieState("v"))
    assert loaded.reissue is False and loaded.state == CookieState("v")
    for record in (hit, context, loaded):
        name = dataclasses.fields(record)[0].name
        with pytest.raises(FrozenInstanceError):
            setattr(record, name, None)
    assert [f.name for f in dataclasses.fields(Hit)][:3] == ["ts", "path", "channel"]


def test_refuses_classes_it_cannot_speed_up() -> None:
    @dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(frozen=True, slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    for cls in (NotFrozen, NoSlots, PostInit):
        with pytest.raises(TypeError):
            fast_init(cls)
