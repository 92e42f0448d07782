"""API keys for the server-to-server endpoints (events API, metrics): ``Authorization: Bearer``.

>>> keys = ApiKeys(["a-key-of-sixteen-chars"])
>>> keys.allow({"authorization": "Bearer a-key-of-sixteen-chars"}), keys.allow({})
(True, False)
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

__all__ = ["ApiKeys"]


class ApiKeys:
    """The configured keys; :meth:`allow` checks a request's headers in constant time."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = tuple(k.encode() for k in keys)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __repr__(self) -> str:
        return f"ApiKeys([{len(self._keys)} keys])"

    def allow(self, headers: Mapping[str, str]) -> bool:
        """True when ``Authorization: Bearer <key>`` names one of the keys."""
        header = headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token or not self._keys:
            return False
        token_bytes = token.strip().encode("utf-8", "surrogateescape")
        # Compare with every key (no early exit) so timing says nothing about which matched.
        matches = [hmac.compare_digest(token_bytes, k) for k in self._keys]
        return any(matches)
