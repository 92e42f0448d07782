"""The public namespace stays honest: sorted, complete and importable."""

from __future__ import annotations

import personalize


def test_all_is_sorted_and_every_name_exists() -> None:
    assert personalize.__all__ == sorted(personalize.__all__)
    for name in personalize.__all__:
        assert getattr(personalize, name) is not None


def test_every_public_name_is_in_all() -> None:
    public = {
        name
        for name, value in vars(personalize).items()
        if not name.startswith("_") and not isinstance(value, type(personalize))
    }
    lazy = {"RedisStore", "RedisStateStore"}  # optional extras, imported on first use
    assert public | lazy == set(personalize.__all__)
