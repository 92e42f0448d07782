"""End to end: an uplift planted in a shop's content is found by the report, through the real
middleware (the full run, with its figures, is ``python -m benchmarks.impact_e2e``)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.impact_e2e import run_shop


def test_a_planted_uplift_is_found_through_the_middleware(tmp_path: Path) -> None:
    found = run_shop(tmp_path, visitors=2_000, days=2, uplift=2.0, seed=5, store="memory")
    site = found.report.scope("site")
    assert site is not None and len(site.points) == 3  # the simulated days, by the clock
    p = site.latest
    # Every page view was one exposure, every order one attributed conversion, in its arm.
    assert p.personalized.visitors == found.shown["picked"]
    assert p.holdout.visitors == found.shown["welcome"]
    assert 0.15 < p.holdout.visitors / 2_000 < 0.25  # the content's holdout: 0.2
    assert p.personalized.converted == found.orders["picked"]
    assert p.holdout.converted == found.orders["welcome"]
    conversion = p.conversion
    assert conversion is not None and conversion.winner == "personalized"
    assert 0 < conversion.low <= 2.0 <= conversion.high  # excludes 0, covers the truth


def test_the_simulated_days_touch_the_same_calendar_days_at_any_hour() -> None:
    """Run just before midnight UTC, the simulation used to spill into a fourth day."""
    from benchmarks.impact_e2e import simulation_start

    day = 86_400
    for now in (1_764_806_340.0, 1_764_806_399.0, 1_764_806_400.0, 1_764_763_200.0):
        start = simulation_start(2, now)
        end = start + 2 * day + 3_600  # the orders' seconds add to the simulated time
        assert end < now
        assert int(end // day) - int(start // day) + 1 == 3
