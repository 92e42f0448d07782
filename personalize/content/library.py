"""Editor-owned content: slots, their variants and the ordered segment -> variants mapping.

A content folder holds ``*.yaml`` files (sub-folders too; dot-files skipped), each a mapping
``slots: {name: slot}``; slot names are unique across files. Templates and Markdown files sit
next to them. ``content/README.md`` is the editors' guide; in short::

    slots:
      hero:
        reward: click                  # what counts as success: click (default) or conversion
        long_term_weight: 0.0          # 0: expected margin (p x value) ... 1: acceptance (p)
        suppress_purchased_days: 30    # never promote a product bought this recently
        holdout: 0.1                   # a further 10 % see only the default here (0.05..0.2)
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

A file may also set the site's holdout once, at the top: ``holdout: 0.1`` (it overrides
``Settings.holdout``; see :mod:`personalize.content.holdout`).

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
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from personalize.content.loading import load_folder, parse_slots
from personalize.content.slots import Slot
from personalize.exceptions import ContentError
from personalize.util.reloading import FolderWatch

if TYPE_CHECKING:
    from personalize.rules.segments import SegmentLibrary

__all__ = ["ContentLibrary"]

logger = logging.getLogger("personalize.content")


def _content_files(directory: Path) -> list[Path]:
    # Every file counts: templates and Markdown change what a variant shows too.
    return [
        p
        for p in sorted(directory.rglob("*"))
        if not any(part.startswith(".") for part in p.relative_to(directory).parts)
    ]


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
        self.errors: tuple[str, ...] = ()
        self.version = 0  # bumped on every install: decisions cached per version
        self.slots: Mapping[str, Slot] = {}
        self.holdout: float | None = None  # the site's share when a content file sets it
        self.holdout_origin = ""  # path:line of that file
        self._watch: FolderWatch | None = None
        if self.directory is not None:
            self._watch = FolderWatch(self.directory, _content_files, interval=reload_interval)
            loaded = load_folder(self.directory, segments)
            self.slots, self.holdout = loaded.slots, loaded.holdout
            self.holdout_origin = loaded.holdout_origin

    @classmethod
    def from_data(
        cls, slots: Mapping[str, object], *, segments: SegmentLibrary | None = None
    ) -> ContentLibrary:
        """A library from plain data (tests, programmatic use); templates are not available."""
        library = cls(None, segments=segments)
        library.slots = parse_slots({"slots": dict(slots)}, segments=segments)
        return library

    def __repr__(self) -> str:
        return f"<ContentLibrary {self.directory or '(data)'} slots={len(self.slots)}>"

    def reload_if_changed(self, *, force: bool = False) -> bool:
        """Reload when a file changed; True when a new version was installed."""
        if self._watch is None:
            return False
        return self._watch.poll(self._reload, force=force)

    def _reload(self) -> bool:
        assert self.directory is not None
        try:
            loaded = load_folder(self.directory, self.segments)
        except ContentError as exc:
            self.errors = exc.problems
            logger.error("content not reloaded, keeping the previous version:\n%s", exc)
            return False
        slots = loaded.slots
        self.slots, self.errors = slots, ()
        self.holdout, self.holdout_origin = loaded.holdout, loaded.holdout_origin
        self.version += 1
        logger.info("content reloaded from %s: %d slots", self.directory, len(slots))
        return True
