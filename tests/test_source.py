"""SourceClassifier: table-driven GA4 channel cases, plus checks against the shared lists."""

from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any, get_args
from urllib.parse import quote

import pytest
import yaml
from conftest import ROOT, shared_data_path
from hypothesis import given, settings
from hypothesis import strategies as st

from personalize.context import Channel
from personalize.context.source import MAX_LENGTH, SourceClassifier

DATA = Path(__file__).parent / "data"
CASES: list[dict[str, Any]] = [
    case
    for name in ("source_cases.yaml", "source_cases_beyond_ga4.yaml")
    for case in yaml.safe_load((DATA / name).read_text("utf-8"))
]
OWN_LISTS: dict[str, Any] = yaml.safe_load(
    (ROOT / "scripts" / "data" / "sources-own.yaml").read_text("utf-8")
)
INTERNAL_HOSTS = ["shop.example.org", ".example.net"]
# GA4's list has these hosts in another category; sources-own.yaml says what they are.
GA4_OVERRIDDEN = {
    "aax-us-east.amazon-adsystem.com": "display",  # Amazon's ad frames, not its shop
    "aax.amazon-adsystem.com": "display",
    "email.seznam.cz": "email",
    "mail.rambler.ru": "email",
    "mail.yandex.ru": "email",
}
GA4_RULES = {
    "Direct",
    "Cross-network",
    "Paid Shopping",
    "Paid Search",
    "Paid Social",
    "Paid Video",
    "Display",
    "Paid Other",
    "Organic Shopping",
    "Organic Social",
    "Organic Video",
    "Organic Search",
    "Referral",
    "Email",
    "Affiliates",
    "Audio",
    "SMS",
    "Mobile Push Notifications",
    "Unassigned",
}
CATEGORY_CHANNEL = {
    "SOURCE_CATEGORY_SEARCH": "organic_search",
    "SOURCE_CATEGORY_SOCIAL": "organic_social",
    "SOURCE_CATEGORY_SHOPPING": "organic_shopping",
    "SOURCE_CATEGORY_VIDEO": "organic_video",
}
HOSTNAME = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")


@pytest.fixture(scope="module")
def classifier() -> SourceClassifier:
    return SourceClassifier(internal_hosts=INTERNAL_HOSTS)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case: dict[str, Any]) -> None:
    classifier = SourceClassifier(internal_hosts=case.get("internal_hosts", INTERNAL_HOSTS))
    referer = case.get("referer")
    if referer is not None and case.get("pad"):
        referer += "p" * case["pad"]
    source = classifier.classify(
        host=case.get("host", "example.com"),
        referer=referer,
        query_string=case.get("query", ""),
    )
    got = {field: getattr(source, field) for field in case["expect"]}
    assert got == case["expect"], source


def test_cases_cover_every_channel_and_ga4_rule() -> None:
    channels = {c["expect"]["channel"] for c in CASES}
    assert channels == set(get_args(Channel))
    assert GA4_RULES | {"Internal", "AI assistant"} <= {c["rule"] for c in CASES}
    assert len({c["id"] for c in CASES}) == len(CASES)


OWN_CHANNEL = {"email": "email", "ai": "ai_assistant", "display": "display"}
ANDROID_APP_PREFIXES = ("com.", "ch.", "ai.")  # Android application ids in sources-own.yaml


def _own_patterns() -> list[tuple[str, str, str]]:
    return [
        (category, name, pattern)
        for category in OWN_CHANNEL
        for name, patterns in OWN_LISTS[category].items()
        for pattern in patterns
    ]


@pytest.mark.parametrize(("category", "name", "pattern"), _own_patterns())
def test_every_own_host_gets_its_channel_and_name(
    classifier: SourceClassifier, category: str, name: str, pattern: str
) -> None:
    """Each pattern of sources-own.yaml, bare and on a subdomain, gives its channel and name."""
    host, _, path = pattern.replace("{}", "co.uk").partition("/")
    if host.startswith(ANDROID_APP_PREFIXES):
        referers = [f"android-app://{host}/"]
    elif path:
        referers = [f"https://{host}/{path}/", f"https://{host}/{path}?x=1"]
    else:
        referers = [f"https://{host}/", f"https://x1.{host}/"]
    for referer in referers:
        got = classifier.classify(host="example.com", referer=referer, query_string="")
        assert (got.channel, got.source) == (OWN_CHANNEL[category], name), referer


@pytest.mark.parametrize(
    ("name", "entry"), list(OWN_LISTS["search"].items()), ids=list(OWN_LISTS["search"])
)
def test_every_search_front_end_is_search_from_a_bare_origin(
    classifier: SourceClassifier, name: str, entry: dict[str, Any]
) -> None:
    for host in entry["hosts"]:
        bare = classifier.classify(host="example.com", referer=f"https://{host}/", query_string="")
        assert (bare.channel, bare.source, bare.term) == ("organic_search", name, None), host
        param = entry["params"][0]
        referer = f"https://{host}/search?{param}=caf%C3%A9"
        found = classifier.classify(host="example.com", referer=referer, query_string="")
        assert (found.channel, found.source, found.term) == ("organic_search", name, "café")


def test_stored_strings_are_capped(classifier: SourceClassifier) -> None:
    long = "a" * 1000
    source = classifier.classify(
        host="example.com",
        referer=f"https://www.google.com/search?q={long}",
        query_string=f"utm_campaign={long}&utm_content={long}",
    )
    assert source.channel == "organic_search"
    assert source.term == "a" * MAX_LENGTH
    assert source.campaign == "a" * MAX_LENGTH
    assert source.content == "a" * MAX_LENGTH
    tagged = classifier.classify(
        host=None, referer=None, query_string=f"utm_source={long}&utm_medium=email"
    )
    assert tagged.channel == "email"
    assert tagged.source == "a" * MAX_LENGTH


def test_huge_inputs(classifier: SourceClassifier) -> None:
    referer = "https://partner.example.org/" + "%ZZ\u00e9" * 4000
    query = "&".join(f"p{i}=v" for i in range(10_000)) + "&utm_source=x&utm_medium=email"
    source = classifier.classify(host="example.com", referer=referer, query_string=query)
    # Only the first few KB of the query string are read: the late utm tags are ignored.
    assert source.channel == "referral"
    assert source.referrer_host == "partner.example.org"


def test_results_are_memoized_in_a_bounded_cache() -> None:
    cached = SourceClassifier(cache_size=2)
    args: dict[str, Any] = {"host": "a.test", "referer": "https://t.co/x", "query_string": ""}
    first = cached.classify(**args)
    assert cached.classify(**args) is first
    for i in range(3):  # evicts the first entry
        cached.classify(host="a.test", referer=None, query_string=f"gclid={i}")
    again = cached.classify(**args)
    assert again == first
    assert again is not first
    uncached = SourceClassifier(cache_size=0)
    assert uncached.classify(**args) is not uncached.classify(**args)


@settings(max_examples=300, deadline=None)
@given(
    host=st.one_of(st.none(), st.text(max_size=40)),
    referer=st.one_of(
        st.none(),
        st.text(max_size=200),
        st.builds(lambda s: f"https://{s}", st.text(max_size=100)),
        st.builds(lambda s: f"https://www.google.com/search?q={s}", st.text(max_size=100)),
    ),
    query_string=st.text(max_size=300),
)
def test_never_raises(host: str | None, referer: str | None, query_string: str) -> None:
    classifier = SourceClassifier(internal_hosts=INTERNAL_HOSTS, cache_size=0)
    # The inner method, without the catch-all the public one adds.
    source = classifier._classify(host, referer or "", query_string)
    assert source.channel in get_args(Channel)
    for value in (source.source, source.medium, source.campaign, source.term, source.content):
        assert value is None or 0 < len(value) <= MAX_LENGTH


def _ga4_rows() -> list[tuple[str, str]]:
    path = shared_data_path("ga4-channel-group", "ga4_source_categories.csv")
    with path.open(encoding="utf-8", newline="") as f:
        return [(r["source"], r["source_category"]) for r in csv.DictReader(f)]


def _expected_channel(source: str, category: str) -> str:
    return OWN_CHANNEL.get(GA4_OVERRIDDEN.get(source, ""), CATEGORY_CHANNEL[category])


def test_ga4_source_categories_as_referrer(classifier: SourceClassifier) -> None:
    checked, wrong, overridden = 0, [], set()
    for source, category in _ga4_rows():
        if not HOSTNAME.match(source):
            continue
        got = classifier.classify(host="example.com", referer=f"https://{source}/", query_string="")
        checked += 1
        if got.channel != _expected_channel(source, category):
            wrong.append((source, category, got.channel))
        if got.channel != CATEGORY_CHANNEL[category]:
            overridden.add(source)
    assert checked > 400
    assert wrong == [], wrong
    assert overridden == set(GA4_OVERRIDDEN)  # only these depart from GA4


def test_ga4_source_categories_as_utm_source(classifier: SourceClassifier) -> None:
    wrong = []
    for source, category in _ga4_rows():
        got = classifier.classify(
            host=None, referer=None, query_string=f"utm_source={quote(source)}"
        )
        if got.channel != _expected_channel(source, category):
            wrong.append((source, category, got.channel))
    assert wrong == [], wrong


def _matomo(name: str) -> Any:
    path = shared_data_path("matomo-searchengine-social", name)
    return yaml.safe_load(path.read_text("utf-8"))


def test_every_matomo_search_engine_host_is_organic_search(classifier: SourceClassifier) -> None:
    """Each engine host, with its first term parameter, is organic search with that term.

    Engines that GA4 or Matomo's own lists put elsewhere are left out: networks GA4 names as
    social (Facebook's site search), AI assistants (ChatGPT, Perplexity, You.com), and hosts
    that GA4 lists or that are under a social network's domain.
    """
    other = {s.lower(): c for s, c in _ga4_rows() if c != "SOURCE_CATEGORY_SEARCH"}
    elsewhere = {s.lower() for s in other}
    for table in (_matomo("Socials.yml"), _matomo("AIAssistants.yml")):
        elsewhere |= {n.lower() for n in table}
        elsewhere |= {u.lower() for urls in table.values() for u in urls}
    checked, skipped, wrong = 0, 0, []
    for name, blocks in _matomo("SearchEngines.yml").items():
        for block in blocks:
            params = [p for p in block.get("params") or [] if p.strip() and p[0] != "/"]
            for url in block["urls"]:
                host = url.split("/", 1)[0].replace("{}.", "de.").replace(".{}", ".co.uk")
                parents = {".".join(host.split(".")[i:]) for i in range(host.count("."))}
                invalid = "." not in host  # "android-app//com.google...": not a host
                if invalid or not params or name.lower() in elsewhere or parents & elsewhere:
                    skipped += 1
                    continue
                checked += 1
                referer = f"https://{host}/search?{params[0]}=caf%C3%A9+au+lait"
                got = classifier.classify(host="example.com", referer=referer, query_string="")
                if (got.channel, got.term) != ("organic_search", "café au lait"):
                    wrong.append((name, url, got.channel, got.term))
    assert checked > 400
    assert skipped < 40
    assert wrong == [], wrong


def test_every_matomo_social_host_is_organic_social(classifier: SourceClassifier) -> None:
    ga4 = {s.lower(): CATEGORY_CHANNEL[c] for s, c in _ga4_rows()}
    checked, wrong = 0, []
    for name, urls in _matomo("Socials.yml").items():
        for host in urls:
            expected = ga4.get(host, ga4.get(name.lower(), "organic_social"))
            got = classifier.classify(
                host="example.com", referer=f"https://{host}/", query_string=""
            )
            checked += 1
            if got.channel != expected:
                wrong.append((name, host, expected, got.channel))
    assert checked > 100
    assert wrong == [], wrong


def test_every_matomo_ai_assistant_is_a_named_ai_assistant(classifier: SourceClassifier) -> None:
    checked = 0
    for urls in _matomo("AIAssistants.yml").values():
        for url in urls:
            got = classifier.classify(
                host="example.com", referer=f"https://{url}/", query_string=""
            )
            checked += 1
            assert (got.channel, got.medium) == ("ai_assistant", "ai"), url
            assert got.source is not None and "." not in got.source.removesuffix(".ai"), url
    assert checked > 20


def _build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "build_sources", ROOT / "scripts" / "build_sources.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_embedded_sources_json_is_fresh() -> None:
    """personalize/data/sources.json is exactly what scripts/build_sources.py writes."""
    data = shared_data_path()
    build = _build_script()
    text = build.dump(build.build(data))
    assert text == (ROOT / "personalize" / "data" / "sources.json").read_text("utf-8")


OWN_LIST_ERRORS = [
    ("email:\n  Gmail: [mail.google.com]", "names are lower case"),
    ("email:\n  google: [mail.google.com]", "GA4 or Matomo call 'google' search"),
    ("email:\n  gmail: [https://mail.google.com]", "is not a host"),
    ("email:\n  gmail: [mail.google.com]\n  gmail2: [mail.google.com]", "listed twice"),
    ("email:\n  gmail: ['*.google.com']", "is not a host"),
    ("search:\n  kagi: {params: [q], hosts: [kagi.com/search]}", "front-ends are exact hosts"),
]


@pytest.mark.parametrize(("section", "message"), OWN_LIST_ERRORS)
def test_build_script_refuses_a_bad_own_list(tmp_path: Path, section: str, message: str) -> None:
    build = _build_script()
    sections = {name: f"{name}: {{}}" for name in ("email", "ai", "display", "search")}
    sections[section.split(":", 1)[0]] = section
    path = tmp_path / "own.yaml"
    path.write_text("\n".join(sections.values()), "utf-8")
    with pytest.raises(build.OwnListError, match=re.escape(message)):
        build.own_lists(path, {"google": "search"})


def test_build_script_accepts_the_shipped_own_list() -> None:
    names: dict[str, str] = {"google": "search", "amazon": "shopping"}
    tables = _build_script().own_lists(ROOT / "scripts" / "data" / "sources-own.yaml", names)
    assert tables["own"]["mail.google.com"] == ["email", "gmail"]
    assert tables["own_paths"]["x.com"] == [["/i/grok", "ai", "grok"]]
    assert tables["frontends"]["search.brave.com"] == ["brave", ["q"]]
    assert names["gmail"] == "email" and names["google"] == "search"  # display adds no name
