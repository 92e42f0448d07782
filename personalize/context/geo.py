"""Where a client IP address is, from a MaxMind GeoIP2/GeoLite2 City or Country database.

The database is opened and checked once, at start-up: a missing, unreadable, corrupt or
wrong-kind file raises :class:`~personalize.exceptions.GeoDatabaseError` there, so that a
request never finds out. Per request, :meth:`GeoLocator.lookup` never raises.

>>> GeoLocator("/nonexistent/GeoLite2-City.mmdb")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
personalize.exceptions.GeoDatabaseError: GeoIP database '/nonexistent/...' does not exist; ...
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import logging
import os
from typing import Literal, Self

import geoip2.database
import geoip2.errors
import geoip2.models
import maxminddb

from personalize.context.records import Geo
from personalize.exceptions import ConfigurationError, GeoDatabaseError

__all__ = ["GeoLocator"]

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Kind = Literal["city", "enterprise", "country"]

# How many records the start-up probe decodes. A database whose data section is corrupt in
# its encoding (MaxMind's Broken-Double-Format test file) opens fine and fails only when a
# record is decoded, so we decode the first few records of the tree, which is cheap.
_PROBE_RECORDS = 64
_MAX_IP_LENGTH = 64  # longer strings cannot be an IP address; don't parse them
_WHAT_TO_DO = (
    "pass the path of a GeoLite2-City, GeoIP2-City, GeoLite2-Country or GeoIP2-Country .mmdb "
    "file (download a fresh copy from MaxMind if this one is damaged)"
)


class GeoLocator:
    """Looks client IP addresses up in a City or Country database, with an LRU cache.

    ``cache_size`` is the number of addresses whose result (a :class:`Geo` or ``None``) is kept;
    0 turns the cache off. Country databases fill only ``country``, ``country_name`` and
    ``continent``. ``region`` is the first (largest) subdivision, e.g. "ENG" for England.

    Use it as a context manager, or call :meth:`close`, to release the database file.
    """

    def __init__(self, database: str | os.PathLike[str], *, cache_size: int = 16384) -> None:
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ConfigurationError(f"cache_size must be an int >= 0, got {cache_size!r}")
        self._path = os.fspath(database)
        self._warned = False
        self._closed = False
        self._reader = _open_reader(self._path)
        try:
            self._kind = _database_kind(self._path, self._reader)
            self._probe()
        except BaseException:
            self._reader.close()
            raise
        self._cached_lookup = functools.lru_cache(maxsize=cache_size)(self._lookup_address)

    @property
    def path(self) -> str:
        """The path of the database file."""
        return self._path

    @property
    def database_type(self) -> str:
        """The database type from its metadata, e.g. "GeoLite2-City"."""
        return str(self._reader.metadata().database_type)

    def lookup(self, ip: str | None) -> Geo | None:
        """The geo record of ``ip``, or None: unknown, private or invalid address; never raises.

        Private, loopback, link-local, reserved and other non-global addresses are answered
        without touching the database. IPv4-mapped IPv6 addresses are looked up as IPv4.
        """
        address = _global_address(ip)
        if address is None:
            return None
        return self._cached_lookup(address)

    def close(self) -> None:
        """Release the database; later lookups return None. Calling it twice is harmless."""
        if not self._closed:
            self._closed = True
            self._cached_lookup.cache_clear()
            self._reader.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else self._kind
        return f"GeoLocator({self._path!r}, {state})"

    def _lookup_address(self, address: IPAddress) -> Geo | None:
        if self._closed:
            return None
        try:
            model = self._model(address)
        except geoip2.errors.AddressNotFoundError:
            return None
        except Exception as exc:  # corrupt record, closed reader...: the request goes on
            if not self._warned:
                self._warned = True
                logger.warning(
                    "GeoIP lookup failed in %s (%s: %s); such addresses get no geo. "
                    "This warning is logged once.",
                    self._path,
                    type(exc).__name__,
                    exc,
                )
            return None
        return _to_geo(model)

    def _model(self, address: IPAddress) -> geoip2.models.Country:
        if self._kind == "city":
            return self._reader.city(address)
        if self._kind == "enterprise":
            return self._reader.enterprise(address)
        return self._reader.country(address)

    def _probe(self) -> None:
        """Decode the first records of the database so that corrupt data fails at start-up."""
        try:
            with maxminddb.open_database(self._path) as raw:
                for network, record in itertools.islice(raw, _PROBE_RECORDS):
                    if not isinstance(record, dict):
                        raise maxminddb.InvalidDatabaseError(
                            f"the record of {network} is a {type(record).__name__}, not a map"
                        )
                    # Through geoip2 too, so that records it cannot model fail here as well.
                    self._model(network.network_address)
        except Exception as exc:
            raise GeoDatabaseError(
                f"GeoIP database {self._path!r} is corrupt: decoding its first records failed "
                f"({type(exc).__name__}: {exc}); {_WHAT_TO_DO}"
            ) from exc


def _open_reader(path: str) -> geoip2.database.Reader:
    if not os.path.exists(path):
        raise GeoDatabaseError(
            f"GeoIP database {path!r} does not exist; download GeoLite2-City.mmdb from MaxMind "
            "(free with an account) and pass its path"
        )
    if os.path.isdir(path):
        raise GeoDatabaseError(f"GeoIP database {path!r} is a directory; {_WHAT_TO_DO}")
    try:
        return geoip2.database.Reader(path)
    except OSError as exc:
        raise GeoDatabaseError(
            f"GeoIP database {path!r} cannot be read ({exc.strerror or exc}); check its "
            f"permissions, or {_WHAT_TO_DO}"
        ) from exc
    except Exception as exc:  # InvalidDatabaseError, ValueError (empty file), ...
        raise GeoDatabaseError(
            f"GeoIP database {path!r} is not a valid MaxMind DB file "
            f"({type(exc).__name__}: {exc}); {_WHAT_TO_DO}"
        ) from exc


def _database_kind(path: str, reader: geoip2.database.Reader) -> _Kind:
    database_type = str(reader.metadata().database_type)
    # geoip2 itself picks the allowed method by substring of the type, e.g. "GeoLite2-City".
    if "City" in database_type:
        return "city"
    if "Enterprise" in database_type:
        return "enterprise"
    if "Country" in database_type:
        return "country"
    raise GeoDatabaseError(
        f"GeoIP database {path!r} is a {database_type!r} database, which has no locations; "
        f"{_WHAT_TO_DO}"
    )


def _global_address(ip: str | None) -> IPAddress | None:
    if not ip or len(ip) > _MAX_IP_LENGTH:
        return None
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address.scope_id is not None:
            address = ipaddress.IPv6Address(int(address))  # a zone id means nothing to GeoIP
    return address if address.is_global else None


def _to_geo(model: geoip2.models.Country) -> Geo | None:
    region = region_name = city = time_zone = None
    latitude = longitude = None
    if isinstance(model, geoip2.models.City):
        if model.subdivisions:
            region = model.subdivisions[0].iso_code
            region_name = model.subdivisions[0].name
        city = model.city.name
        time_zone = model.location.time_zone
        latitude = model.location.latitude
        longitude = model.location.longitude
    geo = Geo(
        country=model.country.iso_code,
        country_name=model.country.name,
        region=region,
        region_name=region_name,
        city=city,
        time_zone=time_zone,
        latitude=latitude,
        longitude=longitude,
        continent=model.continent.code,
    )
    return None if geo == _EMPTY else geo


_EMPTY = Geo()
