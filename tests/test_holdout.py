"""The holdout: who is held out, what they see, what is recorded, and how editors set it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from personalize import MemoryStore, PersonalizeMiddleware, get_visitor
from personalize.content.decisions import DecisionEngine
from personalize.content.holdout import (
    HOLDOUT,
    PERSONALIZED,
    Exposure,
    site_held_out,
    slot_held_out,
)
from personalize.content.library import ContentLibrary
from personalize.exceptions import ConfigurationError, ContentError
from personalize.settings import Settings
from tests.apps import BROWSER
from tests.test_decisions import SEGMENTS, visitor

SECRET = "test-secret-key-of-at-least-32-chars"
HERO: dict[str, Any] = {
    "variants": [{"id": "welcome", "html": "W"}, {"id": "uk", "html": "UK"}],
    "rules": [{"segment": "uk_visitors", "variants": ["uk"]}],
    "default": ["welcome"],
}


def _engine(share: float, **slot: Any) -> tuple[DecisionEngine, list[Exposure]]:
    seen: list[Exposure] = []
    library = ContentLibrary.from_data({"hero": {**HERO, **slot}}, segments=SEGMENTS)
    engine = DecisionEngine(library, segments=SEGMENTS, holdout=share, on_exposure=seen.append)
    return engine, seen


def test_membership_is_a_stable_share_of_profiles() -> None:
    units = [f"v:{i}" for i in range(20_000)]
    held = [u for u in units if site_held_out(u, 0.1)]
    assert 0.09 < len(held) / len(units) < 0.11
    assert held == [u for u in units if site_held_out(u, 0.1)]  # the same every time
    assert not any(site_held_out(u, 0.0) for u in units)
    # A larger share keeps everyone the smaller one held out: raising it moves no one back.
    assert set(held) <= {u for u in units if site_held_out(u, 0.2)}
    # A slot's own draw is independent of the site's: about 10 % of the site's holdout.
    both = sum(slot_held_out(u, "hero", 0.1) for u in held)
    assert 0.06 < both / len(held) < 0.14


def test_held_out_visitors_get_the_default_and_teach_the_policy_nothing() -> None:
    engine, seen = _engine(0.2)
    shown: dict[str, str | None] = {}
    for i in range(400):
        v = visitor(f"id{i}", country="GB")
        decision = engine.decide_sync(v, "hero")
        shown[f"v:id{i}"] = decision.variant
        if site_held_out(f"v:id{i}", 0.2):
            assert decision.variant == "welcome"
            assert decision.explanation.rule.startswith("held out")
            assert "uk_visitors" in decision.explanation.note
        else:
            assert decision.variant == "uk"
    held = [u for u in shown if site_held_out(u, 0.2)]
    assert 40 < len(held) < 120
    assert {e.unit for e in seen if e.arm == HOLDOUT} == set(held)
    assert all(e.segment == "uk_visitors" and e.slot == "hero" for e in seen)
    assert all(e.arm == e.site_arm for e in seen)
    # The policy counted only the personalized showings.
    assert engine.policy.store.get("hero/uk|*").trials == len(shown) - len(held)
    assert engine.policy.store.get("hero/welcome|*").trials == 0


def test_a_slot_holdout_holds_back_that_slot_only() -> None:
    engine, seen = _engine(0.0, holdout=0.2)
    for i in range(300):
        engine.decide_sync(visitor(f"id{i}", country="GB"), "hero")
    held = [e for e in seen if e.arm == HOLDOUT]
    assert held and all(e.variant == "welcome" and e.site_arm == PERSONALIZED for e in held)
    assert {e.unit for e in held} == {
        f"v:id{i}" for i in range(300) if slot_held_out(f"v:id{i}", "hero", 0.2)
    }


def test_nothing_is_recorded_without_a_holdout_or_for_bots() -> None:
    engine, seen = _engine(0.0)
    engine.decide_sync(visitor("a", country="GB"), "hero")
    engine, seen_too = _engine(0.2)
    engine.decide_sync(visitor(None, country="GB"), "hero")
    assert seen == [] and seen_too == []


def test_the_held_out_visitor_is_told_in_plain_words() -> None:
    engine, _ = _engine(0.2)
    unit = next(f"h{i}" for i in range(1000) if site_held_out(f"v:h{i}", 0.2))
    v = visitor(unit, country="GB")
    lines = engine.plain_reasons(engine.decide_sync(v, "hero"), v)
    assert lines == [
        "Our standard choice here: a few visitors see it whatever their visit, so we can tell "
        "whether personalizing helps."
    ]


def test_a_content_file_sets_the_site_holdout(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text("# the comparison group\nholdout: 0.1\n")
    (tmp_path / "hero.yaml").write_text(
        "slots:\n  hero: {variants: [{id: a, html: A}], default: [a], holdout: 0.05}\n"
    )
    library = ContentLibrary(tmp_path)
    assert library.holdout == 0.1 and library.holdout_origin.endswith("site.yaml:2")
    assert library.slots["hero"].holdout == 0.05
    engine = DecisionEngine(library, holdout=0.2)
    assert engine.holdout == 0.1  # the file wins over Settings
    (tmp_path / "site.yaml").write_text("holdout: 0.9\n")
    assert not library.reload_if_changed(force=True)  # invalid: the previous one stays
    assert engine.holdout == 0.1 and "0.9" in library.errors[0]


def test_a_bad_content_holdout_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("holdout: -1\n")
    with pytest.raises(ContentError, match="site holdout is 0"):
        ContentLibrary(tmp_path)


@pytest.mark.parametrize("share", [0.01, 0.5, -0.1, float("nan"), True])
def test_settings_refuse_a_share_out_of_range(share: float) -> None:
    with pytest.raises(ConfigurationError, match=r"holdout is 0 \(none\) or a share"):
        Settings(secret_key=SECRET, holdout=share)


def _app(tmp_path: Path) -> Starlette:
    (tmp_path / "hero.yaml").write_text(
        "slots:\n  hero:\n    variants: [{id: a, html: A}, {id: b, html: B}]\n"
        "    rules: [{when: {attribute: known, operator: eq, value: true}, variants: [b]}]\n"
        "    default: [a]\n"
    )

    async def page(request: Request) -> Response:
        decision = await get_visitor(request).decide("hero")
        return PlainTextResponse(f"{decision.variant}|{decision.explanation.rule[:8]}")

    async def login(request: Request) -> Response:
        await get_visitor(request).identify(request.query_params["user"])
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", page), Route("/login", login)])
    app.add_middleware(
        PersonalizeMiddleware, secret_key=SECRET, store=MemoryStore(), content=tmp_path,
        holdout=0.2,
    )  # fmt: skip
    return app


def test_a_stitched_user_keeps_one_arm_on_every_device(tmp_path: Path) -> None:
    held = next(f"user{i}" for i in range(1000) if site_held_out(f"u:user{i}", 0.2))
    shown = next(f"user{i}" for i in range(1000) if not site_held_out(f"u:user{i}", 0.2))
    app = _app(tmp_path)
    for user, expected in ((held, "a|held out"), (shown, "b|rule at ")):
        for _device in range(3):  # three browsers, each anonymous first
            with TestClient(app, headers=BROWSER) as client:
                client.get("/")
                assert client.get(f"/login?user={user}").text == "ok"
                assert client.get("/").text == expected
