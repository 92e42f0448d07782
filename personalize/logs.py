"""Structured logs: everything personalize logs goes to the ``personalize`` logger;
:func:`configure_logging` switches it to one JSON object per line.

>>> import logging
>>> record = logging.LogRecord("personalize", logging.WARNING, __file__, 1, "store down", (), None)
>>> '"level": "WARNING"' in JsonFormatter().format(record)
True
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

__all__ = ["JsonFormatter", "configure_logging"]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra`` fields.

    ``logging.getLogger("personalize").handlers[0].setFormatter(JsonFormatter())``, or
    :func:`configure_logging`.
    """

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(level: int | str = logging.INFO, *, json_lines: bool = True) -> None:
    """Send personalize's logs to stderr, as JSON lines by default."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter())
    log = logging.getLogger("personalize")
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
