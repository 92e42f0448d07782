"""Names editors give the learned clusters, so rules can say ``cluster eq bargain_hunters``.

A segments file (any ``*.yaml`` of the segments folder) may hold a ``clusters:`` mapping of
names to cluster ids, beside or instead of its ``segments:``::

    clusters:
      bargain_hunters: 3      # "mobile, evening, paid search" in the editor UI
      office_researchers: 0

Cluster ids stay with the visitors they describe across refits (see
:class:`~personalize.learning.SessionClusterer`), so a name keeps meaning the same segment.
Rules are checked against the names when the folder loads: an unknown name is an error with
the nearest name suggested, and a named cluster reads and explains as its name.

>>> names, problems = parse_cluster_names({"bargain_hunters": 3, "Office": "x"})
>>> names, [message for _, message in problems]  # doctest: +NORMALIZE_WHITESPACE
({'bargain_hunters': 3}, ["cluster name 'Office' is not lower_snake_case (e.g. bargain_hunters)",
 "cluster 'Office': expected a cluster number 0 to 63, not the text 'x'"])
>>> cluster_value("bargain_huntres", {"bargain_hunters": 3})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
personalize.exceptions.RuleValueError: ... (did you mean 'bargain_hunters'?); named clusters: ...
>>> cluster_value(3, {"bargain_hunters": 3}), cluster_value(2, {"bargain_hunters": 3})
('bargain_hunters', 2)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from personalize.exceptions import RuleValueError, SegmentError
from personalize.rules.attributes import suggest
from personalize.rules.values import is_number, kind_of
from personalize.util.yamlfile import Located, parse_yaml

__all__ = ["MAX_CLUSTER", "cluster_value", "load_cluster_names", "parse_cluster_names"]

MAX_CLUSTER = 63  # cluster ids run 0 .. MAX_CLUSTER
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

Problem = tuple[tuple[str | int, ...], str]  # (path in the mapping, message)


def parse_cluster_names(data: object) -> tuple[dict[str, int], list[Problem]]:
    """The names of a ``clusters:`` mapping, and every problem with its path."""
    if not isinstance(data, Mapping):
        return {}, [((), f"clusters is a mapping of names to cluster numbers, not {kind_of(data)}")]
    names: dict[str, int] = {}
    problems: list[Problem] = []
    owner: dict[int, str] = {}
    for name, cluster in data.items():
        shown = str(name)[:40]
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(((name,), f"cluster name {shown!r} is not lower_snake_case "
                                      "(e.g. bargain_hunters)"))  # fmt: skip
        if not is_number(cluster) or cluster != int(cluster) or not 0 <= cluster <= MAX_CLUSTER:
            problems.append(((name,), f"cluster {shown!r}: expected a cluster number 0 to "
                                      f"{MAX_CLUSTER}, not {kind_of(cluster)}"))  # fmt: skip
            continue
        number = int(cluster)
        if number in owner:
            problems.append(((name,), f"cluster {number} is named twice: {owner[number]!r} and "
                                      f"{shown!r}"))  # fmt: skip
            continue
        if isinstance(name, str) and _NAME.match(name):
            owner[number] = name
            names[name] = number
    return names, problems


def cluster_value(value: Any, names: Mapping[str, int]) -> Any:
    """A rule's cluster value as rules compare it: a named cluster by its name, an unnamed
    one by its number. RuleValueError for a name no cluster has."""
    if isinstance(value, frozenset):
        return frozenset(cluster_value(v, names) for v in value)
    if isinstance(value, str):
        if value in names:
            return value
        known = ", ".join(sorted(names))
        if not known:
            raise RuleValueError(
                f"no cluster is named {value[:40]!r}: name clusters in a clusters: mapping of a "
                "segments file, or use the cluster's number"
            )
        hint = suggest(value, tuple(names))
        raise RuleValueError(f"no cluster is named {value[:40]!r}{hint}; named clusters: {known}")
    if is_number(value) and value == int(value):
        for name, number in names.items():
            if number == value:
                return name
        return int(value)
    return value


def load_cluster_names(path: str | Path) -> dict[str, int]:
    """The ``clusters:`` mapping of one YAML file (a segments file, say); raises
    :class:`~personalize.exceptions.SegmentError` with ``file:line: problem`` lines."""
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SegmentError([f"{shown}: cannot read: {exc}"]) from None
    root, data, errors = parse_yaml(text)
    problems = [f"{shown}:{line}: {message}" for line, message in errors]
    if root is None or not isinstance(data, Mapping) or "clusters" not in data:
        raise SegmentError(problems or [f"{shown}:1: no clusters: mapping of names to numbers"])
    names, found = parse_cluster_names(data["clusters"])
    where = Located(root, ("clusters",))
    problems += [f"{shown}:{where.line(p)}: {message}" for p, message in found]
    if problems:
        raise SegmentError(problems)
    return names
