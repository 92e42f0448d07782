"""Editor-defined segments: YAML files of named rules, validated on load and reloaded on change.

A segments folder holds ``*.yaml`` / ``*.yml`` files (sub-folders too; dot-files are skipped).
Each file is a list of segments, or a mapping with a ``segments:`` list::

    - name: uk_visitors               # lower_snake_case, unique across all files
      description: Visitors from the United Kingdom
      rule: {attribute: country, operator: eq, value: GB}

Every problem is reported as ``path:line: problem``; a library only ever holds files that
passed validation, so a broken edit keeps the previous segments (see :meth:`reload_if_changed`).

>>> library = SegmentLibrary.from_data([
...     {"name": "uk_visitors", "description": "From the UK",
...      "rule": {"attribute": "country", "operator": "eq", "value": "GB"}}])
>>> library.evaluate({"country": "GB"})
[Membership(segment='uk_visitors', reasons=('country is GB',))]
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from personalize.exceptions import RuleError, SegmentError
from personalize.rules.clusternames import parse_cluster_names
from personalize.rules.rule import Rule, compile_rule
from personalize.rules.stated import NOT_ME
from personalize.util.reloading import FolderWatch
from personalize.util.yamlfile import Located, duplicate_keys, parse_yaml, yaml_files

logger = logging.getLogger("personalize.segments")
_warned_unknown: set[str] = set()

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_KEYS = ("name", "description", "rule")


@dataclass(frozen=True, slots=True)
class Segment:
    """One named rule, with where it was defined (``path:line``) for messages and the editor UI."""

    name: str
    description: str
    rule: Rule
    origin: str = ""


@dataclass(frozen=True, slots=True)
class Membership:
    """A visitor is in ``segment`` for these ``reasons`` (sentences a person can read)."""

    segment: str
    reasons: tuple[str, ...]


def validate_segments(directory: str | Path) -> list[str]:
    """Every problem in a segments folder as ``path:line: problem`` (empty when all is well).

    >>> validate_segments("no/such/folder")
    ['no/such/folder: no such folder']
    """
    try:
        load_segments(directory)
    except SegmentError as exc:
        return list(exc.problems)
    return []


def load_segments(directory: str | Path) -> tuple[Segment, ...]:
    """Load and validate every segment file under ``directory``; raises :class:`SegmentError`."""
    return load_folder(directory)[0]


def load_folder(directory: str | Path) -> tuple[tuple[Segment, ...], dict[str, int]]:
    """The segments and the cluster names (``clusters:`` mappings, see
    :mod:`personalize.rules.clusternames`) of a folder; raises :class:`SegmentError`."""
    folder = Path(directory)
    if not folder.is_dir():
        raise SegmentError([f"{folder}: no such folder"])
    found: list[_Found] = []
    problems: list[tuple[str, int, str]] = []
    parsed = [(str(path), *_parse_file(path, str(path), problems)) for path in yaml_files(folder)]
    names: dict[str, int] = {}
    for shown, root, data in parsed:
        if root is not None and isinstance(data, Mapping) and "clusters" in data:
            _cluster_names(data["clusters"], root, shown, names, problems)
    for shown, root, data in parsed:
        if root is not None:
            _load_items(data, root, shown, found, problems, names)
    _check_unique(found, problems)
    if problems:
        problems.sort(key=lambda p: (p[0], p[1]))
        raise SegmentError([f"{file}:{line}: {msg}" for file, line, msg in problems])
    return tuple(f.segment for f in found), names


def _cluster_names(
    data: Any, root: yaml.Node, shown: str, names: dict[str, int],
    problems: list[tuple[str, int, str]],
) -> None:  # fmt: skip
    found, errors = parse_cluster_names(data)
    where = Located(root, ("clusters",))
    for path, message in errors:
        problems.append((shown, where.line(path), message))
    for name, number in found.items():
        if name in names or number in names.values():
            line = where.line((name,))
            problems.append((shown, line, f"cluster name {name!r} or number {number} is given "
                                          "in two places"))  # fmt: skip
        else:
            names[name] = number


@dataclass(frozen=True, slots=True)
class _Found:
    segment: Segment
    file: str
    line: int


def _parse_file(
    path: Path, shown: str, problems: list[tuple[str, int, str]]
) -> tuple[yaml.Node | None, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append((shown, 1, f"cannot read: {exc}"))
        return None, None
    root, data, errors = parse_yaml(text)
    problems.extend((shown, line, message) for line, message in errors)
    if root is None:
        return None, None  # unreadable, or an empty file that holds no segments
    for line, message in duplicate_keys(root):
        problems.append((shown, line, message))
    return root, data


def _load_items(
    data: Any, root: yaml.Node, shown: str, found: list[_Found],
    problems: list[tuple[str, int, str]], clusters: Mapping[str, int],
) -> None:  # fmt: skip
    for item, where in _items(data, root, problems, shown):
        line = where.line()
        segment = _segment(
            item, where, shown, problems, origin=f"{shown}:{line}", clusters=clusters
        )
        if segment is not None:
            found.append(_Found(segment, shown, line))


def _items(
    data: Any, root: yaml.Node, problems: list[tuple[str, int, str]], shown: str
) -> Iterator[tuple[Any, Located]]:
    path: tuple[str | int, ...] = ()
    if isinstance(data, Mapping) and ("segments" in data or "clusters" in data):
        for key in data:
            if key not in ("segments", "clusters"):
                line = Located(root, ()).line((key,), key=True)
                problems.append(
                    (shown, line, f"unknown key {str(key)[:40]!r}; expected segments or clusters")
                )
        data, path = data.get("segments"), ("segments",)
    if data is None:
        return
    if not isinstance(data, list):
        line = Located(root, ()).line(path)
        problems.append((shown, line, "expected a list of segments (name, description, rule)"))
        return
    for i, item in enumerate(data):
        yield item, Located(root, (*path, i))


def _segment(
    item: Any,
    where: Located,
    shown: str,
    problems: list[tuple[str, int, str]],
    *,
    origin: str,
    clusters: Mapping[str, int] | None = None,
) -> Segment | None:
    start = where.line()
    if not isinstance(item, Mapping):
        problems.append((shown, start, "a segment is a mapping with name, description and rule"))
        return None
    name = item.get("name")
    label = f"segment {name!r}: " if isinstance(name, str) else ""
    before = len(problems)
    for key in item:
        if key not in _KEYS:
            close = difflib.get_close_matches(str(key), _KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            line = where.line((key,), key=True)
            problems.append((shown, line, f"{label}unknown key {str(key)[:40]!r}{hint}"))
    if not isinstance(name, str) or not _NAME.match(name):
        what = "has no name" if name is None else f"name {str(name)[:40]!r} is not lower_snake_case"
        problems.append((shown, where.line(("name",)), f"segment {what} (e.g. uk_visitors)"))
    description = item.get("description")
    if not isinstance(description, str) or not description.strip():
        problems.append((shown, where.line(("description",)), f"{label}needs a description"))
    if "rule" not in item:
        problems.append((shown, start, f"{label}has no rule"))
        return None
    try:
        rule = compile_rule(item["rule"], where=shown, clusters=clusters)
    except RuleError as exc:
        for problem in exc.problems:
            line = where.line(("rule", *problem.path))
            problems.append((shown, line, f"{label}{problem.message}"))
        return None
    if len(problems) > before:
        return None
    assert isinstance(name, str) and isinstance(description, str)
    return Segment(name, description.strip(), rule, origin)


def _check_unique(found: list[_Found], problems: list[tuple[str, int, str]]) -> None:
    first: dict[str, Segment] = {}
    for entry in found:
        name = entry.segment.name
        if name in first:
            message = f"duplicate segment name {name!r} (first defined at {first[name].origin})"
            problems.append((entry.file, entry.line, message))
        else:
            first[name] = entry.segment


class SegmentLibrary:
    """The segments of a folder, hot-reloaded: evaluate them against a visitor's attributes.

    Loading at start-up raises :class:`SegmentError` on any problem. Afterwards,
    :meth:`reload_if_changed` (cheap: it stats the files at most every ``reload_interval``
    seconds) swaps in a new version only if it is valid; otherwise the previous one stays and
    :attr:`errors` says why. It does blocking file I/O: call it from a thread in async code, or
    accept a few ``stat`` calls per interval on the event loop.
    """

    def __init__(self, directory: str | Path | None, *, reload_interval: float = 1.0) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.errors: tuple[str, ...] = ()  # problems of the last reload that was refused
        self._segments: tuple[Segment, ...] = ()
        self._index: dict[str, Segment] = {}
        self._clusters: dict[int, str] = {}
        self._watch: FolderWatch | None = None
        if self.directory is not None:
            self._watch = FolderWatch(self.directory, yaml_files, interval=reload_interval)
            self._install(*load_folder(self.directory))

    @classmethod
    def from_data(
        cls, data: Sequence[Mapping[str, Any]], *, where: str = "<data>"
    ) -> SegmentLibrary:
        """A library from plain data (tests, programmatic use); it never reloads."""
        problems: list[tuple[str, int, str]] = []
        found: list[_Found] = []
        root = yaml.compose("[]", Loader=yaml.SafeLoader)  # plain data has no lines
        assert root is not None
        for i, item in enumerate(data):
            shown = f"{where}[{i}]"
            segment = _segment(item, Located(root, (i,)), shown, problems, origin=shown)
            if segment is not None:
                found.append(_Found(segment, shown, 0))
        _check_unique(found, problems)
        if problems:
            raise SegmentError([f"{file}: {msg}" for file, _, msg in problems])
        library = cls(None)
        library._install(tuple(f.segment for f in found))
        return library

    def _install(
        self, segments: tuple[Segment, ...], clusters: Mapping[str, int] | None = None
    ) -> None:
        index = {s.name: s for s in segments}
        named = {number: name for name, number in (clusters or {}).items()}
        # Readers see the old or the new, whole.
        self._segments, self._index, self._clusters = segments, index, named

    @property
    def installed(self) -> tuple[Segment, ...]:
        """The segments in use: a new tuple at each reload (memos compare it by identity)."""
        return self._segments

    @property
    def cluster_names(self) -> dict[int, str]:
        """Cluster number -> the name editors gave it (``clusters:`` in a segments file)."""
        return dict(self._clusters)

    def cluster_label(self, cluster: int) -> str | int:
        """How rules see a cluster: its name when it has one, else its number."""
        return self._clusters.get(cluster, cluster)

    @property
    def segments(self) -> tuple[Segment, ...]:
        return self._segments

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self._segments)

    def get(self, name: str) -> Segment:
        """The segment called ``name``; a KeyError says which names exist."""
        try:
            return self._index[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._index, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            known = ", ".join(self._index) or "none"
            raise KeyError(f"unknown segment {name!r}; {hint}known segments: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[Segment]:
        return iter(self._segments)

    def __len__(self) -> int:
        return len(self._segments)

    def __repr__(self) -> str:
        return f"<SegmentLibrary {self.directory or '(data)'} segments={len(self)}>"

    def evaluate(self, attrs: Mapping[str, Any]) -> list[Membership]:
        """The segments these attributes belong to, each with its reasons; never raises.

        A segment the visitor said is not them (``stated.not_me``) is never among them."""
        not_me = attrs.get(NOT_ME) or ()
        return [
            Membership(s.name, tuple(s.rule.explain(attrs)))
            for s in self._segments
            if s.name not in not_me and s.rule.evaluate(attrs)
        ]

    def matches(self, name: str, attrs: Mapping[str, Any]) -> bool:
        """True when these attributes are in segment ``name`` (False for an unknown name)."""
        segment = self._index.get(name)
        return (
            segment is not None
            and name not in (attrs.get(NOT_ME) or ())
            and segment.rule.evaluate(attrs)
        )

    def reload_if_changed(self, *, force: bool = False) -> bool:
        """Reload when a file changed (checked at most every ``reload_interval`` seconds).

        Returns True when a new version was installed. A version with problems is refused:
        the previous segments stay, :attr:`errors` lists the problems, and they are logged.
        """
        if self._watch is None:
            return False
        return self._watch.poll(self._reload, force=force)

    def _reload(self) -> bool:
        assert self.directory is not None
        try:
            segments, clusters = load_folder(self.directory)
        except SegmentError as exc:
            self.errors = exc.problems
            logger.error("segments not reloaded, keeping the previous version:\n%s", exc)
            return False
        self._install(segments, clusters)
        self.errors = ()
        logger.info("segments reloaded from %s: %d segments", self.directory, len(segments))
        return True


def known_segment(library: SegmentLibrary | None, name: str) -> bool:
    """True when ``library`` has a segment ``name``. An unknown name is logged (once per name)
    and answers False: a typo in a template must not cost the visitor their page."""
    if library is not None and name in library:
        return True
    if name not in _warned_unknown:
        _warned_unknown.add(name)
        known = ", ".join(library.names) if library is not None else "none"
        logger.warning("personalize: unknown segment %r (known: %s)", name, known)
    return False
