"""A slot's editor mapping, evaluated for one visitor: which rule allows which variants, why.

Segments are evaluated lazily, only as far as the ordered rules need them, unless the request
already evaluated them all (then those memberships are reused). Template variants render with
``variant``, ``attributes``, ``profile``, ``segments`` (computed only if used) and ``known``.

>>> from personalize.content.library import ContentLibrary
>>> slot = ContentLibrary.from_data({"hero": {"variants": [{"id": "a", "html": "A"}],
...     "rules": [{"when": {"attribute": "country", "operator": "eq", "value": "GB"},
...                "variants": ["a"]}], "default": ["a"]}}).slots["hero"]
>>> rule, label, reasons, allowed = match_rule(slot, {"country": "GB"}, Members(None, None, {}))
>>> label.endswith("condition"), reasons, allowed
(True, ('country is GB',), ('a',))
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from personalize.content.render import render_memo
from personalize.content.slots import MappingRule, Slot, Variant
from personalize.rules.stated import NOT_ME

if TYPE_CHECKING:
    from personalize.content.subject import Subject
    from personalize.rules.segments import Membership, SegmentLibrary

NO_RULE = "no rule matched: the default variants"  # the explanation's rule when none matched
_PLAIN = frozenset({str, int, float, bool, type(None), frozenset})  # what attributes hold
_MATCHES_SIZE = 8192  # (slot, values) pairs remembered


class Members:
    """The visitor's segments, evaluated only as far as the mapping needs them.

    ``done`` are the memberships when the request already evaluated every segment.
    """

    __slots__ = ("_attrs", "_done", "_known", "_library")

    def __init__(
        self,
        done: Sequence[Membership] | None,
        library: SegmentLibrary | None,
        attrs: Any,
        known: dict[str, bool] | None = None,
    ) -> None:
        self._done: dict[str, tuple[str, ...]] | None = None
        if done is not None:
            self._done = {m.segment: m.reasons for m in done}
        self._library, self._attrs = library, attrs
        # Segment -> member, for these attributes and this library version: shared by the
        # slots of one request, so each segment is evaluated once per page.
        self._known = {} if known is None else known

    def __contains__(self, name: str) -> bool:
        if self._done is not None:
            return name in self._done
        found = self._known.get(name)
        if found is None:
            library = self._library
            found = self._known[name] = library is not None and library.matches(name, self._attrs)
        return found

    def reasons(self, name: str) -> tuple[str, ...]:
        if self._done is not None:
            return self._done.get(name, ())
        assert self._library is not None
        return tuple(self._library.get(name).rule.explain(self._attrs))

    def names(self) -> list[str]:
        if self._done is not None:
            return sorted(self._done)
        if self._library is not None:
            return [m.segment for m in self._library.evaluate(self._attrs)]
        return []


class Matches:
    """Each slot's matching mapping entry, remembered by the values (and their types: True
    is not 1 to a rule) of the attributes its mapping reads, its conditions' and its
    segments', for one version of the content and of the segments: visitors alike in those
    values match once. A slot whose mapping reads the time (an age) is matched every time."""

    __slots__ = ("_found", "_reads", "content", "installed", "segments")

    def __init__(self, segments: SegmentLibrary | None, installed: object, content: int) -> None:
        self.segments, self.installed, self.content = segments, installed, content
        self._reads: dict[str, tuple[str, ...] | None] = {}
        self._found: dict[tuple[Any, ...], MappingRule | None] = {}

    def fits(self, segments: SegmentLibrary | None, installed: object, content: int) -> bool:
        return segments is self.segments and installed is self.installed and content == self.content

    def rule(self, slot: Slot, attrs: dict[str, Any], members: Members) -> MappingRule | None:
        """:func:`first_rule` of ``slot``, remembered."""
        reads = self._reads.get(slot.name, ())
        if reads == ():
            reads = self._reads[slot.name] = slot_reads(slot, self.segments)
        if reads is None:
            return first_rule(slot, attrs, members)
        values = tuple(map(attrs.get, reads))
        types = tuple(map(type, values))
        if not _PLAIN.issuperset(types):  # a list in a trait, a caller's own object
            return first_rule(slot, attrs, members)
        key = (slot.name, values, types)
        found = self._found
        try:
            if key in found:
                return found[key]
        except Exception:  # (a frozenset of something unhashable)
            return first_rule(slot, attrs, members)
        rule = found[key] = first_rule(slot, attrs, members)
        if len(found) > _MATCHES_SIZE:
            with contextlib.suppress(StopIteration, RuntimeError, KeyError):  # (threads)
                del found[next(iter(found))]  # the oldest: first in, first out
        return rule


def slot_reads(slot: Slot, library: SegmentLibrary | None) -> tuple[str, ...] | None:
    """The attributes ``slot``'s mapping reads, or None when it reads the time."""
    names: set[str] = set()
    for rule in slot.rules:
        if rule.when is not None:
            if rule.when.clock:
                return None
            names |= rule.when.attributes
        if rule.segment is not None and library is not None and rule.segment in library:
            segment = library.get(rule.segment).rule
            if segment.clock:
                return None
            names |= segment.attributes | {NOT_ME}
    return tuple(sorted(names))


class Memo:
    """What one visitor's attributes decide in every slot, for one version of the content and
    of the segments: segment memberships and each slot's matching mapping entry (a page
    deciding several slots, or one slot twice, evaluates each rule once), over ``matches``
    (shared by visitors alike)."""

    __slots__ = ("_rules", "attrs", "content", "known", "matches", "segments")

    def __init__(self, attrs: Any, segments: object, content: int, matches: Matches) -> None:
        self.attrs, self.segments, self.content = attrs, segments, content
        self.matches = matches
        self.known: dict[str, bool] = {}
        self._rules: dict[str, MappingRule | None] = {}

    def fits(self, attrs: Any, segments: object, content: int) -> bool:
        return attrs is self.attrs and segments is self.segments and content == self.content

    def rule(self, slot: Slot, members: Members, *, done: bool) -> MappingRule | None:
        """:func:`first_rule` of ``slot``, remembered (``done``: the request evaluated every
        segment already; those memberships are used as they are, and not remembered)."""
        rules = self._rules
        if slot.name in rules:
            return rules[slot.name]
        if done:
            found = first_rule(slot, self.attrs, members)
        else:
            found = self.matches.rule(slot, self.attrs, members)
        rules[slot.name] = found
        return found


def match_rule(
    slot: Slot, attrs: dict[str, Any], members: Members
) -> tuple[MappingRule | None, str, tuple[str, ...], tuple[str, ...]]:
    """The first entry of the slot's mapping the visitor matches, with the reasons."""
    rule = first_rule(slot, attrs, members)
    if rule is None:
        return None, NO_RULE, (), slot.default
    return rule, rule_label(rule), rule_reasons(rule, attrs, members), rule.variants


def first_rule(slot: Slot, attrs: dict[str, Any], members: Members) -> MappingRule | None:
    """The first entry of the slot's mapping the visitor matches (None: the default)."""
    for rule in slot.rules:
        if rule.segment is not None and rule.segment not in members:
            continue
        if rule.when is not None and not rule.when.evaluate(attrs):
            continue
        return rule
    return None


def rule_label(rule: MappingRule | None) -> str:
    """How explanations name a mapping entry: its file, line and who it is for."""
    return NO_RULE if rule is None else _label(rule.origin, rule.segment)


@functools.lru_cache(maxsize=4096)
def _label(origin: str, segment: str | None) -> str:
    who = f"segment {segment}" if segment else "condition"
    # Only the file name: explanations reach visitors, who need not see server paths.
    path, _, line = origin.rpartition(":")
    return f"rule at {Path(path).name}:{line}: {who}"


def rule_reasons(rule: MappingRule, attrs: dict[str, Any], members: Members) -> tuple[str, ...]:
    """Why the visitor matched ``rule``: its segment's reasons, then its condition's."""
    reasons = members.reasons(rule.segment) if rule.segment is not None else ()
    if rule.when is not None:
        reasons = (*reasons, *rule.when.explain(attrs))
    return reasons


def rule_attributes(rule: MappingRule | None, library: SegmentLibrary | None) -> frozenset[str]:
    """The attributes a mapping rule reads: its condition's and its segment's."""
    if rule is None:
        return frozenset()
    read = rule.when.attributes if rule.when is not None else frozenset()
    if rule.segment is not None and library is not None and rule.segment in library:
        read = read | library.get(rule.segment).rule.attributes
    return read


class LazyNames:
    """The visitor's segment names for a template, evaluated only if the template uses them."""

    __slots__ = ("_get", "_names")

    def __init__(self, get: Callable[[], list[str]]) -> None:
        self._get = get
        self._names: list[str] | None = None

    def _all(self) -> list[str]:
        if self._names is None:
            self._names = names = self._get()
            return names
        return self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __contains__(self, name: object) -> bool:
        return name in self._all()

    def __len__(self) -> int:
        return len(self._all())


def render_variant(variant: Variant, visitor: Subject, segments: LazyNames) -> Markup:
    """``variant``'s template rendered for ``visitor`` (from memory when it reads nothing
    but the variant, whether the visitor is known and named attributes: see
    :class:`~personalize.content.render.RenderMemo`)."""
    assert variant.template is not None
    # The sandboxed, autoescaping environment rendered it: it is safe to mark up.
    return render_memo(variant.template).render(
        variant.id,
        visitor.attributes,
        visitor.is_known,
        lambda: {"profile": visitor.profile, "segments": segments},
    )
