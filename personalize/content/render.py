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

from pathlib import Path

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

MARKDOWN_MISSING = "Markdown variants need markdown-it-py: pip install 'markdown-it-py>=3.0'"


def make_environment(folder: Path | None) -> SandboxedEnvironment:
    """A sandboxed, autoescaping environment loading templates from ``folder``."""
    loader = jinja2.FileSystemLoader(str(folder)) if folder is not None else None
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
