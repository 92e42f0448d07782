"""Segment files: loading, validation with file and line, hot reload that never breaks."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from personalize.exceptions import ConfigurationError
from personalize.rules.segments import (
    Membership,
    Segment,
    SegmentError,
    SegmentLibrary,
    load_segments,
    validate_segments,
)

ROOT = Path(__file__).resolve().parent.parent
CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "data" / "segment_files.yaml").read_text(encoding="utf-8")
)

UK = """\
- name: uk_visitors
  description: From the UK
  rule: {attribute: country, operator: eq, value: GB}
"""
US = """\
segments:
  - name: us_visitors
    description: From the US
    rule: {attribute: country, operator: eq, value: US}
"""


def _write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    # Make the change visible to stat-based checks even on coarse-timestamp filesystems.
    stamp = path.stat().st_mtime_ns + 2_000_000_000
    os.utime(path, ns=(stamp, stamp))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "segments"
    path.mkdir()
    return path


@pytest.mark.parametrize("case", CASES, ids=lambda c: str(c["id"]))
def test_validation_names_file_and_line(case: dict[str, Any], folder: Path) -> None:
    for name, text in case["files"].items():
        _write(folder, name, text)
    problems = validate_segments(folder)
    assert len(problems) == len(case["errors"]), problems
    for problem, expected in zip(problems, case["errors"], strict=True):
        prefix = f"{folder}/{expected['file']}:{expected['line']}: "
        assert problem.startswith(prefix), problem
        assert expected["message"].replace("{dir}", str(folder)) in problem, problem
    with pytest.raises(SegmentError) as caught:
        SegmentLibrary(folder)
    assert isinstance(caught.value, ConfigurationError)
    assert caught.value.problems == tuple(problems)
    assert str(caught.value).splitlines()[1:] == problems


def test_table_ids_are_unique() -> None:
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids))


def test_loads_lists_and_mappings_across_files(folder: Path) -> None:
    _write(folder, "uk.yaml", UK)
    _write(folder, "nested/us.yml", US)
    _write(folder, "empty.yaml", "")
    _write(folder, "notes.txt", "not a segment file")
    _write(folder, ".#uk.yaml", "editor lock: ignored")
    library = SegmentLibrary(folder)
    assert library.names == ("us_visitors", "uk_visitors")
    assert len(library) == 2 and "uk_visitors" in library and "x" not in library
    segment = library.get("uk_visitors")
    assert isinstance(segment, Segment)
    assert segment.description == "From the UK"
    assert segment.origin == f"{folder}/uk.yaml:1"
    assert [s.name for s in library] == list(library.names)
    assert library.errors == ()


def test_evaluate_gives_memberships_with_reasons(folder: Path) -> None:
    _write(folder, "uk.yaml", UK)
    _write(folder, "us.yaml", US)
    library = SegmentLibrary(folder)
    assert library.evaluate({"country": "GB"}) == [
        Membership(segment="uk_visitors", reasons=("country is GB",))
    ]
    assert library.evaluate({}) == []
    assert library.evaluate({"country": ["GB"]}) == []


def test_get_unknown_segment_is_a_clear_key_error(folder: Path) -> None:
    _write(folder, "uk.yaml", UK)
    library = SegmentLibrary(folder)
    with pytest.raises(KeyError, match="unknown segment 'uk_visitor'; did you mean 'uk_visitors'"):
        library.get("uk_visitor")


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SegmentError, match="no such folder"):
        SegmentLibrary(tmp_path / "nope")
    with pytest.raises(SegmentError):
        load_segments(tmp_path / "nope")


def test_hot_reload_without_restart(folder: Path) -> None:
    _write(folder, "geo.yaml", UK)
    library = SegmentLibrary(folder, reload_interval=0)
    assert library.reload_if_changed() is False  # nothing changed
    _write(
        folder,
        "geo.yaml",
        UK + US.replace("segments:\n", "").replace("  - ", "- ", 1).replace("\n    ", "\n  "),
    )
    assert library.reload_if_changed() is True
    assert library.names == ("uk_visitors", "us_visitors")
    assert library.evaluate({"country": "US"})[0].segment == "us_visitors"
    (folder / "geo.yaml").unlink()
    assert library.reload_if_changed() is True
    assert library.names == ()


def test_broken_edit_keeps_the_previous_library(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write(folder, "geo.yaml", UK)
    library = SegmentLibrary(folder, reload_interval=0)
    _write(folder, "geo.yaml", UK.replace("operator: eq", "operator: eqq"))
    with caplog.at_level(logging.ERROR, logger="personalize.segments"):
        assert library.reload_if_changed() is False
    assert library.names == ("uk_visitors",)
    assert library.evaluate({"country": "GB"})[0].segment == "uk_visitors"
    assert len(library.errors) == 1
    assert library.errors[0].startswith(f"{folder}/geo.yaml:3: ")
    assert "unknown operator 'eqq'" in caplog.text
    assert "keeping the previous version" in caplog.text
    # The same broken state is not re-read (or re-logged) every interval...
    caplog.clear()
    assert library.reload_if_changed() is False
    assert caplog.text == ""
    # ...and fixing the file installs it and clears the errors.
    _write(folder, "geo.yaml", UK.replace("GB", "IE"))
    assert library.reload_if_changed() is True
    assert library.errors == ()
    assert library.evaluate({"country": "IE"})[0].segment == "uk_visitors"


def test_reload_is_rate_limited(folder: Path) -> None:
    _write(folder, "geo.yaml", UK)
    library = SegmentLibrary(folder, reload_interval=3600)
    _write(folder, "geo.yaml", US)
    assert library.reload_if_changed() is False  # checked less than an hour ago
    assert library.names == ("uk_visitors",)
    assert library.reload_if_changed(force=True) is True
    assert library.names == ("us_visitors",)


def test_folder_removed_keeps_the_library(folder: Path) -> None:
    _write(folder, "geo.yaml", UK)
    library = SegmentLibrary(folder, reload_interval=0)
    (folder / "geo.yaml").unlink()
    folder.rmdir()
    assert library.reload_if_changed() is False
    assert library.names == ("uk_visitors",)
    assert library.errors and "no such folder" in library.errors[0]


def test_from_data() -> None:
    library = SegmentLibrary.from_data(
        [
            {
                "name": "evening_mobile",
                "description": "Phones in the evening",
                "rule": {
                    "all": [
                        {"attribute": "daypart", "operator": "eq", "value": "evening"},
                        {"attribute": "device_type", "operator": "eq", "value": "mobile"},
                    ]
                },
            },
        ]
    )
    assert library.evaluate({"daypart": "evening", "device_type": "mobile"}) == [
        Membership("evening_mobile", ("time of day is evening", "device is mobile"))
    ]
    assert library.reload_if_changed(force=True) is False
    assert repr(library) == "<SegmentLibrary (data) segments=1>"


def test_from_data_errors_name_the_item() -> None:
    with pytest.raises(SegmentError) as caught:
        SegmentLibrary.from_data(
            [
                {
                    "name": "a",
                    "description": "x",
                    "rule": {"attribute": "visits", "operator": "gte", "value": 1},
                },
                {"name": "a", "description": "x", "rule": {"attribute": "nope"}},
                {"name": "b", "description": "x"},
            ],
            where="test",
        )
    assert caught.value.problems == (
        "test[1]: segment 'a': unknown attribute 'nope'",
        "test[1]: segment 'a': unknown operator nothing; one of eq, ne, in, not_in, gt, gte, "
        "lt, lte, between, contains, matches, exists, within_days",
        "test[2]: segment 'b': has no rule",
    )


def test_repository_segments_are_valid() -> None:
    library = SegmentLibrary(ROOT / "segments")
    for name in (
        "uk_visitors",
        "us_visitors",
        "returning_visitor",
        "shoe_lovers",
        "evening_mobile",
        "paid_search_mobile",
        "night_owls",
        "recent_buyer",
        "open_ticket",
        "known_customer",
    ):
        assert library.get(name).description
    night = {
        "hour": 23,
        "device_type": "mobile",
        "daypart": "evening",
        "entry_channel": "paid_search",  # the visit began with an ad click
        "country": "GB",
        "known": True,
        "last_purchase_at": 0.0,
        "now": 86_400.0 * 10,
        "open_tickets": 1,
        "affinity.shoes": 4.0,
        "visits": 2,
    }
    found = {m.segment for m in library.evaluate(night)}
    assert {
        "night_owls",
        "evening_mobile",
        "paid_search_mobile",
        "uk_visitors",
        "known_customer",
        "recent_buyer",
        "open_ticket",
        "shoe_lovers",
        "returning_visitor",
    } <= found
    assert "us_visitors" not in found


CLUSTERS = """\
clusters:
  bargain_hunters: 3
  early_birds: 0
segments:
  - name: hunters
    description: Named cluster
    rule: {attribute: cluster, operator: eq, value: bargain_hunters}
  - name: by_number
    description: A named cluster given by its number reads as its name
    rule: {attribute: cluster, operator: in, value: [3, 5]}
"""


def test_rules_name_clusters_from_a_clusters_mapping(folder: Path) -> None:
    _write(folder, "clusters.yaml", CLUSTERS)
    library = SegmentLibrary(folder)
    assert library.cluster_names == {3: "bargain_hunters", 0: "early_birds"}
    assert library.cluster_label(3) == "bargain_hunters" and library.cluster_label(4) == 4
    found = library.evaluate({"cluster": library.cluster_label(3)})
    assert found == [
        Membership("hunters", ("cluster is bargain_hunters",)),
        Membership("by_number", ("cluster is bargain_hunters (one of 5, bargain_hunters)",)),
    ]
    assert [m.segment for m in library.evaluate({"cluster": 5})] == ["by_number"]


def test_an_unknown_cluster_name_is_refused_with_the_nearest_one(folder: Path) -> None:
    _write(
        folder, "clusters.yaml", CLUSTERS.replace("value: bargain_hunters", "value: bargin_hunters")
    )
    problems = validate_segments(folder)
    assert problems == [
        f"{folder}/clusters.yaml:7: segment 'hunters': no cluster is named "
        "'bargin_hunters' (did you mean 'bargain_hunters'?); named clusters: bargain_hunters, "
        "early_birds"
    ]
    _write(folder, "clusters.yaml", "clusters:\n  a: 1\n  b: 1\n  C: 2\n  d: -1\n")
    assert validate_segments(folder) == [
        f"{folder}/clusters.yaml:3: cluster 1 is named twice: 'a' and 'b'",
        f"{folder}/clusters.yaml:4: cluster name 'C' is not lower_snake_case (e.g. "
        "bargain_hunters)",
        f"{folder}/clusters.yaml:5: cluster 'd': expected a cluster number 0 to 63, not a number",
    ]
    _write(folder, "clusters.yaml", "clusters:\n  a: 1\n")
    _write(folder, "more.yaml", "clusters:\n  a: 2\n")
    assert validate_segments(folder) == [
        f"{folder}/more.yaml:2: cluster name 'a' or number 2 is given in two places"
    ]
