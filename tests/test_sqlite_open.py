"""Opening a store file that another process is opening (and switching to WAL) at the same
moment: SQLite fails the second switch at once ("database is locked") instead of waiting, so
the switch is tried again within the store's timeout."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from personalize.stores.sqlite_schema import enter_wal, open_connection


class Flaky:
    """A connection whose first ``fails`` statements fail as SQLite's switch does."""

    def __init__(self, fails: int, message: str = "database is locked") -> None:
        self.fails, self.message, self.calls = fails, message, 0

    def execute(self, sql: str, *args: Any) -> None:
        assert sql == "PRAGMA journal_mode=WAL"
        self.calls += 1
        if self.calls <= self.fails:
            raise sqlite3.OperationalError(self.message)


def test_the_switch_to_wal_is_tried_again_while_the_file_is_locked() -> None:
    conn = Flaky(fails=3)
    enter_wal(conn, timeout=5.0)  # type: ignore[arg-type]
    assert conn.calls == 4


def test_a_lock_that_outlasts_the_timeout_fails_and_other_errors_fail_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        enter_wal(Flaky(fails=10**9), timeout=0.2)  # type: ignore[arg-type]
    assert 0.1 < time.monotonic() - started < 3.0  # (a loaded machine oversleeps)
    broken = Flaky(fails=1, message="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        enter_wal(broken, timeout=5.0)  # type: ignore[arg-type]
    assert broken.calls == 1


def test_two_opening_a_new_file_at_once_both_get_a_wal_connection(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    for n in range(50):
        path = tmp_path / f"{n}.sqlite3"
        barrier = threading.Barrier(2)

        def open_it(path: Path = path, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                conn = open_connection(path, timeout=5.0, synchronous="NORMAL")
                assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
                conn.close()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
