"""The editor UI against real servers (OS processes): two servers saving the same slot at once
never both say "Saved" when one edit was lost, and a burst of parallel wrong passwords
computes at most the allowed number of hashes, costs little memory and leaves the shop's pages
fast, while the right password still gets in once the wait is over."""

from __future__ import annotations

import base64
import itertools
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import yaml

from personalize.web.admin.passwords import hash_password
from tests.admin_server import Server, served
from tests.pages_app import PASSWORD, UA, csrf_token, folders

ROUNDS = 15
VARIANTS = ("welcome", "phone", "desk")
# Every non-empty set of variants: each round the two editors pick two different defaults,
# both different from what the file says, so a lost edit is always visible.
DEFAULTS = [sorted(c) for n in (1, 2, 3) for c in itertools.combinations(VARIANTS, n)]


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {raw}"}


EDITOR = basic("editor", PASSWORD)


def slot_form(client: httpx.Client, default: list[str]) -> dict[str, Any]:
    """The hero form as this server renders it, with a new default."""
    html = client.get("/_personalize/admin/slots", headers=EDITOR).text
    found = re.search(r'name="digest" value="([^"]+)"', html)
    assert found is not None, html[:500]
    return {
        "csrf_token": csrf_token(html),
        "slot": "hero",
        "digest": found.group(1),
        "rules": "1",
        "rule-0-order": "1",
        "rule-0-segment": "mobile",
        "rule-0-variants": ["phone"],
        "rule-0-pin": "",
        "new-order": "2",
        "new-segment": "",
        "default": default,
        "pin": "",
    }


def _save_at_once(clients: list[httpx.Client], forms: list[dict[str, Any]]) -> list[Any]:
    """Both forms posted at the same moment, each to its own server."""
    start = threading.Barrier(len(clients))
    answers: list[Any] = [None] * len(clients)

    def save(i: int) -> None:
        start.wait()
        answers[i] = clients[i].post(
            "/_personalize/admin/slots", data=forms[i], headers=EDITOR, follow_redirects=False
        )

    threads = [threading.Thread(target=save, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def current_default(content: Path) -> list[str]:
    """The hero's default as the file says it, as a sorted list (an edit keeps the order
    variants had before)."""
    data = yaml.safe_load((content / "home.yaml").read_text())
    return sorted(data["slots"]["hero"]["default"])


def test_two_servers_saving_one_slot_at_once_never_both_say_saved(tmp_path: Path) -> None:
    _, content = folders(tmp_path)
    editor_hash = hash_password(PASSWORD, n=2**10)
    with (
        served(tmp_path, editor_hash, name="one") as one,
        served(tmp_path, editor_hash, name="two") as two,
    ):
        clients = [
            httpx.Client(base_url=s.url, headers=UA, timeout=30) for s in (one, two)
        ]  # fmt: skip
        for round_ in range(ROUNDS):
            before = current_default(content)
            choices = [d for d in DEFAULTS if d != before]
            wanted = [
                choices[(2 * round_) % len(choices)],
                choices[(2 * round_ + 1) % len(choices)],
            ]
            forms = [slot_form(c, w) for c, w in zip(clients, wanted, strict=True)]
            assert forms[0]["digest"] == forms[1]["digest"]  # both read the same file
            answers = _save_at_once(clients, forms)
            saved = [i for i, r in enumerate(answers) if r.status_code == 303]
            assert all("done=saved" in answers[i].headers["location"] for i in saved)
            refused = [i for i, r in enumerate(answers) if r.status_code == 409]
            assert len(saved) == 1 and len(refused) == 1, [r.status_code for r in answers]
            # The edit that was reported saved is the one in the file; the other editor was
            # told the file changed and that nothing of theirs was written.
            assert current_default(content) == wanted[saved[0]], round_
            assert "changed since you opened this form" in answers[refused[0]].text
        for c in clients:
            c.close()
    assert not [p for p in content.iterdir() if p.name.startswith(".")]  # no temporary files


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of a process, in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


GUESSES = 300
FREE = 10  # the Guard's default failures before the waits begin


# Sends the guesses from a process of its own, so that the shopper's timings below measure
# the server, not the test's own event loop busy with 300 connections.
BURST = """
import asyncio, base64, json, sys, time
import httpx2 as httpx

async def main(url, guesses):
    wrong = {"authorization": "Basic " + base64.b64encode(b"editor:not the password").decode()}
    limits = httpx.Limits(max_connections=guesses, max_keepalive_connections=guesses)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        started = time.monotonic()
        answers = await asyncio.gather(
            *(client.get("/_personalize/admin", headers=wrong) for _ in range(guesses))
        )
        seconds = time.monotonic() - started
    print(json.dumps({
        "seconds": seconds,
        "statuses": [r.status_code for r in answers],
        "retry_after": [int(r.headers["retry-after"]) for r in answers if r.status_code == 429],
    }))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def _burst(server: Server) -> dict[str, Any]:
    with httpx.Client(base_url=server.url, headers=UA, timeout=60) as client:
        for _ in range(5):  # warm: the shop page, and one right password (one hash's memory)
            assert client.get("/").status_code == 200
        assert client.get("/_personalize/admin", headers=EDITOR).status_code == 200
        # Missing and malformed headers are challenged and count for nothing.
        junk = ["Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Bearer x", ""]
        for header in junk * 15:
            r = client.get("/_personalize/admin", headers={"authorization": header})
            assert r.status_code == 401
        assert client.get("/_personalize/admin", headers=EDITOR).status_code == 200

        def page() -> float:
            started = time.perf_counter()
            assert client.get("/").status_code == 200
            return time.perf_counter() - started

        quiet = [page() for _ in range(20)]
        before = _memory(server.pid)
        command = [sys.executable, "-c", BURST, server.url, str(GUESSES)]
        burst = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        busy = []
        while burst.poll() is None:  # a shopper browses while the guesses arrive
            busy.append(page())
            time.sleep(0.02)
        busy += [page() for _ in range(5)]
        out, _ = burst.communicate()
        assert burst.returncode == 0
        after = _memory(server.pid)

        # The right password from the same address: while it must wait, it is told how
        # long (and nothing is checked); then it gets in.
        let_in = client.get("/_personalize/admin", headers=EDITOR)
        waited = 0
        while let_in.status_code == 429 and waited < 3:
            time.sleep(int(let_in.headers["retry-after"]) + 0.1)
            let_in = client.get("/_personalize/admin", headers=EDITOR)
            waited += 1
        return {
            **json.loads(out),
            "quiet": quiet,
            "busy": busy,
            "before": before,
            "after": after,
            "let_in": let_in.status_code,
        }


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_burst_of_parallel_wrong_passwords_is_cheap_and_harmless(tmp_path: Path) -> None:
    folders(tmp_path)
    editor_hash = hash_password(PASSWORD)  # the real cost: 32 MiB and ~0.1 s per check
    with served(tmp_path, editor_hash) as server:
        result = _burst(server)
    statuses = result["statuses"]
    checked = statuses.count(401)  # a 401 here means the hash was computed (and failed)
    # The first FREE guesses are checked, then each waits 2, 4, 8... seconds: a burst that
    # lasts T seconds gets at most one more check per wait that ends within it.
    windows = next(k for k in range(64) if 2 ** (k + 2) - 2 > result["seconds"])
    grown = result["after"]["VmHWM"] - result["before"]["VmRSS"]  # KiB, at the peak
    quiet, busy = statistics.median(result["quiet"]), result["busy"]
    print(
        f"{GUESSES} guesses in {result['seconds']:.1f} s: {checked} hashes checked; server "
        f"RSS +{grown / 1024:.0f} MiB at the peak; shop page {quiet * 1000:.0f} ms before, "
        f"median {statistics.median(busy) * 1000:.0f} ms / max {max(busy) * 1000:.0f} ms "
        f"during ({len(busy)} pages)"
    )
    assert 1 <= checked <= FREE + windows, (checked, result["seconds"])
    assert statuses.count(429) == GUESSES - checked
    assert all(wait >= 1 for wait in result["retry_after"])
    assert grown < 100 * 1024, result
    # The shop's pages keep their latency while the guesses arrive.
    assert len(busy) >= 3
    assert max(busy) < max(1.0, 20 * quiet), (quiet, busy)
    assert statistics.median(busy) < max(0.25, 5 * quiet), (quiet, busy)
    assert result["let_in"] == 200
