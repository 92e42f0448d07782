"""Language preferences and privacy signals from the request headers.

``Accept-Language`` is parsed as RFC 9110 (section 12.5.4) defines it: language ranges with
optional ``q`` weights. Ranges with q=0, the wildcard "*", invalid tags and invalid weights
are dropped; the rest are lower-cased and ordered by weight, equal weights keeping header
order, a repeated tag keeping its highest weight; at most 10 are kept. ``Sec-GPC`` and ``DNT``
are true only for the value "1".

>>> s = parse_signals("en-GB,en-US;q=0.9,en;q=0.8,de;q=0,*;q=0.1", "1", None)
>>> s.languages, s.language, s.gpc, s.dnt
(('en-gb', 'en-us', 'en'), 'en', True, False)
"""

from __future__ import annotations

import functools
import re

from personalize.context.records import Signals

__all__ = ["parse_signals"]

MAX_LANGUAGES = 10
MAX_HEADER_LENGTH = 1024  # characters; real browsers send well under 200
_CACHE_SIZE = 4096
_OWS = " \t"  # RFC 9110 optional whitespace; str.strip() would also eat latin-1 NBSP

# RFC 4647 basic language range, ASCII only (headers arrive latin-1 decoded).
_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def parse_signals(accept_language: str | None, sec_gpc: str | None, dnt: str | None) -> Signals:
    """The Signals of a request's Accept-Language, Sec-GPC and DNT headers; never raises.

    >>> parse_signals("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5", None, " 1 ").languages
    ('fr-ch', 'fr', 'en', 'de')
    >>> parse_signals("garbage;;q=2, ??", "0", "1")
    Signals(languages=(), gpc=False, dnt=True)
    """
    header = accept_language or ""
    if len(header) > MAX_HEADER_LENGTH:
        # Keep whole elements only: a cut tag or weight would read as a different one.
        header = header[:MAX_HEADER_LENGTH].rpartition(",")[0]
    return _signals(header, _is_one(sec_gpc), _is_one(dnt))


def _is_one(value: str | None) -> bool:
    return value is not None and value.strip(_OWS) == "1"


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _signals(accept_language: str, gpc: bool, dnt: bool) -> Signals:
    return Signals(languages=_languages(accept_language), gpc=gpc, dnt=dnt)


def _languages(header: str) -> tuple[str, ...]:
    weighted: list[tuple[float, int, str]] = []
    for position, element in enumerate(header.split(",")):
        tag, *params = (part.strip(_OWS) for part in element.split(";"))
        if not _TAG.fullmatch(tag):  # also drops "*" and empty elements
            continue
        weight = _weight(params)
        if weight is None or weight <= 0:
            continue
        weighted.append((-weight, position, tag.lower()))
    weighted.sort()
    languages: list[str] = []
    for _, _, tag in weighted:
        if tag not in languages:  # the first occurrence after sorting has the highest weight
            languages.append(tag)
            if len(languages) == MAX_LANGUAGES:
                break
    return tuple(languages)


def _weight(params: list[str]) -> float | None:
    """The q of a range's parameters: 1 without one, None if it is malformed."""
    weight = 1.0
    for param in params:
        name, sep, value = param.partition("=")
        if not sep or name.strip(_OWS).lower() != "q":
            return None  # RFC 9110 allows only a weight here
        value = value.strip(_OWS)
        if not _QVALUE.fullmatch(value):
            return None
        weight = float(value)
    return weight
