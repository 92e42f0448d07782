"""The page tests' shop (:mod:`tests.pages_app`) as a real server, for tests that need OS
processes: several servers editing one content folder, password guesses against a real event
loop and thread pool.

``uvicorn --factory tests.admin_server:create`` reads ``PZ_TEST_FOLDER`` (which holds
``segments/`` and ``content/``, see :func:`tests.pages_app.folders`) and
``PZ_TEST_EDITOR_HASH`` (the editor's password hash); :func:`served` starts one and stops it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from tests.pages_app import CATEGORIES, SECRET, page

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0  # seconds; the machine may be busy


def create() -> Any:
    """The shop behind the middleware, with the editor UI on."""
    from personalize import MemoryStore, PersonalizeMiddleware

    folder = Path(os.environ["PZ_TEST_FOLDER"])
    return PersonalizeMiddleware(
        Starlette(routes=[Route("/", page)]),
        secret_key=SECRET,
        store=MemoryStore(),
        segments=folder / "segments",
        content=folder / "content",
        categories=CATEGORIES,
        admin_users={"editor": os.environ["PZ_TEST_EDITOR_HASH"]},
    )


@dataclass(frozen=True, slots=True)
class Server:
    url: str
    pid: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                response.read()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"the server did not answer at {url} within {START_TIMEOUT} s:\n{log.read_text()}")


@contextmanager
def served(folder: Path, editor_hash: str, *, name: str = "server") -> Iterator[Server]:
    """One uvicorn process (one worker) serving :func:`create` on a free port."""
    port = _free_port()
    log = folder / f"{name}.log"
    env = {
        **os.environ,
        "PZ_TEST_FOLDER": str(folder),
        "PZ_TEST_EDITOR_HASH": editor_hash,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "tests.admin_server:create",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url + "/", process, log)
        yield Server(url, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
