"""The editor UI: authentication on every route and method, CSRF, the mapping editor, preview,
profile lookup, member counts and model status."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from personalize.middleware import PersonalizeMiddleware
from personalize.web.admin import PAGES, auth
from personalize.web.admin.passwords import hash_password
from personalize.web.csrf import CsrfSigner
from tests.pages_app import EDITOR, PASSWORD, PHONE, client, csrf_token, make, visitor_id

ADMIN_ROUTES = sorted("/admin" + p for p in PAGES)
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@pytest.fixture
def pz(tmp_path: Path) -> PersonalizeMiddleware:
    return make(tmp_path)


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {raw}"}


def content_file(pz: PersonalizeMiddleware) -> Path:
    assert (
        pz.personalizer.decisions is not None
        and pz.personalizer.decisions.library.directory is not None
    )
    return pz.personalizer.decisions.library.directory / "home.yaml"


# -- authentication ---------------------------------------------------------------------------


def test_admin_routes_are_the_documented_ones() -> None:
    assert ADMIN_ROUTES == [
        "/admin",
        "/admin/impact",
        "/admin/model",
        "/admin/preview",
        "/admin/profiles",
        "/admin/segments",
        "/admin/slots",
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("editor", "wrong password"),
        basic("nobody", PASSWORD),
        {"authorization": "Basic !!!not-base64"},
        {"authorization": "Bearer " + PASSWORD},
        {"authorization": "Basic " + base64.b64encode(b"editor-no-colon").decode()},
    ],
    ids=["none", "wrong-password", "unknown-user", "garbage", "bearer", "no-colon"],
)
def test_every_route_and_method_needs_credentials(
    pz: PersonalizeMiddleware, headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # This test fails on purpose, a lot: the rate limit has tests of its own.
    monkeypatch.setattr(auth.Backoff, "wait", lambda self, key, now: 0.0)
    c = client(pz)
    # Unknown paths below /admin look exactly like the real ones: nothing to enumerate.
    for path in [*ADMIN_ROUTES, "/admin/nope", "/admin/slots/x", "/admin/.env"]:
        for method in METHODS:
            r = c.request(method, "/_personalize" + path + "?user_id=ann", headers=headers)
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.headers["www-authenticate"].startswith('Basic realm="personalize editor"')
            assert r.headers["cache-control"].startswith("private")
            assert "mobile" not in r.text and "hero" not in r.text
            assert r.text in ("Authentication required.", "")


def test_unknown_admin_paths_are_404_only_after_authentication(pz: PersonalizeMiddleware) -> None:
    c = client(pz)
    assert c.get("/_personalize/admin/nope").status_code == 401
    assert c.get("/_personalize/admin/nope", headers=basic(*EDITOR)).status_code == 404


def test_editor_ui_disabled_without_users(tmp_path: Path) -> None:
    c = client(make(tmp_path, admin_users={}))
    for path in ADMIN_ROUTES:
        r = c.get("/_personalize" + path, headers=basic(*EDITOR))
        assert r.status_code == 404
        assert "admin_users" in r.text and "hash-password" in r.text
        assert "PERSONALIZE_ADMIN_USER" in r.text


def test_right_credentials_open_every_page(pz: PersonalizeMiddleware) -> None:
    c = client(pz)
    for path in ADMIN_ROUTES:
        r = c.get("/_personalize" + path, headers=basic(*EDITOR))
        assert r.status_code == 200, path
        assert r.headers["cache-control"] == "private, no-store"
        assert r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "signed in as editor" in r.text
    r = c.delete("/_personalize/admin/segments", headers=basic(*EDITOR))
    assert r.status_code == 405


def test_failed_attempts_are_rate_limited(pz: PersonalizeMiddleware) -> None:
    c = client(pz)
    for _ in range(10):
        assert c.get("/_personalize/admin", headers=basic("editor", "nope")).status_code == 401
    r = c.get("/_personalize/admin", headers=basic(*EDITOR))
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert "hero" not in r.text


def test_a_missing_or_malformed_header_is_not_a_failed_attempt(pz: PersonalizeMiddleware) -> None:
    c = client(pz)
    for _ in range(15):
        assert c.get("/_personalize/admin").status_code == 401
        garbage = {"authorization": "Basic !!!not-base64"}
        assert c.get("/_personalize/admin", headers=garbage).status_code == 401
    assert c.get("/_personalize/admin", headers=basic(*EDITOR)).status_code == 200


def test_pages_without_segments_content_or_learning(tmp_path: Path) -> None:
    from starlette.applications import Starlette

    from personalize import MemoryStore

    pz = PersonalizeMiddleware(
        Starlette(),
        secret_key="s" * 32,
        store=MemoryStore(),
        admin_users={"editor": hash_password(PASSWORD, n=2**10)},
    )
    c = client(pz)
    for path in ADMIN_ROUTES:
        assert c.get("/_personalize" + path, headers=basic(*EDITOR)).status_code == 200, path
    assert (
        "No content configured" in c.get("/_personalize/admin/slots", headers=basic(*EDITOR)).text
    )
    assert (
        "No segments configured"
        in c.get("/_personalize/admin/segments", headers=basic(*EDITOR)).text
    )
    preview = c.get("/_personalize/admin/preview?path=/", headers=basic(*EDITOR))
    assert "No content configured" in preview.text
    assert c.get("/_personalize/me").status_code == 200


def test_pages_static_stylesheet(pz: PersonalizeMiddleware) -> None:
    r = client(pz).get("/_personalize/assets/pages.css")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/css")
    assert "no-store" not in r.headers["cache-control"]


# -- CSRF -------------------------------------------------------------------------------------


def _slot_form(pz: PersonalizeMiddleware, **changes: Any) -> dict[str, Any]:
    """The hero form as the page renders it (rule 0: mobile -> phone), with changes."""
    c = client(pz)
    html = c.get("/_personalize/admin/slots", headers=basic(*EDITOR)).text
    digest = re.search(r'name="digest" value="([^"]+)"', html)
    assert digest is not None
    form: dict[str, Any] = {
        "csrf_token": csrf_token(html),
        "slot": "hero",
        "digest": digest.group(1),
        "rules": "1",
        "rule-0-order": "1",
        "rule-0-segment": "mobile",
        "rule-0-variants": ["phone"],
        "rule-0-pin": "",
        "new-order": "2",
        "new-segment": "",
        "default": ["welcome"],
        "pin": "",
    }
    form.update(changes)
    return form


def _post(pz: PersonalizeMiddleware, form: dict[str, Any], **headers: str) -> Any:
    return client(pz).post(
        "/_personalize/admin/slots",
        data=form,
        headers={**basic(*EDITOR), **headers},
        follow_redirects=False,
    )


def test_post_without_or_with_a_bad_csrf_token_is_refused(pz: PersonalizeMiddleware) -> None:
    before = content_file(pz).read_text()
    form = _slot_form(pz, default=["desk"])
    for token in (None, "", "forged-token", form["csrf_token"] + "x"):
        bad = dict(form)
        if token is None:
            del bad["csrf_token"]
        else:
            bad["csrf_token"] = token
        r = _post(pz, bad)
        assert r.status_code == 403, token
        assert "token" in r.text
    # A token of another editor does not do either.
    other = CsrfSigner(pz.personalizer.cookies.signing_secret, purpose="admin").token(
        "editor:someone-else"
    )
    assert _post(pz, {**form, "csrf_token": other}).status_code == 403
    # Nor a valid token posted from another site.
    assert _post(pz, form, origin="https://evil.example").status_code == 403
    assert _post(pz, form, referer="https://evil.example/page").status_code == 403
    assert content_file(pz).read_text() == before


def test_post_with_a_valid_csrf_token_is_accepted(pz: PersonalizeMiddleware) -> None:
    r = _post(pz, _slot_form(pz), origin="http://testserver")
    assert r.status_code == 303
    assert r.headers["location"].startswith("/_personalize/admin/slots?done=saved")


def test_form_must_be_urlencoded(pz: PersonalizeMiddleware) -> None:
    r = client(pz).post("/_personalize/admin/slots", json={"slot": "hero"}, headers=basic(*EDITOR))
    assert r.status_code == 415


# -- the mapping editor -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rule-0-variants": ["nope"]}, "unknown variant"),
        ({"rule-0-variants": []}, "allow at least one variant"),
        ({"rule-0-pin": "welcome"}, "must be one it allows"),
        ({"rule-0-segment": "no_such_segment"}, "unknown segment"),
        ({"default": []}, "default: allow at least one variant"),
        ({"pin": "nope"}, "pin: unknown variant"),
        ({"rule-0-order": "zero"}, "position"),
        ({"new-segment": "desktop_users"}, "the new rule: allow at least one variant"),
        ({"rules": "5"}, "reload the page"),
        ({"digest": "0000000000000000"}, "changed since you opened"),
        ({"slot": "nope"}, "unknown slot"),
    ],
)
def test_bad_edits_are_refused_and_the_file_is_unchanged(
    pz: PersonalizeMiddleware, changes: dict[str, Any], message: str
) -> None:
    before = content_file(pz).read_text()
    r = _post(pz, _slot_form(pz, **changes))
    assert 400 <= r.status_code < 500
    assert message in r.text
    assert content_file(pz).read_text() == before
    assert not [p for p in content_file(pz).parent.iterdir() if p.name.startswith(".")]


def test_edit_is_written_and_the_public_page_changes_without_restart(
    pz: PersonalizeMiddleware,
) -> None:
    shopper = client(pz)
    assert "Welcome" in shopper.get("/").text  # a desktop visitor: default
    r = _post(
        pz,
        _slot_form(
            pz,
            **{"new-segment": "desktop_users", "new-variants": ["desk"], "new-order": "1",
               "rule-0-variants": ["welcome", "phone"], "rule-0-pin": "phone"},
        ),
    )  # fmt: skip
    assert r.status_code == 303
    text = content_file(pz).read_text()
    data = yaml.safe_load(text)
    assert data["slots"]["hero"]["rules"] == [
        {"segment": "desktop_users", "variants": ["desk"]},
        {"segment": "mobile", "variants": ["phone", "welcome"], "pin": "phone"},
    ]
    # Everything outside the edited keys stays as written, comments included.
    assert text.startswith("# Home page slots. This comment must survive edits.\n")
    assert "default: [plain]  # keep me" in text
    assert '      - id: welcome\n        html: "<h1>Welcome</h1>"' in text
    assert not [p for p in content_file(pz).parent.iterdir() if p.name.startswith(".")]
    # The same visitor and a new one both see the new mapping: no restart.
    assert "Big screen deals" in shopper.get("/").text
    assert "Big screen deals" in client(pz).get("/").text
    assert "On the go" in client(pz, PHONE).get("/").text
    page = client(pz).get("/_personalize/admin/slots?done=saved", headers=basic(*EDITOR)).text
    assert "Saved." in page


def test_reorder_and_remove_rules(pz: PersonalizeMiddleware) -> None:
    add = {"new-segment": "desktop_users", "new-variants": ["desk"], "new-order": "2"}
    assert _post(pz, _slot_form(pz, **add)).status_code == 303
    rules = yaml.safe_load(content_file(pz).read_text())["slots"]["hero"]["rules"]
    assert [r["segment"] for r in rules] == ["mobile", "desktop_users"]
    form = _slot_form(
        pz,
        rules="2",
        **{"rule-0-order": "2", "rule-1-order": "1", "rule-1-segment": "desktop_users",
           "rule-1-variants": ["desk"], "rule-1-pin": "desk"},
    )  # fmt: skip
    assert _post(pz, form).status_code == 303
    rules = yaml.safe_load(content_file(pz).read_text())["slots"]["hero"]["rules"]
    assert rules == [
        {"segment": "desktop_users", "variants": ["desk"], "pin": "desk"},
        {"segment": "mobile", "variants": ["phone"]},
    ]
    form = _slot_form(pz, rules="2", **{"rule-0-delete": "1", "rule-1-delete": "1"})
    assert _post(pz, form).status_code == 303
    assert "rules" not in yaml.safe_load(content_file(pz).read_text())["slots"]["hero"]
    assert (
        pz.personalizer.decisions is not None
        and pz.personalizer.decisions.library.slots["hero"].rules == ()
    )


def test_a_failed_write_leaves_the_old_file(
    pz: PersonalizeMiddleware, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = content_file(pz).read_text()

    def broken(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    r = _post(pz, _slot_form(pz, default=["desk"]))
    assert r.status_code == 500 and "disk full" in r.text
    assert content_file(pz).read_text() == before
    assert not [p for p in content_file(pz).parent.iterdir() if p.name.startswith(".")]


def test_the_loader_validates_the_edit(pz: PersonalizeMiddleware, tmp_path: Path) -> None:
    from personalize.web.admin.mapping_edit import EditError, MappingForm, digest, save_mapping

    assert pz.personalizer.decisions is not None
    slot = pz.personalizer.decisions.library.slots["hero"]
    text = content_file(pz).read_text()
    form = MappingForm([{"segment": "mobile", "variants": ["phone"], "pin": "desk"}],
                       ["welcome"], None, digest(text))  # fmt: skip
    with pytest.raises(EditError) as caught:
        save_mapping(slot, content_file(pz).parent, form, pz.personalizer.segments)
    assert caught.value.status == 422
    assert any("pin 'desk' is not one of the variants" in p for p in caught.value.problems)
    assert content_file(pz).read_text() == text


# -- preview, profiles, members, model ----------------------------------------------------------


def _rows(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-slot="([^"]+)" data-variant="([^"]*)"', html))


def test_preview_as_a_simulated_visitor_writes_nothing(pz: PersonalizeMiddleware) -> None:
    assert pz.personalizer.decisions is not None
    c = client(pz)
    policy_before = pz.personalizer.decisions.policy.store.snapshot()  # type: ignore[attr-defined]
    r = c.get(
        "/_personalize/admin/preview?path=/shoes/x&country=gb&device=mobile"
        "&channel=paid_search&hour=21&weekday=5",
        headers=basic(*EDITOR),
    )
    assert r.status_code == 200
    assert _rows(r.text) == {"hero": "phone", "banner": "plain"}
    assert "mobile" in r.text and "device is mobile" in r.text
    desk = c.get("/_personalize/admin/preview?path=/&device=desktop", headers=basic(*EDITOR))
    assert _rows(desk.text)["hero"] == "welcome"
    forced = c.get(
        "/_personalize/admin/preview?path=/&device=desktop&segment=mobile", headers=basic(*EDITOR)
    )
    assert _rows(forced.text)["hero"] == "phone"
    assert "added by the editor for this preview" in forced.text
    assert pz.personalizer.decisions.policy.store.snapshot() == policy_before  # type: ignore[attr-defined]
    assert pz.personalizer.decisions._cache == {}  # nothing cached for a simulated visitor
    import asyncio

    assert asyncio.run(pz.personalizer.profiles.store.keys()) == []


def test_preview_reports_bad_input(pz: PersonalizeMiddleware) -> None:
    r = client(pz).get(
        "/_personalize/admin/preview?path=shoes&country=GBR&device=toaster&hour=99&segment=nope",
        headers=basic(*EDITOR),
    )
    assert r.status_code == 200
    for problem in (
        "starts with /",
        "two-letter",
        "the device is one of",
        "0 to 23",
        "unknown segment",
    ):
        assert problem in r.text


def test_preview_escapes_variant_content(pz: PersonalizeMiddleware) -> None:
    r = client(pz).get("/_personalize/admin/preview?path=/", headers=basic(*EDITOR))
    assert "&lt;h1&gt;Welcome&lt;/h1&gt;" in r.text
    assert "<h1>Welcome</h1>" not in r.text


def test_profile_lookup(pz: PersonalizeMiddleware) -> None:
    shopper = client(pz, PHONE)
    vid = visitor_id(shopper.get("/shoes/red", headers={"referer": "https://www.google.com/"}).text)
    shopper.get("/shoes/blue")
    editor = client(pz)
    r = editor.get(f"/_personalize/admin/profiles?visitor_id={vid}", headers=basic(*EDITOR))
    assert r.status_code == 200
    assert f"v:{vid}" in r.text
    assert "organic_search" in r.text and "/shoes/red" in r.text
    assert "shoes: 2" in r.text
    assert '<span class="tag">mobile</span>' in r.text
    assert 'Stated by the visitor</h3>\n<p class="muted">Nothing.' in r.text
    token = csrf_token(shopper.get("/_personalize/me").text)
    shopper.post("/_personalize/me/not-me", data={"csrf_token": token, "name": "segment.mobile"})
    said = editor.get(f"/_personalize/admin/profiles?visitor_id={vid}", headers=basic(*EDITOR))
    assert '<code>segment.mobile</code></td><td class="mono">not_me</td>' in said.text
    assert '<span class="tag">mobile</span>' not in said.text  # not in it any more
    shopper.get("/login?user=ann")
    known = editor.get("/_personalize/admin/profiles?user_id=ann", headers=basic(*EDITOR))
    assert "u:ann" in known.text and vid in known.text  # the alias
    merged = editor.get(f"/_personalize/admin/profiles?visitor_id={vid}", headers=basic(*EDITOR))
    assert "merged into <code>u:ann</code>" in merged.text
    assert 'href="/_personalize/admin/profiles?user_id=ann"' in merged.text
    missing = editor.get("/_personalize/admin/profiles?user_id=bob", headers=basic(*EDITOR))
    assert "no profile is stored under u:bob" in missing.text


def test_member_counts(pz: PersonalizeMiddleware) -> None:
    client(pz, PHONE).get("/")
    client(pz, PHONE).get("/")
    client(pz).get("/")
    r = client(pz).get("/_personalize/admin/segments", headers=basic(*EDITOR))
    counts = dict(re.findall(r'id="segment-([a-z_]+)".*?data-count="(\d+)"', r.text, re.S))
    assert counts == {"mobile": "2", "desktop_users": "1"}
    assert "sampled 3 of 3" in r.text
    assert "device is mobile" in r.text
    assert "devices.yaml:2" in r.text  # origin file:line
    # Cached for a while: a new visitor does not change the count at once.
    client(pz, PHONE).get("/")
    again = client(pz).get("/_personalize/admin/segments", headers=basic(*EDITOR))
    assert "sampled 3 of 3" in again.text


def test_member_counts_sample(pz: PersonalizeMiddleware) -> None:
    import asyncio

    from personalize.web.admin.insights import count_members

    for _ in range(5):
        client(pz, PHONE).get("/")
    counts = asyncio.run(count_members(pz.personalizer, cap=3))
    assert (counts.sampled, counts.total, counts.counts["mobile"]) == (3, 5, 3)


def test_members_by_what_they_said_and_by_inference(tmp_path: Path) -> None:
    pz = make(tmp_path)
    (tmp_path / "segments" / "bags.yaml").write_text(
        "- name: bags_fans\n"
        "  description: Asked for bags, or looked at two bag pages\n"
        "  rule:\n"
        "    any:\n"
        "      - {attribute: stated.interest, operator: contains, value: bags}\n"
        "      - {attribute: affinity.bags, operator: gte, value: 2}\n"
    )
    assert pz.personalizer.segments is not None
    assert pz.personalizer.segments.reload_if_changed(force=True)

    def say(c: Any, name: str, value: str) -> None:
        token = csrf_token(c.get("/_personalize/me").text)
        r = c.post("/_personalize/me/" + value, data={"csrf_token": token, "name": name})
        assert r.status_code == 200

    browser = client(pz, PHONE)  # a bags fan by inference, on a phone
    browser.get("/bags/a")
    browser.get("/bags/b")
    said = client(pz)  # a bags fan by what they said, on a desktop
    said.get("/")
    token = csrf_token(said.get("/_personalize/me").text)
    form = {"csrf_token": token, "form": "preferences", "interest.bags": "more"}
    said.post("/_personalize/me/preferences", data=form)
    denier = client(pz, PHONE)  # on a phone, but "mobile is not me"
    denier.get("/")
    say(denier, "segment.mobile", "not-me")
    html = client(pz).get("/_personalize/admin/segments", headers=basic(*EDITOR)).text

    def cell(segment: str) -> tuple[str, str, str]:
        row = html[html.index(f'id="segment-{segment}"') :]
        found = re.search(r'data-count="(\d+)" data-stated="(\d+)" data-left="(\d+)"', row)
        assert found is not None
        return found.group(1), found.group(2), found.group(3)

    assert cell("bags_fans") == ("2", "1", "0")
    assert cell("mobile") == ("1", "0", "1")
    assert cell("desktop_users") == ("1", "0", "0")
    assert "1 by what they said, 1 by inference" in html
    assert "1 left by what they said" in html


def test_model_status_without_learning(pz: PersonalizeMiddleware) -> None:
    r = client(pz).get("/_personalize/admin/model", headers=basic(*EDITOR))
    assert r.status_code == 200 and "Learning is off" in r.text
    assert "Learning is off" in client(pz).get("/_personalize/admin", headers=basic(*EDITOR)).text


class FakeLearning:
    def __init__(self, status: dict[str, Any] | Exception) -> None:
        self._status = status

    def status(self) -> dict[str, Any]:
        if isinstance(self._status, Exception):
            raise self._status
        return self._status


def test_model_status_with_learning(pz: PersonalizeMiddleware) -> None:
    pz.personalizer.learning = FakeLearning(
        {"events": 1200, "version": 7, "ready": True, "min_labelled": 500, "min_auc": 0.6,
         "auc_history": [[100, 0.55], [500, 0.63], [1200, 0.71]]}
    )  # fmt: skip
    r = client(pz).get("/_personalize/admin/model", headers=basic(*EDITOR))
    assert r.status_code == 200
    assert "1200" in r.text and "<svg" in r.text and "<polyline" in r.text and "passed" in r.text
    pz.personalizer.learning = FakeLearning(
        {"events": 80, "version": 1, "ready": False, "min_labelled": 500, "min_auc": 0.6,
         "auc_history": [[80, 0.52]]}
    )  # fmt: skip
    r = client(pz).get("/_personalize/admin/model", headers=basic(*EDITOR))
    assert "not yet" in r.text and "80 labelled sessions of the 500 needed" in r.text
    pz.personalizer.learning = FakeLearning(RuntimeError("snapshot unreadable"))
    r = client(pz).get("/_personalize/admin/model", headers=basic(*EDITOR))
    assert r.status_code == 200 and "snapshot unreadable" in r.text


def test_overview_lists_file_errors(pz: PersonalizeMiddleware) -> None:
    assert pz.personalizer.segments is not None
    pz.personalizer.segments.errors = ("segments/devices.yaml:3: <b>broken</b>",)
    r = client(pz).get("/_personalize/admin", headers=basic(*EDITOR))
    assert "&lt;b&gt;broken&lt;/b&gt;" in r.text


def test_second_editor_and_malformed_configured_hash(tmp_path: Path) -> None:
    pz = make(
        tmp_path,
        admin_users={"ann": hash_password("ann's long password", n=2**10), "bob": "hunter2"},
    )
    c = client(pz)
    assert (
        c.get("/_personalize/admin", headers=basic("ann", "ann's long password")).status_code == 200
    )
    assert c.get("/_personalize/admin", headers=basic("bob", "hunter2")).status_code == 401


LEARNED = """\
clusters: {alpha: 0, beta: 1, gamma: 2, delta: 3}
segments:
  - name: any_named_cluster
    description: In a named cluster
    rule: {attribute: cluster, operator: in, value: [alpha, beta, gamma, delta]}
  - name: scored
    description: Has a propensity
    rule: {attribute: propensity, operator: exists, value: true}
"""


def test_member_counts_preview_and_model_page_include_learned_segments(tmp_path: Path) -> None:
    from personalize.learning import (
        ModelSet,
        PropensityModel,
        SessionClusterer,
        features_from_record,
        simulate,
    )
    from personalize.learning.anomaly import AnomalyScorer
    from personalize.learning.runtime import LocalLearning

    models = ModelSet(PropensityModel(), SessionClusterer(n_clusters=4, seed=1), AnomalyScorer())
    for record in simulate(2000, seed=1):
        x = features_from_record(record)
        models.propensity.learn_one(x, record["converted"])
        models.clusterer.learn_one(x)
    assert models.propensity.ready and models.clusterer.ready
    pz = make(tmp_path, learning=LocalLearning(models))
    (tmp_path / "segments" / "learned.yaml").write_text(LEARNED)
    assert pz.personalizer.segments is not None
    pz.personalizer.segments.reload_if_changed(force=True)
    for headers in (PHONE, {}, PHONE):
        client(pz, headers).get("/")
    r = client(pz).get("/_personalize/admin/segments", headers=basic(*EDITOR))
    counts = dict(re.findall(r'id="segment-([a-z_]+)".*?data-count="(\d+)"', r.text, re.S))
    assert counts["any_named_cluster"] == counts["scored"] == "3"
    preview = client(pz).get(
        "/_personalize/admin/preview?path=/&device=mobile&channel=paid_search&hour=20",
        headers=basic(*EDITOR),
    )
    assert "any_named_cluster" in preview.text and "p(convert)" in preview.text
    model = client(pz).get("/_personalize/admin/model", headers=basic(*EDITOR))
    assert all(name in model.text for name in ("alpha", "beta", "gamma", "delta"))
    assert "what sets it apart" in model.text and "mobile, evening" in model.text


def test_profile_lookup_shows_the_visitors_norms_and_how_unusual_their_visit_was(
    tmp_path: Path,
) -> None:
    import time

    now = [time.time()]  # ahead of real time only: cookies are signed with the real time
    pz = make(tmp_path, clock=lambda: now[0])
    shopper = client(pz)
    vid = visitor_id(shopper.get("/").text)
    for _ in range(4):  # desktop visits, hours apart, then one from a phone
        now[0] += 3 * 3600
        shopper.get("/")
    now[0] += 3 * 3600
    shopper.get("/", headers=PHONE)
    r = client(pz).get(f"/_personalize/admin/profiles?visitor_id={vid}", headers=basic(*EDITOR))
    assert "Usual visits (per-visitor norms)" in r.text and "desktop: 4." in r.text
    unusual = re.search(r'<p id="unusual">(.*?)</p>', r.text, re.S)
    assert unusual is not None and "100 % unusual" in unusual.group(1)
    assert "first visit from a mobile" in unusual.group(1)
