"""How variant content becomes HTML: a sandboxed Jinja2 environment and a Markdown renderer.

Templates live in the content folder and are compiled once at load. They run in Jinja2's
``SandboxedEnvironment`` with autoescape on, so an editor's template can read what it is
given (``attributes``, ``profile``, ``segments``) but cannot reach into Python internals, and
every value it prints is escaped. Markdown (``markdown-it-py``, CommonMark, raw HTML disabled)
is rendered once at load: it does not vary per visitor.

>>> env = make_environment(None)
>>> env.from_string("Hi {{ name }}").render(name="<b>Ann</b>")
'Hi &lt;b&gt;Ann&lt;/b&gt;'
>>> str(render_markdown("**Sale** <i>now</i>"))
'<p><strong>Sale</strong> &lt;i&gt;now&lt;/i&gt;</p>\\n'
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.filters import FILTERS
from jinja2.sandbox import SandboxedEnvironment
from jinja2.tests import TESTS
from markupsafe import Markup

MARKDOWN_MISSING = "Markdown variants need markdown-it-py: pip install 'markdown-it-py>=3.0'"


class RecordingLoader(jinja2.BaseLoader):
    """A loader that remembers the source of every template it gave (``sources``, by
    name): what :class:`RenderMemo` reads is then the very text that was compiled, even if
    the file changed since (the content library loads a new version for that)."""

    def __init__(self, loader: jinja2.BaseLoader) -> None:
        self.loader = loader
        self.sources: dict[str, str] = {}

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        source, filename, uptodate = self.loader.get_source(environment, template)
        self.sources[template] = source
        return source, filename, uptodate

    def list_templates(self) -> list[str]:
        return self.loader.list_templates()


def make_environment(folder: Path | None) -> SandboxedEnvironment:
    """A sandboxed, autoescaping environment loading templates from ``folder``."""
    loader = RecordingLoader(jinja2.FileSystemLoader(str(folder))) if folder is not None else None
    return SandboxedEnvironment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.ChainableUndefined,  # {{ profile.traits.name }} on a stranger: empty
        auto_reload=False,  # the content library reloads whole versions itself
    )


def render_markdown(text: str) -> Markup:
    """CommonMark to HTML, with raw HTML escaped; raises ImportError without markdown-it-py."""
    try:
        from markdown_it import MarkdownIt
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(MARKDOWN_MISSING) from exc
    return Markup(MarkdownIt("commonmark", {"html": False}).render(text))


#: What a template may use and still be remembered: the values it is given that the memo's
#: key holds, and Jinja2's globals that give the same result every time (not ``lipsum``).
_KEYED = frozenset({"variant", "known", "attributes"})
_PURE_GLOBALS = frozenset({"range", "dict", "namespace", "cycler", "joiner"})
_DICT_NAMES = frozenset(dir(dict))  # names a dict answers as attributes, not as keys
_MISSING = object()
MEMO_SIZE = 256  # rendered outputs remembered per template


class RenderMemo:
    """The outputs of a template whose result depends only on ``variant``, ``known`` and
    named keys of ``attributes`` (found by reading the template once, statically), keyed by
    those values: most visitors share them, and a render costs more than the rest of a
    decision. Templates that read anything else (``profile``, ``segments``, the whole
    ``attributes`` mapping, a key by a computed name, the ``random`` filter, ``lipsum``) are
    rendered every time.

    >>> env = make_environment(None)
    >>> env.loader = RecordingLoader(
    ...     jinja2.DictLoader({"t.html": "{{ variant }}: {{ attributes.city }}"})
    ... )
    >>> memo = render_memo(env.get_template("t.html"))
    >>> memo.names
    ('city',)
    >>> memo.render("a", {"city": "Oslo", "tier": "gold"}, True, dict)
    Markup('a: Oslo')
    >>> memo.render("a", {"city": "Oslo", "tier": "silver"}, True, dict)  # from memory
    Markup('a: Oslo')
    >>> len(memo.outputs)
    1
    """

    def __init__(self, template: jinja2.Template) -> None:
        self.template = template
        self.names = keyed_names(template)
        self.outputs: dict[tuple[Any, ...], Markup] = {}
        self._lock = threading.Lock()

    def render(
        self,
        variant: str,
        attributes: Mapping[str, Any],
        known: bool,
        others: Callable[[], dict[str, Any]],
    ) -> Markup:
        """The template rendered for these values; ``others()``: what else it is given
        (asked for only when it renders)."""
        names, key = self.names, None
        if names is not None and type(attributes) is dict:
            values = [attributes.get(name, _MISSING) for name in names]
            key = (variant, known, *values, *map(type, values))  # (1 and True render apart)
            try:
                found = self.outputs.get(key)
            except TypeError:  # a value that cannot be a key (a list): render it
                found, key = None, None
            if found is not None:
                return found
        html = Markup(
            self.template.render(variant=variant, attributes=attributes, known=known, **others())
        )
        if key is not None:
            with self._lock:
                outputs = self.outputs
                outputs[key] = html
                if len(outputs) > MEMO_SIZE:
                    del outputs[next(iter(outputs))]
        return html


def render_memo(template: jinja2.Template) -> RenderMemo:
    """The :class:`RenderMemo` of ``template`` (made at its first render, kept with it)."""
    memo: RenderMemo | None = getattr(template, "_personalize_memo", None)
    if memo is None:
        memo = RenderMemo(template)
        template._personalize_memo = memo  # type: ignore[attr-defined]
    return memo


def keyed_names(template: jinja2.Template) -> tuple[str, ...] | None:
    """The keys of ``attributes`` that ``template`` reads, if its result depends on nothing
    but them, ``variant`` and ``known``; None otherwise, and when the source it was compiled
    from is unknown (a loader other than :class:`RecordingLoader`, a template from a string)."""
    env, loader = template.environment, template.environment.loader
    source = (
        loader.sources.get(template.name or "") if isinstance(loader, RecordingLoader) else None
    )
    if source is None:
        return None
    try:
        tree = env.parse(source)
    except jinja2.TemplateError:
        return None
    if not meta.find_undeclared_variables(tree) <= _KEYED | _PURE_GLOBALS:
        return None
    impure_globals = set(env.globals) - _PURE_GLOBALS
    names: dict[str, None] = {}
    parents: list[tuple[nodes.Node, nodes.Node]] = [(tree, c) for c in tree.iter_child_nodes()]
    while parents:
        parent, node = parents.pop()
        if isinstance(node, nodes.Filter) and (
            node.name == "random" or env.filters.get(node.name) is not FILTERS.get(node.name)
        ):
            return None  # (a filter the site added may read anything: only Jinja2's own)
        if isinstance(node, nodes.Test) and env.tests.get(node.name) is not TESTS.get(node.name):
            return None
        if isinstance(node, nodes.Include | nodes.Extends | nodes.Import | nodes.FromImport):
            return None  # another template: it may read anything
        if isinstance(node, nodes.Name) and node.name in impure_globals:
            return None  # (the undeclared names above leave the environment's globals out)
        if isinstance(node, nodes.Name) and node.name == "attributes":
            name = _key_read(parent, node)
            if name is None:
                return None
            names[name] = None
        parents += [(node, child) for child in node.iter_child_nodes()]
    return tuple(sorted(names))


def _key_read(parent: nodes.Node, node: nodes.Name) -> str | None:
    """The key of ``attributes.key`` or ``attributes["key"]``, if that is how ``parent``
    reads ``node`` (and the key is not also a dict method's name)."""
    if node.ctx != "load":
        return None
    if isinstance(parent, nodes.Getattr) and parent.node is node:
        name = parent.attr
    elif (
        isinstance(parent, nodes.Getitem)
        and parent.node is node
        and isinstance(parent.arg, nodes.Const)
        and isinstance(parent.arg.value, str)
    ):
        name = parent.arg.value
    else:
        return None
    return None if name in _DICT_NAMES else name
