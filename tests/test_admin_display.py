"""How the editor UI shows things: paths from the site's folder, times as dates, the model page
before there is anything to chart, what a visitor reads next to the engine's reasons."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

from personalize.middleware import PersonalizeMiddleware
from tests.pages_app import EDITOR, PHONE, client, make, visitor_id


@pytest.fixture
def pz(tmp_path: Path) -> PersonalizeMiddleware:
    return make(tmp_path)


def get(pz: PersonalizeMiddleware, path: str) -> str:
    token = base64.b64encode(f"{EDITOR[0]}:{EDITOR[1]}".encode()).decode()
    answer = client(pz).get(path, headers={"authorization": f"Basic {token}"})
    assert answer.status_code == 200, answer.text
    return answer.text


def test_no_server_paths_only_the_site_folders(pz: PersonalizeMiddleware, tmp_path: Path) -> None:
    segments = get(pz, "/_personalize/admin/segments")
    slots = get(pz, "/_personalize/admin/slots")
    for page in (segments, slots):
        assert str(tmp_path) not in page
    assert "<code>segments/devices.yaml:2</code>" in segments
    assert "Defined at <code>content/home.yaml:4</code>" in slots
    assert "writes <code>content/home.yaml</code>" in slots
    (tmp_path / "content" / "home.yaml").write_text("slots: [broken\n")
    assert pz.personalizer.decisions is not None
    pz.personalizer.decisions.library.reload_if_changed(force=True)
    overview = get(pz, "/_personalize/admin")
    assert "content/home.yaml:2: not valid YAML" in overview and str(tmp_path) not in overview


def test_profile_times_are_dates(pz: PersonalizeMiddleware) -> None:
    shopper = client(pz, PHONE)
    vid = visitor_id(shopper.get("/shoes/red").text)
    page = get(pz, f"/_personalize/admin/profiles?visitor_id={vid}")
    devices = page.split("<h3>Devices</h3>", 1)[1].split("<h3>", 1)[0]
    assert re.search(r'data-label="last seen">\d{4}-\d\d-\d\d \d\d:\d\d UTC<', devices)
    assert "mobile, iOS, Mobile Safari" in devices
    assert not re.search(r"\d{10}\.\d", page.split("Stored record (JSON)")[0])  # no raw epochs


class FakeLearning:
    def __init__(self, status: dict[str, Any]) -> None:
        self._status = status

    def status(self) -> dict[str, Any]:
        return self._status


def test_the_model_page_before_there_is_a_chart(pz: PersonalizeMiddleware) -> None:
    pz.personalizer.learning = FakeLearning(  # type: ignore[assignment]
        {"events": 40, "version": 1, "ready": False, "labelled": 3, "min_labelled": 1000,
         "min_auc": 0.6, "auc_history": []}
    )  # fmt: skip
    page = get(pz, "/_personalize/admin/model")
    assert "<svg" not in page and "dashed" not in page  # no chart: no talk of its lines
    assert "No measurements yet" in page
    assert "from 1000\nlabelled sessions on" in page and "3 labelled so far" in page
    pz.personalizer.learning = FakeLearning(  # type: ignore[assignment]
        {"events": 1400, "version": 3, "ready": True, "labelled": 1200, "min_labelled": 1000,
         "min_auc": 0.6, "auc_history": [[1000, 0.64], [1200, 0.66]]}
    )  # fmt: skip
    page = get(pz, "/_personalize/admin/model")
    assert "<svg" in page and "the dashed red line is the quality gate" in page


def test_the_preview_shows_what_the_visitor_reads(pz: PersonalizeMiddleware) -> None:
    page = get(pz, "/_personalize/admin/preview?path=/&device=mobile")
    assert "segment mobile" in page  # the engine's reasons, for the editor
    assert "The visitor reads: Shown because you are on a phone." in page


def test_the_preview_offers_the_ai_channel_and_the_os_version(pz: PersonalizeMiddleware) -> None:
    form = get(pz, "/_personalize/admin/preview")
    assert '<option value="ai_assistant">' in form and '<option value="chatgpt">' in form
    assert 'name="os_version"' in form
    page = get(
        pz,
        "/_personalize/admin/preview?path=/&device=mobile&channel=ai_assistant&source=chatgpt"
        "&os=Android&os_version=15",
    )
    attributes = page.split("All attributes of this visitor", 1)[1]
    for line in ("channel: ai_assistant", "medium: ai", "source: chatgpt", "os: Android",
                 "os_version: 15", "entry_channel: ai_assistant"):  # fmt: skip
        assert line in attributes, line
    assert '<option value="ai_assistant" selected>' in page
