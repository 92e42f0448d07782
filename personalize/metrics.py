"""Operations: Prometheus metrics at ``/_personalize/metrics`` and structured (JSON) logs.

The metrics are read from the middleware's own counters when Prometheus scrapes, so they cost
the request path nothing beyond a few integer increments. The endpoint needs
``Authorization: Bearer <api key>`` (the middleware's ``api_keys``), or
``metrics_public=True`` for a private network.

=====================================================  ==========================================
metric                                                 what
=====================================================  ==========================================
``personalize_requests_total{kind}``                   requests by kind: ``remembered`` (profile
                                                       kept), ``context`` (opted out, GPC, no
                                                       consent), ``bot``, ``error`` (served
                                                       defaults after an internal error)
``personalize_profile_cache_total{result}``            near-cache ``hit`` / ``miss``
``personalize_profile_writes_total{result}``           changes ``written`` / ``failed`` (batches
                                                       retried) / ``dropped`` (buffer overflow)
``personalize_profile_pending``                        changes buffered, not yet in the store
``personalize_store_seconds``                          store latency (reads on cache misses and
                                                       batch writes), a histogram
``personalize_decisions_total{result}``                slot decisions ``made`` / ``error``
``personalize_learning_queue``                         learner lag: events waiting to be learned
``personalize_learning_events_total{result}``          ``learned`` (or sent) / ``dropped``
=====================================================  ==========================================

>>> import logging
>>> record = logging.LogRecord("personalize", logging.WARNING, __file__, 1, "store down", (), None)
>>> '"level": "WARNING"' in JsonFormatter().format(record)
True
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from personalize.endpoints import endpoint

if TYPE_CHECKING:
    from personalize.middleware import PersonalizeMiddleware
    from personalize.visitor import Visitor

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class LatencyHistogram:
    """A cheap fixed-bucket histogram of seconds (no locks: one event loop updates it)."""

    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.total += seconds
        for i, bound in enumerate(self.buckets):
            if seconds <= bound:
                self.counts[i] += 1
                return
        self.counts[-1] += 1

    def cumulative(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            out.append((repr(bound), float(running)))
        out.append(("+Inf", float(running + self.counts[-1])))
        return out


class _Collector:
    def __init__(self, pz: PersonalizeMiddleware) -> None:
        self.pz = pz

    def collect(self) -> Iterator[Any]:
        pz = self.pz
        requests = CounterMetricFamily(
            "personalize_requests", "Requests seen by the middleware", labels=["kind"]
        )
        for kind, n in pz.counts.items():
            requests.add_metric([kind], n)
        yield requests
        stats = pz.profiles.stats
        cache = CounterMetricFamily("personalize_profile_cache", "Near-cache", labels=["result"])
        cache.add_metric(["hit"], stats["cache_hits"])
        cache.add_metric(["miss"], stats["cache_misses"])
        yield cache
        writes = CounterMetricFamily(
            "personalize_profile_writes", "Profile changes written", labels=["result"]
        )
        for result in ("written", "failed", "dropped"):
            writes.add_metric([result], stats[result])
        yield writes
        yield GaugeMetricFamily(
            "personalize_profile_pending", "Changes not yet written", value=pz.profiles.pending
        )
        latency = pz.profiles.latency
        hist = HistogramMetricFamily("personalize_store_seconds", "Store call latency")
        hist.add_metric([], latency.cumulative(), sum_value=latency.total)
        yield hist
        decisions = CounterMetricFamily(
            "personalize_decisions", "Slot decisions", labels=["result"]
        )
        if pz.decisions is not None:
            decisions.add_metric(["made"], pz.decisions.counts["decisions"])
            decisions.add_metric(["error"], pz.decisions.counts["errors"])
        yield decisions
        if pz.learning is not None:
            status = pz.learning.status()
            yield GaugeMetricFamily(
                "personalize_learning_queue", "Events waiting", value=status.get("queued", 0)
            )
            events = CounterMetricFamily(
                "personalize_learning_events", "Learning events", labels=["result"]
            )
            events.add_metric(["learned"], status.get("events", 0))
            events.add_metric(["dropped"], status.get("dropped", 0))
            yield events


def registry_for(pz: PersonalizeMiddleware) -> CollectorRegistry:
    """A registry of this middleware's metrics (not the global one: several apps may run)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(pz))
    return registry


@endpoint("/metrics")
async def metrics(request: Request, visitor: Visitor, pz: PersonalizeMiddleware) -> Response:
    """Prometheus text format; needs an API key unless ``metrics_public``."""
    if not pz.metrics_public:
        from personalize.events_api import _authorized

        if not pz.api_keys or not _authorized(request, pz.api_keys):
            return JSONResponse(
                {"error": "metrics need Authorization: Bearer <api key> (or metrics_public)"},
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
    body = generate_latest(pz.metrics_registry)
    return Response(
        body,
        media_type="text/plain; version=0.0.4; charset=utf-8",
        headers={"cache-control": "no-store"},
    )


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
