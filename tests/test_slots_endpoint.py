"""Decisions through the middleware: visitor.decide, the Jinja2 global, /slots, /collect and
the beacon script."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from personalize import MemoryStore, PersonalizeMiddleware, get_visitor
from personalize.content.decisions import DecisionEngine
from personalize.rules.segments import SegmentLibrary
from personalize.templating import install
from tests.apps import SECRET

UA = {"user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
      "(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"}  # fmt: skip
CONTENT = """\
slots:
  hero:
    variants:
      - {id: welcome, html: "<h1>Welcome</h1>"}
      - {id: paid, html: "<h1>Deal</h1>", value: 3}
    rules:
      - segment: paid_search
        variants: [paid]
    default: [welcome]
  banner:
    reward: conversion
    variants:
      - {id: free_returns, markdown: "**Free** returns"}
    default: [free_returns]
"""
SEGMENTS = SegmentLibrary.from_data(
    [{"name": "paid_search", "description": "Paid search",
      "rule": {"attribute": "channel", "operator": "eq", "value": "paid_search"}}]
)  # fmt: skip
ENV = jinja2.Environment(autoescape=True)
install(ENV)
PAGE = ENV.from_string('<main>{{ personalize.slot("hero") }}{{ personalize.slot("nope") }}</main>')


async def page(request: Request) -> Response:
    return HTMLResponse(PAGE.render(request=request))


async def api(request: Request) -> Response:
    decision = await get_visitor(request).decide("banner")
    return HTMLResponse(decision.html)


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    (tmp_path / "home.yaml").write_text(CONTENT)
    app = Starlette(routes=[Route("/", page), Route("/api", api)])
    app.add_middleware(
        PersonalizeMiddleware,
        secret_key=SECRET,
        store=MemoryStore(),
        segments=SEGMENTS,
        content=tmp_path,
        flush_interval=0,
    )
    return TestClient(app, headers=UA)


def test_jinja_global_renders_the_slot_and_ignores_unknown_ones(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and "private" in r.headers["cache-control"]
    assert '<main><div data-pz-slot="hero" data-pz-decision="hero.welcome.' in r.text
    assert r.text.endswith("><h1>Welcome</h1></div></main>")
    paid = client.get("/?gclid=abc&utm_source=google&utm_medium=cpc")
    assert "<h1>Deal</h1>" in paid.text


def test_visitor_decide(client: TestClient) -> None:
    r = client.get("/api")
    assert "<p><strong>Free</strong> returns</p>" in r.text


def test_slots_endpoint_answers_json_with_reasons(client: TestClient) -> None:
    client.get("/")  # the single-page app's HTML shell: the session starts with a page view
    r = client.get("/_personalize/slots?slot=hero&slot=banner&slot=nope")
    assert r.status_code == 200 and "no-store" in r.headers["cache-control"]
    hero, banner, nope = r.json()["decisions"]
    assert hero["slot"] == "hero" and hero["variant"] == "welcome" and hero["id"]
    assert hero["why"]["rule"] == "no rule matched: the default variants"
    assert [s["variant"] for s in hero["why"]["scores"]] == ["welcome"]
    assert banner["variant"] == "free_returns"
    assert nope["variant"] is None and nope["html"] == "" and "unknown slot" in nope["why"]["note"]
    again = client.get("/_personalize/slots?slot=hero").json()["decisions"][0]
    assert again["id"] == hero["id"]  # the same session: the same decision
    assert client.get("/_personalize/slots").status_code == 400
    assert client.get("/_personalize/slots?" + "&".join(["slot=a"] * 21)).status_code == 400


def test_collect_attributes_rewards(client: TestClient) -> None:
    hero, banner = client.get("/_personalize/slots?slot=hero&slot=banner").json()["decisions"]
    engine = client.app.middleware_stack.app.personalizer.decisions  # type: ignore[union-attr]
    assert isinstance(engine, DecisionEngine)
    r = client.post("/_personalize/collect", content=json.dumps(
        {"decision_id": hero["id"], "type": "click"}))  # fmt: skip
    assert r.status_code == 204
    assert engine.policy.store.get("hero/welcome|*").rewards == 1.0
    assert client.post("/_personalize/collect", content=json.dumps(
        {"decision_id": hero["id"], "type": "click"})).status_code == 204  # fmt: skip
    assert engine.policy.store.get("hero/welcome|*").rewards == 1.0  # counted once
    r = client.post("/_personalize/collect", json={
        "decision_id": banner["id"], "type": "conversion", "value": 25.5})  # fmt: skip
    assert r.status_code == 204
    counts = engine.policy.store.get("banner/free_returns|*")
    assert (counts.trials, counts.rewards, counts.value) == (1.0, 1.0, 25.5)


@pytest.mark.parametrize("value", ["1e308", "1e999", "NaN", "-Infinity", "1", "true"])
def test_collect_refuses_absurd_conversion_values(client: TestClient, value: str) -> None:
    banner = client.get("/_personalize/slots?slot=banner").json()["decisions"][0]
    body = f'{{"decision_id": "{banner["id"]}", "type": "conversion", "value": {value}}}'
    if value == "1":  # a real one, to show the decision id is good
        assert client.post("/_personalize/collect", content=body).status_code == 204
        return
    r = client.post("/_personalize/collect", content=body)
    assert r.status_code == 422 and "value must be a number from 0 to" in r.json()["error"]
    engine = client.app.middleware_stack.app.personalizer.decisions  # type: ignore[union-attr]
    assert engine.policy.store.get("banner/free_returns|*").value == 0.0


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"not json", {}, 400),
        (b"[1]", {}, 400),
        (b'{"decision_id": "x", "type": "click"}', {}, 422),
        (b'{"decision_id": "a.b.c.d.e", "type": "click"}', {}, 422),
        (b'{"decision_id": "x", "type": "view"}', {}, 422),
        (b'{"decision_id": "x", "type": "click", "value": 3}', {}, 422),
        (b'{"decision_id": "x", "type": "conversion", "value": -1}', {}, 422),
        (b'{"decision_id": "x", "type": "click", "extra": 1}', {}, 422),
        (b'{"decision_id": "' + b"x" * 3000 + b'"}', {}, 413),
        (b"{}", {"content-type": "application/x-www-form-urlencoded"}, 415),
    ],
)
def test_collect_refuses_bad_payloads(
    client: TestClient, body: bytes, headers: dict[str, str], status: int
) -> None:
    assert client.post("/_personalize/collect", content=body, headers=headers).status_code == status


def test_beacon_script_is_small_cached_javascript(client: TestClient) -> None:
    r = client.get("/_personalize/beacon.js")
    assert r.status_code == 200 and len(r.content) < 2048
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "max-age=604800" in r.headers["cache-control"]
    assert b"navigator.sendBeacon" in r.content and b"data-pz-decision" in r.content
    assert b"convert" in r.content
    again = client.get("/_personalize/beacon.js", headers={"if-none-match": r.headers["etag"]})
    assert again.status_code == 304
    assert client.post("/_personalize/beacon.js").status_code == 405


def test_without_content_the_endpoints_say_so() -> None:
    app = Starlette(routes=[Route("/", page)])
    app.add_middleware(
        PersonalizeMiddleware, secret_key=SECRET, store=MemoryStore(), flush_interval=0
    )
    client = TestClient(app, headers=UA)
    assert client.get("/_personalize/slots?slot=hero").status_code == 404
    assert client.get("/").text == "<main></main>"


def test_a_slot_that_decides_nothing_renders_nothing(tmp_path: Path) -> None:
    """Every variant capped: after its views the slot is not an empty box, it is absent."""
    (tmp_path / "home.yaml").write_text(
        "slots:\n  tip:\n    cap: {views: 2, rest_hours: 1}\n    variants:\n"
        "      - {id: a, label: A tip, html: '<p>Tip</p>'}\n    default: [a]\n"
    )
    env = jinja2.Environment(autoescape=True)
    install(env)
    shown = env.from_string('<main>{{ personalize.slot("tip") }}</main>')
    told = env.from_string(
        '{% set d = personalize.decide("tip") %}<p>{{ personalize.why(d)|join(" | ") }}</p>'
    )

    async def page(request: Request) -> Response:
        template = told if request.url.path == "/why" else shown
        return HTMLResponse(template.render(request=request))

    app = Starlette(routes=[Route("/", page), Route("/why", page)])
    app.add_middleware(PersonalizeMiddleware, secret_key=SECRET, store=MemoryStore(),
                       content=tmp_path, flush_interval=0)  # fmt: skip
    client = TestClient(app, headers=UA)
    assert "Our standard choice here" in client.get("/why").text  # view 1 of 2
    assert "<p>Tip</p></div></main>" in client.get("/").text  # view 2: now it rests
    assert client.get("/").text == "<main></main>"  # no wrapper, no data-pz-slot, nothing
    assert client.get("/why").text == (
        "<p>Nothing is shown here for you right now. | "
        "Resting for a while: A tip, since you have seen it several times.</p>"
    )
    # Outside a request: nothing, never an error.
    assert shown.render() == "<main></main>" and told.render() == "<p></p>"
