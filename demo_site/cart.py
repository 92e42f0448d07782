"""The cart: product id -> quantity, in a signed cookie.

Why a cookie and not the visitor profile: a cart is transactional state that must work for
anonymous visitors and survive login unchanged, and changing it should not write to the
profile store; the profile keeps what personalization needs (views, affinities, orders).
The cookie is signed (itsdangerous), so a tampered or garbage cookie is just an empty cart.

>>> codec = CartCodec("s" * 32)
>>> codec.load(codec.dump({"boot-7": 2})), codec.load("garbage")
({'boot-7': 2}, {})
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

from demo_site.catalogue import PRODUCTS, Product

CART_COOKIE = "demo_cart"
MAX_QUANTITY = 10
MAX_LINES = 20


@dataclass(frozen=True, slots=True)
class Line:
    product: Product
    quantity: int

    @property
    def total(self) -> float:
        return self.product.price * self.quantity


class CartCodec:
    """Signs and checks the cart cookie."""

    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeSerializer(secret, salt="demo-cart")

    def dump(self, items: dict[str, int]) -> str:
        return self._serializer.dumps(items)

    def load(self, value: str | None) -> dict[str, int]:
        if not value or len(value) > 4096:
            return {}
        try:
            data = self._serializer.loads(value)
        except BadSignature:
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            pid: qty
            for pid, qty in list(data.items())[:MAX_LINES]
            if pid in PRODUCTS and type(qty) is int and 0 < qty <= MAX_QUANTITY
        }


def lines(items: dict[str, int]) -> list[Line]:
    return [Line(PRODUCTS[pid], qty) for pid, qty in items.items() if pid in PRODUCTS]


def total(items: dict[str, int]) -> float:
    return sum(line.total for line in lines(items))
