"""Content folders: the format, validation with file and line, and reloading on change."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from personalize.cli import main
from personalize.content.library import ContentLibrary
from personalize.content.loading import validate_content
from personalize.content.schedule import parse_schedule
from personalize.context import Clock
from personalize.exceptions import ConfigurationError, ContentError
from personalize.rules.segments import SegmentLibrary

DATA = Path(__file__).parent / "data"
CASES: list[dict[str, Any]] = yaml.safe_load((DATA / "content_errors.yaml").read_text())
SEGMENTS = SegmentLibrary.from_data(
    [
        {"name": "uk_visitors", "description": "UK", "rule": {"attribute": "country",
         "operator": "eq", "value": "GB"}},
        {"name": "open_ticket", "description": "Ticket", "rule": {"attribute": "open_tickets",
         "operator": "gt", "value": 0}},
    ]
)  # fmt: skip
GOOD = """\
slots:
  hero:
    cap: {views: 2, rest_hours: 12}
    variants:
      - id: welcome
        html: "<h1>Welcome</h1>"
      - id: boots
        template: boots.html
        value: 20
        tags: {products: [boots-42], campaign: true}
        schedule: {days: [fri, sat], hours: [18, 2], from: 2026-11-01}
      - id: note
        markdown: "**Free** returns"
    rules:
      - segment: uk_visitors
        variants: [boots, welcome]
        pin: boots
    default: [welcome, note]
"""


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_malformed_files_report_file_and_line(case: dict[str, Any], tmp_path: Path) -> None:
    _write(tmp_path, case["files"])
    problems = validate_content(tmp_path, SEGMENTS)
    assert len(problems) == len(case["errors"]), problems
    for problem, expected in zip(problems, case["errors"], strict=True):
        assert problem.startswith(f"{tmp_path}/{expected['file']}:{expected['line']}: "), problem
        assert expected["message"] in problem, problem
    with pytest.raises(ContentError) as caught:
        ContentLibrary(tmp_path, segments=SEGMENTS)
    assert isinstance(caught.value, ConfigurationError)
    assert caught.value.problems == tuple(problems)


def test_a_good_folder_loads_every_kind_of_variant(tmp_path: Path) -> None:
    _write(tmp_path, {"home.yaml": GOOD, "boots.html": "<p>{{ attributes.country }}</p>"})
    slot = ContentLibrary(tmp_path, segments=SEGMENTS).slots["hero"]
    assert list(slot.variants) == ["welcome", "boots", "note"]
    boots = slot.variants["boots"]
    assert boots.template is not None and boots.html is None
    assert boots.template.render(attributes={"country": "<GB>"}) == "<p>&lt;GB&gt;</p>"
    assert (boots.value, boots.products, boots.campaign) == (20.0, ("boots-42",), True)
    assert boots.schedule is not None and boots.schedule.start == "2026-11-01"
    assert str(slot.variants["note"].html) == "<p><strong>Free</strong> returns</p>\n"
    assert slot.rules[0].segment == "uk_visitors" and slot.rules[0].pin == "boots"
    assert slot.rules[0].origin == f"{tmp_path}/home.yaml:15"
    assert slot.default == ("welcome", "note")
    assert slot.cap is not None and slot.cap.views == 2


def test_sandboxed_templates_cannot_reach_python(tmp_path: Path) -> None:
    _write(tmp_path, {"a.yaml": GOOD, "boots.html": "[{{ attributes.__class__.__mro__ }}]"})
    template = ContentLibrary(tmp_path).slots["hero"].variants["boots"].template
    assert template is not None
    assert template.render(attributes={}) == "[]"  # unsafe attributes are undefined


def test_a_bad_reload_keeps_the_previous_content(tmp_path: Path) -> None:
    _write(tmp_path, {"home.yaml": GOOD, "boots.html": "<p>boots</p>"})
    library = ContentLibrary(tmp_path, reload_interval=0)
    assert not library.reload_if_changed()
    (tmp_path / "home.yaml").write_text(GOOD.replace("default: [welcome, note]", "default: [x]"))
    os.utime(tmp_path / "home.yaml", ns=(1, 1))
    assert not library.reload_if_changed()
    assert library.errors and "unknown variant 'x'" in library.errors[0]
    assert library.slots["hero"].default == ("welcome", "note")
    (tmp_path / "home.yaml").write_text(GOOD.replace("default: [welcome, note]", "default: [note]"))
    assert library.reload_if_changed()
    assert library.errors == () and library.slots["hero"].default == ("note",)
    (tmp_path / "boots.html").write_text("<p>{{ 1 + 1 }}</p>")  # a template change reloads too
    os.utime(tmp_path / "boots.html", ns=(2, 2))
    assert library.reload_if_changed() and library.version == 2


def test_from_data_validates_too() -> None:
    hero = {"variants": [{"id": "a", "html": "A"}], "default": ["b"]}
    with pytest.raises(ContentError, match="unknown variant 'b'"):
        ContentLibrary.from_data({"hero": hero})


def test_cli_check_validates_content_against_the_segments_next_to_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path / "content", {"a.yaml": GOOD, "boots.html": "x"})
    (tmp_path / "segments").mkdir()
    assert main(["check", "--content", str(tmp_path / "content"),
                 "--segments", str(tmp_path / "segments")]) == 1  # fmt: skip
    assert "unknown segment 'uk_visitors'" in capsys.readouterr().out
    (tmp_path / "segments" / "uk.yaml").write_text(
        "- {name: uk_visitors, description: UK, rule: {attribute: country, operator: eq, "
        "value: GB}}\n"
    )
    assert main(["check", "--content", str(tmp_path / "content"),
                 "--segments", str(tmp_path / "segments")]) == 0  # fmt: skip


@pytest.mark.parametrize(
    ("schedule", "weekday", "hour", "iso", "active"),
    [
        ({"hours": [18, 23]}, 0, 18, "", True),
        ({"hours": [18, 23]}, 0, 17, "", False),
        ({"days": ["fri"], "hours": [22, 2]}, 4, 23, "", True),
        ({"days": ["fri"], "hours": [22, 2]}, 5, 2, "", True),  # Saturday 02:xx: Friday's night
        ({"days": ["fri"], "hours": [22, 2]}, 5, 3, "", False),
        ({"days": ["fri"], "hours": [22, 2]}, 4, 1, "", False),  # Thursday's night
        ({"days": ["sat", "sun"]}, 6, 12, "", True),
        ({"from": "2026-11-27", "until": "2026-11-30"}, 0, 0, "2026-11-30T23:59:00+01:00", True),
        ({"from": "2026-11-27"}, 0, 0, "2026-11-26T23:59:00+01:00", False),
    ],
)
def test_schedules_in_local_time(
    schedule: dict[str, Any], weekday: int, hour: int, iso: str, active: bool
) -> None:
    assert parse_schedule(schedule).active(Clock(hour=hour, weekday=weekday, iso=iso)) is active


def test_variants_have_labels_for_visitors(tmp_path: Path) -> None:
    _write(tmp_path, {"home.yaml": GOOD.replace(
        "      - id: welcome\n", "      - id: welcome\n        label: '  Welcome to the shop '\n"
    ).replace("    cap:", "    description: Big banner\n    cap:")})  # fmt: skip
    (tmp_path / "boots.html").write_text("<p>boots</p>")
    slot = ContentLibrary(tmp_path, segments=SEGMENTS).slots["hero"]
    assert slot.description == "Big banner"
    labels = {v.id: v.label for v in slot.variants.values()}
    assert labels == {"welcome": "Welcome to the shop", "boots": "Boots", "note": "Note"}
