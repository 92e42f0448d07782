"""``personalize simulate`` and ``personalize evaluate`` through the real console entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personalize.cli import main


def test_simulate_then_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sessions.jsonl"
    assert main(["simulate", "-n", "4000", "--seed", "5", "-o", str(path)]) == 0
    lines = path.read_text().splitlines()
    assert len(lines) == 4000
    first = json.loads(lines[0])
    assert {"group", "planted", "converted", "p", "channel", "hour"} <= set(first)
    capsys.readouterr()
    assert main(["evaluate", "--replay", str(path), "--every", "1000"]) == 0
    out, err = capsys.readouterr()
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["sessions", "positives", "roc_auc", "log_loss", "ready"]
    assert [r[0] for r in rows[1:]] == ["1000", "2000", "3000", "4000"]
    assert float(rows[-1][2]) > 0.6 and 0.0 < float(rows[-1][3]) < 0.5
    assert "4000/4000 sessions" in err  # the progress bar, on stderr


def test_simulate_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    main(["simulate", "-n", "50", "--seed", "9", "-o", str(a)])
    main(["simulate", "-n", "50", "--seed", "9", "-o", str(b)])
    assert a.read_text() == b.read_text()


def test_evaluate_reports_a_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--replay", "/nonexistent.jsonl"]) == 2
    assert "nonexistent" in capsys.readouterr().err
