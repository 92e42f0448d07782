"""The editor UI's impact page: chart, numbers and exports of the impact log, and the holdout
form (validated, CSRF, written line by line under the folder's lock); ``personalize report``."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from personalize.cli import main
from personalize.impact.report import build_report
from personalize.middleware import PersonalizeMiddleware
from personalize.services.impact import ImpactLog
from personalize.stores.state_sqlite import SQLiteStateStore
from tests.impact_app import plant
from tests.pages_app import EDITOR, client, csrf_token, make
from tests.test_admin import basic, content_file

PAGE = "/_personalize/admin/impact"


@pytest.fixture
def pz(tmp_path: Path) -> PersonalizeMiddleware:
    return make(tmp_path)


def planted(pz: PersonalizeMiddleware, **options: Any) -> None:
    asyncio.run(plant(pz.personalizer.impact, time.time(), **options))


def get(pz: PersonalizeMiddleware, query: str = "") -> Any:
    return client(pz).get(PAGE + query, headers=basic(*EDITOR))


def test_without_measurements_the_page_says_how_to_start(pz: PersonalizeMiddleware) -> None:
    r = get(pz)
    assert r.status_code == 200 and "no-store" in r.headers["cache-control"]
    assert "No holdout measurements yet" in r.text and "Set a holdout share below" in r.text
    assert "<svg" not in r.text
    assert client(pz).get(PAGE).status_code == 401


def test_the_page_charts_the_uplift_with_its_band_and_the_numbers(
    pz: PersonalizeMiddleware,
) -> None:
    planted(pz, days=10, per_day=1500, uplift=0.4)
    html = get(pz).text
    # The whole site by default: two charts (conversion, value), each with a band and a line.
    assert html.count('<polygon class="band"') == 2 and html.count('class="estimate"') == 2
    rows = re.findall(r"<tr class=\"(site|slot|segment)\">", html)
    assert rows == ["site", "slot", "segment", "segment"]
    assert "personalized better on conversion" in html
    # The numbers behind the chart: ten days, newest first.
    days = re.findall(r'<td data-label="day">(\d{4}-\d\d-\d\d)</td>', html)
    assert len(days) == 10 and days == sorted(days, reverse=True)
    # One segment's chart.
    one = get(pz, "?scope=segment/hero/uk_visitors").text
    assert "<h2>hero · uk_visitors" in one


def test_csv_and_json_exports_hold_every_scope_and_day(pz: PersonalizeMiddleware) -> None:
    planted(pz, days=3, per_day=300)
    r = get(pz, "?format=csv")
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 4 * 3  # site, hero, two segments; three days
    last_site = [row for row in rows if row["scope"] == "site"][-1]
    exported = json.loads(get(pz, "?format=json").content)
    site = exported["scopes"][0]
    assert site["scope"] == "site" and len(site["days"]) == 3
    assert site["latest"]["holdout"]["visitors"] == int(last_site["holdout_visitors"])
    assert exported["confidence"] == 0.95
    # The same figures as the report built from the log itself.
    daily = asyncio.run(pz.personalizer.impact.daily(time.time(), days=90))
    assert build_report(daily).to_csv() == r.text


def test_a_store_that_cannot_be_read_is_said_not_a_500(pz: PersonalizeMiddleware) -> None:
    async def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("store away")

    pz.personalizer.impact.store.counters = down  # type: ignore[method-assign]
    r = get(pz)
    assert r.status_code == 200 and "The figures cannot be read now" in r.text
    assert "store away" in r.text
    assert get(pz, "?format=csv").status_code == 200  # the page, saying so, not an empty file
    assert "holdout share" in r.text  # the form still works


@pytest.mark.parametrize("days", ["0", "-5", "abc", "100000", "1e3"])
def test_absurd_days_are_clamped(pz: PersonalizeMiddleware, days: str) -> None:
    assert get(pz, f"?days={days}").status_code == 200


# -- the holdout form ---------------------------------------------------------------------------


def _form(pz: PersonalizeMiddleware, **fields: str) -> dict[str, str]:
    html = get(pz).text
    return {"csrf_token": csrf_token(html), **fields}


def _post(pz: PersonalizeMiddleware, form: dict[str, str], **headers: str) -> Any:
    return client(pz).post(
        PAGE, data=form, headers={**basic(*EDITOR), **headers}, follow_redirects=False
    )


def test_the_site_share_is_saved_into_a_content_file(pz: PersonalizeMiddleware) -> None:
    before = content_file(pz).read_text()
    r = _post(pz, _form(pz, site="0.1", **{"slot-hero": "0", "slot-banner": "0"}))
    assert r.status_code == 303 and r.headers["location"].endswith("?done=saved#holdout")
    folder = content_file(pz).parent
    assert (folder / "holdout.yaml").read_text().endswith("holdout: 0.1\n")
    assert content_file(pz).read_text() == before  # the slots were not changed
    assert pz.personalizer.decisions is not None
    assert pz.personalizer.decisions.holdout == 0.1  # in use at once, no restart
    assert "Saved." in get(pz, "?done=saved").text
    # Again, as a percentage: the same file's line changes.
    assert _post(pz, _form(pz, site="15 %")).status_code == 303
    assert yaml.safe_load((folder / "holdout.yaml").read_text()) == {"holdout": 0.15}
    assert not list(folder.glob(".*.tmp"))


def test_a_slot_share_is_one_line_added_and_nothing_else_changes(
    pz: PersonalizeMiddleware,
) -> None:
    before = content_file(pz).read_text()
    assert _post(pz, _form(pz, **{"slot-banner": "0.05"})).status_code == 303
    after = content_file(pz).read_text()
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    assert added == ["    holdout: 0.05"]
    assert "This comment must survive edits." in after and "# keep me" in after
    assert pz.personalizer.decisions is not None
    assert pz.personalizer.decisions.library.slots["banner"].holdout == 0.05


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"site": "0.5"}, "0.05"),
        ({"site": "0.01"}, "0.05"),
        ({"site": "abc"}, "is not a number"),
        ({"site": "nan"}, "holdout"),
        ({"site": "-0.1"}, "holdout"),
        ({"slot-hero": "1e400"}, "slot hero"),
    ],
)
def test_bad_shares_are_refused_and_nothing_is_written(
    pz: PersonalizeMiddleware, fields: dict[str, str], message: str
) -> None:
    folder = content_file(pz).parent
    before = {p.name: p.read_text() for p in folder.iterdir()}
    r = _post(pz, _form(pz, **fields))
    assert r.status_code == 400, r.text
    assert "Not saved" in r.text and message in r.text
    assert {p.name: p.read_text() for p in folder.iterdir()} == before


def test_the_form_needs_a_csrf_token_and_the_same_origin(pz: PersonalizeMiddleware) -> None:
    folder = content_file(pz).parent
    form = _form(pz, site="0.1")
    for bad in ({**form, "csrf_token": "forged"}, {"site": "0.1"}):
        assert _post(pz, bad).status_code == 403
    assert _post(pz, form, origin="https://evil.example").status_code == 403
    assert not (folder / "holdout.yaml").exists()


def test_a_share_the_loader_refuses_is_not_written(pz: PersonalizeMiddleware) -> None:
    """Two content files may not both set the site's share: the loader's word is shown."""
    folder = content_file(pz).parent
    (folder / "more.yaml").write_text("holdout: 0.1\nslots: {}\n")
    (folder / "home.yaml").write_text("holdout: 0.2\n" + content_file(pz).read_text())
    pz.personalizer.decisions.library.reload_if_changed(force=True)  # type: ignore[union-attr]
    before = (folder / "more.yaml").read_text()
    r = _post(pz, _form(pz, site="0.05"))
    assert r.status_code in (400, 422)
    assert (folder / "more.yaml").read_text() == before


# -- personalize report --------------------------------------------------------------------------


def test_the_report_command_prints_the_same_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "site.sqlite3"

    async def fill() -> None:
        store = SQLiteStateStore(db)
        await plant(ImpactLog(store), time.time(), days=5, per_day=600, uplift=0.5)
        await store.close()

    asyncio.run(fill())
    assert main(["report", "--sqlite", str(db)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["scope", "visitors", "P/H"]
    assert table[2].startswith("Whole site") and table[3].startswith("hero ")
    assert {line.split("  ")[0] for line in table[4:]} == {"hero · uk_visitors", "hero · (default)"}
    assert main(["report", "--sqlite", str(db), "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert [s["scope"] for s in exported["scopes"]][:2] == ["site", "slot/hero"]
    assert main(["report", "--sqlite", str(db), "--csv", "--days", "2"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["day"] for r in rows} == {time.strftime("%Y-%m-%d", time.gmtime(time.time() - d))
                                        for d in (0, 86_400)}  # fmt: skip
    site = [r for r in rows if r["scope"] == "site"][-1]
    assert int(site["personalized_visitors"]) + int(site["holdout_visitors"]) == 2 * 600


def test_the_report_command_says_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--sqlite", str(tmp_path / "nope.sqlite3")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "nope.sqlite3").exists()
    (tmp_path / "junk.sqlite3").write_bytes(b"not a database" * 100)
    assert main(["report", "--sqlite", str(tmp_path / "junk.sqlite3")]) == 2
    assert "cannot read the store" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "--json", "--csv"])
    with pytest.raises(SystemExit):
        main(["report", "--days", "0"])
