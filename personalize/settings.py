"""The configuration of a site's personalization: one typed record, checked once at start-up.

``PersonalizeMiddleware(app, **options)`` and ``Personalizer(**options)`` take these fields
as keyword arguments; an unknown option is a :class:`TypeError` naming it.

>>> settings = Settings(secret_key="change-me-to-32-random-characters", consent="required")
>>> settings.path_prefix, settings.cookie_name, settings.consent
('/_personalize', 'pz_visitor', 'required')
>>> Settings(secret_key="change-me-to-32-random-characters", consent="maybe")
Traceback (most recent call last):
...
personalize.exceptions.ConfigurationError: consent must be 'implied' or 'required', not 'maybe'
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from personalize.content.holdout import check_share
from personalize.context.cdn_geo import Provider
from personalize.context.client_hints import ClientHintsMode
from personalize.exceptions import ConfigurationError
from personalize.profiles.identity import DEFAULT_JUNK_IDS
from personalize.profiles.merge import MAX_ALIASES
from personalize.profiles.pageviews import SESSION_TIMEOUT

if TYPE_CHECKING:
    from personalize.content.decisions import DecisionEngine
    from personalize.learning.runtime import LocalLearning, StreamLearning
    from personalize.rules.segments import SegmentLibrary
    from personalize.stores.base import ProfileStore
    from personalize.stores.state import StateStore

__all__ = ["DEFAULT_EXCLUDE", "Settings"]

DEFAULT_EXCLUDE = ("/static/*", "/favicon.ico", "/robots.txt", "/health", "/healthz")


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """Everything a site configures, with the defaults; see each field's comment.

    ``secret_key`` signs the visitor cookie; a list rotates keys (newest first, all verify).
    ``store`` keeps profiles (default: an SQLite file ``personalize.sqlite3`` in the working
    directory); ``state_store`` keeps decision state every worker shares (default: on the
    same backend, see :meth:`~personalize.ProfileStore.state_store`). ``segments`` and
    ``content`` are folders (or a loaded library / engine), reloaded on change. ``learning``
    is ``LocalLearning()`` (in-process) or ``StreamLearning(redis_url)`` (several workers),
    or None. ``consent="required"``
    personalizes from the request alone and stores nothing until the app calls
    ``visitor.give_consent()``; either way ``Sec-GPC: 1`` or an opt-out makes the visitor
    context-only for good. ``admin_users`` (name -> ``personalize hash-password`` output)
    enables the editor UI; there is no default password. ``holdout`` shows a share of
    visitors only the defaults, to measure personalization against (a content file's
    ``holdout:`` overrides it); outcomes count for what a visitor was shown within
    ``attribution_window``.
    """

    secret_key: str | Sequence[str]
    store: ProfileStore | None = None
    state_store: StateStore | None = None  # decision state; None: on the store's backend
    geoip_db: str | os.PathLike[str] | None = None  # a GeoIP2/GeoLite2 City or Country .mmdb
    trusted_proxies: Iterable[str] = ()  # IPs or CIDRs whose X-Forwarded-For is believed
    # Sec-CH-UA-* client hints: "off", "read" when the browser sends them, or "request" (read,
    # and ask for the detailed ones with Accept-CH on HTML responses).
    client_hints: ClientHintsMode = "read"
    # CDNs whose geolocation headers are believed, only from trusted_proxies ("cloudflare",
    # "cloudfront", "vercel", "akamai", "fastly", "netlify", "google"); none by default.
    cdn_geo: Iterable[Provider] = ()
    internal_hosts: Iterable[str] = ()  # other hosts of the site (".example.com": subdomains)
    categories: Mapping[str, str] | None = None  # shell-style path pattern -> interest category
    segments: SegmentLibrary | str | os.PathLike[str] | None = None
    content: DecisionEngine | str | os.PathLike[str] | None = None
    site_time_zone: str = "UTC"  # IANA zone for visitors without geo
    exclude: Iterable[str] = DEFAULT_EXCLUDE  # shell-style paths that skip all work
    cookie_name: str = "pz_visitor"
    cookie_max_age: int = 365 * 24 * 3600  # seconds
    cookie_path: str = "/"
    cookie_domain: str | None = None
    cookie_same_site: Literal["lax", "strict", "none"] = "lax"
    cookie_secure: bool | None = None  # None: Secure on https requests only
    session_timeout: float = SESSION_TIMEOUT  # seconds of inactivity that end a session
    api_keys: Iterable[str] = ()  # Bearer keys of the events API and metrics
    path_prefix: str = "/_personalize"  # where the built-in endpoints live
    junk_user_ids: Iterable[str] = DEFAULT_JUNK_IDS  # user ids identify() refuses
    max_aliases: int = MAX_ALIASES  # anonymous profiles merged into one known profile, at most
    consent: Literal["implied", "required"] = "implied"
    admin_users: Mapping[str, str] | None = None  # editor name -> password hash
    learning: LocalLearning | StreamLearning | None = None
    metrics_public: bool = False  # serve <prefix>/metrics without an API key
    profile_cache_size: int = 10_000  # profiles kept in the near-cache
    flush_interval: float = 0.02  # seconds page views wait to be written in one batch
    state_cache_ttl: float = 1.0  # seconds a worker uses decision state others may have changed
    # Keys of decision state a worker keeps (counters and values, each): a visitor's caps and
    # one pick per slot of their session, so 50,000 holds ~10,000 visitors at ~360 B a key.
    state_cache_size: int = 50_000
    holdout: float = 0.0  # share of visitors who see only defaults: 0 (none) or 0.05..0.2
    attribution_window: float = 7 * 24 * 3600  # seconds an outcome counts for what was shown
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if self.consent not in ("implied", "required"):
            raise ConfigurationError(
                f"consent must be 'implied' or 'required', not {self.consent!r}"
            )
        for key in self.api_keys:
            if not isinstance(key, str) or len(key) < 16:
                raise ConfigurationError("api_keys must be strings of at least 16 characters")
        if self.max_aliases < 1:
            raise ConfigurationError("max_aliases must be at least 1")
        if not 0 <= self.flush_interval <= 3600:
            raise ConfigurationError("flush_interval is 0 to 3600 seconds")
        if not 0 <= self.state_cache_ttl <= 3600:
            raise ConfigurationError("state_cache_ttl is 0 to 3600 seconds")
        if isinstance(self.state_cache_size, bool) or not isinstance(self.state_cache_size, int):
            raise ConfigurationError("state_cache_size must be a whole number of keys")
        if not 100 <= self.state_cache_size <= 10_000_000:
            raise ConfigurationError("state_cache_size is 100 to 10,000,000 keys")
        if self.session_timeout <= 0:
            raise ConfigurationError("session_timeout must be positive seconds")
        check_share(self.holdout)
        if not 60 <= self.attribution_window <= 90 * 24 * 3600:
            raise ConfigurationError("attribution_window is 60 seconds to 90 days, in seconds")
