"""``personalize simulate`` and ``personalize evaluate`` through the real console entry point."""

from __future__ import annotations

import contextlib
import io
import json
import re
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
    table, _, clusters = out.partition("\n\n")
    rows = [line.split() for line in table.splitlines()]
    assert rows[0] == [
        "sessions", "positives", "auc@decision", "auc@end", "log_loss", "planted_auc", "purity",
        "min_purity", "ready",
    ]  # fmt: skip
    assert [r[0] for r in rows[1:]] == ["1000", "2000", "3000", "4000"]
    decision, end, logloss, planted, purity, least = (float(v) for v in rows[-1][2:8])
    assert end > decision > 0.6 and 0.0 < logloss < 0.5
    assert planted > 0.85 and purity > 0.6  # the planted group found at decision time
    shown = [float(m) / 100 for m in re.findall(r"sessions\s+([\d.]+)%", clusters)]
    assert abs(least - min(shown)) < 0.0011 and least <= purity  # the least pure cluster's
    assert clusters.startswith("clusters in the last window") and "%" in clusters
    assert "4000/4000" not in err  # stderr is not a terminal here: no progress bar
    assert main(["evaluate", "--replay", str(path), "--every", "2000", "--progress"]) == 0
    out, err = capsys.readouterr()
    assert "4000/4000 sessions" in err  # asked for: the bar, on stderr, never on stdout
    assert "sessions/s" not in out and "/s" not in out


def test_planted_effects_personas_and_named_clusters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.jsonl"
    effect = "channel=email,daypart=morning:5"
    argv = ["simulate", "-n", "700", "-o", str(path), "--personas", "loyal_email,deal_hunter"]
    assert main([*argv, "--effect", effect]) == 0
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert {r["group"] for r in records} == {"loyal_email", "deal_hunter"}
    planted = [r for r in records if r["planted"]]
    assert planted and all(r["channel"] == "email" and 6 <= r["hour"] <= 11 for r in planted)
    assert main([*argv, "--effect", "channel=email"]) == 2
    assert main([*argv, "--personas", "nobody"]) == 2
    assert "unknown personas nobody" in capsys.readouterr().err
    names = tmp_path / "clusters.yaml"
    names.write_text("clusters:\n  regulars: 0\n  Bad: x\n")
    assert main(["evaluate", "--replay", str(path), "--quiet", "--cluster-names", str(names)]) == 2
    assert f"{names}:3: cluster name 'Bad'" in capsys.readouterr().err
    names.write_text("clusters:\n  regulars: 0\n")
    assert main(["evaluate", "--replay", str(path), "--quiet", "--cluster-names", str(names)]) == 0
    assert " 0 regulars " in capsys.readouterr().out


def test_simulate_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    main(["simulate", "-n", "50", "--seed", "9", "-o", str(a)])
    main(["simulate", "-n", "50", "--seed", "9", "-o", str(b)])
    assert a.read_text() == b.read_text()


def test_evaluate_reports_a_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--replay", "/nonexistent.jsonl"]) == 2
    assert "nonexistent" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["simulate", "-n", "-5"], "-5 is not a whole number of at least 1"),
        (["simulate", "-n", "lots"], "lots is not a whole number"),
        (["simulate", "--base-rate", "1.5"], "1.5 is not a number from 0 to 1"),
        (["simulate", "--outlier-rate", "nan"], "nan is not a number from 0 to 1"),
        (["simulate", "--lift", "0"], "0 is not a number above 0"),
        (["evaluate", "--replay", "x.jsonl", "--every", "0"], "0 is not a whole number"),
        (["demo", "--port", "70000"], "70000 is not a whole number from 1 to 65535"),
        (["simulate", "--progress", "--quiet"], "not allowed with argument"),
    ],
)
def test_bad_numbers_are_refused_by_the_parser(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("command", ["demo", "simulate", "evaluate", "learner", "check"])
def test_every_option_says_what_it_is_and_its_default(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    options = re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", text.split("options:", 1)[1])
    for option in set(options) - {"--help"}:
        described = re.search(re.escape(option) + r"(?: [A-Z.]+)? (\w[^-]*)", text)
        assert described, f"{command} {option} has no help"
    defaults = text.count("(default:")
    assert defaults >= {"demo": 2, "simulate": 7, "evaluate": 4, "learner": 6, "check": 2}[command]


def test_evaluate_prints_each_line_as_it_is_computed(tmp_path: Path) -> None:
    path = tmp_path / "sessions.jsonl"
    assert main(["simulate", "-n", "3000", "--seed", "1", "-o", str(path)]) == 0
    seen: list[str] = []

    class Watch(io.StringIO):
        def write(self, text: str) -> int:  # what stdout received, and when
            seen.append(text)
            return super().write(text)

        def flush(self) -> None:
            seen.append("<flush>")

    with contextlib.redirect_stdout(Watch()):
        assert main(["evaluate", "--replay", str(path), "--every", "1000"]) == 0
    flushed = "".join(seen).split("<flush>")
    rows = [chunk.strip().split()[0] for chunk in flushed if chunk.strip()]
    assert rows[:4] == ["sessions", "1000", "2000", "3000"]  # each flushed on its own
    assert rows[4:] == ["clusters"]  # then the clusters of the last window, at the end


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"hour": 3, "converted": tru}', "not valid JSON (Expecting value at column 26)"),
        ("[1, 2]", "a record is a JSON object"),
        ('{"hour": 3}', "the record has no 'converted' (the --label key)"),
        ('{"hour": "late", "converted": true}', "a value cannot be used"),
    ],
)
def test_a_bad_record_is_reported_with_its_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, problem: str
) -> None:
    path = tmp_path / "sessions.jsonl"
    good = '{"hour": 3, "converted": false}\n'
    path.write_text(good * 3 + "\n" + line + "\n" + good)
    assert main(["evaluate", "--replay", str(path), "--every", "2", "--progress"]) == 2
    err = capsys.readouterr().err
    bar, last, end = err.rsplit("\n", 2)
    assert end == "" and "\r" not in last  # a line of its own, after the progress bar's
    assert last.startswith(f"{path}:5: {problem}"), err  # line 5: the blank line 4 counts
    assert bar.rsplit("\r", 1)[-1].startswith("[#")  # the bar, left where the replay stopped


def test_simulate_shows_progress_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.jsonl"
    assert main(["simulate", "-n", "300", "-o", str(out), "--progress"]) == 0
    assert "300/300 sessions" in capsys.readouterr().err
    assert main(["simulate", "-n", "300", "-o", str(out)]) == 0  # not a terminal: no bar
    assert capsys.readouterr().err == "personalize simulate: 300 sessions\n"
