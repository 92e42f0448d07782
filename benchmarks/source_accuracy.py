"""How often the source classifier names the right channel, on the shared referrer lists.

    .venv/bin/python -m benchmarks.source_accuracy [--no-write] [--label NAME]

Cases are built from data nobody on the project wrote (../shared/data, see its README): each
host of Matomo's AI assistant, social network and search engine lists and of GA4's source
categories, sent as the Referer a browser sends cross-site today (the bare origin,
``https://host/``, Referrer-Policy strict-origin-when-cross-origin), and each search engine
once more with its search term in the URL (older browsers, same-origin redirects). The
expected channel is the list's category; where GA4 and Matomo disagree, GA4 wins (YouTube is
video), and our own lists' five documented departures from GA4 (webmail and Amazon's ad
servers) count as expected. Webmail, ad frames and search front-ends have no outside list:
their cases are our own, in tests/test_source.py.

A search engine's bare origin is not always search: a portal (www.aol.com, www.yahoo.com)
also serves news and mail, so the classifier asks for the term there, as Matomo does. Those
cases count as wrong here; the figure says how many engines a bare origin identifies.

Run it against another checkout (``PYTHONPATH=/path/to/old python -m
benchmarks.source_accuracy --no-write``) to compare. Writes benchmarks/RESULTS.md between the
``source-accuracy`` markers.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from benchmarks.benchkit import command_line, write_section

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START, END = "<!-- source-accuracy:start -->", "<!-- source-accuracy:end -->"
CATEGORY_CHANNEL = {
    "SOURCE_CATEGORY_SEARCH": "organic_search",
    "SOURCE_CATEGORY_SOCIAL": "organic_social",
    "SOURCE_CATEGORY_SHOPPING": "organic_shopping",
    "SOURCE_CATEGORY_VIDEO": "organic_video",
}
# Where sources-own.yaml departs from GA4's list on purpose (see tests/test_source.py).
OWN_DECISIONS = {
    "aax-us-east.amazon-adsystem.com": "display",
    "aax.amazon-adsystem.com": "display",
    "email.seznam.cz": "email",
    "mail.rambler.ru": "email",
    "mail.yandex.ru": "email",
}


class Case(NamedTuple):
    group: str
    referer: str
    expected: str


def _yaml(name: str) -> Any:
    return yaml.safe_load((SHARED / "matomo-searchengine-social" / name).read_text("utf-8"))


def _ga4() -> dict[str, str]:
    path = SHARED / "ga4-channel-group" / "ga4_source_categories.csv"
    with path.open(encoding="utf-8", newline="") as f:
        return {
            r["source"].lower(): CATEGORY_CHANNEL[r["source_category"]] for r in csv.DictReader(f)
        }


def _host(pattern: str) -> str | None:
    """A Matomo host pattern as a real host ("google.{}" -> google.co.uk), with its path when
    it has one ("x.com/i/grok"); None if it is none ("android-app://...")."""
    host, _, path = pattern.partition("/")
    host = host.replace("{}.", "de.").replace(".{}", ".co.uk").lower()
    if "." not in host or " " in host or "//" in pattern:
        return None
    return f"{host}/{path}" if path else host


def cases() -> Iterator[Case]:
    ga4 = _ga4()
    for urls in _yaml("AIAssistants.yml").values():
        for url in urls:
            if host := _host(url):
                yield Case(
                    "AI assistants (Matomo), bare origin", f"https://{host}/", "ai_assistant"
                )
    for name, urls in _yaml("Socials.yml").items():
        for url in urls:
            if host := _host(url):
                expected = ga4.get(host, ga4.get(name.lower(), "organic_social"))
                yield Case("social networks (Matomo), bare origin", f"https://{host}/", expected)
    elsewhere = {h for h, channel in ga4.items() if channel != "organic_search"}
    for table in (_yaml("Socials.yml"), _yaml("AIAssistants.yml")):
        elsewhere |= {n.lower() for n in table} | {u.lower() for us in table.values() for u in us}
    for name, blocks in _yaml("SearchEngines.yml").items():
        for block in blocks:
            params = [p for p in block.get("params") or [] if p.strip() and p[0] != "/"]
            for url in block["urls"]:
                host = _host(url.split("/", 1)[0])
                parents = {".".join((host or "").split(".")[i:]) for i in range(9)}
                if host is None or name.lower() in elsewhere or parents & elsewhere:
                    continue  # GA4 or Matomo's other lists put it elsewhere (Facebook search)
                yield Case("search engines (Matomo), bare origin", f"https://{host}/",
                           "organic_search")  # fmt: skip
                if params:
                    url = f"https://{host}/search?{params[0]}=caf%C3%A9"
                    yield Case("search engines (Matomo), with the search term", url,
                               "organic_search")  # fmt: skip
    for host, channel in ga4.items():
        if "." in host and " " not in host:
            expected = OWN_DECISIONS.get(host, channel)
            yield Case("GA4 source categories (hosts), bare origin", f"https://{host}/", expected)


def measure() -> list[tuple[str, int, int, list[str]]]:
    """(group, right, cases, a few wrong referrers) per group, in the order first seen."""
    from personalize.context.source import SourceClassifier

    classifier = SourceClassifier(cache_size=0)
    rows: dict[str, list[Any]] = {}
    for case in cases():
        got = classifier.classify(host="shop.example", referer=case.referer, query_string="")
        row = rows.setdefault(case.group, [0, 0, []])
        row[1] += 1
        if got.channel == case.expected:
            row[0] += 1
        elif len(row[2]) < 6:
            row[2].append(f"{case.referer} -> {got.channel}")
    return [(group, right, total, wrong) for group, (right, total, wrong) in rows.items()]


def render(results: list[tuple[str, int, int, list[str]]], label: str) -> str:
    right = sum(r for _, r, _, _ in results)
    total = sum(t for _, _, t, _ in results)
    lines = [
        START,
        "## Source classification on the shared referrer lists",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; code: {label}",
        f"- command: `{command_line('benchmarks.source_accuracy')}`",
        "- cases: every host of ../shared/data's Matomo AI assistant, social and search engine "
        "lists and of GA4's source categories, as a bare-origin Referer (search engines also "
        "with their term); expected: the list's category (see the module docstring)",
        "",
        "| cases | right | of | share |",
        "|---|---:|---:|---:|",
    ]
    for group, ok, n, _ in results:
        lines.append(f"| {group} | {ok:,} | {n:,} | {ok / n:.1%} |")
    lines.append(f"| **all** | **{right:,}** | **{total:,}** | **{right / total:.1%}** |")
    lines += ["", "Examples of the cases still wrong:", ""]
    for group, _, _, wrong in results:
        if wrong:
            lines.append(f"- {group}: " + "; ".join(f"`{w}`" for w in wrong[:4]))
    lines.append(END)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--no-write", action="store_true", help="print, do not write RESULTS.md")
    parser.add_argument("--label", default="this checkout", help="what code was measured")
    args = parser.parse_args()
    if not SHARED.exists():
        raise SystemExit(f"{SHARED} is absent: this measures the shared referrer lists")
    text = render(measure(), args.label)
    print(text)
    if not args.no_write:
        write_section(RESULTS, START, END, text)


if __name__ == "__main__":
    main()
