"""The Jinja2 global ``personalize.slot("hero")`` for the application's own templates.

Jinja2 renders synchronously while :meth:`Visitor.decide` is async; decisions do no I/O (the
counters and caches are in memory, see :mod:`personalize.content.decisions`), so the global calls
:meth:`DecisionEngine.decide_sync` directly. It finds the visitor through the ``request`` in
the template context (Starlette's ``Jinja2Templates`` passes it), and the engine through the
middleware unless one is given. Outside a request it renders nothing, never an error.

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

    def decision(self, context: jinja2.runtime.Context, name: str) -> Decision | None:
        request: Any = context.get("request")
        scope = getattr(request, "scope", None)
        visitor = scope.get("state", {}).get(STATE_KEY) if isinstance(scope, dict) else None
        if not isinstance(visitor, Visitor):
            return None
        if self.engine is not None:
            visitor.used = True
            return self.engine.decide_sync(visitor, name)
        return visitor.decide_sync(name)


def install(env: jinja2.Environment, engine: DecisionEngine | None = None) -> None:
    """Make ``personalize.slot(name)`` available to every template of ``env``."""
    env.globals["personalize"] = SlotHelper(engine)
