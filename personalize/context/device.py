"""Device detection: the visitor's device type, OS, browser and bot status from the User-Agent.

`user_agents` (on ua-parser) classifies the device; a User-Agent is a bot when user_agents says so
*or* it matches one of the crawler-user-agents patterns, which also catch what user_agents misses
(``Mediapartners-Google``, ``APIs-Google``...). "Bot" means "not a human's browser": HTTP tools
and libraries (curl, Wget, python-requests, Go-http-client...) are bots too, as that list has it.
"other" is what cannot be classified: no header, an empty one, or one nobody recognises.

``is_browser`` says whether a User-Agent is a plausible browser's (:data:`BROWSER_RULE`): it is
not a bot, and it starts as every current browser's does, with ``Mozilla/<version> (`` and
its platform (``Mozilla/5.0 (iPhone; ...``; Opera Mini's ``Opera/9.80 (`` too). No header,
``x``, ``Mozilla/5.0`` alone, HTTP tools and libraries (curl and python-requests are bots
already; ``PostmanRuntime/7.36``, ``Dalvik/2.1.0 (Linux; ...)``), text browsers such as Lynx
and old feature-phone browsers are not: those requests get the page context-only, without a
cookie or a stored profile.

>>> detector = DeviceDetector()
>>> device = detector.detect(
...     "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15"
...     " (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
... )
>>> device.type, device.os, device.browser, device.is_touch
('mobile', 'iOS', 'Mobile Safari', True)
>>> detector.detect("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)").type
'bot'
>>> device.is_browser, detector.detect("x").is_browser, detector.detect(None).is_browser
(True, False, False)
"""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import crawleruseragents
import user_agents

from personalize.context.records import Device, DeviceType
from personalize.exceptions import ConfigurationError

__all__ = [
    "BROWSER_RULE",
    "MAX_USER_AGENT_LENGTH",
    "PATTERN_FIXES",
    "CrawlerMatcher",
    "DeviceDetector",
    "crawler_matcher",
]

logger = logging.getLogger(__name__)

MAX_USER_AGENT_LENGTH = 512  # characters; real ones stay under ~500, the rest is noise or abuse
#: How a browser's User-Agent starts (besides not being a bot): "Mozilla/5.0 (<platform>...",
#: or Opera Mini's "Opera/9.80 (...".
BROWSER_RULE = re.compile(r"(?:Mozilla|Opera)/\d+(?:\.\d+)* \(")

_UNKNOWN = Device()
_CLASS_ESCAPES = frozenset("dDsSwWbBAZ")  # escapes that stand for no literal text
_GRAM = 3  # length of the substrings that select which patterns to try (see _grams)

# Trigrams of everyday browser User-Agents: a pattern keyed on one of them would be tried on
# nearly every request, so keys are chosen outside this set whenever the pattern allows.
_BROWSER_SAMPLES = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0.0.0 Mobile Safari/537.36",
)


_Gram = tuple[str, str, str]


def _grams(text: str) -> set[_Gram]:
    """The 3-character substrings of ``text``, as tuples: zip builds them faster than slicing."""
    return set(zip(text, text[1:], text[2:], strict=False))


def _split_alternatives(pattern: str) -> list[str]:
    """The top-level ``|`` branches of a regular expression."""
    branches, start, depth, i = [], 0, 0, 0
    in_class = False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 1
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":  # a "]" first in a class is a literal
                i += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            branches.append(pattern[start:i])
            start = i + 1
        i += 1
    branches.append(pattern[start:])
    return branches


def _required_literal(branch: str) -> str:
    """The longest literal text every match of a ``|``-free branch must contain ("" if unsure).

    Only the plain parts are read: groups, classes, escapes like ``\\d`` and anchors end a run,
    and a quantifier takes back the character it applies to. Anything not understood shortens
    the literal, never makes it wrong: being wrong would make the index miss a bot.
    """
    runs: list[str] = []
    run = ""
    i = 0
    while i < len(branch):
        char = branch[i]
        literal: str | None = None
        if char == "\\":
            escaped = branch[i + 1 : i + 2]
            i += 1
            if escaped and not escaped.isalnum():  # \/ \. \( ... stand for themselves
                literal = escaped
            elif escaped not in _CLASS_ESCAPES:  # \x41, \u00e9, \1...: not worth reading
                return ""
        elif char in "[(":
            i = _skip_group(branch, i)
        elif char in "*?{":
            run = run[:-1]  # the previous character may be absent
            if char == "{":
                closing = branch.find("}", i)
                i = len(branch) if closing < 0 else closing
        elif char == "+":
            pass  # the previous character is there at least once, then anything may follow
        elif char not in ".^$)|":
            literal = char
        if literal is None:
            runs.append(run)
            run = ""
        else:
            # A literal followed by a quantifier is dealt with by the quantifier branch above.
            run += literal
        i += 1
    runs.append(run)
    return max(runs, key=len)


def _skip_group(pattern: str, i: int) -> int:
    """Index of the ``)`` or ``]`` that closes the group or class opening at ``i``."""
    if pattern[i] == "[":
        j = i + 1
        if pattern[j : j + 1] == "^":
            j += 1
        if pattern[j : j + 1] == "]":
            j += 1
        while j < len(pattern) and pattern[j] != "]":
            j += 2 if pattern[j] == "\\" else 1
        return j
    depth, j = 0, i
    while j < len(pattern):
        if pattern[j] == "\\":
            j += 1
        elif pattern[j] == "[":
            j = _skip_group(pattern, j)
        elif pattern[j] == "(":
            depth += 1
        elif pattern[j] == ")":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return j


class CrawlerMatcher:
    """Tells whether a User-Agent matches any of many crawler regular expressions, quickly.

    One alternation of ~1,500 patterns costs ~0.6 ms per User-Agent under Python's ``re``, which
    tries every branch at every position. Here each pattern is keyed by a 3-character substring
    that every match must contain, and only the patterns whose key occurs in the User-Agent are
    tried; patterns without such a substring are always tried. Patterns are case-sensitive, as
    crawler-user-agents writes them (``[wW]get``). Patterns Python cannot compile are skipped,
    with the reason, in `skipped`.

    >>> matcher = CrawlerMatcher([r"Googlebot\\/", r"^curl", r"[wW]get", r"bad("])
    >>> matcher.matches("Googlebot/2.1"), matcher.matches("curl/8.5"), matcher.matches("Firefox")
    (True, True, False)
    >>> matcher.skipped[0][0]
    'bad('
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        compiled: dict[str, re.Pattern[str]] = {}
        skipped: list[tuple[str, str]] = []
        for pattern in patterns:
            try:
                compiled[pattern] = re.compile(pattern)
            except (re.error, TypeError, ValueError, RecursionError) as exc:
                skipped.append((str(pattern), f"does not compile under Python re: {exc}"))
        anchors = {
            pattern: [_required_literal(branch) for branch in _split_alternatives(pattern)]
            for pattern in compiled
        }
        # Fewer patterns under each key, and keys absent from browser User-Agents, mean fewer
        # patterns tried per request.
        frequency = Counter(
            gram for literals in anchors.values() for s in literals for gram in _grams(s)
        )
        browser_grams = set().union(*map(_grams, _BROWSER_SAMPLES))

        def cost(gram: _Gram) -> tuple[bool, int]:
            return gram in browser_grams, frequency[gram]

        buckets: dict[_Gram, list[re.Pattern[str]]] = {}
        always: list[re.Pattern[str]] = []
        for pattern, literals in anchors.items():
            # (?i) or (?x) change what the literal text means: such patterns are always tried.
            if compiled[pattern].flags & (re.IGNORECASE | re.VERBOSE) or any(
                len(s) < _GRAM for s in literals
            ):
                always.append(compiled[pattern])
                continue
            for literal in literals:
                key = min(sorted(_grams(literal)), key=cost)
                buckets.setdefault(key, []).append(compiled[pattern])
        self._buckets = {key: tuple(found) for key, found in buckets.items()}
        self._keys = frozenset(self._buckets)
        self._always = tuple(always)
        self.skipped: tuple[tuple[str, str], ...] = tuple(skipped)
        self.size = len(compiled)  # patterns in use

    def matches(self, user_agent: str) -> bool:
        """Whether any pattern matches somewhere in ``user_agent``."""
        for key in _grams(user_agent) & self._keys:
            for pattern in self._buckets[key]:
                if pattern.search(user_agent):
                    return True
        return any(pattern.search(user_agent) for pattern in self._always)


# crawler-user-agents patterns that also match real browsers (found on uap-core's vectors),
# replaced by stricter ones that still match every example the list gives; None drops one.
PATTERN_FIXES: dict[str, str | None] = {
    "Butterfly": r"Butterfly/",  # HTC Butterfly phones
    "Sonic": r"RankSonic|\bSonic/",  # ViewSonic tablets, "Lucky Ultra Sonic" phones
    "speedy": r"[sS]peedy[ _]?[sS]pider",  # an HTC device code in YahooMobileMail's UA
    r"008\/": r"\b008/",  # Opera Mini "4.4.39008/37.9178", "sprd-L008/1.0" phones
    # An Android 15 build id, said to be spoofed by 80legs: it flags every phone on that build.
    r"AP3A\.240617\.008": None,
}


@functools.cache
def crawler_matcher() -> CrawlerMatcher:
    """The matcher of the crawler-user-agents patterns, built once per process (~100 ms)."""
    data: Any = crawleruseragents.CRAWLER_USER_AGENTS_DATA
    patterns = []
    for entry in data:
        pattern = entry.get("pattern") if isinstance(entry, dict) else None
        if isinstance(pattern, str):
            pattern = PATTERN_FIXES.get(pattern, pattern)
            if pattern is not None:
                patterns.append(pattern)
    matcher = CrawlerMatcher(patterns)
    for pattern, reason in matcher.skipped:
        logger.info("crawler-user-agents pattern %r skipped: %s", pattern, reason)
    return matcher


def _version(version_string: str) -> str | None:
    return version_string or None


def _family(family: str) -> str | None:
    return None if family == "Other" else family


class DeviceDetector:
    """Turns a User-Agent header into a `Device`, remembering the last ``cache_size`` answers.

    A cold detection costs about a millisecond (nearly all of it ua-parser's regular
    expressions); a remembered one well under a microsecond. ua-parser's own cache empties itself
    every 200 User-Agents, too few for a busy site, hence this LRU.
    """

    def __init__(self, *, cache_size: int = 8192) -> None:
        if cache_size < 0:
            raise ConfigurationError(f"cache_size must be 0 or more, not {cache_size}")
        self._crawlers = crawler_matcher()
        self._detect = functools.lru_cache(maxsize=cache_size)(self._classify)

    def detect(self, user_agent: str | None) -> Device:
        """The device behind ``user_agent``; never raises, "other" when nothing is known."""
        if not isinstance(user_agent, str) or not user_agent.strip():
            return _UNKNOWN
        return self._detect(user_agent[:MAX_USER_AGENT_LENGTH])

    def cache_info(self) -> functools._CacheInfo:
        """Hits, misses, maxsize and current size of the LRU cache."""
        return self._detect.cache_info()

    def cache_clear(self) -> None:
        """Forget every remembered answer."""
        self._detect.cache_clear()

    def _classify(self, user_agent: str) -> Device:
        try:
            parsed = user_agents.parse(user_agent)
            is_bot = bool(parsed.is_bot) or self._crawlers.matches(user_agent)
            kind: DeviceType
            if is_bot:
                kind = "bot"
            elif parsed.is_tablet:
                kind = "tablet"
            elif parsed.is_mobile:
                kind = "mobile"
            elif parsed.is_pc:
                kind = "desktop"
            else:
                kind = "other"
            return Device(
                type=kind,
                os=_family(parsed.os.family),
                os_version=_version(parsed.os.version_string),
                browser=_family(parsed.browser.family),
                browser_version=_version(parsed.browser.version_string),
                is_bot=is_bot,
                is_touch=bool(parsed.is_touch_capable),
                is_browser=not is_bot and BROWSER_RULE.match(user_agent) is not None,
            )
        except Exception:  # a parser bug must not fail the visitor's request
            logger.warning("could not parse User-Agent %r", user_agent[:200], exc_info=True)
            return _UNKNOWN
