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
import tarfile
import tomllib
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
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


# ---------------------------------------------------------------------------------------------
# The distributions: `python -m build` makes an sdist and a wheel (the wheel built from the
# sdist, so the sdist is complete); both install in a fresh virtualenv and serve a page.

SMOKE = r"""
import asyncio, importlib.metadata, importlib.util, sys, tempfile
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

import personalize
from personalize import MemoryStore, PersonalizeMiddleware, get_visitor
import personalize.integrations.django, personalize.integrations.fastapi
import personalize.integrations.litestar, personalize.integrations.quart

# The integrations import, and no framework is there to be imported by them.
for framework in ("django", "fastapi", "litestar", "quart", "asgiref"):
    assert importlib.util.find_spec(framework) is None, framework
assert importlib.metadata.version("personalize") == personalize.__version__

content = Path(tempfile.mkdtemp())
(content / "home.yaml").write_text(
    "slots:\n  hero:\n    variants:\n      - {id: welcome, html: <h1>Welcome</h1>}\n"
    "    default: [welcome]\n"
)

async def home(request):
    decision = await get_visitor(request).decide("hero")
    return HTMLResponse(f"<main>{decision.html}</main>")

app = PersonalizeMiddleware(Starlette(routes=[Route("/", home)]),
                            secret_key="packaging-smoke-secret-0123456789",
                            store=MemoryStore(), content=content)

async def get(path):
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
             "server": ("127.0.0.1", 8000),
             "headers": [(b"host", b"127.0.0.1:8000"),
                         (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64)")]}
    sent = []
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        sent.append(message)
    await app(scope, receive, send)
    await app.aclose()
    headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], headers, b"".join(m.get("body", b"") for m in sent[1:]).decode()

status, headers, body = asyncio.run(get("/"))
assert status == 200, status
assert headers["set-cookie"].startswith("pz_visitor="), headers
assert headers["cache-control"].startswith("private"), headers
assert '"><h1>Welcome</h1></div></main>' in body and 'data-pz-slot="hero"' in body, body
print("smoke ok", personalize.__version__, Path(personalize.__file__).parent)
"""


def _run(*args: str | Path, cwd: Path, timeout: float = 180) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout


def _source_version() -> str:
    text = (ROOT / "personalize" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    assert found is not None
    return found[1]


def _package_files() -> set[str]:
    """Every file of the importable package in the checkout (bytecode aside)."""
    return {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "personalize").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
    }


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--outdir", out, ROOT, cwd=out)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


@pytest.mark.packaging
def test_the_wheel_and_the_sdist_carry_the_whole_package(dists: dict[str, Path]) -> None:
    version = _source_version()
    assert dists["wheel"].name == f"personalize-{version}-py3-none-any.whl"
    assert dists["sdist"].name == f"personalize-{version}.tar.gz"
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(f"personalize-{version}.dist-info/METADATA").decode()
    package = _package_files()
    # py.typed, the templates, static files and data included: everything, and nothing else.
    assert {n for n in names if n.startswith("personalize/")} == package
    assert {"personalize/py.typed", "personalize/templates/me.html"} <= package
    assert f"\nVersion: {version}\n" in metadata
    assert "\nRequires-Dist: starlette" in metadata
    with tarfile.open(dists["sdist"]) as sdist:
        inside = {n.partition("/")[2] for n in sdist.getnames()}
    assert package | {"README.md", "pyproject.toml"} <= inside


def test_the_version_has_one_source() -> None:
    """pyproject.toml reads the version from personalize.__version__ instead of repeating it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "personalize.__version__"
    }
    import personalize

    assert personalize.__version__ == _source_version()


@pytest.mark.packaging
@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_each_distribution_installs_in_its_own_fresh_virtualenv_and_serves_a_page(
    dists: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", python, "install", "--quiet"]
    smoke = tmp_path / "smoke.py"
    smoke.write_text(SMOKE, encoding="utf-8")
    site = f"{venv}/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"

    # Installed with its dependencies from the index (an sdist is built into a wheel by pip).
    _run(*pip, dists[kind], cwd=tmp_path, timeout=300)
    assert _run(python, "-I", smoke, cwd=tmp_path).startswith(
        f"smoke ok {_source_version()} {site}/"
    )
    console = _run(venv / "bin" / "personalize", "--version", cwd=tmp_path)
    assert console.strip() == f"personalize {_source_version()}"
