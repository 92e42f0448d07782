"""Parsing and validating content YAML into :mod:`personalize.content.slots` records, with lines.

Each problem is collected as ``(file, line, message)``; nothing is installed unless there are
none. Lines come from the composed YAML nodes (:mod:`personalize.util.yamlfile`).

>>> load_content("no/such/folder")
Traceback (most recent call last):
...
personalize.exceptions.ContentError: 1 problem in content:
no/such/folder: no such folder
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml

from personalize.content.holdout import share_problem
from personalize.content.parsing import Problems, SlotParser
from personalize.content.render import make_environment
from personalize.content.slots import Slot
from personalize.exceptions import ConfigurationError, ContentError
from personalize.rules.segments import SegmentLibrary
from personalize.util.yamlfile import Located, child_node, duplicate_keys, parse_yaml, yaml_files


@dataclass(slots=True)
class Loaded:
    """What a content folder holds: its slots, and the site's holdout share when a file sets
    one (a top-level ``holdout:``; at most one file may)."""

    slots: dict[str, Slot] = field(default_factory=dict)
    holdout: float | None = None
    holdout_origin: str = ""  # path:line of the file that sets it
    origins: dict[str, str] = field(default_factory=dict)  # slot name -> path:line
    problems: Problems = field(default_factory=list)


def load_folder(directory: str | Path, segments: SegmentLibrary | None = None) -> Loaded:
    """Load and validate a content folder; raises :class:`ContentError`."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ContentError([f"{folder}: no such folder"])
    env = make_environment(folder)
    loaded = Loaded()
    for path in yaml_files(folder):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            loaded.problems.append((str(path), 1, f"cannot read: {exc}"))
            continue
        _parse(text, str(path), env, folder, loaded, segments)
    if loaded.problems:
        loaded.problems.sort(key=lambda p: (p[0], p[1]))
        raise ContentError([f"{file}:{line}: {msg}" for file, line, msg in loaded.problems])
    return loaded


def load_content(directory: str | Path, segments: SegmentLibrary | None = None) -> dict[str, Slot]:
    """The slots of a content folder; raises :class:`ContentError`."""
    return load_folder(directory, segments).slots


def parse_slots(
    data: Mapping[str, Any], *, segments: SegmentLibrary | None = None, where: str = "<data>"
) -> dict[str, Slot]:
    """Slots from plain data ``{"slots": {...}}`` (lines refer to its YAML dump); no templates."""
    loaded = Loaded()
    text = yaml.safe_dump(dict(data), sort_keys=False)
    _parse(text, where, make_environment(None), None, loaded, segments)
    if loaded.problems:
        raise ContentError([f"{file}:{line}: {msg}" for file, line, msg in loaded.problems])
    return loaded.slots


_SHAPE = "a content file is a mapping of slots: {name: slot} and, once per site, holdout: share"


def _parse(
    text: str,
    shown: str,
    env: jinja2.Environment,
    folder: Path | None,
    loaded: Loaded,
    segments: SegmentLibrary | None,
) -> None:
    problems, origins = loaded.problems, loaded.origins
    root, data, errors = parse_yaml(text)
    problems.extend((shown, line, message) for line, message in errors)
    if root is None:
        return
    problems.extend((shown, line, msg) for line, msg in duplicate_keys(root))
    if (
        not isinstance(data, Mapping)
        or not data
        or set(data) - {"slots", "holdout"}
        or not isinstance(data.get("slots", {}), dict)
    ):
        problems.append((shown, 1, _SHAPE))
        return
    if "holdout" in data:
        _site_holdout(data["holdout"], shown, Located(root, ("holdout",)).line(), loaded)
    for name, item in data.get("slots", {}).items():
        at = Located(root, ("slots", name))
        node = child_node(root, "slots", key=False)
        found = child_node(node, name, key=True) if node is not None else None
        line = found.start_mark.line + 1 if found is not None else 1
        if name in origins:
            message = f"duplicate slot {name!r} (first defined at {origins[name]})"
            problems.append((shown, line, message))
            continue
        origins[name] = f"{shown}:{line}"
        try:
            slot = SlotParser(shown, at, env, folder, problems, segments).slot(str(name), item)
        except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
            # A shape the checks above did not foresee: a problem for the editor, not a crash.
            problems.append((shown, line, f"slot {name!r} is not valid: {exc}"))
            continue
        if slot is not None:
            loaded.slots[slot.name] = slot


def _site_holdout(value: object, shown: str, line: int, loaded: Loaded) -> None:
    if loaded.holdout_origin:
        message = f"the site's holdout is set twice (first at {loaded.holdout_origin})"
        loaded.problems.append((shown, line, message))
        return
    problem = share_problem(value)
    if problem is not None:
        loaded.problems.append((shown, line, f"site {problem}"))
        return
    loaded.holdout = float(value)  # type: ignore[arg-type]
    loaded.holdout_origin = f"{shown}:{line}"


def validate_content(directory: str | Path, segments: SegmentLibrary | None = None) -> list[str]:
    """Every problem in a content folder as ``path:line: problem`` (empty when all is well).

    Without ``segments``, a ``segments`` folder next to ``directory`` is used when it exists.

    >>> validate_content("no/such/folder")
    ['no/such/folder: no such folder']
    """
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
