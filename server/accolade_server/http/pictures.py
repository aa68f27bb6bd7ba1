"""Badge and progress pictures (SVG) and the public profile page, from Jinja2 templates.

Every value reaches the templates autoescaped; the SVGs hold no script, no link and no
external reference (an achievement's `icon_url` is not fetched: the emblem is drawn), so
they are safe in an `<img>`. A hidden achievement is not revealed: its design badge and the
pictures of a user who has not earned it are 404, as for an id that does not exist, and the
profile page leaves hidden achievements out altogether. Users listed in
`private_profile_users` get 404 on every route here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from jinja2 import Environment, PackageLoader
from starlette.requests import Request
from starlette.responses import Response

from accolade_server.config import Settings
from accolade_server.domain.errors import NotFound
from accolade_server.domain.model import Achievement
from accolade_server.domain.points import Balance
from accolade_server.http.permissions import error_response
from accolade_server.rules.progress import ProgressView, Status
from accolade_server.service.achievements import AchievementService
from accolade_server.service.tracking import TrackingService
from accolade_server.service.users import UserService

SVG = "image/svg+xml"
#: Fill colours of the usual tier names (the level names of `badge_level_threshold` too).
TIER_COLOURS = {
    "bronze": "#b0702f",
    "silver": "#8a96a3",
    "gold": "#c99a06",
    "platinum": "#4e8aa3",
    "diamond": "#2f9fc4",
}
EARNED = "#3b6ee8"  # an earned badge whose tier has no colour of its own
LOCKED = "#9aa0a6"
NO_SCRIPT = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"

_templates = Environment(
    loader=PackageLoader("accolade_server.http", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_badge = _templates.get_template("badge.svg.j2")
_progress = _templates.get_template("progress.svg.j2")
_profile = _templates.get_template("profile.html.j2")


def tier_colour(tier: str) -> str:
    return TIER_COLOURS.get(tier.lower(), EARNED)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _number(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


@dataclass(frozen=True, slots=True)
class Look:
    """What a picture shows of one achievement (for one user, or as designed)."""

    title: str
    state: str  # "locked", "in_progress" or "earned"
    tier: str = ""  # the highest tier earned
    percent: float = 0.0  # toward the next level (100: all earned)
    remaining: float = 0.0  # to the next level
    next_tier: str = ""


def badge_svg(look: Look) -> str:
    if look.state == "earned":
        fill, caption = tier_colour(look.tier), (look.tier or "earned").upper()
    elif look.state == "in_progress":
        fill, caption = LOCKED, f"{_number(look.percent)}%"
    else:
        fill, caption = LOCKED, "LOCKED"
    title = _short(look.title, 20)
    return _badge.render(
        label=f"{look.title}: {caption.lower()}",
        state=look.state,
        fill=fill,
        ring=tier_colour(look.next_tier) if look.next_tier else EARNED,
        ring_length=round(351.86 * look.percent / 100, 2),  # 2πr, r = 56
        initial=(look.title[:1] or "?").upper(),
        title=title,
        caption=caption,
        caption_colour="#4b5563" if look.state != "earned" else "#1f2937",
    )


def progress_caption(look: Look) -> str:
    if look.state == "locked":
        return "Locked: earn the prerequisites first"
    if look.state == "earned" and look.percent >= 100:
        return f"Earned{f' · {look.tier}' if look.tier else ''}"
    more = f"{_number(look.remaining)} more to go"
    return f"{more} · next: {look.next_tier}" if look.next_tier else more


def progress_svg(look: Look) -> str:
    percent = max(0.0, min(100.0, look.percent))
    return _progress.render(
        label=f"{look.title}: {_number(percent)}%",
        title=_short(look.title, 32),
        percent_text=f"{_number(percent)}%",
        bar_width=round(304 * percent / 100, 2),
        fill=LOCKED if look.state == "locked" else tier_colour(look.next_tier or look.tier),
        caption=progress_caption(look),
    )


def user_look(view: ProgressView) -> Look:
    """`view` as a picture."""
    if view.status is Status.LOCKED:
        return Look(view.title, "locked")
    remaining = max(0.0, view.target - view.current)
    next_tier = view.next_tier if view.percent < 100 else ""
    state = "earned" if view.status is Status.UNLOCKED else "in_progress"
    return Look(view.title, state, view.tier, view.percent, remaining, next_tier)


def design_look(a: Achievement, tier: str) -> Look:
    """The badge as designed: in its (first, or asked) tier's colour. A hidden achievement
    is not shown to anyone, like an id that does not exist."""
    if a.hidden:
        raise NotFound(f"achievement {a.id!r} not found")
    names = [t.name for t in a.tiers]
    if tier and tier not in names:
        raise NotFound(f"achievement {a.id!r} has no tier {tier!r}", field="tier")
    return Look(a.title, "earned", tier or (names[0] if names else ""), 100.0)


class Pictures:
    """The routes' endpoints, over the same services as the API."""

    def __init__(
        self,
        settings: Settings,
        achievements: AchievementService,
        tracking: TrackingService,
        users: UserService,
    ) -> None:
        self.settings = settings
        self.achievements = achievements
        self.tracking = tracking
        self.users = users
        self.private = frozenset(settings.private_profile_users)

    def _cache(self) -> str:
        return "public, max-age=60" if self.settings.public_profiles else "private, max-age=60"

    def _picture(self, request: Request, body: str, media_type: str) -> Response:
        etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:20] + '"'
        headers = {
            "ETag": etag,
            "Cache-Control": self._cache(),
            "Content-Security-Policy": NO_SCRIPT,
            "X-Content-Type-Options": "nosniff",
        }
        if not self.settings.public_profiles:
            headers["Vary"] = "Authorization"
        wanted = request.headers.get("if-none-match", "")
        if etag in (w.strip() for w in wanted.split(",")) or wanted.strip() == "*":
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=media_type, headers=headers)

    def _user(self, request: Request) -> str:
        user_id = str(request.path_params["user_id"])
        if user_id in self.private:
            raise NotFound(f"no public profile for user {user_id!r}")
        return user_id

    async def _view(self, user_id: str, achievement_id: str) -> tuple[ProgressView, Look]:
        views, _ = await self.tracking.progress(user_id, [achievement_id], "")
        if not views:
            raise NotFound(f"achievement {achievement_id!r} not found", field="achievement_id")
        return views[0], user_look(views[0])

    async def badge(self, request: Request) -> Response:
        try:
            a = await self.achievements.get(str(request.path_params["achievement_id"]))
            body = badge_svg(design_look(a, request.query_params.get("tier", "")))
        except Exception as exc:
            return error_response(exc, request.url.path)
        return self._picture(request, body, SVG)

    async def user_badge(self, request: Request) -> Response:
        try:
            user_id = self._user(request)
            _, look = await self._view(user_id, str(request.path_params["achievement_id"]))
            body = badge_svg(look)
        except Exception as exc:
            return error_response(exc, request.url.path)
        return self._picture(request, body, SVG)

    async def user_progress(self, request: Request) -> Response:
        try:
            user_id = self._user(request)
            _, look = await self._view(user_id, str(request.path_params["achievement_id"]))
            body = progress_svg(look)
        except Exception as exc:
            return error_response(exc, request.url.path)
        return self._picture(request, body, SVG)

    async def profile(self, request: Request) -> Response:
        try:
            user_id = self._user(request)
            views, points = await self.tracking.progress(user_id, [], "")
            names = await self.users.display_names([user_id])
            body = profile_html(user_id, views, points, display_name=names.get(user_id, ""))
        except Exception as exc:
            return error_response(exc, request.url.path)
        return self._picture(request, body, "text/html; charset=utf-8")


def _date(when: datetime | None) -> tuple[str, str]:
    if when is None:
        return "", ""
    return when.strftime("%d %b %Y"), when.isoformat()


def profile_html(
    user_id: str, views: list[ProgressView], points: Balance, *, display_name: str = ""
) -> str:
    """The page: earned badges (tier, date), progress toward the next ones, lifetime and
    spendable points and the level.
    Hidden achievements are left out, earned or not. Titled with the user's display name
    when their profile has one, else with the id."""
    base = f"/v1/users/{quote(user_id, safe='')}"
    earned = []
    in_progress = []
    for v in views:
        if v.hidden:
            continue
        if v.status is Status.UNLOCKED:
            date, date_iso = _date(v.earned_time)
            earned.append(
                {
                    "title": v.title,
                    "tier": v.tier,
                    "date": date,
                    "date_iso": date_iso,
                    "image": f"{base}/badges/{quote(v.achievement_id, safe='')}.svg",
                }
            )
        started = v.status is Status.UNLOCKED or (v.status is Status.IN_PROGRESS and v.current > 0)
        if started and v.percent < 100:
            look = Look(v.title, "in_progress", v.tier, v.percent, max(0.0, v.target - v.current))
            in_progress.append(
                {
                    "title": v.title,
                    "percent": max(0.0, min(100.0, v.percent)),
                    "percent_text": f"{_number(v.percent)}%",
                    "fill": EARNED,
                    "caption": progress_caption(look),
                }
            )
    in_progress.sort(key=lambda p: -float(str(p["percent"])))
    return _profile.render(
        name=display_name or user_id,
        points=points.lifetime,
        spendable=points.spendable,
        level=points.level,
        earned=earned,
        in_progress=in_progress,
    )
