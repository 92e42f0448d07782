"""One slot's YAML, checked: :class:`SlotParser` turns plain data into
:mod:`personalize.content.slots` records and collects each problem with its line.

>>> from personalize.content.render import make_environment
>>> from personalize.util.yamlfile import Located, parse_yaml
>>> text = "slots:\\n  hero: {variants: [{id: a, html: A}], default: [a], holdout: 0.5}"
>>> root, data, _ = parse_yaml(text)
>>> problems = []
>>> parser = SlotParser("x.yaml", Located(root, ("slots", "hero")), make_environment(None), None,
...                     problems, None)
>>> parser.slot("hero", data["slots"]["hero"]) is None, problems
(True, [('x.yaml', 2, "slot 'hero': holdout is 0 (none) or a share from 0.05 to 0.2, not 0.5")])
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from personalize.content.holdout import share_problem
from personalize.content.render import render_markdown
from personalize.content.schedule import parse_schedule
from personalize.content.slots import NAME, Cap, MappingRule, Slot, Variant, label_from_id
from personalize.exceptions import RuleError, ScheduleError
from personalize.rules.rule import compile_rule
from personalize.rules.segments import SegmentLibrary
from personalize.util.yamlfile import Located, child_node

__all__ = ["MAX_LABEL", "Problems", "SlotParser", "hint", "is_number"]

_SLOT_KEYS = frozenset(
    {"description", "variants", "rules", "default", "pin", "reward", "long_term_weight"}
    | {"suppress_purchased_days", "cap", "holdout"}
)
_VARIANT_KEYS = frozenset({"id", "label", "description", "html", "template", "markdown"})
_VARIANT_KEYS |= {"value"}
_VARIANT_KEYS |= {"tags", "schedule", "cap"}
_RULE_KEYS = frozenset({"segment", "when", "variants", "pin", "description"})
_BODIES = ("html", "template", "markdown")
MAX_LABEL = 80  # characters of a variant's label or a slot's description
Problems = list[tuple[str, int, str]]


@dataclass(slots=True)
class SlotParser:
    """Parses the slots of one file; every problem goes to ``problems`` as (file, line, text)."""

    shown: str
    at: Located
    env: jinja2.Environment
    folder: Path | None
    problems: Problems
    segments: SegmentLibrary | None

    def fail(self, path: tuple[str | int, ...], message: str, *, key: bool = False) -> None:
        line = self.at.line(path)
        if key and path:  # the line of the key itself (the value may sit lines below)
            parent = self.at.root
            for step in (*self.at.base, *path[:-1]):
                parent = child_node(parent, step, key=False) or parent
            found = child_node(parent, path[-1], key=True)
            line = found.start_mark.line + 1 if found is not None else line
        self.problems.append((self.shown, line, message))

    def slot(self, name: str, item: Any) -> Slot | None:
        before = len(self.problems)
        if not NAME.match(name):
            self.fail((), f"slot name {name[:40]!r} is not lower_snake_case (e.g. hero)")
        if not isinstance(item, Mapping):
            self.fail((), f"slot {name!r} is a mapping with variants, rules and default")
            return None
        self.unknown(item, _SLOT_KEYS, (), f"slot {name!r}")
        raw = item.get("variants")
        if not isinstance(raw, list) or not raw:
            self.fail(("variants",), f"slot {name!r} needs a list of variants")
            raw = []
        variants: dict[str, Variant] = {}
        for i, data in enumerate(raw):
            variant = self.variant(data, ("variants", i))
            if variant is not None and variant.id in variants:
                self.fail(("variants", i, "id"), f"duplicate variant id {variant.id!r}")
            elif variant is not None:
                variants[variant.id] = variant
        # In the file's order: messages list them as the editor wrote them.
        ids = [d["id"] for d in raw if isinstance(d, Mapping) and isinstance(d.get("id"), str)]
        rules = []
        for i, data in enumerate(item.get("rules") or ()):
            rule = self.rule(data, ("rules", i), ids)
            if rule is not None:
                rules.append(rule)
        if "rules" in item and not isinstance(item["rules"], list | None):
            self.fail(("rules",), "rules is a list of {segment or when, variants}")
        default = self.ids(item.get("default"), ("default",), ids)
        pin = self.pin(item.get("pin"), ("pin",), ids)
        reward = item.get("reward", "click")
        if reward not in ("click", "conversion"):
            self.fail(("reward",), "reward is click or conversion")
        weight = self.number(item, "long_term_weight", 0.0, 1.0)
        days = self.number(item, "suppress_purchased_days", 0.0, 3650.0)
        cap = self.cap(item.get("cap"), ("cap",))
        description = self.words(item, "description", (), f"slot {name!r}")
        holdout = item.get("holdout", 0.0)
        problem = share_problem(holdout)
        if problem is not None:
            self.fail(("holdout",), f"slot {name!r}: {problem}")
        if len(self.problems) > before:
            return None
        return Slot(
            name, variants, tuple(rules), tuple(default), pin, reward, weight, days, cap,
            f"{self.shown}:{self.at.line()}", description, float(holdout),
        )  # fmt: skip

    def variant(self, data: Any, path: tuple[str | int, ...]) -> Variant | None:
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str):
            self.fail(path, "a variant is a mapping with an id and html, template or markdown")
            return None
        vid = data["id"]
        if not NAME.match(vid):
            self.fail((*path, "id"), f"variant id {vid[:40]!r} is not lower_snake_case")
        self.unknown(data, _VARIANT_KEYS, path, f"variant {vid!r}")
        bodies = [b for b in _BODIES if b in data]
        if len(bodies) != 1 or not isinstance(data[bodies[0]], str):
            self.fail(path, f"variant {vid!r} needs exactly one of html, template, markdown (text)")
            return None
        html, template = None, None
        body = data[bodies[0]]
        if bodies[0] == "html":
            html = Markup(body)
        elif bodies[0] == "markdown":
            try:
                html = render_markdown(body)
            except ImportError as exc:
                self.fail((*path, "markdown"), str(exc))
        else:
            template = self.template(body, (*path, "template"))
        value = data.get("value", 1.0)
        if not is_number(value) or value < 0:
            self.fail((*path, "value"), f"variant {vid!r}: value is a number >= 0 (the margin)")
            value = 1.0
        tags = data.get("tags") or {}
        products: tuple[str, ...] = ()
        if not isinstance(tags, Mapping) or set(tags) - {"products", "campaign"}:
            self.fail((*path, "tags"), "tags are products: [ids] and campaign: true|false")
        else:
            raw = tags.get("products", [])
            if not isinstance(raw, list) or not all(isinstance(p, str | int) for p in raw):
                self.fail((*path, "tags", "products"), "tags.products is a list of product ids")
            else:
                products = tuple(str(p) for p in raw)
            if not isinstance(tags.get("campaign", False), bool):
                self.fail((*path, "tags", "campaign"), "tags.campaign is true or false")
        schedule = None
        if "schedule" in data:
            try:
                schedule = parse_schedule(data["schedule"])
            except ScheduleError as exc:
                spath = (*path, "schedule", exc.key) if exc.key else (*path, "schedule")
                self.fail(spath, f"variant {vid!r}: {exc}")
        cap = self.cap(data.get("cap"), (*path, "cap"))
        campaign = isinstance(tags, Mapping) and tags.get("campaign") is True
        origin = f"{self.shown}:{self.at.line(path)}"
        label = self.words(data, "label", path, f"variant {vid!r}") or label_from_id(vid)
        return Variant(
            vid, html, template, float(value), products, campaign, schedule, cap, origin, label
        )

    def template(self, name: str, path: tuple[str | int, ...]) -> jinja2.Template | None:
        try:
            template = self.env.get_template(name)
            # Its globals as a plain dict, not Jinja2's ChainMap over the environment's: every
            # render copies them, and a ChainMap is walked key by key in Python (a third of
            # a variant's render). The environment's globals are set before any load.
            template.globals = dict(template.globals)
            return template
        except jinja2.TemplateSyntaxError as exc:
            file = str(self.folder / name) if self.folder else name
            self.problems.append((file, exc.lineno, f"template error: {exc.message}"))
        except jinja2.TemplateNotFound:
            self.fail(path, f"template {name!r} not found in the content folder")
        except (jinja2.TemplateError, OSError, TypeError, ValueError) as exc:
            self.fail(path, f"template {name!r} cannot be loaded: {exc}")
        return None

    def words(self, item: Mapping[str, Any], key: str, path: Any, what: str) -> str:
        """A short text for people (a label, a description): one line, at most MAX_LABEL."""
        value = item.get(key)
        if value is None:
            return ""
        text = value.strip() if isinstance(value, str) else ""
        if not text or len(text) > MAX_LABEL or any(ord(c) < 32 for c in text):
            self.fail(
                (*path, key),
                f"{what}: {key} is one line of text, 1 to {MAX_LABEL} characters",
            )
            return ""
        return text

    def rule(
        self, data: Any, path: tuple[str | int, ...], ids: Sequence[str] | None
    ) -> MappingRule | None:
        if not isinstance(data, Mapping) or not ({"segment", "when"} & set(data)):
            self.fail(path, "a rule has segment and/or when, and variants")
            return None
        self.unknown(data, _RULE_KEYS, path, "rule")
        segment = data.get("segment")
        if segment is not None and not isinstance(segment, str):
            self.fail((*path, "segment"), "segment is a segment name")
        elif segment is not None and self.segments is not None and segment not in self.segments:
            names = list(self.segments.names)
            known = f"{hint(segment, names)}; known: {', '.join(names) or 'none'}"
            self.fail((*path, "segment"), f"unknown segment {segment[:40]!r}{known}")
        when = None
        if "when" in data:
            try:
                when = compile_rule(data["when"], where=self.shown)
            except RuleError as exc:
                for problem in exc.problems:
                    self.fail((*path, "when", *problem.path), problem.message)
        variants = self.ids(data.get("variants"), (*path, "variants"), ids)
        pin = self.pin(data.get("pin"), (*path, "pin"), variants if ids is not None else None)
        origin = f"{self.shown}:{self.at.line(path)}"
        return MappingRule(tuple(variants), segment, when, pin, origin)

    def ids(self, data: Any, path: tuple[str | int, ...], ids: Sequence[str] | None) -> list[str]:
        if not isinstance(data, list) or not data or not all(isinstance(v, str) for v in data):
            self.fail(path, f"{path[-1]} is a non-empty list of variant ids")
            return []
        for i, vid in enumerate(data):
            if ids is not None and vid not in ids:
                known = f"{hint(vid, ids)}; variants: {', '.join(ids)}"
                self.fail((*path, i), f"unknown variant {vid[:40]!r}{known}")
        return list(data)

    def pin(self, data: Any, path: tuple[str | int, ...], ids: Sequence[str] | None) -> str | None:
        if data is None:
            return None
        if not isinstance(data, str) or (ids is not None and data not in ids):
            shown = str(data)[:40]
            known = f"{hint(shown, ids)}; variants: {', '.join(ids)}" if ids else ""
            self.fail(path, f"pin {shown!r} is not one of the variants it may choose{known}")
            return None
        return data

    def cap(self, data: Any, path: tuple[str | int, ...]) -> Cap | None:
        if data is None:
            return None
        if not isinstance(data, dict) or set(data) != {"views", "rest_hours"}:
            self.fail(path, "cap is {views: N, rest_hours: H}")
            return None
        views: Any = data["views"]
        rest: Any = data["rest_hours"]
        if not (isinstance(views, int) and views >= 1 and is_number(rest) and rest > 0):
            self.fail(path, "cap views is a whole number >= 1 and rest_hours a number > 0")
            return None
        return Cap(views, float(rest))

    def number(self, item: Mapping[str, Any], key: str, low: float, high: float) -> float | None:
        value = item.get(key)
        if value is not None and not (is_number(value) and low <= value <= high):
            self.fail((key,), f"{key} is a number from {low:g} to {high:g}")
            return None
        return None if value is None else float(value)

    def unknown(self, item: Mapping[Any, Any], keys: frozenset[str], path: Any, what: str) -> None:
        for key in item:
            if key not in keys:
                near = hint(str(key), sorted(keys))
                self.fail((*path, key), f"{what}: unknown key {str(key)[:40]!r}{near}", key=True)


def hint(name: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss, as segment files report them."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def is_number(value: object) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
