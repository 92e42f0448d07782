"""Lazy access to river, the optional ``personalize[learn]`` extra."""

from __future__ import annotations

from types import ModuleType

INSTALL_HINT = "pip install 'personalize[learn]'"


def river() -> ModuleType:
    """The ``river`` package with the submodules the models use; a clear error when missing.

    >>> river().__name__
    'river'
    """
    try:
        import river
        import river.anomaly
        import river.cluster
        import river.linear_model
        import river.metrics
        import river.optim
        import river.preprocessing
        import river.stats
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"personalize's learned segments need river: {INSTALL_HINT}") from exc
    return river


def redis_module() -> ModuleType:
    """The ``redis`` package (the ``personalize[redis]`` extra); a clear error when missing."""
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the scale-out learner needs redis: pip install 'personalize[redis]'"
        ) from exc
    return redis
