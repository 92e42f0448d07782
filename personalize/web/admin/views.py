"""The editor UI's pages (routes under ``<prefix>/admin``; see :mod:`personalize.web.admin`)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from personalize.exceptions import EditError, StoreError
from personalize.personalizer import Personalizer
from personalize.profiles.identity import anonymous_key, known_key, user_id_of
from personalize.profiles.norms import unusualness
from personalize.web.admin.auth import Editor
from personalize.web.admin.decision_view import shared_learning
from personalize.web.admin.insights import (
    CHANNELS,
    DEVICES,
    MEMBER_SAMPLE,
    MEMBER_TTL,
    MemberCounts,
    count_members,
    parse_preview,
    preview,
    profile_segments,
)
from personalize.web.admin.mapping_edit import (
    raw_slot,
    read_form_edit,
    save_mapping,
    slot_file,
)
from personalize.web.admin.model_view import (
    auc_chart,
    cluster_rows,
    gate_verdict,
    learning_status,
    shared_snapshot,
)
from personalize.web.admin.slot_views import flow, site_relative, slot_views
from personalize.web.csrf import FIELD
from personalize.web.pages import NO_STORE, render

__all__ = [
    "AdminState",
    "model_page",
    "overview",
    "preview_page",
    "profiles_page",
    "segments_page",
    "slots_page",
]

_NO_SEGMENTS = "No segments configured: pass segments='segments/' to Personalizer."
_NO_CONTENT = "No content configured: pass content='content/' to Personalizer."


@dataclass(slots=True)
class AdminState:
    """What the editor UI of one site keeps in memory: its page caches and the save lock."""

    site: Personalizer
    cache: dict[str, tuple[float, Any]] = field(default_factory=dict)  # page caches (members)
    write_lock: threading.Lock = field(default_factory=threading.Lock)


def _relative(texts: tuple[str, ...], library: Any) -> tuple[str, ...]:
    """Problems as editors read them: paths from the site's folder, not the server's root."""
    return tuple(site_relative(t, library.directory) for t in texts)


def _page(template: str, pz: Personalizer, editor: Editor, **context: Any) -> Response:
    return render(
        template,
        pz.router.prefix,
        editor=editor.name,
        csrf_field=FIELD,
        csrf_token=editor.csrf,
        **context,
    )


async def _members(state: AdminState) -> MemberCounts:
    pz = state.site
    cache = state.cache
    cached = cache.get("members")
    if cached is not None and time.monotonic() - cached[0] < MEMBER_TTL:
        value: MemberCounts = cached[1]
        return value
    counts = await count_members(pz, cap=MEMBER_SAMPLE)
    cache["members"] = (time.monotonic(), counts)
    return counts


async def overview(request: Request, state: AdminState, editor: Editor) -> Response:
    """Start page: what is configured, and what needs attention."""
    pz = state.site
    library = pz.segments
    engine = pz.decisions
    if library is not None:
        library.reload_if_changed()
    if engine is not None:
        engine.library.reload_if_changed()
    status = learning_status(pz)
    return _page(
        "admin/overview.html",
        pz,
        editor,
        nav="overview",
        segments=library.segments if library is not None else None,
        segment_errors=_relative(library.errors, library) if library is not None else (),
        slots=engine.library.slots if engine is not None else None,
        content_errors=_relative(engine.library.errors, engine.library) if engine else (),
        status=status,
        gate=gate_verdict(status) if status and "error" not in status else None,
    )


async def segments_page(request: Request, state: AdminState, editor: Editor) -> Response:
    """Every segment: definition, where it is written, and how many stored profiles are in it."""
    pz = state.site
    library = pz.segments
    if library is None:
        return _page(
            "admin/message.html", pz, editor, nav="segments", title="Segments", message=_NO_SEGMENTS
        )
    library.reload_if_changed()
    members = await _members(state)
    rows = [
        {
            "name": s.name,
            "description": s.description,
            "text": s.rule.text,
            "yaml": flow(s.rule.data),
            "origin": site_relative(s.origin, library.directory),
            "count": members.counts.get(s.name, 0),
            "stated": members.stated.get(s.name, 0),
            "left": members.left.get(s.name, 0),
            "share": (
                members.counts.get(s.name, 0) / members.evaluated if members.evaluated else 0
            ),
        }
        for s in library.segments
    ]
    return _page(
        "admin/segments.html",
        pz,
        editor,
        nav="segments",
        rows=rows,
        members=members,
        errors=_relative(library.errors, library),
        age=max(0, int(pz.now() - members.computed_at)),
    )


async def _slots_page(
    pz: Personalizer,
    editor: Editor,
    *,
    status_code: int = 200,
    flash: str = "",
    problems: tuple[str, ...] = (),
    focus: str = "",
) -> Response:
    engine = pz.decisions
    if engine is None:
        return _page(
            "admin/message.html", pz, editor, nav="slots", title="Slots", message=_NO_CONTENT
        )
    engine.library.reload_if_changed()
    library = pz.segments
    learning, learning_error = {}, ""
    try:
        learning = await shared_learning(pz)
    except StoreError as exc:  # the store is down: the mapping can still be edited
        learning_error = f"the decision state store did not answer ({type(exc).__name__})"
    return render(
        "admin/slots.html",
        pz.router.prefix,
        status_code=status_code,
        editor=editor.name,
        csrf_field=FIELD,
        csrf_token=editor.csrf,
        nav="slots",
        slots=await run_in_threadpool(slot_views, pz),
        segment_names=library.names if library is not None else (),
        errors=_relative(engine.library.errors, engine.library),
        editable=engine.library.directory is not None,
        flash=flash,
        problems=_relative(problems, engine.library),
        focus=focus,
        learning=learning,
        learning_error=learning_error,
    )


_FLASHES = {"saved": "Saved. The site uses the new mapping now (other workers within a second)."}


async def slots_page(request: Request, state: AdminState, editor: Editor) -> Response:
    """Per slot, the ordered segment -> variants mapping; a form per slot saves it to YAML."""
    pz = state.site
    if request.method != "POST":
        flash = _FLASHES.get(request.query_params.get("done", ""), "")
        return await _slots_page(
            pz, editor, flash=flash, focus=request.query_params.get("slot", "")
        )
    engine = pz.decisions
    if engine is None or engine.library.directory is None:
        return await _slots_page(
            pz,
            editor,
            status_code=404,
            problems=("this content cannot be edited here (no folder)",),
        )
    name = editor.form.get("slot", "")
    slot = engine.library.slots.get(name)
    if slot is None:
        return await _slots_page(
            pz, editor, status_code=404, problems=(f"unknown slot {name[:40]!r}",)
        )
    folder = engine.library.directory
    library = pz.segments
    try:
        path = slot_file(slot)
        text = await run_in_threadpool(path.read_text, encoding="utf-8")
        raw = raw_slot(text, slot.name)
        form = read_form_edit(editor.form, slot, raw, library.names if library is not None else ())

        def save() -> Path:
            with state.write_lock:  # one edit at a time in this process
                written = save_mapping(slot, folder, form, library)
                engine.library.reload_if_changed(force=True)
                return written

        await run_in_threadpool(save)
    except EditError as exc:
        return await _slots_page(
            pz, editor, status_code=exc.status, problems=exc.problems, focus=slot.name
        )
    except OSError as exc:
        return await _slots_page(
            pz,
            editor,
            status_code=500,
            problems=(f"could not write the file: {exc}",),
            focus=slot.name,
        )
    if engine.library.errors:
        return await _slots_page(pz, editor, status_code=500, problems=engine.library.errors)
    # Post/redirect/get: a reload of the result page does not post again.
    return RedirectResponse(
        f"{pz.router.prefix}/admin/slots?done=saved&slot={slot.name}#slot-{slot.name}",
        status_code=303,
        headers={"cache-control": NO_STORE},
    )


async def preview_page(request: Request, state: AdminState, editor: Editor) -> Response:
    """Any page as a simulated visitor: their segments and every slot's decision, and why."""
    pz = state.site
    library = pz.segments
    names = library.names if library is not None else ()
    params = request.query_params
    asked = "path" in params
    wanted = parse_preview(params, names, params.getlist("segment"))
    result = None
    if asked:
        found = await run_in_threadpool(preview, pz, wanted)
        result = {
            "segments": found.segments,
            "attributes": found.attributes,
            "decisions": [
                {
                    "slot": d.slot,
                    "variant": d.variant,
                    "lines": d.explanation.lines(),
                    "plain": plain,
                    "source": str(d.content),
                }  # shown as source, escaped: never run here
                for d, plain in zip(found.decisions, found.plain, strict=True)
            ],
        }
    return _page(
        "admin/preview.html",
        pz,
        editor,
        nav="preview",
        form=wanted,
        result=result,
        segment_names=names,
        devices=DEVICES,
        channels=CHANNELS,
        weekdays=("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        no_content=pz.decisions is None,
    )


async def profiles_page(request: Request, state: AdminState, editor: Editor) -> Response:
    """A stored profile, looked up by user id or visitor id."""
    pz = state.site
    params = request.query_params
    user_id = (params.get("user_id") or "").strip()[:200]
    visitor_id = (params.get("visitor_id") or "").strip()[:200]
    key = known_key(user_id) if user_id else anonymous_key(visitor_id) if visitor_id else ""
    profile = None
    problem = ""
    if key:
        try:
            profile = await pz.profiles.read(key)
        except Exception as exc:
            problem = f"the profile store is unavailable ({exc})"
        if profile is None and not problem:
            problem = f"no profile is stored under {key}"
    members = (
        profile_segments(profile, pz.segments, pz.now(), pz.context.site_time_zone, pz=pz)
        if profile is not None
        else []
    )
    return _page(
        "admin/profiles.html",
        pz,
        editor,
        nav="profiles",
        user_id=user_id,
        visitor_id=visitor_id,
        key=key,
        profile=profile,
        data=profile.to_dict() if profile is not None else None,
        merged_user=user_id_of(profile.merged_into) if profile and profile.merged_into else None,
        members=members,
        unusual=unusualness(profile) if profile is not None else None,
        problem=problem,
        events=list(reversed(profile.events[-20:])) if profile is not None else [],
    )


async def model_page(request: Request, state: AdminState, editor: Editor) -> Response:
    """The learned model: events learned, prequential AUC over time, the quality gate."""
    pz = state.site
    status = learning_status(pz)
    chart = None
    verdict = None
    if status is not None and "error" not in status:
        min_auc = status.get("min_auc")
        chart = auc_chart(
            status.get("auc_history") or [],
            min_auc=float(min_auc) if isinstance(min_auc, int | float) else None,
        )
        verdict = gate_verdict(status)
    shared = await shared_snapshot(pz)
    return _page(
        "admin/model.html", pz, editor, nav="model", status=status, chart=chart, verdict=verdict,
        clusters=cluster_rows(status, pz.segments), shared=shared,
    )  # fmt: skip
