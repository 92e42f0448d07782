"""Build personalize/data/sources.json from the shared lists (run from the project root).

Reads ../shared/data (Matomo's searchengine-and-social-list and GA4's source categories, as
restated by Velir/dbt-ga4) and the project's own lists in scripts/data/sources-own.yaml
(webmail, AI assistants, ad frames, search front-ends), and writes a compact, deterministic JSON
that the package ships, so users never need ../shared/data:

    .venv/bin/python scripts/build_sources.py [--data ../shared/data] [--check]

Output keys (see personalize/context/source_lists.py for how they are matched):

- "exact":  GA4 source categories for hostname-like sources, matched exactly (after "www.").
- "walk":   Matomo socials and AI assistants, matched on the host or any parent domain.
- "search": Matomo search-engine blocks [category, name, url patterns, query parameters, paths
            that stand for a hidden keyword (Python regexes)]; url patterns keep Matomo's "{}"
            country placeholders and are matched Matomo's lossy way.
- "names":  category of a source *name* (utm_source values such as "google", "igshopping").
- "country_codes": two-letter labels that the lossy match treats as country codes.
- "own":    sources-own.yaml's email / ai / display hosts, matched on the host or any parent
            domain (a "{}" last label stands for any country-code TLD); checked first.
- "own_paths": the same for "host/path" entries: host -> [[path prefix, category, name]].
- "frontends": sources-own.yaml's search front-ends: exact host -> [name, term parameters].

A network's category comes from GA4 when GA4 lists its name (Matomo's "YouTube" social is GA4
VIDEO; Matomo's "Facebook" search engine is GA4 SOCIAL), else from the Matomo list it is in.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import unicodedata
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "personalize" / "data" / "sources.json"
OWN = ROOT / "scripts" / "data" / "sources-own.yaml"
FORMAT = 2  # personalize/source.py refuses any other
OWN_CATEGORIES = ("email", "ai", "display")
# A host, an Android application id, "{}" for a country-code TLD, an optional "/path".
OWN_PATTERN = re.compile(r"^[a-z0-9-]+(?:\.[a-z0-9-]+)+(?:\.\{\})?(?:/[a-z0-9._~-]+)*$")
GA4_CATEGORY = {
    "SOURCE_CATEGORY_SEARCH": "search",
    "SOURCE_CATEGORY_SOCIAL": "social",
    "SOURCE_CATEGORY_SHOPPING": "shopping",
    "SOURCE_CATEGORY_VIDEO": "video",
}
HOST = re.compile(r"^(?:\{\}\.)*[\w-]+(?:\.(?:[\w-]+|\{\}))+$")
# ISO 3166-1 alpha-2 plus "uk" and "eu", which are used as country-code TLDs.
COUNTRY_CODES = (
    "ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bl bm bn bo bq "
    "br bs bt bv bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm "
    "do dz ec ee eg eh er es et eu fi fj fk fm fo fr ga gb gd ge gf gg gh gi gl gm gn gp gq gr "
    "gs gt gu gw gy hk hm hn hr ht hu id ie il im in io iq ir is it je jm jo jp ke kg kh ki km "
    "kn kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc md me mf mg mh mk ml mm mn mo mp "
    "mq mr ms mt mu mv mw mx my mz na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk pl "
    "pm pn pr ps pt pw py qa re ro rs ru rw sa sb sc sd se sg sh si sj sk sl sm sn so sr ss st "
    "sv sx sy sz tc td tf tg th tj tk tl tm tn to tr tt tv tw tz ua ug uk um us uy uz va vc ve "
    "vg vi vn vu wf ws ye yt za zm zw"
)


def slug(name: str) -> str:
    """A source name as stored: lower case, URL-decoded, spaces as '-', no punctuation."""
    text = unicodedata.normalize("NFC", unquote(name)).strip().lower()
    text = re.sub(r"\s+", "-", text)
    return re.sub(r"[^\w.+-]", "", text)


def host_of(pattern: str) -> str | None:
    """The host part of a Matomo url pattern, or None when it is not a hostname."""
    host = pattern.strip().lower().split("/", 1)[0]
    return host if HOST.match(host) else None


def hidden_regex(path: str) -> str:
    """A Matomo hiddenkeyword as a Python regex searched in path?query#fragment.

    Matomo treats '/.../' as a regex (these compile unchanged in Python) and anything else as
    the exact path.
    """
    regex = path[1:-1] if len(path) > 1 and path[0] == path[-1] == "/" else f"^{re.escape(path)}$"
    re.compile(regex)
    return regex


def derived_name(host: str) -> str:
    """Name for a GA4-only host: the label before its TLD ("s3.amazonaws.com" -> "amazonaws")."""
    labels = host.split(".")
    if len(labels) > 2 and labels[-2] in {"com", "org", "net", "co", "ne", "ac", "or"}:
        labels = labels[:-1]
    return labels[-2] if len(labels) > 1 else labels[0]


class OwnListError(ValueError):
    """sources-own.yaml breaks a rule; the message says which entry."""


def own_lists(path: Path, names: dict[str, str]) -> dict[str, Any]:
    """The "own", "own_paths" and "frontends" tables from sources-own.yaml, checked.

    Adds the email, ai and search names to ``names`` (a name GA4 or Matomo gives another
    category is an error: ``utm_source=<name>`` would then mean two things). Display names
    ("google", "amazon") are not added: as utm_source they keep GA4's meaning.
    """
    raw = yaml.safe_load(path.read_text("utf-8"))
    if not isinstance(raw, dict) or set(raw) != {*OWN_CATEGORIES, "search"}:
        raise OwnListError(f"{path}: expected the sections {[*OWN_CATEGORIES, 'search']}")
    own: dict[str, list[str]] = {}
    own_paths: dict[str, list[list[str]]] = {}
    frontends: dict[str, list[Any]] = {}
    seen: set[str] = set()

    def claim(name: str, category: str, pattern: str) -> None:
        if slug(name) != name:
            raise OwnListError(f"{category}.{name}: names are lower case, no spaces or punctuation")
        if category != "display" and names.setdefault(name, category) != category:
            raise OwnListError(f"{category}.{name}: GA4 or Matomo call {name!r} {names[name]}")
        if not OWN_PATTERN.match(pattern):
            raise OwnListError(f"{category}.{name}: {pattern!r} is not a host or host/path")
        if pattern in seen:
            raise OwnListError(f"{category}.{name}: {pattern!r} is listed twice")
        seen.add(pattern)

    for category in OWN_CATEGORIES:
        for name, patterns in raw[category].items():
            for pattern in patterns:
                claim(str(name), category, str(pattern))
                host, _, path = str(pattern).partition("/")
                if path:
                    own_paths.setdefault(host, []).append([f"/{path}", category, str(name)])
                else:
                    own[host] = [category, str(name)]
    for name, entry in raw["search"].items():
        params = [str(p) for p in entry["params"]]
        for host in entry["hosts"]:
            claim(str(name), "search", str(host))
            if "/" in host or "{" in host:
                raise OwnListError(f"search.{name}: {host!r}: front-ends are exact hosts")
            frontends[str(host)] = [str(name), params]
    return {
        "own": dict(sorted(own.items())),
        "own_paths": dict(sorted(own_paths.items())),
        "frontends": dict(sorted(frontends.items())),
    }


def build(data: Path, own: Path = OWN) -> dict[str, Any]:
    matomo = data / "matomo-searchengine-social"
    engines = yaml.safe_load((matomo / "SearchEngines.yml").read_text("utf-8"))
    socials = yaml.safe_load((matomo / "Socials.yml").read_text("utf-8"))
    assistants = yaml.safe_load((matomo / "AIAssistants.yml").read_text("utf-8"))
    ga4_path = data / "ga4-channel-group" / "ga4_source_categories.csv"
    with ga4_path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    ga4 = {r["source"].strip().lower(): GA4_CATEGORY[r["source_category"]] for r in rows}

    def category(name: str, default: str) -> str:
        return ga4.get(slug(name), ga4.get(name.strip().lower(), default))

    names: dict[str, str] = {}
    walk: dict[str, list[str]] = {}
    matomo_host_names: dict[str, str] = {}
    for kind, table in (("ai", assistants), ("social", socials)):
        for name, urls in table.items():
            cat = category(name, kind) if kind == "social" else "ai"
            names.setdefault(slug(name), cat)
            for url in urls:
                host = host_of(url)
                if host and "/" not in url and host not in walk:
                    walk[host] = [cat, slug(name)]
                    matomo_host_names[host] = slug(name)

    search: list[list[Any]] = []
    seen: set[str] = set()
    # Url patterns with a path ("google.{}/products") only repeat a host of another block.
    for with_path in (False, True):
        for name, blocks in engines.items():
            # Matomo lists some assistants (ChatGPT, Perplexity) as search engines too.
            cat = category(name, "ai" if names.get(slug(name)) == "ai" else "search")
            names.setdefault(slug(name), cat)
            for block in blocks:
                hosts = []
                for url in block.get("urls") or []:
                    host = host_of(str(url))
                    if host and ("/" in str(url)) == with_path and host not in seen:
                        seen.add(host)
                        hosts.append(host)
                        matomo_host_names.setdefault(host.replace("{}.", ""), slug(name))
                params = [
                    p for p in map(str, block.get("params") or []) if p.strip() and p[0] != "/"
                ]
                hidden = [hidden_regex(str(h)) for h in block.get("hiddenkeyword") or []]
                if hosts:
                    search.append([cat, slug(name), hosts, params, hidden])

    exact: dict[str, list[str]] = {}
    for source, cat in ga4.items():
        host = host_of(source)
        if host and "." in source and "{" not in host:
            bare = host.removeprefix("www.")
            parents = [".".join(bare.split(".")[i:]) for i in range(bare.count(".") + 1)]
            known = next((matomo_host_names[p] for p in parents if p in matomo_host_names), None)
            exact[host] = [cat, known or derived_name(bare)]
        else:
            names[source] = cat  # GA4 wins over Matomo for a name in both; GA4 is exact

    own_tables = own_lists(own, names)
    return {
        "version": FORMAT,
        "generated_by": "scripts/build_sources.py (do not edit; see SOURCES-LICENSES.md)",
        "country_codes": COUNTRY_CODES,
        "names": dict(sorted(names.items())),
        "exact": dict(sorted(exact.items())),
        "walk": dict(sorted(walk.items())),
        "search": search,
        **own_tables,
    }


def dump(tables: dict[str, Any]) -> str:
    """Compact JSON with one entry per line, so that regenerating gives readable diffs."""
    lines = ["{"]
    keys = list(tables)
    for i, key in enumerate(keys):
        value = tables[key]
        end = "," if i < len(keys) - 1 else ""
        if isinstance(value, dict):
            items = [
                f"  {json.dumps(k, ensure_ascii=False)}:{_compact(v)}" for k, v in value.items()
            ]
            lines.append(f'"{key}":{{\n' + ",\n".join(items) + f"\n}}{end}")
        elif isinstance(value, list):
            items = [f"  {_compact(v)}" for v in value]
            lines.append(f'"{key}":[\n' + ",\n".join(items) + f"\n]{end}")
        else:
            lines.append(f'"{key}":{_compact(value)}{end}')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--check", action="store_true", help="fail if the output is stale")
    args = parser.parse_args(argv)
    text = dump(build(args.data))
    if args.check:
        if not OUT.exists() or OUT.read_text("utf-8") != text:
            print(f"{OUT} is stale: run scripts/build_sources.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, "utf-8")
    print(f"wrote {OUT} ({len(text):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
