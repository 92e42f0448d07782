"""Store latency as a fixed-bucket histogram, cheap enough to update on the request path.

>>> h = LatencyHistogram(buckets=(0.001, 0.01))
>>> h.observe(0.0005); h.observe(0.02)
>>> h.cumulative()
[('0.001', 1.0), ('0.01', 1.0), ('+Inf', 2.0)]
"""

from __future__ import annotations

from bisect import bisect_left

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class LatencyHistogram:
    """A cheap fixed-bucket histogram of seconds (no locks: one event loop updates it)."""

    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.total += seconds
        self.counts[bisect_left(self.buckets, seconds)] += 1  # the first bound >= seconds

    def cumulative(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            out.append((repr(bound), float(running)))
        out.append(("+Inf", float(running + self.counts[-1])))
        return out
