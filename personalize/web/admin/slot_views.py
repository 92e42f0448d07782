"""The slots page's data: each slot's variants and mapping as written in its YAML file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from personalize.personalizer import Personalizer
from personalize.web.admin.mapping_edit import digest, raw_slot, slot_file

__all__ = ["flow", "site_relative", "slot_views"]


def flow(value: Any) -> str:
    """A value as one line of YAML flow style, as an editor would write it."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()


def site_relative(text: str, folder: Path | None) -> str:
    """``text`` without the server's path to the site: editors read ``content/home.yaml:9``,
    not where the files sit on the server (``folder`` is the content or segments folder).

    >>> site_relative("/srv/shop/content/home.yaml:9: oops", Path("/srv/shop/content"))
    'content/home.yaml:9: oops'
    """
    if folder is None:
        return text
    for base in {folder.parent, folder.resolve().parent}:
        prefix = str(base).rstrip(os.sep) + os.sep
        if prefix != os.sep:
            text = text.replace(prefix, "")
    return text


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def slot_views(pz: Personalizer) -> list[dict[str, Any]]:
    """Every slot as the slots page shows it: variants, the mapping as written, the file's
    digest (for conflict detection). Reads the files: run it in a thread."""
    engine = pz.decisions
    assert engine is not None
    folder = engine.library.directory
    views: list[dict[str, Any]] = []
    for slot in engine.library.slots.values():
        path = slot_file(slot)
        try:
            text = path.read_text(encoding="utf-8")
            raw = raw_slot(text, slot.name)
        except Exception as exc:  # the file moved or broke since the last reload
            views.append({"name": slot.name, "file": site_relative(str(path), folder),
                          "error": site_relative(str(exc), folder)})  # fmt: skip
            continue
        raw_rules = _list(raw.get("rules"))
        raw_variants = _list(raw.get("variants"))
        bodies: dict[str, tuple[str, str]] = {}
        for item in raw_variants:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                kind = next((k for k in ("html", "markdown", "template") if k in item), "")
                bodies[item["id"]] = (kind, str(item.get(kind, "")))
        variants = [
            {
                "id": v.id,
                "label": v.label,
                "value": v.value,
                "campaign": v.campaign,
                "products": v.products,
                "schedule": v.schedule is not None,
                "cap": v.cap,
                "origin": site_relative(v.origin, folder),
                "kind": bodies.get(v.id, ("", ""))[0],
                "body": bodies.get(v.id, ("", ""))[1],
            }
            for v in slot.variants.values()
        ]
        rules = []
        for i, rule in enumerate(raw_rules):
            rule = rule if isinstance(rule, dict) else {}
            rules.append(
                {
                    "index": i,
                    "segment": rule.get("segment") or "",
                    "when": flow(rule["when"]) if "when" in rule else "",
                    "variants": list(rule.get("variants") or []),
                    "pin": rule.get("pin") or "",
                    "description": rule.get("description") or "",
                }
            )
        views.append(
            {
                "name": slot.name,
                "description": raw.get("description") or "",
                "file": site_relative(str(path), folder),
                "origin": site_relative(slot.origin, folder),
                "digest": digest(text),
                "variants": variants,
                "rules": rules,
                "default": list(raw.get("default") or []),
                "pin": raw.get("pin") or "",
                "reward": slot.reward,
            }
        )
    return views
