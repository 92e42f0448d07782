"""The shop's catalogue: three categories, twelve products.

Product ids match the ``tags.products`` of the variants in ``content/`` (``runner-42``,
``boot-7``, ``tote-3``, ``trail-tent-2``), so the decision engine can tell a recommendation
from a product the visitor just bought.

>>> product("boot-7").url, category("bags").name
('/shoes/boot-7', 'Bags')
>>> product("nope") is None, category("cart") is None
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Category:
    id: str  # also the URL path: /shoes
    name: str
    blurb: str

    @property
    def url(self) -> str:
        return f"/{self.id}"


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    category: str
    name: str
    price: float  # GBP
    summary: str
    colour: str  # a CSS colour for the placeholder picture (no image files in the demo)
    bestseller: bool = False

    @property
    def url(self) -> str:
        return f"/{self.category}/{self.id}"


CATEGORIES: dict[str, Category] = {
    c.id: c
    for c in (
        Category("shoes", "Shoes", "Runners, boots and everything in between."),
        Category("bags", "Bags", "Totes, backpacks and bags for the weekend."),
        Category("outdoor", "Outdoor", "Tents, sleeping bags and kit for the trail."),
    )
}

PRODUCTS: dict[str, Product] = {
    p.id: p
    for p in (
        Product("runner-42", "shoes", "Runner 42", 89.0,
                "Light road running shoe with a springy foam sole.", "#2f6fde", True),
        Product("boot-7", "shoes", "Boot 7", 149.0,
                "Waterproof leather hiking boot, resoleable.", "#8a5a2b", True),
        Product("sandal-5", "shoes", "Sandal 5", 45.0,
                "Strappy trail sandal that dries in minutes.", "#d9822b"),
        Product("loafer-9", "shoes", "Loafer 9", 99.0,
                "Suede loafer for the office and the weekend.", "#6b4f3a"),
        Product("tote-3", "bags", "Everyday Tote", 59.0,
                "Canvas tote with a laptop sleeve and an inner zip pocket.", "#c0a36e", True),
        Product("backpack-20", "bags", "Daypack 20", 79.0,
                "Twenty litres, padded straps, a rain cover in the lid.", "#3d7a5a"),
        Product("weekender-12", "bags", "Weekender 12", 129.0,
                "Duffel for two nights away; fits under a plane seat.", "#1f3b57"),
        Product("crossbody-1", "bags", "Crossbody 1", 39.0,
                "Small crossbody for phone, keys and cards.", "#a33b3b"),
        Product("trail-tent-2", "outdoor", "Trail Tent 2", 249.0,
                "Two-person tent, 1.6 kg, pitches in five minutes.", "#4b7f2a", True),
        Product("sleeping-bag-4", "outdoor", "Sleeping Bag 4", 119.0,
                "Three-season down bag, comfortable to 4 degrees C.", "#5a4b8a"),
        Product("headlamp-6", "outdoor", "Headlamp 6", 29.0,
                "300 lumens, USB-C, red light for the tent.", "#e0b400"),
        Product("trekking-poles-8", "outdoor", "Trekking Poles 8", 69.0,
                "Carbon poles that fold to 38 cm.", "#555f66"),
    )
}  # fmt: skip

# Path pattern -> interest category for PersonalizeMiddleware(categories=...): category and
# product pages build the visitor's affinities ("affinity.shoes" in segment rules).
CATEGORY_PATHS: dict[str, str] = {
    pattern: c.id for c in CATEGORIES.values() for pattern in (c.url, f"{c.url}/*")
}


def category(category_id: str) -> Category | None:
    return CATEGORIES.get(category_id)


def product(product_id: str) -> Product | None:
    return PRODUCTS.get(product_id)


def in_category(category_id: str) -> list[Product]:
    return [p for p in PRODUCTS.values() if p.category == category_id]


def bestsellers() -> list[Product]:
    return [p for p in PRODUCTS.values() if p.bestseller]
