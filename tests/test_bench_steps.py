"""The step-cost harness: its steps exist and run twice as told, its child runs, its table."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest

from benchmarks import apps, steps
from benchmarks.instructions import _child


def test_every_step_names_a_function_of_the_request_path() -> None:
    for name, spec in steps.STEPS.items():
        owner, attribute = steps.resolve(name)  # (LookupError when a rename left it behind)
        assert callable(getattr(owner, attribute))
        assert spec.part_of is None or spec.part_of in steps.STEPS


def test_a_wrapped_step_runs_twice_per_call_and_is_put_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from personalize.context.builder import ContextBuilder

    original = ContextBuilder.__dict__["memoized"]
    calls: list[int] = []

    def counting(self: ContextBuilder, *args: object) -> object:
        calls.append(1)
        return original(self, *args)

    monkeypatch.setattr(ContextBuilder, "memoized", counting)
    monkeypatch.setenv("BENCH_DB", str(tmp_path / "bench.sqlite3"))
    for twice, per_request in ((False, 1), (True, 2)):
        monkeypatch.setattr(apps, "_BUILT", {})  # a fresh app that sees the wrapper
        calls.clear()
        with steps.wrapped("context", twice):
            assert ContextBuilder.__dict__["memoized"] is not counting
            asyncio.run(_child("personalized_nowrite", visitors=3, requests=10, batch=4))
        assert ContextBuilder.__dict__["memoized"] is counting  # put back
        # 3 new visitors, 3 warm-up requests, 10 measured: one context each, or two.
        assert len(calls) == 16 * per_request


@pytest.mark.parametrize("step", sorted(steps.STEPS))
def test_the_child_runs_each_step_twice_and_the_app_still_works(
    step: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_DB", str(tmp_path / "bench.sqlite3"))
    monkeypatch.setattr(apps, "_BUILT", {})
    owner, attribute = steps.resolve(step)
    before = getattr(owner, attribute)
    steps.run_child("personalized_nowrite", step, True, visitors=4, requests=12, batch=5)
    assert getattr(owner, attribute) is before
    service = apps._BUILT["personalized_nowrite"].personalizer.profiles
    # Every page view was recorded once (a step run twice records nothing twice), and every
    # measured request found its profile in the near cache.
    assert service.stats["written"] == 4 + 4 + 12
    assert service.stats["cache_misses"] == 0


def test_the_table_gives_each_step_its_share_of_what_the_middleware_adds() -> None:
    args = argparse.Namespace(visitors=1000, batch=150, requests=300, extra=1000)
    rows = [steps.Row("visitor", 172_000.0, 205_000.0), steps.Row("context", 172_000.0, 181_000.0)]
    totals = {"bare": 82_000.0, "personalized_nowrite": 170_000.0}
    text = steps.render("personalized_nowrite", "bare", totals, rows, args)
    assert text.startswith(steps.START) and text.endswith(steps.END + "\n")
    assert "so the middleware adds 88,000" in text
    assert "| visitor | building the visitor" in text and "| 33,000 | 38% |" in text
    assert "| - context | the context, from its memo" in text and "| 9,000 | 10% |" in text


@pytest.mark.parametrize(
    "argv",
    [
        ["--steps", "nonsense"],
        ["--app", "bare"],
        ["--app", "nonsense"],
        ["--requests", "0"],
        ["--jobs", "0"],
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        steps.main([*argv, "--no-write"])
    assert exc.value.code == 2
