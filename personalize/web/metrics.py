"""Operations: Prometheus metrics at ``/_personalize/metrics``.

The metrics are read from the site's own counters when Prometheus scrapes, so they cost
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

Structured (JSON) logs are :mod:`personalize.logs`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from personalize.personalizer import Personalizer
from personalize.web.apikeys import ApiKeys

if TYPE_CHECKING:
    from personalize.visitor import Visitor

__all__ = ["MetricsEndpoint"]


class _Collector:
    def __init__(self, pz: Personalizer) -> None:
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
        notices = CounterMetricFamily(
            "personalize_profile_notices",
            "Other workers' writes folded into a cached profile, or dropping it at a gap",
            labels=["result"],
        )
        notices.add_metric(["folded"], stats.get("notices_folded", 0))
        notices.add_metric(["dropped"], stats.get("notices_dropped", 0))
        yield notices
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
        state = pz.state.stats  # decision state: read before pages and after responses
        reads = CounterMetricFamily(
            "personalize_state_reads",
            "Reads of decision state (caps, session picks, counters) from the store",
            labels=["result"],
        )
        reads.add_metric(["ok"], state["reads"] - state["read_failed"])
        reads.add_metric(["failed"], state["read_failed"])
        yield reads
        feed = CounterMetricFamily(
            "personalize_state_feed_reads",
            "Reads of the decision state's change feed (which keys other workers changed)",
            labels=["result"],
        )
        feed.add_metric(["ok"], state["feed_reads"])
        feed.add_metric(["failed"], state["feed_failed"])
        yield feed
        yield CounterMetricFamily(
            "personalize_state_keys_read",
            "Keys of decision state read from the store (missing or stale in this worker)",
            value=state["cache_misses"],
        )
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


class MetricsEndpoint:
    """``GET <prefix>/metrics``: Prometheus text; needs an API key unless ``public``."""

    def __init__(self, personalizer: Personalizer, keys: ApiKeys, *, public: bool) -> None:
        # Not the global registry: several apps may run in one process.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(personalizer))
        self.keys = keys
        self.public = public

    async def get(self, request: Request, visitor: Visitor) -> Response:
        """The metrics, for a scraper with the key."""
        if not self.public and not self.keys.allow(request.headers):
            return JSONResponse(
                {"error": "metrics need Authorization: Bearer <api key> (or metrics_public)"},
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
        return Response(
            generate_latest(self.registry),
            media_type="text/plain; version=0.0.4; charset=utf-8",
            headers={"cache-control": "no-store"},
        )
