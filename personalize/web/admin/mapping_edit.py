"""Editing one slot's mapping (rules, default, pin) in its YAML file, safely.

The edit replaces only the lines of that slot's ``rules:``, ``default:`` and ``pin:`` keys;
every other line of the file (other slots, variants, comments elsewhere) stays byte for byte.
Comments *inside* the replaced lines are not kept. The new file is checked three ways before
it replaces the old one: it must parse back to exactly the intended mapping with every other
slot unchanged, pass the content loader's own validation (on a copy of the whole folder), and
it is then written atomically (a temporary file in the same folder, then ``os.replace``), so
the site's hot reload only ever sees a complete, valid file.

>>> text = '''\\
... slots:
...   hero:  # the big one
...     variants:
...       - {id: a, html: A}
...       - {id: b, html: B}
...     rules:
...       - segment: uk   # editors' note
...         variants: [a]
...     default: [b]
...   other: {variants: [{id: x, html: X}], default: [x]}
... '''
>>> new = splice(text, "hero", [{"segment": "us", "variants": ["b", "a"], "pin": "b"}],
...              ["a"], None)
>>> print(new, end="")
slots:
  hero:  # the big one
    variants:
      - {id: a, html: A}
      - {id: b, html: B}
    rules:
      - segment: us
        variants: [b, a]
        pin: b
    default: [a]
  other: {variants: [{id: x, html: X}], default: [x]}
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from personalize.content.loading import validate_content
from personalize.content.slots import Slot
from personalize.exceptions import EditError

if TYPE_CHECKING:
    from starlette.datastructures import MultiDict

    from personalize.rules.segments import SegmentLibrary

__all__ = [
    "MappingForm",
    "digest",
    "folder_lock",
    "last_line",
    "read_form_edit",
    "save_mapping",
    "slot_node",
    "splice",
    "validate_copy",
    "write_atomically",
]

_KEYS = ("rules", "default", "pin")
_RULE_ORDER = ("segment", "when", "variants", "pin", "description")
MAX_RULES = 200


@dataclass(frozen=True, slots=True)
class MappingForm:
    """A slot's mapping as an editor submitted it, ready to write."""

    rules: list[dict[str, Any]]
    default: list[str]
    pin: str | None
    digest: str  # of the file the form was made from: a changed file is a conflict


def digest(text: str) -> str:
    """A short fingerprint of a file's text, to notice edits made meanwhile.

    >>> digest("slots: {}")
    'b92327e8cbee5e39'
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def slot_file(slot: Slot) -> Path:
    """The YAML file a slot was loaded from (its origin is ``path:line``)."""
    return Path(slot.origin.rsplit(":", 1)[0])


def raw_slot(text: str, name: str) -> dict[str, Any]:
    """The slot's plain data as written in the file."""
    data = yaml.safe_load(text)
    slot = data["slots"][name] if isinstance(data, dict) else None
    if not isinstance(slot, dict):
        raise EditError([f"slot {name!r} is not in the file any more; reload the page"], 409)
    return slot


def read_form_edit(
    form: MultiDict, slot: Slot, raw: Mapping[str, Any], segment_names: Sequence[str]
) -> MappingForm:
    """The submitted mapping, checked against the slot's variants and the known segments.

    Fields: ``rule-<i>-order|segment|variants|pin|delete`` for each rule of the file,
    ``new-order|segment|variants|pin`` for an added rule, ``default`` (variants), ``pin`` and
    ``digest``. Conditions (``when``) and descriptions of existing rules are kept as written.
    """
    problems: list[str] = []
    ids = list(slot.variants)
    known = set(segment_names)
    existing = raw.get("rules") or []
    if not isinstance(existing, list):
        existing = []
    try:
        count = int(form.get("rules", "-1"))
    except ValueError:
        count = -1
    if count != len(existing):
        raise EditError(["the rules changed since the form was made; reload the page"], 409)
    placed: list[tuple[int, int, int, dict[str, Any]]] = []
    for i, original in enumerate([*existing, None]):
        prefix = f"rule-{i}-" if original is not None else "new-"
        label = f"rule {i + 1}" if original is not None else "the new rule"
        if original is not None and form.get(prefix + "delete"):
            continue
        segment = form.get(prefix + "segment", "").strip()
        if original is None and not segment:
            continue  # no rule added
        when = original.get("when") if isinstance(original, dict) else None
        if segment and segment not in known:
            problems.append(f"{label}: unknown segment {segment!r}")
        if not segment and when is None:
            problems.append(f"{label}: choose a segment")
        before = original.get("variants") if isinstance(original, dict) else None
        variants = _keep_order(form.getlist(prefix + "variants"), before)
        if not variants:
            problems.append(f"{label}: allow at least one variant")
        unknown = [v for v in variants if v not in ids]
        if unknown:
            problems.append(f"{label}: unknown variant {unknown[0]!r} (variants: {', '.join(ids)})")
        pin = form.get(prefix + "pin", "").strip() or None
        if pin is not None and pin not in variants:
            problems.append(f"{label}: the pinned variant {pin!r} must be one it allows")
        try:
            order = int(form.get(prefix + "order", str(i + 1)))
        except ValueError:
            order = -1
        if not 1 <= order <= 999:
            problems.append(f"{label}: the position is a whole number from 1 to 999")
        rule: dict[str, Any] = {}
        if segment:
            rule["segment"] = segment
        if when is not None:
            rule["when"] = when
        rule["variants"] = variants
        if pin is not None:
            rule["pin"] = pin
        if isinstance(original, dict) and isinstance(original.get("description"), str):
            rule["description"] = original["description"]
        # Equal positions: an added rule goes before the one it shares the number with.
        placed.append((order, 0 if original is None else 1, i, rule))
    if len(placed) > MAX_RULES:
        problems.append(f"a slot has at most {MAX_RULES} rules")
    default = _keep_order(form.getlist("default"), raw.get("default"))
    if not default:
        problems.append("default: allow at least one variant")
    if any(v not in ids for v in default):
        problems.append(f"default: unknown variant (variants: {', '.join(ids)})")
    pin = form.get("pin", "").strip() or None
    if pin is not None and pin not in ids:
        problems.append(f"pin: unknown variant {pin!r}")
    if problems:
        raise EditError(problems)
    placed.sort(key=lambda p: p[:3])
    return MappingForm([p[3] for p in placed], default, pin, form.get("digest", ""))


def _keep_order(chosen: list[str], before: Any) -> list[str]:
    """The chosen ids, in the order the file had them (ties at a cold start go to the first),
    new ones after.

    >>> _keep_order(["a", "c", "b", ""], ["b", "a"])
    ['b', 'a', 'c']
    """
    wanted = list(dict.fromkeys(v for v in chosen if v))
    kept = [v for v in before if v in wanted] if isinstance(before, list) else []
    return list(dict.fromkeys([*kept, *wanted]))


def _flow(value: Any) -> str:
    # Inside a one-element flow list every value is quoted exactly as YAML needs it
    # ("no", "on", "1.0" stay strings); then drop the brackets.
    dumped = yaml.safe_dump(
        [value], default_flow_style=True, width=2**31 - 1, allow_unicode=True, sort_keys=False
    ).strip()
    return dumped[1:-1]


def _block(indent: str, rules: list[dict[str, Any]], default: list[str], pin: str | None) -> str:
    lines: list[str] = []
    if rules:
        lines.append(f"{indent}rules:")
        for rule in rules:
            first = True
            for key in _RULE_ORDER:
                if key in rule:
                    lead = f"{indent}  - " if first else f"{indent}    "
                    lines.append(f"{lead}{key}: {_flow(rule[key])}")
                    first = False
    lines.append(f"{indent}default: {_flow(default)}")
    if pin is not None:
        lines.append(f"{indent}pin: {_flow(pin)}")
    return "\n".join(lines) + "\n"


def last_line(node: yaml.Node) -> int:
    """The 0-based line where ``node``'s own text ends (block collections end early)."""
    if isinstance(node, yaml.SequenceNode | yaml.MappingNode) and not node.flow_style:
        if isinstance(node, yaml.SequenceNode) and node.value:
            return last_line(node.value[-1])
        if isinstance(node, yaml.MappingNode) and node.value:
            return last_line(node.value[-1][1])
        return node.start_mark.line
    end = node.end_mark
    if end.column == 0 and end.line > node.start_mark.line:
        return end.line - 1  # block scalars end at the start of the next line
    return end.line


def slot_node(root: yaml.Node | None, name: str) -> yaml.MappingNode:
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "slots" and isinstance(value, yaml.MappingNode):
                for slot_key, slot in value.value:
                    if slot_key.value == name and isinstance(slot, yaml.MappingNode):
                        if slot.flow_style or value.flow_style:
                            break
                        return slot
    raise EditError(
        [f"slot {name!r} is not written as a block mapping in its file; edit that file by hand"]
    )


def splice(
    text: str, name: str, rules: list[dict[str, Any]], default: list[str], pin: str | None
) -> str:
    """``text`` with slot ``name``'s rules, default and pin replaced; nothing else touched."""
    slot = slot_node(yaml.compose(text, Loader=yaml.SafeLoader), name)
    lines = text.splitlines(keepends=True)
    spans: list[tuple[int, int]] = []
    indent: str | None = None
    for key, value in slot.value:
        column = key.start_mark.column
        first = key.start_mark.line
        if indent is None:
            indent = lines[first][:column]
        if key.value not in _KEYS:
            continue
        last = last_line(value)
        if lines[first][:column].strip() or any(
            lines[n][:column].strip() for n in range(first + 1, last + 1)
        ):
            raise EditError([f"slot {name!r}: {key.value} shares a line with other keys"])
        spans.append((first, last))
    if indent is None or indent.strip():
        raise EditError([f"slot {name!r} has no keys to edit"])
    block = _block(indent, rules, default, pin)
    if not spans:
        at = last_line(slot) + 1
        spans_sorted: list[tuple[int, int]] = []
    else:
        spans_sorted = sorted(spans)
        at = spans_sorted[0][0]
    out: list[str] = []
    for n, line in enumerate(lines):
        if n == at:
            out.append(block)
        if not any(first <= n <= last for first, last in spans_sorted):
            out.append(line if line.endswith("\n") else line + "\n")
    if at >= len(lines):
        out.append(block)
    return "".join(out)


def _check_round_trip(old: str, new: str, name: str, form: MappingForm) -> None:
    """The new text must mean exactly the intended edit, with everything else the same."""
    before, after = yaml.safe_load(old), yaml.safe_load(new)
    expected = dict(before["slots"][name])
    for key in _KEYS:
        expected.pop(key, None)
    if form.rules:
        expected["rules"] = form.rules
    expected["default"] = form.default
    if form.pin is not None:
        expected["pin"] = form.pin
    others_same = {k: v for k, v in before["slots"].items() if k != name} == {
        k: v for k, v in after["slots"].items() if k != name
    }
    if after["slots"].get(name) != expected or not others_same or set(after) != set(before):
        raise EditError(["internal error: the edited file would not say what you asked"], 500)


def save_mapping(
    slot: Slot, folder: Path, form: MappingForm, segments: SegmentLibrary | None
) -> Path:
    """Validate the edit with the content loader and write it atomically; returns the file.

    Raises :class:`EditError` (409 when the file changed since the form was made). Blocking:
    run it in a thread. Safe across processes: the read, the check of the digest and the
    write happen under an exclusive lock on a file in the content folder, so of two editors
    saving the same form at once (on two workers), the second is told of the conflict.
    """
    path = slot_file(slot)
    with folder_lock(folder):
        old = path.read_text(encoding="utf-8")
        if not form.digest or digest(old) != form.digest:
            raise EditError(
                [f"{path.name} changed since you opened this form; reload the page and edit again"],
                409,
            )
        new = splice(old, slot.name, form.rules, form.default, form.pin)
        _check_round_trip(old, new, slot.name, form)
        problems = validate_copy(folder, {path: new}, segments)
        if problems:
            raise EditError(problems, 422)
        write_atomically(path, new)
    return path


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock shared by every process that edits ``folder``: ``flock`` on the folder
    itself (no lock file left behind), released when it is closed, even on a crash."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def validate_copy(
    folder: Path, texts: Mapping[Path, str], segments: SegmentLibrary | None
) -> list[str]:
    """The loader's problems for the folder with each path of ``texts`` replaced by (or
    created with) its new text, checked on a copy."""
    with tempfile.TemporaryDirectory(prefix="personalize-edit-") as tmp:
        copy = Path(tmp) / "content"
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(".*"))
        for path, new in texts.items():
            target = copy / path.resolve().relative_to(folder.resolve())
            target.write_text(new, encoding="utf-8")
        problems = validate_content(copy, segments)
    return [p.replace(str(copy), str(folder)) for p in problems]


def write_atomically(path: Path, text: str) -> None:
    # Same folder (same file system) so os.replace is atomic; a dot-name so the hot reload
    # skips the half-written file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(OSError):  # keep the file's permissions where we can
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
