"""The Jinja2 global ``personalize.slot("hero")`` for the application's own templates.

Jinja2 renders synchronously while :meth:`Visitor.decide` is async; decisions do no I/O (the
counters and caches are in memory, see :mod:`personalize.content.decisions`), so the global calls
:meth:`DecisionEngine.decide_sync` directly. It finds the visitor through the ``request`` in
the template context (Starlette's ``Jinja2Templates`` passes it), and the engine through the
middleware unless one is given. Outside a request it renders nothing, never an error, and a
slot that decides nothing (every variant suppressed, an unknown slot) renders nothing at all.

For markup of your own around a slot: ``personalize.decide("hero")`` gives the whole
:class:`Decision` (None outside a request), ``personalize.why(decision)`` the visitor's
plain-words reasons for it::

    {% set hero = personalize.decide("hero") %}
    {% if hero and hero.variant %}{{ hero }}
      <details><summary>Why am I seeing this?</summary>
        {% for line in personalize.why(hero) %}<p>{{ line }}</p>{% endfor %}</details>
    {% endif %}

>>> import jinja2
>>> env = jinja2.Environment(autoescape=True)
>>> install(env)
>>> env.from_string('{{ personalize.slot("hero") }}').render()
''
"""

from __future__ import annotations

from typing import Any

import jinja2
from markupsafe import Markup

from personalize.content.decisions import Decision, DecisionEngine
from personalize.scope import STATE_KEY
from personalize.visitor import Visitor


class SlotHelper:
    """What templates see as ``personalize``."""

    def __init__(self, engine: DecisionEngine | None = None) -> None:
        self.engine = engine

    @jinja2.pass_context
    def slot(self, context: jinja2.runtime.Context, name: str) -> Markup:
        """The slot's HTML (with the beacon's ``data-pz-decision``), or nothing."""
        decision = self.decision(context, name)
        return decision.html if decision is not None else Markup("")

    @jinja2.pass_context
    def decide(self, context: jinja2.runtime.Context, name: str) -> Decision | None:
        """The whole :class:`Decision` (variant, id, explanation) for custom markup."""
        return self.decision(context, name)

    @jinja2.pass_context
    def why(self, context: jinja2.runtime.Context, decision: Decision | None) -> list[str]:
        """Why the visitor sees ``decision``, in plain words for them (see
        :meth:`Visitor.why`); empty outside a request."""
        visitor = _visitor(context)
        if visitor is None or decision is None:
            return []
        if self.engine is not None:
            return self.engine.plain_reasons(decision, visitor)
        return visitor.why(decision)

    def decision(self, context: jinja2.runtime.Context, name: str) -> Decision | None:
        visitor = _visitor(context)
        if visitor is None:
            return None
        if self.engine is not None:
            visitor.used = True
            return self.engine.decide_sync(visitor, name)
        return visitor.decide_sync(name)


def _visitor(context: jinja2.runtime.Context) -> Visitor | None:
    request: Any = context.get("request")
    scope = getattr(request, "scope", None)
    visitor = scope.get("state", {}).get(STATE_KEY) if isinstance(scope, dict) else None
    return visitor if isinstance(visitor, Visitor) else None


def install(env: jinja2.Environment, engine: DecisionEngine | None = None) -> None:
    """Make ``personalize.slot(name)`` available to every template of ``env``."""
    env.globals["personalize"] = SlotHelper(engine)
