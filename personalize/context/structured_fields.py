"""Structured Field Values for HTTP (RFC 8941): items and lists, as the client hints use them.

Parsing is strict, as the RFC asks: anything malformed gives None, and the caller ignores the
field. Strings are ``str``, tokens `Token` (a ``str`` subclass, so ``"Linux"`` and ``Linux``
stay apart), booleans ``bool``, byte sequences ``bytes``, numbers ``int`` or ``float``; an
inner list is a tuple of bare items. Dictionaries are not needed here and not parsed.

>>> parse_list('"Chromium";v="156", "Not.A/Brand";v="99"')
[('Chromium', {'v': '156'}), ('Not.A/Brand', {'v': '99'})]
>>> parse_item("?1"), parse_item('"macOS"'), parse_item('"unterminated')
((True, {}), ('macOS', {}), None)
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["BareItem", "Member", "Token", "parse_item", "parse_list"]


class Token(str):
    """An sf-token (unquoted), as opposed to an sf-string."""

    __slots__ = ()


BareItem = str | Token | int | float | bool | bytes
Member = tuple[BareItem | tuple[BareItem, ...], dict[str, BareItem]]  # value, parameters

_KEY = re.compile(r"[a-z*][a-z0-9_.*-]*")
_STRING = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*"')
_ESCAPE = re.compile(r"\\(.)")
_BOOLEAN = re.compile(r"\?[01]")
_BYTES = re.compile(r":([A-Za-z0-9+/=]*):")
_NUMBER = re.compile(r"-?[0-9]{1,12}\.[0-9]{1,3}(?![.0-9])|-?[0-9]{1,15}(?![.0-9])")
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+.^_`|~:/0-9A-Za-z-]*")


class _Malformed(ValueError):
    pass


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.i = text.strip(" \t"), 0

    def at_end(self) -> bool:
        return self.i >= len(self.text)

    def peek(self) -> str:
        return self.text[self.i : self.i + 1]

    def skip(self, chars: str) -> None:
        while not self.at_end() and self.text[self.i] in chars:
            self.i += 1

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise _Malformed(f"expected {char!r} at {self.i}")
        self.i += 1

    def match(self, pattern: re.Pattern[str]) -> re.Match[str]:
        found = pattern.match(self.text, self.i)
        if found is None:
            raise _Malformed(f"unexpected {self.peek()!r} at {self.i}")
        self.i = found.end()
        return found

    def member(self) -> Member:
        value = self.inner_list() if self.peek() == "(" else self.bare()
        return value, self.parameters()

    def inner_list(self) -> tuple[BareItem, ...]:
        self.expect("(")
        items: list[BareItem] = []
        while True:
            self.skip(" ")
            if self.peek() == ")":
                self.i += 1
                return tuple(items)
            items.append(self.bare())
            self.parameters()  # parameters of inner items: not needed, only checked
            if self.peek() not in (" ", ")"):
                raise _Malformed(f"inner list at {self.i}")

    def parameters(self) -> dict[str, BareItem]:
        found: dict[str, BareItem] = {}
        while self.peek() == ";":
            self.i += 1
            self.skip(" ")
            key = self.match(_KEY).group()
            found[key] = True
            if self.peek() == "=":
                self.i += 1
                found[key] = self.bare()
        return found

    def bare(self) -> BareItem:
        char = self.peek()
        if char == '"':
            return _ESCAPE.sub(r"\1", self.match(_STRING).group()[1:-1])
        if char == "?":
            return self.match(_BOOLEAN).group() == "?1"
        if char == ":":
            try:
                return base64.b64decode(self.match(_BYTES).group(1), validate=True)
            except binascii.Error as exc:
                raise _Malformed(str(exc)) from None
        if char == "-" or char.isdigit():
            number = self.match(_NUMBER).group()
            return float(number) if "." in number else int(number)
        return Token(self.match(_TOKEN).group())


def parse_item(text: str) -> Member | None:
    """An sf-item with its parameters, or None when ``text`` is not one."""
    parser = _Parser(text)
    try:
        if parser.peek() == "(":
            raise _Malformed("an inner list is not an item")
        member = parser.member()
    except _Malformed:
        return None
    return member if parser.at_end() else None


def parse_list(text: str) -> list[Member] | None:
    """The members of an sf-list, or None when ``text`` is not one ("" is the empty list)."""
    parser = _Parser(text)
    members: list[Member] = []
    try:
        while not parser.at_end():
            members.append(parser.member())
            parser.skip(" \t")
            if not parser.at_end():
                parser.expect(",")
                parser.skip(" \t")
                if parser.at_end():
                    raise _Malformed("trailing comma")
    except _Malformed:
        return None
    return members
