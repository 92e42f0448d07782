"""The client's IP address, from the direct peer and, behind trusted proxies, their headers.

Forwarding headers are only believed when the direct peer is a trusted proxy: anybody can
send ``X-Forwarded-For``. The chain is then walked from the right (the hop nearest to us),
skipping trusted proxies; the first address that is not trusted is the client.

When both headers are present, RFC 7239 ``Forwarded`` wins over ``X-Forwarded-For``, being
the standard one (it is ignored if it carries no ``for=`` at all). Several header lines of
the same name should be joined with "," before they are passed in.

>>> resolver = ClientIPResolver(["10.0.0.0/8"])
>>> resolver.resolve("10.0.0.2", "203.0.113.7, 10.0.0.1", None)
'203.0.113.7'
>>> resolver.resolve("198.51.100.9", "203.0.113.7", None)  # an untrusted peer: header ignored
'198.51.100.9'
>>> resolver.resolve("10.0.0.2", None, 'for="[2001:DB8::1]:4711";proto=https')
'2001:db8::1'
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable

from personalize.exceptions import ConfigurationError

_CACHEABLE = 512  # characters of proxy headers up to which a result is memoized

__all__ = ["ClientIPResolver"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HOPS = 20  # only the last hops of a chain are considered
MAX_HEADER_LENGTH = 2048  # characters; only the end of a longer header is read
_MAX_NODE_LENGTH = 64  # "[full IPv6]:port" fits easily
_PORT = re.compile(r"[0-9]{1,5}|_[A-Za-z0-9._-]{1,32}")  # RFC 7239 obfport too
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_OWS = " \t"  # RFC 9110 optional whitespace; str.strip() would also eat latin-1 NBSP


class ClientIPResolver:
    """Finds the client address of a request; ``trusted_proxies`` are IPs or CIDR networks.

    ``resolve`` returns a normalised address string (IPv6 compressed and lower-case,
    IPv4-mapped IPv6 as IPv4), or None when the client cannot be known: no or garbage peer,
    or a chain that reaches an obfuscated ("_hidden"), "unknown" or malformed hop (or a
    Forwarded element without ``for=``) before an untrusted address. If every hop is trusted,
    the leftmost one is the client, unless the chain was longer than MAX_HOPS or than
    MAX_HEADER_LENGTH allows to read. It never raises.

    >>> ClientIPResolver(["10.0.0.0/8", "2001:db8::/32"]).resolve("10.1.2.3", "1.2.3.4:5678", None)
    '1.2.3.4'
    >>> ClientIPResolver(["10.0.0.1/8"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    personalize.exceptions.ConfigurationError: ... did you mean '10.0.0.0/8'?
    """

    def __init__(self, trusted_proxies: Iterable[str] = (), *, cache_size: int = 16384) -> None:
        if isinstance(trusted_proxies, str | bytes):
            raise ConfigurationError(
                f"trusted_proxies must be a list of IPs or CIDRs, not the string "
                f"{trusted_proxies!r}; write [{trusted_proxies!r}]"
            )
        networks: list[IPNetwork] = []
        for entry in trusted_proxies:
            networks.append(_parse_network(entry))
        self._v4 = tuple(n for n in networks if isinstance(n, ipaddress.IPv4Network))
        self._v6 = tuple(n for n in networks if isinstance(n, ipaddress.IPv6Network))
        # The same peers and proxy chains repeat all day: parse each combination once.
        self._cached = functools.lru_cache(maxsize=cache_size)(self._resolve)
        self._peer_trusted = functools.lru_cache(maxsize=cache_size)(self._is_trusted_peer)

    @property
    def trusted_proxies(self) -> tuple[IPNetwork, ...]:
        """The trusted networks, normalised."""
        return self._v4 + self._v6

    def is_trusted(self, address: IPAddress) -> bool:
        """Whether ``address`` is one of the trusted proxies."""
        if isinstance(address, ipaddress.IPv4Address):
            return any(address in network for network in self._v4)
        return any(address in network for network in self._v6)

    def peer_trusted(self, peer: str | None) -> bool:
        """Whether the direct peer (``scope["client"][0]``) is one of the trusted proxies.

        >>> resolver = ClientIPResolver(["10.0.0.0/8"])
        >>> resolver.peer_trusted("10.1.2.3"), resolver.peer_trusted("203.0.113.7")
        (True, False)
        """
        if not peer or len(peer) > _MAX_NODE_LENGTH:
            return False
        try:
            return self._peer_trusted(peer)
        except Exception:  # defensive: the request path must never fail here
            return False

    def _is_trusted_peer(self, peer: str) -> bool:
        address = _parse_node(peer)
        return address is not None and self.is_trusted(address)

    def resolve(
        self, peer: str | None, x_forwarded_for: str | None, forwarded: str | None
    ) -> str | None:
        """The client address of a request from ``peer`` with these headers, or None."""
        try:
            if len(x_forwarded_for or "") + len(forwarded or "") > _CACHEABLE:
                return self._resolve(peer, x_forwarded_for, forwarded)
            return self._cached(peer, x_forwarded_for, forwarded)
        except Exception:  # defensive: the request path must never fail here
            return None

    def _resolve(
        self, peer: str | None, x_forwarded_for: str | None, forwarded: str | None
    ) -> str | None:
        peer_address = _parse_node(peer) if peer else None
        if peer_address is None:
            return None
        if not self.is_trusted(peer_address):
            return str(peer_address)
        hops: list[str | None] | None = None
        truncated = False
        if forwarded:
            hops, truncated = _forwarded_for(forwarded)
        if not hops and x_forwarded_for:
            hops, truncated = _x_forwarded_for(x_forwarded_for)
        if not hops:
            return str(peer_address)  # the proxy itself made the request (a health check...)
        if len(hops) > MAX_HOPS:
            hops, truncated = hops[-MAX_HOPS:], True
        address: IPAddress | None = None
        for hop in reversed(hops):
            address = _parse_node(hop) if hop else None
            if address is None or not self.is_trusted(address):
                return None if address is None else str(address)
        # Every hop is trusted: the leftmost is the client, unless we did not read that far.
        return None if truncated or address is None else str(address)


def _parse_network(entry: object) -> IPNetwork:
    if not isinstance(entry, str):
        raise ConfigurationError(f"trusted proxy {entry!r} must be a string such as '10.0.0.0/8'")
    text = entry.strip()
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ConfigurationError(
                f"trusted proxy {entry!r} is not an IP address or CIDR network "
                f"(such as '10.0.0.1', '10.0.0.0/8' or '2001:db8::/32')"
            ) from exc
        raise ConfigurationError(
            f"trusted proxy {entry!r} has host bits set; did you mean {str(loose)!r}?"
        ) from exc
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        # ::ffff:10.0.0.0/104 trusts IPv4 peers: addresses are compared as IPv4.
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def _parse_node(node: str | None) -> IPAddress | None:
    """An address from "1.2.3.4", "1.2.3.4:80", "[2001:db8::1]:80", "2001:db8::1"; else None."""
    if not node:
        return None
    text = node.strip(_OWS)
    if not text or len(text) > _MAX_NODE_LENGTH:
        return None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[1:end], text[end + 1 :]
        if rest and not (rest[0] == ":" and _PORT.fullmatch(rest[1:])):
            return None
    elif text.count(":") == 1:
        host, port = text.split(":")
        if not _PORT.fullmatch(port):
            return None
    else:
        host = text
    if "%" in host:  # zone ids do not cross the network
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _tail(header: str) -> tuple[str, bool]:
    """The end of an over-long header, starting at an element boundary."""
    if len(header) <= MAX_HEADER_LENGTH:
        return header, False
    tail = header[-MAX_HEADER_LENGTH:]
    # The first element is probably cut: "21.1.1.1" would read as "1.1.1.1". Drop it.
    comma = tail.find(",")
    return ("" if comma < 0 else tail[comma + 1 :]), True


def _x_forwarded_for(header: str) -> tuple[list[str | None], bool]:
    text, truncated = _tail(header)
    hops: list[str | None] = [part.strip(_OWS).strip('"') for part in text.split(",")]
    return [hop for hop in hops if hop], truncated  # "a,,b" comes from sloppy joining


def _forwarded_for(header: str) -> tuple[list[str | None], bool]:
    """The for= value of each element of a Forwarded header (None where it has none).

    Returns no hops when no element has a for= at all, so that X-Forwarded-For is used.
    """
    text, truncated = _tail(header)
    hops: list[str | None] = []
    seen_for = False
    for element in _split_elements(text):
        value: str | None = None
        for pair in element:
            name, sep, raw = pair.partition("=")
            if sep and name.strip(_OWS).lower() == "for":
                value = _unquote(raw.strip(_OWS))
                seen_for = True
                break
        hops.append(value)
    return (hops if seen_for else []), truncated


def _split_elements(text: str) -> list[list[str]]:
    """Split a Forwarded header into elements (",") of pairs (";"), honouring quoted strings."""
    elements: list[list[str]] = []
    pairs: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char in ",;":
            pairs.append("".join(current))
            current = []
            if char == ",":
                elements.append(pairs)
                pairs = []
            continue
        current.append(char)
    pairs.append("".join(current))
    elements.append(pairs)
    return [element for element in elements if any(pair.strip(_OWS) for pair in element)]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value
