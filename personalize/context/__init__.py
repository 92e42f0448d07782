"""What one request says about its visitor: client IP, geo, device, source, clock, signals.

Each part has its own module; :mod:`~personalize.context.builder` assembles them into the
immutable :class:`VisitorContext` once per request. Nothing here stores anything, and the
client IP is used for the geo lookup and dropped.

=================  ==================================================================
module             what lives there
=================  ==================================================================
``records``        the typed records: VisitorContext, Geo, Device, Source, Clock, Signals
``clientip``       the client's address, believing forwarding headers only from proxies
``geo``            GeoIP2 lookups
``cdn_geo``        geolocation from a CDN's headers (trusted proxies only), merged with GeoIP's
``device``         device type, OS, browser and bots from the User-Agent
``client_hints``   Sec-CH-UA-* hints over the User-Agent; ``structured_fields`` parses them
``source``         the GA4-style channel from utm tags, click ids and the Referer
``source_lists``   the referrer lists it uses: GA4's, Matomo's and our own
``clock``          the visitor's local time
``signals``        Accept-Language, Global Privacy Control, Do Not Track
``builder``        ContextBuilder: all of the above for one ASGI scope
=================  ==================================================================
"""

from personalize.context.records import (
    Channel,
    Clock,
    Daypart,
    Device,
    DeviceType,
    Geo,
    Signals,
    Source,
    VisitorContext,
)

__all__ = [
    "Channel",
    "Clock",
    "Daypart",
    "Device",
    "DeviceType",
    "Geo",
    "Signals",
    "Source",
    "VisitorContext",
]
