"""The application object (:class:`Personalizer`, in ``app``) and the parts it builds and
delegates to (``parts``: the default store, the wired decision engine, :class:`Outcomes`)."""

from personalize.personalizer.app import Personalizer

__all__ = ["Personalizer"]
