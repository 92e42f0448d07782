"""The demo's customer accounts and password checks.

The passwords are printed on the login page (it is a demo); they are still stored only as
salted scrypt hashes and compared in constant time, as a real shop would. An unknown e-mail
costs the same hash as a known one, so timing does not tell which addresses have accounts.

>>> authenticate("ann@example.com", "trail-ann").user_id
'ann'
>>> authenticate("ann@example.com", "wrong") is None, authenticate("eve@example.com", "x") is None
(True, True)
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Account:
    user_id: str  # what PersonalizeMiddleware's identify() binds the visitor cookie to
    email: str
    name: str
    salt: bytes
    password_hash: bytes


def _hash(password: str, salt: bytes) -> bytes:
    # Small scrypt cost: enough to show the pattern, fast enough for the tests.
    return hashlib.scrypt(password.encode(), salt=salt, n=2**12, r=8, p=1, dklen=32)


def _account(user_id: str, email: str, name: str, password: str) -> Account:
    salt = os.urandom(16)
    return Account(user_id, email, name, salt, _hash(password, salt))


# (e-mail, password) pairs shown on the login page.
DEMO_LOGINS: tuple[tuple[str, str, str], ...] = (
    ("ann@example.com", "trail-ann", "Ann"),
    ("bob@example.com", "trail-bob", "Bob"),
)
ACCOUNTS: dict[str, Account] = {
    email: _account(email.split("@", 1)[0], email, name, password)
    for email, password, name in DEMO_LOGINS
}
_DUMMY = _account("nobody", "nobody@example.invalid", "Nobody", os.urandom(16).hex())


def authenticate(email: str, password: str) -> Account | None:
    """The account whose password matches, or None."""
    account = ACCOUNTS.get(email.strip().lower())
    candidate = account or _DUMMY
    ok = hmac.compare_digest(_hash(password, candidate.salt), candidate.password_hash)
    return account if ok and account is not None else None
