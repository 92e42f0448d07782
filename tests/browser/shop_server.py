"""The demo shop as the browser tests run it (``uvicorn --factory``, see ``conftest.py``).

Everything that differs from ``scripts/demo`` comes from environment variables the session
fixture sets (see ``conftest.py``): a SQLite file and a copy of ``content/`` in a temporary
folder (so the editor test never changes the repository's files), the cookie secret and the
editor's password hash. The visitor simulator is on (demo mode).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EDITOR = "editor"


def create() -> Any:
    """The shop app (a factory, so importing this module starts nothing)."""
    from demo_site.app import create_app
    from personalize import SQLiteStore

    env = os.environ
    return create_app(
        demo_mode=True,
        secret_key=env["PZ_BROWSER_SECRET"],
        store=SQLiteStore(env["PZ_BROWSER_DB"]),
        content=env["PZ_BROWSER_CONTENT"],
        segments=ROOT / "segments",
        admin_users={EDITOR: env["PZ_BROWSER_EDITOR_HASH"]},
        secure_cookies=False,
    )
