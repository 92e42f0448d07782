"""The README's first command installs ``.[demo]`` and nothing else: the demo must run with
exactly the distributions that extra pulls in.

The test environment has every extra installed, so a missing requirement would go unnoticed
here and only show on a fresh machine. Instead, the demo is started in a subprocess whose
imports are limited to the distributions ``personalize[demo]`` requires (transitively); a
module from any other distribution fails to import there, as it would on a fresh install.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def required_distributions(extras: set[str]) -> set[str]:
    """Every distribution ``personalize[extras]`` needs, following installed metadata."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted: list[Requirement] = [Requirement(r) for r in project["dependencies"]]
    seen_extras: set[str] = set()
    todo = list(extras)
    while todo:  # the project's own extras may name each other (personalize[learn])
        extra = todo.pop()
        if extra in seen_extras:
            continue
        seen_extras.add(extra)
        for text in project["optional-dependencies"][extra]:
            req = Requirement(text)
            if _name(req.name) == "personalize":
                todo.extend(req.extras)
            else:
                wanted.append(req)
    found: set[str] = set()
    while wanted:
        req = wanted.pop()
        name = _name(req.name)
        if name in found:
            continue
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            continue  # not installed here: cannot be imported in the subprocess either
        found.add(name)
        for text in dist.requires or []:
            sub = Requirement(text)
            environment = {"extra": ""}
            if sub.marker is None or any(
                sub.marker.evaluate({**environment, "extra": e}) for e in ("", *req.extras)
            ):
                wanted.append(sub)
    return found


CHILD = r"""
import asyncio, importlib.abc, sys
from importlib.metadata import packages_distributions

allowed = set(sys.argv[1].split(","))
owners = packages_distributions()
norm = lambda n: n.replace("_", "-").replace(".", "-").lower()

class Fresh(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        top = fullname.partition(".")[0]
        dists = owners.get(top)
        if dists and not any(norm(d) in allowed for d in dists):
            raise ModuleNotFoundError(f"No module named {fullname!r} (not in personalize[demo])")
        return None

sys.meta_path.insert(0, Fresh())

from demo_site import app as module

app = module.app

async def get(path):
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64)")]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
    sent = []
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        sent.append(message)
    await app(scope, receive, send)
    return sent[0]["status"]

async def main():
    statuses = [await get(p) for p in ("/", "/shoes", "/_personalize/me")]
    print(statuses)
    assert statuses == [200, 200, 200], statuses

asyncio.run(main())
"""


def test_the_demo_runs_with_only_the_demo_extra(tmp_path: Path) -> None:
    allowed = required_distributions({"demo"}) | {"personalize"}
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PERSONALIZE_DB": str(tmp_path / "demo.sqlite3"),
        "PERSONALIZE_SECRET_KEY": "packaging-test-secret-0123456789",
    }
    result = subprocess.run(
        [sys.executable, "-c", CHILD, ",".join(sorted(allowed))],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[200, 200, 200]"


def test_the_check_sees_a_missing_requirement(tmp_path: Path) -> None:
    """Without river the demo cannot start: the limited environment really limits."""
    allowed = required_distributions({"demo"}) - {"river"} | {"personalize"}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, ",".join(sorted(allowed))],
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PERSONALIZE_DB": str(tmp_path / "demo.sqlite3"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "river" in result.stderr
