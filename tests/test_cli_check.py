"""`personalize check`: validates the segments (and later content) folders, exit 1 on problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from personalize.cli import main

ROOT = Path(__file__).resolve().parent.parent
GOOD = """\
- name: uk_visitors
  description: From the UK
  rule: {attribute: country, operator: eq, value: GB}
"""
BAD = """\
- name: uk_visitors
  description: From the UK
  rule: {attribute: contry, operator: eq, value: GB}
- name: night_owls
  description: Late
  rule: {attribute: hour, operator: between, value: [22]}
"""


def test_valid_folder_exits_0_with_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no default content/ folder here
    (tmp_path / "segs").mkdir()
    (tmp_path / "segs" / "geo.yaml").write_text(GOOD, encoding="utf-8")
    assert main(["check", "--segments", str(tmp_path / "segs")]) == 0
    out, err = capsys.readouterr()
    assert out == f"personalize check: ok, checked {tmp_path / 'segs'} (1 file)\n"
    assert err == ""


def test_problems_print_path_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "segs"
    folder.mkdir()
    (folder / "geo.yaml").write_text(BAD, encoding="utf-8")
    assert main(["check", "--segments", str(folder)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{folder}/geo.yaml:3: segment 'uk_visitors': unknown attribute 'contry' "
        "(did you mean 'country'?)",
        f"{folder}/geo.yaml:6: segment 'night_owls': between needs a list of two values "
        "[low, high], not a list",
    ]
    assert err == "personalize check: 2 problems\n"


def test_malformed_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "geo.yaml").write_text("- name: [unclosed\n", encoding="utf-8")
    assert main(["check", "--segments", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{tmp_path}/geo.yaml:2: not valid YAML")


def test_nothing_to_check_says_so_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["check"]) == 2  # a folder without segments/ or content/: not "ok"
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("personalize check: nothing to check (no segments/ or content/ folder")
    assert "--segments DIR --content DIR" in err
    (tmp_path / "segments").mkdir()  # a folder without a YAML file in it is no better
    assert main(["check"]) == 2
    assert "nothing to check (segments (0 files))" in capsys.readouterr().err


def test_one_default_folder_is_enough(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "segments").mkdir()
    (tmp_path / "segments" / "geo.yaml").write_text(GOOD, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["check"]) == 0
    assert capsys.readouterr().out == "personalize check: ok, checked segments (1 file)\n"


def test_default_folders_are_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "segments").mkdir()
    (tmp_path / "segments" / "geo.yaml").write_text(BAD, encoding="utf-8")
    (tmp_path / "content").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["check"]) == 1
    assert capsys.readouterr().out.startswith("segments/geo.yaml:3: ")


@pytest.mark.parametrize("option", ["--segments", "--content"])
def test_an_explicit_missing_folder_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    missing = tmp_path / "nope"
    assert main(["check", option, str(missing)]) == 1
    assert capsys.readouterr().out == f"{missing}: no such folder\n"


def test_the_repository_segments_pass(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["check", "--segments", "segments"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("personalize check: ok, checked segments (")


def test_cluster_names_are_checked_with_the_rules_that_use_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "segs"
    folder.mkdir()
    (folder / "clusters.yaml").write_text(
        "clusters:\n  bargain_hunters: 4\n  Office: 1\n", encoding="utf-8"
    )
    (folder / "learned.yaml").write_text(
        "- name: hunters\n  description: Named\n"
        "  rule: {attribute: cluster, operator: eq, value: bargain_hunter}\n",
        encoding="utf-8",
    )
    assert main(["check", "--segments", str(folder)]) == 1
    out, err = capsys.readouterr()
    assert f"{folder / 'clusters.yaml'}:3: cluster name 'Office' is not lower_snake_case" in out
    assert (
        f"{folder / 'learned.yaml'}:3: segment 'hunters': no cluster is named 'bargain_hunter' "
        "(did you mean 'bargain_hunters'?)"
    ) in out
    assert err == "personalize check: 2 problems\n"
