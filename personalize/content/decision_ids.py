"""Decision ids: ``slot.variant.bucket.nonce.signature``, signed so that any worker sharing
the secret can attribute a click or conversion to the (variant, bucket) it came from.

>>> ids = DecisionIds("a secret")
>>> decision_id = ids.sign("hero", "a", "desktop/direct", "v:x1", 1000.0)
>>> ids.verify(decision_id)
('hero', 'a', 'desktop/direct')
>>> ids.verify(decision_id.replace("hero", "banner"))
Traceback (most recent call last):
...
ValueError: unknown decision id (not signed by this site)
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["DecisionIds"]


class DecisionIds:
    """Signs and checks decision ids with a key derived from ``secret``."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.blake2b(secret.encode()).digest()
        self._session: tuple[str, float, str] = ("", 0.0, "")  # the last session's nonce

    def sign(self, slot: str, variant: str, bucket: str, visitor: str, started: float) -> str:
        """The id of a decision for ``visitor``'s session that started at ``started``."""
        last = self._session
        if last[0] == visitor and last[1] == started and last[2]:
            nonce = last[2]  # (a page decides its slots for one session in turn)
        else:
            nonce = hashlib.blake2b(f"{visitor}|{started!r}".encode(), digest_size=6).hexdigest()
            self._session = (visitor, started, nonce)
        payload = f"{slot}.{variant}.{bucket}.{nonce}"
        return f"{payload}.{self._mac(payload)}"

    def verify(self, decision_id: str) -> tuple[str, str, str]:
        """``(slot, variant, bucket)`` of an id signed here; ValueError for anything else."""
        parts = decision_id.split(".")
        if len(parts) != 5:
            raise ValueError("not a decision id")
        payload, signature = ".".join(parts[:4]), parts[4]
        if not hmac.compare_digest(signature, self._mac(payload)):
            raise ValueError("unknown decision id (not signed by this site)")
        return parts[0], parts[1], parts[2]

    def _mac(self, payload: str) -> str:
        return hashlib.blake2b(payload.encode(), digest_size=8, key=self._key).hexdigest()
