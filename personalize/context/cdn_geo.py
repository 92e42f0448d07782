"""Geolocation from the headers a CDN adds, for sites that have no GeoIP database.

Only believe these headers when the request came through that CDN: anybody can send
``CF-IPCountry: US`` to an origin directly. `CDNGeoReader.read` therefore takes ``trusted``,
which the caller sets when the direct peer is one of its trusted proxies; without it the answer
is None. Name the CDNs in front of the site: there is no "auto", because a CDN passes other
CDNs' headers through as the client sent them. A CDN sets only the headers it is configured
for, so switch its full set on (or the client's own values of the others may get through).

The headers read, by provider (lower case, as ASGI gives them):

- cloudflare (documented by Cloudflare): ``cf-ipcountry`` (IP Geolocation); ``cf-ipcity``,
  ``cf-ipcontinent``, ``cf-region``, ``cf-region-code``, ``cf-iplatitude``,
  ``cf-iplongitude``, ``cf-timezone`` (the managed transform "Add visitor location headers").
- cloudfront (documented by AWS; add them to the origin request policy):
  ``cloudfront-viewer-country``, ``-country-name``, ``-country-region``,
  ``-country-region-name``, ``-city``, ``-time-zone``, ``-latitude``, ``-longitude``.
- vercel (documented by Vercel): ``x-vercel-ip-country``, ``-country-region``, ``-city``
  (percent-encoded), ``-timezone``, ``-latitude``, ``-longitude``, ``-continent``.
- akamai (documented by Akamai, behaviour "Content Targeting (EdgeScape)"):
  ``x-akamai-edgescape: country_code=GB,region_code=...,city=...,lat=...,long=...,
  continent=EU,...``; its time zones are abbreviations, which are not used.
- fastly (a convention, not a standard: Fastly adds no geolocation header by itself; copy
  ``client.geo.*`` into these in ``vcl_recv``): ``client-geo-country``, ``-continent``,
  ``-region``, ``-city``, ``-latitude``, ``-longitude``.
- netlify (seen in Netlify's CLI templates, not a documented contract): ``x-nf-geo``, base64
  (or plain) JSON ``{"city", "country": {"code", "name"}, "subdivision": {"code", "name"},
  "timezone", "latitude", "longitude"}``.
- google (a Cloud load balancer's custom request headers, named as in Google's examples; set
  them to ``{client_region}``, ``{client_region_subdivision}``, ``{client_city}``,
  ``{client_city_lat_long}``): ``x-client-region``, ``x-client-region-subdivision``,
  ``x-client-city``, ``x-client-city-lat-long``.

Every value is checked: the country must be an ISO 3166-1 code (Cloudflare's ``XX`` unknown
and ``T1`` Tor, Fastly's ``**`` and the like are not countries), the time zone an IANA
Area/Location name the system knows (abbreviations such as ``EST`` are refused: they have no
daylight saving time), coordinates finite and in range (0,0 is "unknown"), names at most
``MAX_NAME_LENGTH`` characters without control characters. UTF-8 sent raw (decoded as Latin-1
by the ASGI server) is repaired. A record without a valid country is None.

`merge_geo` combines the CDN's record with GeoIP's: see its docstring.

>>> reader = CDNGeoReader(["cloudflare"])
>>> headers = {"cf-ipcountry": "GB", "cf-ipcity": "London", "cf-timezone": "Europe/London"}
>>> geo = reader.read(headers, trusted=True)
>>> geo.country, geo.city, geo.time_zone
('GB', 'London', 'Europe/London')
>>> reader.read(headers, trusted=False) is None
True
>>> reader.read({"cf-ipcountry": "T1"}, trusted=True) is None  # Tor is not a country
True
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, Literal, get_args
from urllib.parse import unquote

from personalize.context.clock import validate_time_zone
from personalize.context.records import Geo
from personalize.exceptions import ConfigurationError

__all__ = ["HEADER_NAMES", "MAX_NAME_LENGTH", "CDNGeoReader", "Provider", "merge_geo"]

Provider = Literal["cloudflare", "cloudfront", "vercel", "akamai", "fastly", "netlify", "google"]
MAX_NAME_LENGTH = 100  # characters of a city, region or country name
_MAX_HEADER = 1024  # characters of a header looked at (x-nf-geo's JSON is the longest)
_Raw = dict[str, str]  # Geo field -> the text the CDN sent

# ISO 3166-1 alpha-2, and XK (Kosovo), which GeoIP databases and CDNs use.
_COUNTRY_CODES = (
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ "
    "BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM "
    "DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS "
    "GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN "
    "KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ "
    "MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM "
    "PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV "
    "SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI "
    "VN VU WF WS YE YT ZA ZM ZW XK"
)
_COUNTRIES = frozenset(_COUNTRY_CODES.split())
_CONTINENTS = frozenset({"AF", "AN", "AS", "EU", "NA", "OC", "SA"})
_REGION = re.compile(r"[A-Z0-9]{1,3}")  # the subdivision part of an ISO 3166-2 code
_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+)+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# What CDNs write for "unknown": Fastly's "**" and "NO REGION", Akamai's "reserved"...
_UNKNOWN = frozenset({"", "?", "-", "--", "**", "no region", "null", "none", "unknown", "reserved"})

_HEADERS: dict[Provider, dict[str, str]] = {  # provider -> Geo field -> header
    "cloudflare": {
        "country": "cf-ipcountry",
        "continent": "cf-ipcontinent",
        "region": "cf-region-code",
        "region_name": "cf-region",
        "city": "cf-ipcity",
        "time_zone": "cf-timezone",
        "latitude": "cf-iplatitude",
        "longitude": "cf-iplongitude",
    },
    "cloudfront": {
        "country": "cloudfront-viewer-country",
        "country_name": "cloudfront-viewer-country-name",
        "region": "cloudfront-viewer-country-region",
        "region_name": "cloudfront-viewer-country-region-name",
        "city": "cloudfront-viewer-city",
        "time_zone": "cloudfront-viewer-time-zone",
        "latitude": "cloudfront-viewer-latitude",
        "longitude": "cloudfront-viewer-longitude",
    },
    "vercel": {
        "country": "x-vercel-ip-country",
        "continent": "x-vercel-ip-continent",
        "region": "x-vercel-ip-country-region",
        "city": "x-vercel-ip-city",
        "time_zone": "x-vercel-ip-timezone",
        "latitude": "x-vercel-ip-latitude",
        "longitude": "x-vercel-ip-longitude",
    },
    "fastly": {
        "country": "client-geo-country",
        "continent": "client-geo-continent",
        "region": "client-geo-region",
        "city": "client-geo-city",
        "latitude": "client-geo-latitude",
        "longitude": "client-geo-longitude",
    },
    "akamai": {"edgescape": "x-akamai-edgescape"},
    "netlify": {"nf_geo": "x-nf-geo"},
    "google": {
        "country": "x-client-region",
        "region": "x-client-region-subdivision",
        "city": "x-client-city",
        "lat_long": "x-client-city-lat-long",
    },
}
HEADER_NAMES: dict[Provider, tuple[str, ...]] = {p: tuple(f.values()) for p, f in _HEADERS.items()}
_PERCENT_ENCODED = {("vercel", "city")}
_EDGESCAPE = {
    "country_code": "country",
    "region_code": "region",
    "city": "city",
    "lat": "latitude",
    "long": "longitude",
    "continent": "continent",
}


def _edgescape(raw: _Raw) -> _Raw:
    found: _Raw = {}
    for pair in raw.pop("edgescape", "").split(",")[:40]:
        key, _, value = pair.partition("=")
        if (field := _EDGESCAPE.get(key.strip().lower())) and field not in found:
            found[field] = value
    return found


def _nf_geo(raw: _Raw) -> _Raw:
    text = raw.pop("nf_geo", "").strip()
    try:
        if not text.startswith("{"):
            text = base64.b64decode(text, validate=True).decode("utf-8")
        data: Any = json.loads(text)
    except (binascii.Error, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    country, subdivision = data.get("country"), data.get("subdivision")
    country = country if isinstance(country, dict) else {}
    subdivision = subdivision if isinstance(subdivision, dict) else {}
    values = {
        "country": country.get("code"),
        "country_name": country.get("name"),
        "region": subdivision.get("code"),
        "region_name": subdivision.get("name"),
        "city": data.get("city"),
        "time_zone": data.get("timezone"),
        "latitude": data.get("latitude"),
        "longitude": data.get("longitude"),
    }
    return {k: str(v) for k, v in values.items() if isinstance(v, str | int | float)}


def _google(raw: _Raw) -> _Raw:
    latitude, _, longitude = raw.pop("lat_long", "").partition(",")
    country, region = raw.get("country", "").strip().upper(), raw.get("region", "").strip()
    if country and region.upper().startswith(country):  # CLDR subdivision "USCA" -> "CA"
        raw["region"] = region[len(country) :]
    return {**raw, "latitude": latitude, "longitude": longitude}


_UNPACK: dict[Provider, Callable[[_Raw], _Raw]] = {
    "akamai": _edgescape,
    "netlify": _nf_geo,
    "google": _google,
}


def _text(value: str | None) -> str | None:
    """A header's text: UTF-8 sent raw is repaired, whitespace collapsed, "unknown" is None."""
    if value is None:
        return None
    # Not Latin-1 (already text) or not UTF-8 (real Latin-1): kept as it is.
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        value = value.encode("latin-1").decode("utf-8")
    value = " ".join(value.split())
    return None if value.lower() in _UNKNOWN else value


def _name(value: str | None) -> str | None:
    if not value or len(value) > MAX_NAME_LENGTH or _CONTROL.search(value):
        return None
    return value


def _code(value: str | None, allowed: frozenset[str]) -> str | None:
    value = value.upper() if value else None
    return value if value in allowed else None


def _time_zone(value: str | None) -> str | None:
    if not value or not (value == "UTC" or _ZONE.fullmatch(value)):
        return None
    try:
        return validate_time_zone(value)
    except ConfigurationError:
        return None


def _coordinates(raw: _Raw) -> tuple[float | None, float | None]:
    try:
        latitude, longitude = float(raw["latitude"]), float(raw["longitude"])
    except (KeyError, ValueError):
        return None, None
    if not (math.isfinite(latitude) and math.isfinite(longitude)):
        return None, None
    if abs(latitude) > 90 or abs(longitude) > 180 or latitude == longitude == 0:
        return None, None  # (0, 0) is what a database without the answer writes
    return latitude, longitude


def _geo(raw: _Raw) -> Geo | None:
    text = {field: _text(value[:_MAX_HEADER]) for field, value in raw.items()}
    country = _code(text.get("country"), _COUNTRIES)
    if country is None:
        return None
    region = (text.get("region") or "").upper().removeprefix(country + "-")  # "US-CA" -> "CA"
    latitude, longitude = _coordinates(raw)
    return Geo(
        country=country,
        country_name=_name(text.get("country_name")),
        region=region if _REGION.fullmatch(region) else None,
        region_name=_name(text.get("region_name")),
        city=_name(text.get("city")),
        time_zone=_time_zone(text.get("time_zone")),
        latitude=latitude,
        longitude=longitude,
        continent=_code(text.get("continent"), _CONTINENTS),
    )


def _read(provider: Provider, values: tuple[str | None, ...]) -> Geo | None:
    raw = {f: v for f, v in zip(_HEADERS[provider], values, strict=True) if v is not None}
    for field in raw:
        if (provider, field) in _PERCENT_ENCODED:
            raw[field] = unquote(raw[field], errors="replace")
    unpack = _UNPACK.get(provider)
    return _geo(unpack(raw) if unpack else raw)


class CDNGeoReader:
    """Reads the geolocation headers of the named CDNs; the first that gives a country wins.

    ``providers`` are checked once (an unknown name raises ConfigurationError). Answers are
    remembered for the last ``cache_size`` header combinations.
    """

    def __init__(self, providers: Iterable[Provider], *, cache_size: int = 4096) -> None:
        if isinstance(providers, str):
            raise ConfigurationError(f"providers must be a list, e.g. [{providers!r}]")
        self.providers: tuple[Provider, ...] = tuple(dict.fromkeys(providers))
        unknown = [p for p in self.providers if p not in get_args(Provider)]
        if unknown or not self.providers:
            raise ConfigurationError(
                f"unknown CDN {unknown or 'list: empty'}; choose from {list(get_args(Provider))}"
            )
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ConfigurationError(f"cache_size must be an int >= 0, not {cache_size!r}")
        self._read = functools.lru_cache(maxsize=cache_size)(_read)

    @property
    def header_names(self) -> tuple[str, ...]:
        """The lower-case request headers this reader looks at."""
        return tuple(name for p in self.providers for name in HEADER_NAMES[p])

    def read(self, headers: Mapping[str, str], *, trusted: bool) -> Geo | None:
        """The CDN's record for this request, or None (untrusted peer, nothing valid, a bug)."""
        if not trusted:
            return None
        try:
            for provider in self.providers:
                values = tuple(
                    v[: _MAX_HEADER + 1] if (v := headers.get(name)) is not None else None
                    for name in HEADER_NAMES[provider]
                )
                if any(v is not None for v in values) and (geo := self._read(provider, values)):
                    return geo
        except Exception:  # a bug here must not fail the request; GeoIP remains
            return None
        return None


def merge_geo(cdn: Geo | None, geoip: Geo | None) -> Geo | None:
    """The CDN's record, with the fields it lacks taken from GeoIP where both agree.

    The CDN looked the address up at its edge, in a database it keeps current, so its values
    win. GeoIP fills in what the CDN did not send (often only the country arrives), but only
    below places both name alike: none of GeoIP's fields when the countries differ, no city,
    coordinates or time zone when the regions differ, no coordinates or time zone when the
    cities differ. Without a CDN record, GeoIP's stands.

    >>> cdn = Geo(country="GB")
    >>> merge_geo(cdn, Geo(country="GB", city="London", time_zone="Europe/London")).city
    'London'
    >>> merge_geo(cdn, Geo(country="FR", city="Paris")).city is None
    True
    """
    if cdn is None or geoip is None:
        return cdn or geoip
    if cdn.country != geoip.country:
        return cdn
    fill: dict[str, Any] = {}
    for field in ("country_name", "continent"):
        if getattr(cdn, field) is None:
            fill[field] = getattr(geoip, field)
    if cdn.region is not None and geoip.region is not None and cdn.region != geoip.region:
        return replace(cdn, **fill)
    if cdn.region is None:
        fill.update(region=geoip.region, region_name=cdn.region_name or geoip.region_name)
    elif cdn.region_name is None:
        fill["region_name"] = geoip.region_name
    same_city = cdn.city is None or geoip.city is None or cdn.city.lower() == geoip.city.lower()
    if cdn.city is None:
        fill["city"] = geoip.city
    if same_city:
        if cdn.latitude is None:
            fill.update(latitude=geoip.latitude, longitude=geoip.longitude)
        if cdn.time_zone is None:
            fill["time_zone"] = geoip.time_zone
    return replace(cdn, **fill)
