"""Shared fixtures: the test data others wrote lives in ../shared/data (never copied here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
IN_CI = bool(os.environ.get("CI"))


def shared_data_path(*parts: str) -> Path:
    """Path to a file of ../shared/data; skip (or fail in CI) when the folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if IN_CI:
            pytest.fail(f"{path} is missing; CI must run the tests that use ../shared/data")
        pytest.skip(f"{path} is absent (a fresh clone without ../shared/data)")
    return path


@pytest.fixture
def shared_data() -> Path:
    return shared_data_path()
