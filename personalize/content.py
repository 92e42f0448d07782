"""Editor-owned content: slots, their variants and the ordered segment -> variants mapping.

A content folder holds ``*.yaml`` files (sub-folders too; dot-files skipped), each a mapping
``slots: {name: slot}``; slot names are unique across files. Templates and Markdown files sit
next to them. ``content/README.md`` is the editors' guide; in short::

    slots:
      hero:
        reward: click                  # what counts as success: click (default) or conversion
        long_term_weight: 0.0          # 0: expected margin (p x value) ... 1: acceptance (p)
        suppress_purchased_days: 30    # never promote a product bought this recently
        cap: {views: 3, rest_hours: 24}  # seen 3 times without a click: rest one day
        variants:
          - id: welcome
            html: "<h1>Welcome</h1>"     # or template: hero.html, or markdown: "**Hi**"
          - id: boots
            template: boots.html         # Jinja2, sandboxed, autoescaped
            value: 20                    # margin; 1 when not given
            tags: {products: [boots-42], campaign: true}
            schedule: {days: [fri, sat], hours: [18, 2]}   # visitor's local time
        rules:                           # first match wins
          - segment: uk_visitors         # and/or when: <rule>, as in segments
            variants: [boots, welcome]
            pin: boots                   # optional: always this one when it is allowed
        default: [welcome]

Every problem is reported as ``path:line: problem``. :class:`ContentLibrary` only ever holds a
version that passed validation; a broken edit keeps the previous one and says why in
``errors``.

>>> library = ContentLibrary.from_data({"hero": {
...     "variants": [{"id": "a", "html": "<b>A</b>"}], "default": ["a"]}})
>>> library.slots["hero"].variants["a"].html
Markup('<b>A</b>')
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import jinja2
from markupsafe import Markup

from personalize.exceptions import ConfigurationError
from personalize.rules import Rule
from personalize.schedule import Schedule

if TYPE_CHECKING:
    from personalize.segments import SegmentLibrary

logger = logging.getLogger("personalize.content")

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class ContentError(ConfigurationError):
    """Content files are not valid; ``problems`` holds every ``path:line: problem``."""

    def __init__(self, problems: Collection[str]) -> None:
        self.problems = tuple(problems)
        n = len(self.problems)
        super().__init__("\n".join([f"{n} problem{'s' if n != 1 else ''} in content:", *problems]))


@dataclass(frozen=True, slots=True)
class Cap:
    """Frequency cap: after ``views`` exposures without a click the variant rests."""

    views: int
    rest_hours: float


@dataclass(frozen=True, slots=True)
class Variant:
    id: str
    html: Markup | None = None  # inline HTML or rendered Markdown: the same for everyone
    template: jinja2.Template | None = None  # rendered per visitor
    value: float = 1.0
    products: tuple[str, ...] = ()
    campaign: bool = False
    schedule: Schedule | None = None
    cap: Cap | None = None
    origin: str = ""


@dataclass(frozen=True, slots=True)
class MappingRule:
    """One entry of a slot's ordered mapping: who (segment and/or condition) -> variants."""

    variants: tuple[str, ...]
    segment: str | None = None
    when: Rule | None = None
    pin: str | None = None
    origin: str = ""


@dataclass(frozen=True, slots=True)
class Slot:
    name: str
    variants: Mapping[str, Variant]
    rules: tuple[MappingRule, ...]
    default: tuple[str, ...]
    pin: str | None = None
    reward: Literal["click", "conversion"] = "click"
    long_term_weight: float | None = None  # None: the engine's setting
    suppress_purchased_days: float | None = None  # None: the engine's setting
    cap: Cap | None = None
    origin: str = ""


def validate_content(directory: str | Path, segments: SegmentLibrary | None = None) -> list[str]:
    """Every problem in a content folder as ``path:line: problem`` (empty when all is well).

    Without ``segments``, a ``segments`` folder next to ``directory`` is used when it exists.

    >>> validate_content("no/such/folder")
    ['no/such/folder: no such folder']
    """
    from personalize.segments import SegmentLibrary

    folder = Path(directory)
    if segments is None and (folder.parent / "segments").is_dir():
        try:
            segments = SegmentLibrary(folder.parent / "segments")
        except ConfigurationError:
            segments = None  # the segments validator reports those problems
    try:
        load_content(folder, segments)
    except ContentError as exc:
        return list(exc.problems)
    return []


def load_content(directory: str | Path, segments: SegmentLibrary | None = None) -> dict[str, Slot]:
    """Load and validate a content folder; raises :class:`ContentError`."""
    from personalize.content_load import load_content as load

    return load(directory, segments)


def _stat(directory: Path) -> tuple[tuple[str, int, int], ...] | None:
    # Every file counts: templates and Markdown change what a variant shows too.
    try:
        return tuple(
            (str(p), st.st_mtime_ns, st.st_size)
            for p in sorted(directory.rglob("*"))
            if not any(part.startswith(".") for part in p.relative_to(directory).parts)
            for st in (p.stat(),)
        )
    except OSError:
        return None  # a file went away mid-scan: try again later


class ContentLibrary:
    """The slots of a content folder, hot-reloaded like a SegmentLibrary.

    Loading at start-up raises :class:`ContentError`. :meth:`reload_if_changed` stats the folder
    at most every ``reload_interval`` seconds and installs a new version only if it is valid;
    otherwise the previous one stays and :attr:`errors` lists the problems. ``segments`` (when
    given) validates the segment names the rules use.
    """

    def __init__(
        self,
        directory: str | Path | None,
        *,
        segments: SegmentLibrary | None = None,
        reload_interval: float = 1.0,  # seconds
    ) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.segments = segments
        self.reload_interval = reload_interval
        self.errors: tuple[str, ...] = ()
        self.version = 0  # bumped on every install: decisions cached per version
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self.slots: Mapping[str, Slot] = {}
        if self.directory is not None:
            self._signature = _stat(self.directory)
            self.slots = load_content(self.directory, segments)

    @classmethod
    def from_data(
        cls, slots: Mapping[str, object], *, segments: SegmentLibrary | None = None
    ) -> ContentLibrary:
        """A library from plain data (tests, programmatic use); templates are not available."""
        from personalize.content_load import parse_slots

        library = cls(None, segments=segments)
        library.slots = parse_slots({"slots": dict(slots)}, segments=segments)
        return library

    def __repr__(self) -> str:
        return f"<ContentLibrary {self.directory or '(data)'} slots={len(self.slots)}>"

    def reload_if_changed(self, *, force: bool = False) -> bool:
        """Reload when a file changed; True when a new version was installed."""
        if self.directory is None:
            return False
        now = time.monotonic()
        if not force and now - self._checked < self.reload_interval:
            return False
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self._checked = now
            signature = _stat(self.directory)
            if signature == self._signature and not force:
                return False
            self._signature = signature
            try:
                slots = load_content(self.directory, self.segments)
            except ContentError as exc:
                self.errors = exc.problems
                logger.error("content not reloaded, keeping the previous version:\n%s", exc)
                return False
            self.slots, self.errors = slots, ()
            self.version += 1
            logger.info("content reloaded from %s: %d slots", self.directory, len(slots))
            return True
        finally:
            self._lock.release()
