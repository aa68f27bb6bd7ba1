"""Backfills in the console: the preview in the achievement editor, and the jobs page."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from accolade_server.console import forms, messages
from accolade_server.console.context import Console
from accolade_server.console.security import ConsoleRoute, Permission, Session
from accolade_server.domain.errors import AccoladeError
from accolade_server.service.backfills import BackfillService, StartOptions, job_name

#: How long a preview from the editor may scan (the page waits for it).
PREVIEW_SECONDS = 20.0
#: Jobs shown on the page.
SHOWN = 50


def start_options(form: FormData, session: Session | None) -> StartOptions | None:
    """The editor's backfill choice (None: no backfill), with the session as actor."""
    if form.get("backfill") != "1":
        return None
    return StartOptions(notify=form.get("notify") == "1", actor=session.actor if session else "")


def routes(console: Console) -> list[ConsoleRoute]:
    render = console.render

    def service() -> BackfillService:
        found = console.services.backfills
        assert found is not None, "the console is built with the backfill service"
        return found

    async def preview(request: Request, session: Session | None) -> Response:
        values = forms.from_form(await request.form())
        try:
            result = await service().preview(
                forms.to_achievement(values),
                start=None,
                end=None,
                sample_size=10,
                max_seconds=PREVIEW_SECONDS,
            )
        except AccoladeError as exc:
            return render.page(request, "_preview.html", {"error": exc.detail, "p": None})
        return render.page(request, "_preview.html", {"error": "", "p": result})

    async def page(request: Request, session: Session | None) -> Response:
        """Every backfill, or (`?achievement=ID`, the editor's section) one achievement's."""
        achievement_id = request.query_params.get("achievement", "")
        try:
            jobs, _ = await service().list(
                achievement_id=achievement_id, page_size=SHOWN, page_token=""
            )
        except AccoladeError as exc:
            return console.error_page(request, exc)
        context = {
            "jobs": jobs,
            "name": job_name,
            "flash": messages.read(request, "flash"),
            "one_achievement": achievement_id,
        }
        if request.headers.get("hx-request") == "true":
            return render.page(request, "_backfill_table.html", context)
        return render.page(request, "backfills.html", context)

    async def cancel(request: Request, session: Session | None) -> Response:
        name = job_name(request.path_params["id"])
        try:
            job = await service().cancel(name)
        except AccoladeError as exc:
            return console.error_page(request, exc)
        done = urlencode(messages.signed(request, flash=f"{name} {job.state}"))
        return RedirectResponse(f"{request.scope['root_path']}/backfills?{done}", status_code=303)

    r = console.route
    return [
        r("/achievements/preview", preview, Permission.ADMIN, methods=["POST"]),
        r("/backfills", page, Permission.ADMIN),
        r("/backfills/{id}/cancel", cancel, Permission.ADMIN, methods=["POST"]),
    ]
