"""Reading editors' YAML safely: file and line for every problem, bounded size and nesting.

>>> root, data, problems = parse_yaml("- a\\n- b\\n")
>>> data, problems
(['a', 'b'], [])
>>> parse_yaml("a: !!timestamp 2026-13-45\\n")[2]
[(1, 'not valid YAML: month must be in 1..12')]
>>> parse_yaml("a: &x [1, 2]\\nb: [*x, *x, *x]\\n", max_nodes=5)[2]
[(1, 'the document is too large (more than 5 values, counting aliases)')]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MAX_NODES = 50_000  # values in one file, aliases counted each time they are used
MAX_DEPTH = 64  # levels of nesting
MAX_BYTES = 1_000_000  # characters in one editor file


def _too_big(root: yaml.Node, max_nodes: int) -> str | None:
    count = 0
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > max_nodes:
            return f"the document is too large (more than {max_nodes} values, counting aliases)"
        if depth > MAX_DEPTH:
            return f"the document nests deeper than {MAX_DEPTH} levels"
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
    return None


def _bracket_depth(text: str) -> int:
    """The deepest nesting of [ and { (an upper bound: brackets in quotes count too)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(depth - 1, 0)
    return deepest


def parse_yaml(
    text: str, *, max_nodes: int = MAX_NODES
) -> tuple[yaml.Node | None, Any, list[tuple[int, str]]]:
    """(composed root with line marks, constructed data, [(line, problem)]).

    Never raises for bad input: malformed YAML, invalid tagged values (``!!timestamp
    2026-13-45``), alias bombs and absurd nesting all come back as problems.
    """
    if len(text) > MAX_BYTES:
        return None, None, [(1, f"the file is larger than {MAX_BYTES} characters")]
    if _bracket_depth(text) > MAX_DEPTH:
        # PyYAML's scanner slows down sharply on deep flow nesting: refuse before parsing.
        return None, None, [(1, f"the document nests deeper than {MAX_DEPTH} levels")]
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        return None, None, [(mark.line + 1 if mark else 1, f"not valid YAML: {exc.problem}")]
    except yaml.YAMLError as exc:
        return None, None, [(1, f"not valid YAML: {exc}")]
    except RecursionError:
        return None, None, [(1, f"the document nests deeper than {MAX_DEPTH} levels")]
    if root is None:
        return None, None, []
    problem = _too_big(root, max_nodes)
    if problem is not None:
        return None, None, [(root.start_mark.line + 1, problem)]
    loader = yaml.SafeLoader("")
    try:
        return root, loader.construct_document(root), []
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        return None, None, [(mark.line + 1 if mark else 1, f"not valid YAML: {exc.problem}")]
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        # Tagged scalars PyYAML cannot build (dates out of range...) raise plain errors.
        return None, None, [(root.start_mark.line + 1, f"not valid YAML: {exc}")]
    except RecursionError:
        return None, None, [(1, f"the document nests deeper than {MAX_DEPTH} levels")]
    finally:
        loader.dispose()


SUFFIXES = (".yaml", ".yml")


def yaml_files(directory: Path) -> list[Path]:
    """The YAML files under ``directory``, sorted; dot-files (editor locks, swaps) skipped."""
    return sorted(
        p
        for p in directory.rglob("*")
        if p.suffix in SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(directory).parts)
        and p.is_file()
    )


@dataclass(frozen=True, slots=True)
class Located:
    """A place in a composed YAML document, to turn data paths into line numbers."""

    root: yaml.Node
    base: tuple[str | int, ...]

    def line(self, path: Sequence[str | int] = (), *, key: bool = False) -> int:
        """The 1-based line of ``base + path``, or of the deepest part of it that exists."""
        node = self.root
        for step in (*self.base, *path):
            found = child_node(node, step, key=key)
            if found is None:
                break
            node = found
        return node.start_mark.line + 1


def child_node(node: yaml.Node, step: str | int, *, key: bool) -> yaml.Node | None:
    """The value (or, with ``key``, the key) node at ``step`` of a mapping or sequence node."""
    if isinstance(node, yaml.SequenceNode) and isinstance(step, int):
        return node.value[step] if 0 <= step < len(node.value) else None
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == str(step):
                return k if key else v
    return None


def duplicate_keys(node: yaml.Node) -> Iterator[tuple[int, str]]:
    """(line, message) for every key that appears twice in one mapping of the document."""
    # PyYAML silently keeps the last of two equal keys; an editor would never see why.
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                if k.value in seen:
                    yield k.start_mark.line + 1, f"duplicate key {k.value[:40]!r}"
                seen.add(k.value)
            yield from duplicate_keys(v)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from duplicate_keys(item)
