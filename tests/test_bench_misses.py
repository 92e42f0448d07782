"""The cache-miss harness: cachegrind's totals read, the table, the arguments checked."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.misses import Counts, main, parse_summary, render


def test_totals_are_read_from_a_real_cachegrind_run(tmp_path: Path) -> None:
    if shutil.which("valgrind") is None:
        if os.environ.get("CI"):
            pytest.fail("valgrind is on every CI machine: apt-get install valgrind")
        pytest.skip("valgrind is not installed")
    out = tmp_path / "cachegrind.out"
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=yes", "--branch-sim=yes",
           "--LL=1048576,16,64",
           f"--cachegrind-out-file={out}", sys.executable, "-S", "-c",
           "x = [[i] for i in range(200_000)]"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    counts = parse_summary(out.read_text())
    # 200,000 small lists (~15 MB) cannot stay in 1 MiB: their lines miss in both levels.
    assert counts.instructions > 10_000_000
    assert counts.d1_misses >= counts.ll_misses > 100_000
    assert counts.i1_misses > 0 and counts.mispredicts > 0  # (the interpreter's dispatch)


def test_a_run_without_the_cache_simulation_is_refused() -> None:
    with pytest.raises(ValueError, match="without the cache simulation"):
        parse_summary("events: Ir\nsummary: 12345\n")
    with pytest.raises(ValueError, match="without the branch simulation"):
        parse_summary("events: Ir I1mr D1mr D1mw DLmr DLmw\nsummary: 9 1 2 3 4 5\n")
    with pytest.raises(ValueError, match="not a cachegrind output"):
        parse_summary("PROGRAM TOTALS\n")


def test_per_request_figures_are_differences_of_two_runs() -> None:
    small = Counts(1_000.0, 100.0, 10.0, 50.0, 30.0)
    large = Counts(51_000.0, 2_100.0, 90.0, 4_050.0, 5_030.0)
    assert (large - small).per(1_000) == Counts(50.0, 2.0, 0.08, 4.0, 5.0)


def test_the_table_shows_each_crowd_and_no_crowd_for_the_bare_app() -> None:
    args = argparse.Namespace(batch=150, requests=300, extra=1000, cache_kib=1024)
    text = render(
        [("bare", None, Counts(81_816.0, 1_020.0, -0.004, 1_732.0, 1_735.0)),
         ("personalized_nowrite", 10, Counts(174_366.0, 3_033.0, 0.1, 4_107.0, 4_522.0)),
         ("personalized_nowrite", 1000, Counts(176_463.0, 3_128.0, 82.4, 4_110.0, 4_530.0))],
        args,
    )  # fmt: skip
    assert text.startswith("<!-- misses:start -->") and text.endswith("<!-- misses:end -->\n")
    assert "| bare | - | 81,816 | 1,020 | 0.0 | 1,732 | 1,735 |" in text  # (not -0.0)
    assert "| personalized_nowrite | 1,000 | 176,463 | 3,128 | 82.4 | 4,110 | 4,530 |" in text
    assert "1,024 KiB" in text


@pytest.mark.parametrize(
    "argv",
    [["--apps", "nonsense"], ["--visitors", "ten"], ["--visitors", "0"], ["--cache-kib", "1000"]],
)
def test_bad_arguments_are_refused_before_anything_runs(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--no-write"])
    assert exc.value.code == 2
