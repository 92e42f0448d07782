"""The long hostile run's report: RESULTS.md keeps one hostile section, run after run."""

from __future__ import annotations

from pathlib import Path

from benchmarks.benchkit import write_section
from benchmarks.hostile_run import END, START, _section


def _total(cases: int, failures: dict[str, int]) -> dict[str, object]:
    return {
        "cases": cases, "requests": 2 * cases, "server_errors": 0, "exceptions": 0,
        "incomplete": 0, "cache_violations": 0, "ip_leaks": 0, "identity_leaks": 0,
        "non_browsers_remembered": 0, "unavailable": 3, "per_test": {"identity": cases},
        "statuses": {"200": cases}, "failures": failures, "examples": {},
    }  # fmt: skip


def test_each_run_replaces_the_section_and_keeps_its_marks(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text(f"# Benchmark results\n\n{START}\nold\n{END}\n\n## Later section\n")
    write_section(results, START, END, _section(_total(10, {"x": 2}), "cmd", 60.0, [1]))
    first = results.read_text()
    assert "**FAIL**" in first and "- `x` (2)" in first and "old" not in first
    write_section(results, START, END, _section(_total(100_000, {}), "cmd", 60.0, [0]))
    text = results.read_text()
    assert text.count(START) == text.count(END) == 1
    assert "**PASS**" in text and "FAIL" not in text and "| generated cases | 100,000 |" in text
    assert text.endswith("## Later section\n")
