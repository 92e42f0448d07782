"""Variant templates whose output depends only on the variant, whether the visitor is known
and named attributes are rendered once per combination of those values."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personalize.content import render
from personalize.content.render import RecordingLoader, RenderMemo, make_environment, render_memo

PURE = {
    "city.html": "{{ variant }} in {{ attributes.city }}{% if known %}, welcome back{% endif %}",
    "item.html": "{% if attributes['tier'] == 'gold' %}Gold"
    "{% else %}{{ attributes.top }}{% endif %}",
    "loop.html": "{% for n in range(attributes.count or 0) %}*{% endfor %}",
}
IMPURE = {
    "profile.html": "{{ profile.visits }}",
    "segments.html": "{{ 'vip' in segments }}",
    "whole.html": "{{ attributes | length }}",
    "items.html": "{% for k, v in attributes.items() %}{{ k }}{% endfor %}",
    "get.html": "{{ attributes.get('city') }}",
    "computed.html": "{% set k = 'city' %}{{ attributes[k] }}",
    "loop_over.html": "{% for k in attributes %}{{ k }}{% endfor %}",
    "random.html": "{{ [1, 2, 3] | random }}",
    "lipsum.html": "{{ lipsum(1) }}",
    "assigned.html": "{% set a = attributes %}{{ a.city }}",
    "visitor.html": "{{ visitor }}",
    "filter.html": "{{ attributes.city | shout }}",
    "test.html": "{% if attributes.city is lucky %}!{% endif %}",
    "replaced.html": "{{ attributes.city | upper }}",
    "include.html": "{{ attributes.city }}{% include 'profile.html' %}",
    "extends.html": "{% extends 'city.html' %}",
    "import.html": "{% import 'city.html' as c %}{{ attributes.city }}",
}


@pytest.fixture
def env() -> jinja2.Environment:
    environment = make_environment(None)
    environment.loader = RecordingLoader(jinja2.DictLoader({**PURE, **IMPURE}))
    environment.filters["shout"] = str.upper  # a site's own filter and test: not Jinja2's
    environment.tests["lucky"] = lambda value: True
    environment.filters["upper"] = lambda value: str(value).upper()  # one of Jinja2's, replaced
    return environment


def no_others() -> dict[str, Any]:
    return {"profile": None, "segments": []}


def test_pure_templates_name_the_attributes_they_read(env: jinja2.Environment) -> None:
    assert render_memo(env.get_template("city.html")).names == ("city",)
    assert render_memo(env.get_template("item.html")).names == ("tier", "top")
    assert render_memo(env.get_template("loop.html")).names == ("count",)
    for name in IMPURE:
        assert render_memo(env.get_template(name)).names is None, name
    assert RenderMemo(env.from_string("{{ variant }}")).names is None  # (no source to read)
    plain = make_environment(None)
    plain.loader = jinja2.DictLoader(PURE)  # (a loader that does not say what it compiled)
    assert render_memo(plain.get_template("city.html")).names is None


def test_the_memo_reads_the_source_that_was_compiled(env: jinja2.Environment) -> None:
    """The file changes after the template was loaded: the memo's key still follows the
    compiled template (the content library loads the new file as a new version)."""
    sources: dict[str, str] = {"t.html": "{{ attributes.city }}"}
    env.loader = RecordingLoader(jinja2.DictLoader(sources))
    template = env.get_template("t.html")
    sources["t.html"] = "{{ attributes.country }}"
    memo = render_memo(template)
    assert memo.names == ("city",)
    assert memo.render("a", {"city": "Oslo"}, True, no_others) == "Oslo"
    assert memo.render("a", {"city": "Rome"}, True, no_others) == "Rome"


def test_a_pure_template_renders_once_per_combination(env: jinja2.Environment) -> None:
    memo = render_memo(env.get_template("city.html"))
    assert memo is render_memo(env.get_template("city.html"))  # one per template
    calls: list[None] = []

    def others() -> dict[str, Any]:
        calls.append(None)
        return no_others()

    oslo = {"city": "Oslo", "tier": "gold"}
    assert memo.render("a", oslo, True, others) == "a in Oslo, welcome back"
    assert memo.render("a", {**oslo, "tier": "silver"}, True, others) == "a in Oslo, welcome back"
    assert len(calls) == 1  # the second came from memory, without asking for the profile
    assert memo.render("a", oslo, False, others) == "a in Oslo"
    assert memo.render("b", oslo, True, others) == "b in Oslo, welcome back"
    assert memo.render("a", {"city": "Rome"}, True, others) == "a in Rome, welcome back"
    assert memo.render("a", {}, True, others) == "a in , welcome back"
    assert len(calls) == 5
    # Equal values of different types print differently: never one for the other.
    one = render_memo(env.get_template("item.html"))
    assert one.render("a", {"tier": "x", "top": 1}, True, no_others) == "1"
    assert one.render("a", {"tier": "x", "top": True}, True, no_others) == "True"
    # A value that cannot be a key is rendered every time.
    assert one.render("a", {"tier": "x", "top": ["s"]}, True, no_others) == "[&#39;s&#39;]"


def test_the_memo_keeps_at_most_memo_size_outputs(
    env: jinja2.Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render, "MEMO_SIZE", 3)
    memo = render_memo(env.get_template("city.html"))
    for n in range(10):
        memo.render("a", {"city": f"c{n}"}, True, no_others)
    assert len(memo.outputs) == 3
    assert memo.render("a", {"city": "c9"}, True, no_others) == "a in c9, welcome back"


def test_impure_templates_render_every_time(env: jinja2.Environment) -> None:
    memo = render_memo(env.get_template("profile.html"))

    class Profile:
        visits = 1

    profile = Profile()
    assert memo.render("a", {}, True, lambda: {"profile": profile, "segments": []}) == "1"
    profile.visits = 2
    assert memo.render("a", {}, True, lambda: {"profile": profile, "segments": []}) == "2"
    assert memo.outputs == {}


values = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=3))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(sorted(PURE)),
            st.sampled_from(["a", "b"]),
            st.booleans(),
            st.dictionaries(st.sampled_from(["city", "tier", "top", "count", "x"]), values),
        ),
        max_size=30,
    )
)
def test_from_memory_or_not_the_output_is_the_templates(
    renders: list[tuple[str, str, bool, dict[str, Any]]],
) -> None:
    environment = make_environment(None)
    environment.loader = RecordingLoader(jinja2.DictLoader(PURE))
    for name, variant, known, attributes in renders:
        if isinstance(attributes.get("count"), str):
            attributes["count"] = 0  # (range of a text is an error either way)
        template = environment.get_template(name)
        expected = template.render(variant=variant, attributes=attributes, known=known)
        assert render_memo(template).render(variant, attributes, known, no_others) == expected
