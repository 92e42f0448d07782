"""Password hashes for the editor UI's ``admin_users``: salted scrypt from the standard library.

A hash is one string that carries its own parameters, so they can be raised later without
invalidating the hashes already configured::

    scrypt$<n>$<r>$<p>$<salt, base64>$<key, base64>

Create one with ``personalize hash-password`` (asks twice, or reads ``--stdin``) and put it in
``PersonalizeMiddleware(admin_users={"ann": "scrypt$..."})``.

>>> hashed = hash_password("correct horse battery staple", n=2**10)
>>> hashed.startswith("scrypt$1024$8$1$")
True
>>> verify_password("correct horse battery staple", hashed)
True
>>> verify_password("Correct horse battery staple", hashed)
False
>>> verify_password("anything", "not-a-hash")
False
"""

from __future__ import annotations

import argparse
import base64
import binascii
import getpass
import hashlib
import hmac
import os
import secrets
import sys
from collections.abc import Callable
from typing import TextIO

__all__ = ["MIN_LENGTH", "hash_password", "hash_password_command", "verify_password"]

SCHEME = "scrypt"
N = 2**15  # CPU/memory cost: 32 MiB and roughly 0.1 s per check on a current CPU
R = 8  # block size
P = 1  # parallelism
SALT_BYTES = 16
KEY_BYTES = 32
MIN_LENGTH = 12  # characters the command accepts (hash_password itself takes any non-empty)
_MAX_N = 2**20  # bounds for parameters read from a hash string (it comes from configuration)
_MAX_R = 32
_MAX_P = 16
_MAX_PASSWORD = 1024  # characters; longer inputs are refused before any work is done


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    # maxmem must cover 128 * n * r * p bytes (plus a little), or OpenSSL refuses.
    maxmem = 128 * n * r * (p + 1) + 1024 * 1024
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=length
    )


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    """A salted scrypt hash of ``password`` with its parameters, for ``admin_users``.

    >>> hash_password("", n=2**10)
    Traceback (most recent call last):
    ...
    ValueError: the password is empty
    """
    if not isinstance(password, str) or not password:
        raise ValueError("the password is empty")
    if len(password) > _MAX_PASSWORD:
        raise ValueError(f"the password is longer than {_MAX_PASSWORD} characters")
    if n < 2 or n & (n - 1) or n > _MAX_N or not 1 <= r <= _MAX_R or not 1 <= p <= _MAX_P:
        raise ValueError("scrypt parameters: n a power of two up to 2**20, r 1-32, p 1-16")
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, n, r, p, KEY_BYTES)
    return f"{SCHEME}${n}${r}${p}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, hashed: str) -> bool:
    """True when ``password`` matches ``hashed``; a malformed hash is simply no match.

    The comparison is constant-time.
    """
    try:
        scheme, n_text, r_text, p_text, salt_text, key_text = hashed.split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt, expected = _unb64(salt_text), _unb64(key_text)
    except (AttributeError, ValueError, binascii.Error):
        return False
    if scheme != SCHEME or n < 2 or n & (n - 1) or n > _MAX_N:
        return False
    if not (1 <= r <= _MAX_R and 1 <= p <= _MAX_P and salt and 16 <= len(expected) <= 64):
        return False
    if not isinstance(password, str) or not password or len(password) > _MAX_PASSWORD:
        return False
    actual = _scrypt(password, salt, n, r, p, len(expected))
    return hmac.compare_digest(actual, expected)


def is_password_hash(text: str) -> bool:
    """Whether ``text`` looks like a hash this module made (not whether it is correct).

    >>> is_password_hash("scrypt$16384$8$1$c2FsdA$a2V5"), is_password_hash("hunter2")
    (True, False)
    """
    parts = text.split("$") if isinstance(text, str) else []
    return len(parts) == 6 and parts[0] == SCHEME and all(parts[1:])


_PIPE = (
    "to pipe one in, use --stdin: printf '%s\\n' 'a long password' | "
    "personalize hash-password --stdin"
)


def has_terminal() -> bool:
    """Whether getpass can ask someone: a terminal on stdin, or a controlling one."""
    if sys.stdin is not None and sys.stdin.isatty():
        return True
    if os.name == "nt":
        return False
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)  # where getpass reads from
    except OSError:
        return False
    os.close(fd)
    return True


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``personalize hash-password`` to the command line."""
    command = commands.add_parser(
        "hash-password",
        help="hash an editor password for PersonalizeMiddleware(admin_users=...)",
        description=(
            "Print a salted scrypt hash of a password for the editor UI. Put it in "
            'admin_users={"name": "<hash>"}; the password itself is never stored. '
            "Asks twice on the terminal, or reads one line from standard input with --stdin."
        ),
    )
    command.add_argument(
        "--stdin", action="store_true", help="read the password from the first line of stdin"
    )


def hash_password_command(
    args: argparse.Namespace,
    *,
    stdin: TextIO | None = None,
    prompt: Callable[[str], str] | None = None,
) -> int:
    """Run ``personalize hash-password``: print the hash, or say what is wrong and return 2.

    >>> import io
    >>> args = argparse.Namespace(stdin=True)
    >>> hash_password_command(args, stdin=io.StringIO("short\\n"))
    2
    """
    if args.stdin:
        source = stdin if stdin is not None else sys.stdin
        password = source.readline().rstrip("\r\n")
    else:
        if prompt is None and not has_terminal():
            print(f"personalize hash-password: no terminal to ask for the password on; {_PIPE}",
                  file=sys.stderr)  # fmt: skip
            return 2
        ask = prompt or getpass.getpass
        try:
            password = ask("Editor password: ")
            again = ask("Same password again: ")
        except EOFError:
            print(f"personalize hash-password: no password was typed; {_PIPE}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("personalize hash-password: cancelled", file=sys.stderr)
            return 2
        if not hmac.compare_digest(password.encode(), again.encode()):
            print("personalize hash-password: the two passwords differ", file=sys.stderr)
            return 2
    if len(password) < MIN_LENGTH:
        print(
            f"personalize hash-password: use at least {MIN_LENGTH} characters "
            "(a few random words make a good one)",
            file=sys.stderr,
        )
        return 2
    try:
        print(hash_password(password))
    except ValueError as exc:
        print(f"personalize hash-password: {exc}", file=sys.stderr)
        return 2
    return 0
