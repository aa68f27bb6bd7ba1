"""A user's progress, awards and points; grants and revocations with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from accolade_server.console import insights, messages
from accolade_server.console import points as points_page
from accolade_server.console.achievements import all_achievements
from accolade_server.console.context import Console
from accolade_server.console.security import ConsoleRoute, Permission, Session
from accolade_server.domain.errors import AccoladeError, InvalidArgument
from accolade_server.domain.model import Achievement, Aggregate
from accolade_server.rules import engine
from accolade_server.rules.progress import ProgressView

HISTORY = 100


@dataclass(frozen=True, slots=True)
class Bar:
    view: ProgressView
    next_tier: str  # the level the bar moves towards ("" for a single level or when done)
    done: bool
    unit: str  # what the numbers count, when it is not plain events


def _bars(
    views: list[ProgressView], by_id: dict[str, Achievement], thresholds: list[float], ppb: int
) -> list[Bar]:
    bars = []
    for v in views:
        a = by_id.get(v.achievement_id)
        levels = engine.levels_of(a, thresholds, ppb) if a is not None else ()
        names = [level.name for level in levels]
        earned = names.index(v.tier) + 1 if v.tier in names else (1 if v.earned_time else 0)
        done = bool(levels) and earned >= len(levels)
        unit = ""
        if a is not None and a.rule.aggregate is Aggregate.STREAK_DAYS:
            unit = "days in a row (best streak)"
        elif a is not None and a.rule.field:
            unit = f"{a.rule.aggregate.value} of {a.rule.field}"
        bars.append(Bar(v, "" if done or not levels else names[earned], done, unit))
    return bars


def routes(console: Console) -> list[ConsoleRoute]:
    render = console.render
    services = console.services
    settings = services.settings

    async def progress_context(user_id: str) -> dict[str, object]:
        views, points = await services.tracking.progress(user_id, [], "")
        by_id = {a.id: a for a in await all_achievements(console)}
        bars = _bars(views, by_id, settings.badge_level_threshold, settings.points_per_badge)
        history, _ = await services.awards.history([user_id], [], limit=HISTORY)
        names = await services.users.display_names([user_id])
        return {
            "user_id": user_id,
            "display_name": names.get(user_id, ""),
            "bars": bars,
            "points": points,
            "history": history,
            "achievements": sorted(by_id.values(), key=lambda a: a.id),
            **await points_page.user_context(console, user_id),
        }

    async def page(request: Request, session: Session | None) -> Response:
        user_id = request.query_params.get("user_id", "").strip()
        context: dict[str, object] = {
            "user_id": user_id,
            "flash": messages.read(request, "flash"),
            "error": messages.read(request, "error"),
            "explain": request.query_params.get("explain", "").strip(),
            "explanation": None,
            "explain_error": "",
        }
        if user_id:
            try:
                context.update(await progress_context(user_id))
                context.update(
                    await insights.explanation(console, session, user_id, str(context["explain"]))
                )
            except AccoladeError as exc:
                context["error"] = str(exc)
                context["user_id"] = ""
        return render.page(request, "users.html", context)

    async def progress(request: Request, session: Session | None) -> Response:
        """The live part of the user page, polled while it is open."""
        user_id = request.query_params.get("user_id", "").strip()
        try:
            context = await progress_context(user_id)
        except AccoladeError as exc:
            return console.error_page(request, exc)
        return render.page(request, "_user_live.html", context)

    def back(request: Request, user_id: str, **message: str) -> Response:
        query = urlencode({"user_id": user_id, **messages.signed(request, **message)})
        return RedirectResponse(f"{request.scope['root_path']}/users?{query}", status_code=303)

    async def change(request: Request, session: Session | None, *, grant: bool) -> Response:
        assert session is not None  # an ADMIN route
        form = await request.form()

        def text(name: str) -> str:
            value = form.get(name, "")
            return value.strip() if isinstance(value, str) else ""

        user_id, achievement_id, tier, reason = (
            text("user_id"),
            text("achievement_id"),
            text("tier"),
            text("reason"),
        )
        try:
            if not reason:
                raise InvalidArgument("is required: say why, for the record", field="reason")
            if grant:
                award, held = await services.awards.grant(
                    user_id, achievement_id, tier, reason=reason, actor=session.actor
                )
                label = f"{achievement_id}{f' ({award.tier})' if award.tier else ''}"
                flash = f"{user_id} already held {label}" if held else f"Granted {label}"
            else:
                revoked = await services.awards.revoke(
                    user_id, achievement_id, tier, reason=reason, actor=session.actor
                )
                flash = (
                    f"Revoked {achievement_id} ({len(revoked)} level(s))"
                    if revoked
                    else f"{user_id} did not hold {achievement_id}"
                )
        except AccoladeError as exc:
            return back(request, user_id, error=str(exc))
        return back(request, user_id, flash=flash)

    async def grant(request: Request, session: Session | None) -> Response:
        return await change(request, session, grant=True)

    async def revoke(request: Request, session: Session | None) -> Response:
        return await change(request, session, grant=False)

    r = console.route
    return [
        r("/users", page, Permission.READ),
        r("/users/progress", progress, Permission.READ),
        r("/users/grant", grant, Permission.ADMIN, methods=["POST"]),
        r("/users/revoke", revoke, Permission.ADMIN, methods=["POST"]),
    ]
