"""Shared fixtures: the test data others wrote lives in ../shared/data (never copied here)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.redis_cluster import LocalRedisCluster

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


REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_available() -> bool:
    """True when a Redis answers at REDIS_URL; skip (or fail in CI) otherwise."""
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
        client.close()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} is required in CI: {exc}")
        pytest.skip(f"no Redis at {REDIS_URL} ({exc})")
    return True


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    import secrets

    import redis

    redis_available()
    prefix = f"pztest:{secrets.token_hex(4)}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def require_redis_cluster_binaries() -> None:
    """Skip (or fail in CI) when redis-server or redis-cli is not on PATH."""
    from tests.redis_cluster import missing_binaries

    missing = missing_binaries()
    if missing:
        if IN_CI:
            pytest.fail(f"{', '.join(missing)} not on PATH; CI must run the Redis Cluster tests")
        pytest.skip(f"{', '.join(missing)} not on PATH (apt-get install redis-server)")


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalRedisCluster]:
    """A local Redis Cluster (3 primaries, 3 replicas) for the whole session; stopped at the
    end, also on failure or interrupt. A test that kills or pauses nodes puts them back
    (``redis_cluster.ensure_healthy()``) before it ends."""
    from tests.redis_cluster import LocalRedisCluster

    require_redis_cluster_binaries()
    cluster = LocalRedisCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster_prefix(redis_cluster: LocalRedisCluster) -> Iterator[str]:
    """A key prefix of this test's own on the session's Redis Cluster; every key under it,
    on every primary, is deleted afterwards."""
    import secrets

    prefix = f"pztest:{secrets.token_hex(4)}:"
    yield prefix
    with redis_cluster.client() as client:
        for key in list(client.scan_iter(match=f"{prefix}*", count=1000)):
            client.delete(key)  # one key at a time: they are on many slots
