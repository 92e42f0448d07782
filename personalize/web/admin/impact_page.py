"""The editor UI's impact page (``<prefix>/admin/impact``): does personalization pay?

GET shows the uplift of the personalized visitors over the holdout per site, slot and segment,
a chart of one scope over time with its always-valid band, and the numbers behind it;
``?format=csv`` and ``?format=json`` export every scope and day. POST saves the holdout shares
(the site's and each slot's) into the content files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from personalize.content.holdout import MAX_SHARE, MIN_SHARE
from personalize.exceptions import EditError
from personalize.impact.report import Report, interval_text, load_report, verdict
from personalize.web.admin.holdout_edit import read_holdout_form, save_holdouts
from personalize.web.admin.impact_view import uplift_chart
from personalize.web.csrf import FIELD
from personalize.web.pages import NO_STORE, render, text

if TYPE_CHECKING:
    from personalize.web.admin.auth import Editor
    from personalize.web.admin.views import AdminState

__all__ = ["impact_page"]

DAYS = 90  # days the page reads by default
MAX_DAYS = 400


def _days(raw: str | None) -> int:
    try:
        days = int(raw or DAYS)
    except ValueError:
        return DAYS
    return min(max(days, 1), MAX_DAYS)


def _export(report: Report, kind: str) -> Response:
    if kind == "csv":
        body, media = report.to_csv().encode(), "text/csv; charset=utf-8"
    else:
        body, media = orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2), "application/json"
    return Response(
        body,
        media_type=media,
        headers={
            "cache-control": NO_STORE,
            "content-disposition": f'attachment; filename="personalize-impact.{kind}"',
            "x-content-type-options": "nosniff",
        },
    )


async def impact_page(request: Request, state: AdminState, editor: Editor) -> Response:
    """The impact page, its exports, and the holdout form's save."""
    pz = state.site
    if request.method == "POST":
        return await _save(state, editor)
    if pz.decisions is not None:
        pz.decisions.library.reload_if_changed()  # show the shares the files say now
    params = request.query_params
    days = _days(params.get("days"))
    problem = ""
    report = Report(())
    if pz.impact is not None:
        try:
            report = await load_report(pz.impact, pz.now(), days=days)
        except Exception as exc:  # an editor's page, not a visitor's: say what happened
            problem = f"the state store is unavailable ({type(exc).__name__}: {exc})"
    kind = params.get("format", "")
    if kind in ("csv", "json") and not problem:
        return _export(report, kind)
    return _render(
        state, editor, report, days=days, scope=params.get("scope", ""), problem=problem,
        flash="Saved. The site uses the new holdout now." if params.get("done") else "",
    )  # fmt: skip


def _render(
    state: AdminState,
    editor: Editor,
    report: Report,
    *,
    days: int,
    scope: str,
    problem: str = "",
    flash: str = "",
    problems: tuple[str, ...] = (),
    status_code: int = 200,
) -> Response:
    pz = state.site
    engine = pz.decisions
    chosen = report.scope(scope) if scope else None
    if chosen is None:  # the site, else the first scope with a holdout to compare with
        with_holdout = [s for s in report.scopes if s.latest.holdout.visitors]
        chosen = report.scope("site") if report.scope("site") in with_holdout else None
        chosen = chosen or (with_holdout[0] if with_holdout else None)
    rows = [
        {"scope": s.scope, "label": s.label, "kind": s.scope.split("/", 1)[0], "point": s.latest,
         "conversion": interval_text(s.latest.conversion), "value": interval_text(s.latest.value),
         "verdict": verdict(s.latest)}
        for s in report.scopes
    ]  # fmt: skip
    library = engine.library if engine is not None else None
    return render(
        "admin/impact.html",
        pz.router.prefix,
        status_code=status_code,
        editor=editor.name,
        csrf_field=FIELD,
        csrf_token=editor.csrf,
        nav="impact",
        rows=rows,
        chosen=chosen,
        charts={
            "conversion": uplift_chart(chosen.points, "conversion") if chosen else "",
            "value": uplift_chart(chosen.points, "value") if chosen else "",
        },
        days=days,
        problem=problem,
        problems=problems,
        flash=flash,
        no_content=engine is None,
        site_share=engine.holdout if engine is not None else 0.0,
        site_origin=library.holdout_origin if library is not None else "",
        slots=list(library.slots.values()) if library is not None else [],
        editable=library is not None and library.directory is not None,
        window_days=pz.settings.attribution_window / 86_400,
        shares=(MIN_SHARE, MAX_SHARE),
        confidence=round((1 - report.alpha) * 100),
    )


async def _save(state: AdminState, editor: Editor) -> Response:
    pz = state.site
    engine = pz.decisions
    if engine is None or engine.library.directory is None:
        return text("This content cannot be edited here (no folder).", 404)
    library = engine.library
    try:
        form = read_holdout_form(editor.form, library, engine.holdout)

        def save() -> None:
            with state.write_lock:
                save_holdouts(library, form, pz.segments)
                library.reload_if_changed(force=True)

        if form.site is not None or form.slots:
            await run_in_threadpool(save)
    except EditError as exc:
        report = Report(())
        if pz.impact is not None:
            try:
                report = await load_report(pz.impact, pz.now(), days=DAYS)
            except Exception:
                report = Report(())
        return _render(
            state, editor, report, days=DAYS, scope="", problems=exc.problems,
            status_code=exc.status,
        )  # fmt: skip
    return RedirectResponse(
        f"{pz.router.prefix}/admin/impact?done=saved#holdout",
        status_code=303,
        headers={"cache-control": NO_STORE},
    )
