"""The optional packages learning needs, imported with an error that says what to install.

``river`` is the ``personalize[learn]`` extra; ``redis`` the ``personalize[redis]`` extra.

>>> river.__name__, river_base.Classifier.__name__
('river', 'Classifier')
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["INSTALL_HINT", "redis_module", "river", "river_base"]

INSTALL_HINT = "pip install 'personalize[learn]'"

_SUBMODULES = ("anomaly", "base", "cluster", "linear_model", "metrics", "optim", "preprocessing")
try:
    _river = importlib.import_module("river")
    for _name in (*_SUBMODULES, "stats"):
        importlib.import_module(f"river.{_name}")
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(f"personalize's learned segments need river: {INSTALL_HINT}") from exc

#: river and its base classes, which the models subclass (Any: river's hints are partial).
river: Any = _river
river_base: Any = _river.base


def redis_module() -> ModuleType:
    """The ``redis`` package (the ``personalize[redis]`` extra); a clear error when missing."""
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the scale-out learner needs redis: pip install 'personalize[redis]'"
        ) from exc
    return redis
