"""User-Agent Client Hints: the device as Chromium browsers report it beside a reduced User-Agent.

Chromium freezes its User-Agent ("Android 10; K", "Windows NT 10.0", "Mac OS X 10_15_7") and
sends the truth in ``Sec-CH-UA-*`` request headers instead: ``Sec-CH-UA`` (brands),
``Sec-CH-UA-Mobile`` and ``Sec-CH-UA-Platform`` on every request to a secure origin, and the
high-entropy hints (``Sec-CH-UA-Platform-Version``, ``-Model``, ``-Form-Factors``,
``-Full-Version-List``) once a response asked for them with ``Accept-CH`` (`ACCEPT_CH`). They
are Structured Fields (RFC 8941, :mod:`~personalize.context.structured_fields`); a field that
does not parse, or is longer than ``MAX_FIELD_LENGTH``, is ignored, as the RFC says.

`apply_client_hints` lets hints, when present, take precedence over the User-Agent: the device
type (mobile flag; tablet from the form factor or an Android that asks for the desktop site),
the OS in ua-parser's names ("Mac OS X", "Windows", "Chrome OS"...) with its real version (a
Windows platform version of 13 or more is Windows 11), and the browser from the brand list
where the User-Agent only says Chrome.

Headers for the response: browsers send hints only to secure origins (HTTPS, or
http://localhost), and the high-entropy ones only after a response of that origin carried
``Accept-CH: <ACCEPT_CH>``; they then arrive from the next request on (``Critical-CH`` would
make the browser repeat the first request at once: a round trip on every first visit, so not
by default). A response whose content may depend on the hints names them in ``Vary``:
`VARY_LOW_ENTROPY`, or `VARY_WITH_ACCEPT_CH` when Accept-CH is sent.

>>> parser = ClientHintsParser()
>>> hints = parser.parse({
...     "sec-ch-ua": '"Chromium";v="156", "Not.A/Brand";v="99", "Brave";v="156"',
...     "sec-ch-ua-mobile": "?1",
...     "sec-ch-ua-platform": '"Android"',
...     "sec-ch-ua-platform-version": '"14.0.0"',
... })
>>> hints.mobile, hints.platform, [b.name for b in hints.brands]
(True, 'Android', ['Chromium', 'Brave'])
>>> reduced = Device(type="tablet", os="Android", os_version="10", browser="Chrome")
>>> d = apply_client_hints(reduced, hints, user_agent="Mozilla/5.0 (Linux; Android 10; K) ...")
>>> d.type, d.os, d.os_version, d.browser, d.browser_version
('mobile', 'Android', '14', 'Brave', '156')
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

from personalize.context.records import Device, DeviceType
from personalize.context.structured_fields import BareItem, Token, parse_item, parse_list
from personalize.exceptions import ConfigurationError

__all__ = [
    "ACCEPT_CH",
    "HEADER_NAMES",
    "HIGH_ENTROPY_HINTS",
    "LOW_ENTROPY_HINTS",
    "MAX_FIELD_LENGTH",
    "VARY_LOW_ENTROPY",
    "VARY_WITH_ACCEPT_CH",
    "Brand",
    "ClientHints",
    "ClientHintsMode",
    "ClientHintsParser",
    "apply_client_hints",
]

# Header names as ASGI gives them (lower case). The low-entropy ones come unasked.
LOW_ENTROPY_HINTS = ("sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform")
HIGH_ENTROPY_HINTS = (
    "sec-ch-ua-platform-version",
    "sec-ch-ua-model",
    "sec-ch-ua-form-factors",
    "sec-ch-ua-full-version-list",
)
ACCEPT_CH = (  # the Accept-CH value that asks for every hint read here
    "Sec-CH-UA-Platform-Version, Sec-CH-UA-Model, Sec-CH-UA-Form-Factors, "
    "Sec-CH-UA-Full-Version-List"
)
VARY_LOW_ENTROPY = "Sec-CH-UA, Sec-CH-UA-Mobile, Sec-CH-UA-Platform"
VARY_WITH_ACCEPT_CH = f"{VARY_LOW_ENTROPY}, {ACCEPT_CH}"
# Lower-case header name -> as the specification writes it (for Vary).
HEADER_NAMES = {name.lower(): name for name in VARY_WITH_ACCEPT_CH.split(", ")}
# A site's choice: ignore the hints, read them when sent, or also ask for the detailed ones.
ClientHintsMode = Literal["off", "read", "request"]
MAX_FIELD_LENGTH = 512  # characters; Chromium's longest, the full version list, is ~120
_MAX_MEMBERS = 12  # brands or form factors looked at
_MAX_STRING = 64  # characters of a brand, platform, model or version kept

# Sec-CH-UA-Platform -> the OS family ua-parser gives the same system.
_OS_NAMES = {
    "android": "Android",
    "chrome os": "Chrome OS",
    "chromium os": "Chrome OS",
    "fuchsia": "Fuchsia",
    "ios": "iOS",
    "linux": "Linux",
    "macos": "Mac OS X",
    "windows": "Windows",
}
# Brand -> ua-parser's browser family; Chrome and Chromium say less than the User-Agent does.
_BROWSERS = {"google chrome": "Chrome", "microsoft edge": "Edge", "yandex": "Yandex Browser"}
_GENERIC_BRANDS = frozenset({"chromium", "google chrome"})
_FORM_FACTOR_TYPES: dict[str, DeviceType] = {
    "mobile": "mobile",
    "tablet": "tablet",
    "desktop": "desktop",
}
# Versions the reduced User-Agents carry whatever the real one is.
_FROZEN = re.compile(r"Android 10; K\)|Intel Mac OS X 10_15_7|CrOS \S+ 14541\.0\.0")
_GREASE = re.compile(r"[^a-z]")  # "Not.A/Brand", "Not:A-Brand": a brand of letters "notabrand"


class Brand(NamedTuple):
    name: str
    version: str


@dataclass(frozen=True, slots=True)
class ClientHints:
    """The hints of one request, parsed; None or empty where absent or invalid."""

    brands: tuple[Brand, ...] = ()  # Sec-CH-UA without GREASE brands; significant versions
    mobile: bool | None = None  # Sec-CH-UA-Mobile
    platform: str | None = None  # Sec-CH-UA-Platform, e.g. "macOS"
    platform_version: str | None = None  # e.g. "14.5.0"; "" on Linux is None
    model: str | None = None  # Android only, e.g. "Pixel 7"
    form_factors: tuple[str, ...] = ()  # lower case: "mobile", "tablet", "desktop", "xr"...
    full_versions: tuple[Brand, ...] = ()  # Sec-CH-UA-Full-Version-List

    @property
    def present(self) -> bool:
        """Whether any hint was read."""
        return self != _NONE


_NONE = ClientHints()


def _string(raw: str | None) -> str | None:
    """An sf-string header; None when absent, malformed, too long or empty."""
    member = parse_item(raw) if raw and len(raw) <= MAX_FIELD_LENGTH else None
    value = member[0] if member else None
    if isinstance(value, Token) or not isinstance(value, str):
        return None
    return value if 0 < len(value) <= _MAX_STRING else None


def _boolean(raw: str | None) -> bool | None:
    member = parse_item(raw) if raw and len(raw) <= MAX_FIELD_LENGTH else None
    return member[0] if member and isinstance(member[0], bool) else None


def _strings(raw: str | None) -> list[tuple[str, dict[str, BareItem]]]:
    """The sf-string members of an sf-list (others skipped); [] when the list is malformed."""
    members = parse_list(raw) if raw and len(raw) <= MAX_FIELD_LENGTH else None
    return [
        (value, params)
        for value, params in (members or [])[:_MAX_MEMBERS]
        if isinstance(value, str) and not isinstance(value, Token) and 0 < len(value) <= _MAX_STRING
    ]


def _brands(raw: str | None) -> tuple[Brand, ...]:
    found = []
    for name, params in _strings(raw):
        version = params.get("v")
        if _GREASE.sub("", name.lower()) == "notabrand" or not isinstance(version, str):
            continue
        found.append(Brand(name, version[:_MAX_STRING]))
    return tuple(found)


def _parse(*raw: str | None) -> ClientHints:
    brands, mobile, platform, version, model, factors, full = raw
    hints = ClientHints(
        brands=_brands(brands),
        mobile=_boolean(mobile),
        platform=_string(platform),
        platform_version=_string(version),
        model=_string(model),
        form_factors=tuple(v.lower() for v, _ in _strings(factors)),
        full_versions=_brands(full),
    )
    return hints if hints.present else _NONE


_ORDER = (*LOW_ENTROPY_HINTS, *HIGH_ENTROPY_HINTS)  # as _parse takes them


class ClientHintsParser:
    """Parses the hint headers of a request, remembering the last ``cache_size`` answers.

    The key is the raw header values, so a site's few browser builds cost one parse each.
    """

    def __init__(self, *, cache_size: int = 1024) -> None:
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ConfigurationError(f"cache_size must be an int >= 0, not {cache_size!r}")
        self._parse = functools.lru_cache(maxsize=cache_size)(_parse)

    def parse(self, headers: Mapping[str, str]) -> ClientHints:
        """The hints among ``headers`` (lower-case names); never raises."""
        try:
            raw = [headers.get(name) for name in _ORDER]
            if not any(raw):
                return _NONE
            # Truncated (not dropped) before the cache: such a field then fails to parse.
            return self._parse(*(v[: MAX_FIELD_LENGTH + 1] if v else None for v in raw))
        except Exception:  # a bug here must not fail the request
            return _NONE


def _os_version(os: str, version: str) -> str | None:
    """ua-parser's version for a platform version: Windows 13.0.0 is "11", macOS 14.5.0 "14.5"."""
    parts = version.split(".")
    if not all(p.isdigit() for p in parts):
        return None
    if os == "Windows":  # Microsoft: 0.1/0.2/0.3 are 7/8/8.1, 1-10 are 10, 13 and up are 11
        major, minor = int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
        if major == 0:
            return {1: "7", 2: "8", 3: "8.1"}.get(minor)
        return "10" if major <= 10 else "11" if major >= 13 else None
    while len(parts) > 1 and parts[-1] == "0":
        parts.pop()
    return ".".join(parts)


def _browser(device: Device, hints: ClientHints) -> tuple[str | None, str | None]:
    specific = [b for b in hints.brands if b.name.lower() not in _GENERIC_BRANDS]
    name, version = device.browser, device.browser_version
    if specific and (name is None or name in {"Chrome", "Chrome Mobile", "Chromium"}):
        name = _BROWSERS.get(specific[0].name.lower(), specific[0].name)
        version = specific[0].version
    elif name is None and hints.brands:
        chosen = next((b for b in hints.brands if b.name == "Google Chrome"), hints.brands[0])
        name, version = _BROWSERS.get(chosen.name.lower(), chosen.name), chosen.version
    for full in hints.full_versions:  # "156.0.8078.114": as ua-parser, three parts
        brand = _BROWSERS.get(full.name.lower(), full.name)
        if name in (brand, brand + " Mobile"):
            version = ".".join(full.version.split(".")[:3])
    return name, version


def _type(device: Device, hints: ClientHints) -> DeviceType:
    factors = [_FORM_FACTOR_TYPES[f] for f in hints.form_factors if f in _FORM_FACTOR_TYPES]
    if hints.mobile is True:
        return "tablet" if factors == ["tablet"] else "mobile"
    if factors:  # a phone asking for the desktop site still says "Mobile" here
        return "mobile" if "mobile" in factors else factors[0]
    if hints.mobile is False:
        if hints.platform and hints.platform.lower() == "android":
            return "tablet"  # Chrome on Android sends ?0 on tablets (and "desktop site")
        if _OS_NAMES.get((hints.platform or "").lower()) in _DESKTOP_OS:
            return "desktop"
    return device.type


_DESKTOP_OS = frozenset({"Windows", "Mac OS X", "Linux", "Chrome OS"})


def apply_client_hints(
    device: Device, hints: ClientHints, *, user_agent: str | None = None
) -> Device:
    """``device`` (from the User-Agent) corrected by ``hints`` where they say more; cached.

    Bots stay as they are. ``user_agent`` tells whether the OS version in ``device`` is one a
    reduced User-Agent freezes ("Android 10; K"): that one is dropped when the hints do not
    give the real version.
    """
    if device.is_bot or not hints.present:
        return device
    frozen = bool(user_agent and _FROZEN.search(user_agent[:512]))
    return _apply(device, hints, frozen)


@functools.lru_cache(maxsize=1024)
def _apply(device: Device, hints: ClientHints, frozen: bool) -> Device:
    os, os_version = device.os, device.os_version
    hinted = _OS_NAMES.get((hints.platform or "").lower())
    # "Linux" says less than ua-parser's "Ubuntu" or "Fedora": those stay.
    if hinted and not (hinted == "Linux" and os and os not in _OS_NAMES.values()):
        if hinted != os or frozen:  # another system's version, or a frozen one
            os, os_version = hinted, None
        if hints.platform_version:
            os_version = _os_version(hinted, hints.platform_version) or os_version
    kind = _type(device, hints)
    browser, browser_version = _browser(device, hints)
    return replace(
        device,
        type=kind,
        os=os,
        os_version=os_version,
        browser=browser,
        browser_version=browser_version,
        # The User-Agent's touch screen only counts while the hints agree on the device type.
        is_touch=kind in ("mobile", "tablet") or (device.is_touch and kind == device.type),
    )
