"""Editing the holdout shares in the content files: the site's top-level ``holdout:`` and each
slot's own, line by line as :mod:`~personalize.web.admin.mapping_edit` edits mappings.

Only the value of the ``holdout:`` line changes (or one line is added); every other byte of the
file stays. The new files must parse back to exactly the intended change and pass the content
loader on a copy of the folder; then they are written atomically, under the folder's lock.

>>> print(set_slot_holdout("slots:\\n  hero:\\n    variants: [{id: a, html: A}]\\n"
...                        "    default: [a]\\n", "hero", 0.1), end="")
slots:
  hero:
    variants: [{id: a, html: A}]
    default: [a]
    holdout: 0.1
>>> print(set_site_holdout("holdout: 0.05  # the comparison group\\n", 0.2), end="")
holdout: 0.2  # the comparison group
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from personalize.content.holdout import share_problem
from personalize.content.library import ContentLibrary
from personalize.exceptions import EditError
from personalize.web.admin.mapping_edit import (
    folder_lock,
    last_line,
    slot_file,
    slot_node,
    validate_copy,
    write_atomically,
)

if TYPE_CHECKING:
    from starlette.datastructures import MultiDict

    from personalize.rules.segments import SegmentLibrary

__all__ = ["SITE_FILE", "HoldoutForm", "read_holdout_form", "save_holdouts"]

SITE_FILE = "holdout.yaml"  # where the site's share goes when no content file sets it yet
_SITE_TEXT = "# The share of visitors who see only the defaults, to measure personalization.\n"


@dataclass(frozen=True, slots=True)
class HoldoutForm:
    """The shares an editor changed: the site's (None: unchanged) and some slots'."""

    site: float | None = None
    slots: dict[str, float] = field(default_factory=dict)


def _share(text: str, what: str, problems: list[str]) -> float | None:
    try:
        value = float(text.strip().rstrip("%").strip() or "0")
    except ValueError:
        problems.append(f"{what}: {text[:20]!r} is not a number")
        return None
    if text.strip().endswith("%"):
        value /= 100
    problem = share_problem(value)
    if problem is not None:
        problems.append(f"{what}: {problem}")
        return None
    return value


def read_holdout_form(form: MultiDict, library: ContentLibrary, current: float) -> HoldoutForm:
    """The changed shares of a submitted form (``site`` and ``slot-<name>`` fields, a share
    like 0.1 or 10 %); :class:`EditError` listing every bad one."""
    problems: list[str] = []
    site = None
    if "site" in form:
        site = _share(form["site"], "the site's holdout", problems)
        if site == current:
            site = None
    slots: dict[str, float] = {}
    for name, slot in library.slots.items():
        given = form.get(f"slot-{name}")
        if given is None:
            continue
        share = _share(given, f"slot {name}", problems)
        if share is not None and share != slot.holdout:
            slots[name] = share
    if problems:
        raise EditError(problems)
    return HoldoutForm(site, slots)


def _replace_value(text: str, node: yaml.Node, value: str) -> str:
    """``text`` with the one-line scalar ``node`` replaced by ``value``."""
    start, end = node.start_mark, node.end_mark
    if not isinstance(node, yaml.ScalarNode) or start.line != end.line:
        raise EditError(["the holdout is not written as a plain number; edit the file by hand"])
    lines = text.splitlines(keepends=True)
    line = lines[start.line]
    lines[start.line] = line[: start.column] + value + line[end.column :]
    return "".join(lines)


def set_site_holdout(text: str, share: float) -> str:
    """``text`` (a content file) with its top-level ``holdout:`` set to ``share``."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "holdout":
                return _replace_value(text, value, f"{share:g}")
    if root is not None and (not isinstance(root, yaml.MappingNode) or root.flow_style):
        raise EditError(["the file is not a block mapping; edit it by hand"])
    return (text if not text or text.endswith("\n") else text + "\n") + f"holdout: {share:g}\n"


def set_slot_holdout(text: str, name: str, share: float) -> str:
    """``text`` with slot ``name``'s ``holdout:`` set to ``share`` (added when absent)."""
    slot = slot_node(yaml.compose(text, Loader=yaml.SafeLoader), name)
    for key, value in slot.value:
        if key.value == "holdout":
            return _replace_value(text, value, f"{share:g}")
    if not slot.value:
        raise EditError([f"slot {name!r} has no keys to edit"])
    first = slot.value[0][0]
    lines = text.splitlines(keepends=True)
    indent = lines[first.start_mark.line][: first.start_mark.column]
    if indent.strip():
        raise EditError([f"slot {name!r} shares a line with other keys; edit it by hand"])
    at = last_line(slot) + 1
    if at > 0 and not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    lines.insert(at, f"{indent}holdout: {share:g}\n")
    return "".join(lines)


def _expect(old: str, new: str, change: Mapping[str, Any]) -> None:
    """The new file must say exactly the old one plus ``change`` (a top-level holdout, or
    ``{"slots": {name: share}}``)."""
    before = yaml.safe_load(old) or {}
    after = yaml.safe_load(new)
    expected = dict(before)
    if "holdout" in change:
        expected["holdout"] = change["holdout"]
    for name, share in change.get("slots", {}).items():
        slots = dict(expected["slots"])
        slots[name] = {**slots[name], "holdout": share}
        expected["slots"] = slots
    if after != expected:
        raise EditError(["internal error: the edited file would not say what you asked"], 500)


def save_holdouts(
    library: ContentLibrary, form: HoldoutForm, segments: SegmentLibrary | None
) -> list[Path]:
    """Write the changed shares (validated on a copy first) and return the files written.
    Blocking: run it in a thread."""
    folder = library.directory
    if folder is None:
        raise EditError(["this content cannot be edited here (no folder)"], 404)
    with folder_lock(folder):
        texts: dict[Path, tuple[str, str]] = {}  # path -> (old, new)
        changes: dict[Path, dict[str, Any]] = {}

        def current(path: Path) -> str:
            if path in texts:
                return texts[path][1]
            return path.read_text(encoding="utf-8") if path.exists() else ""

        if form.site is not None:
            origin = library.holdout_origin
            path = Path(origin.rsplit(":", 1)[0]) if origin else folder / SITE_FILE
            old = current(path)
            new = set_site_holdout(old or _SITE_TEXT, form.site)
            texts[path] = (texts.get(path, (old, ""))[0], new)
            changes.setdefault(path, {})["holdout"] = form.site
        for name, share in form.slots.items():
            slot = library.slots.get(name)
            if slot is None:
                raise EditError([f"unknown slot {name[:40]!r}"], 404)
            path = slot_file(slot)
            old = current(path)
            texts[path] = (texts.get(path, (old, ""))[0], set_slot_holdout(old, name, share))
            changes.setdefault(path, {}).setdefault("slots", {})[name] = share
        for path, (old, new) in texts.items():
            _expect(old, new, changes[path])
        problems = validate_copy(folder, {p: new for p, (_, new) in texts.items()}, segments)
        if problems:
            raise EditError(problems, 422)
        for path, (_, new) in texts.items():
            write_atomically(path, new)
    return list(texts)
