"""The Insights page (trends as server-rendered SVG charts with a table beside each, the
rarest badges, stuck funnels), stats on the achievement page, explanations on the user page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from accolade_server.console.context import Console
from accolade_server.console.security import ConsoleRoute, Permission, Session
from accolade_server.domain.errors import AccoladeError
from accolade_server.service.explain import Explanation
from accolade_server.service.insights import AchievementStats, Interval, Metric, Order, Series

#: Ranges the page offers, in days.
RANGES = (7, 30, 90)
METRICS = {
    "awards": (Metric.AWARDS, "Awards per day"),
    "events": (Metric.EVENTS, "Events per day"),
    "active_users": (Metric.ACTIVE_USERS, "Active users per day"),
    "points": (Metric.POINTS, "Points awarded per day"),
    "redemptions": (Metric.REDEMPTIONS, "Redemptions per day"),
}
WIDTH, HEIGHT, PAD = 640, 200, 30
LISTED = 10


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # the bucket, e.g. 2026-12-01
    value: float


@dataclass(frozen=True, slots=True)
class Chart:
    """One series as bars; `rows` are the same numbers for the table."""

    id: str
    title: str
    description: str
    bars: list[Bar]
    top: float
    width: int = WIDTH
    height: int = HEIGHT
    pad: int = PAD


def chart(id: str, title: str, series: list[Series]) -> Chart:
    """The series summed bucket by bucket (events: over their types), scaled to the box."""
    if series:
        times = [p.start_time for p in series[0].points]
        values = [sum(s.points[i].value for s in series) for i in range(len(times))]
    else:
        times, values = [], []
    top = max(values, default=0.0) or 1.0
    step = (WIDTH - PAD) / max(len(values), 1)
    bars = []
    for i, (t, v) in enumerate(zip(times, values, strict=True)):
        h = (HEIGHT - PAD) * v / top
        bars.append(
            Bar(PAD + i * step, HEIGHT - PAD - h, max(step - 1, 1), h, t.strftime("%Y-%m-%d"), v)
        )
    total = sum(values)
    peak = max(bars, key=lambda b: b.value, default=None)
    description = f"{len(bars)} days, {total:g} in all" + (
        f"; most on {peak.label} ({peak.value:g})" if peak and peak.value else ""
    )
    return Chart(id, title, description, bars, top)


def stuck(stats: list[AchievementStats]) -> list[AchievementStats]:
    """Achievements of several levels whose weakest step converts least, with starters."""
    found = [s for s in stats if s.stuck_tier and s.started]
    return sorted(found, key=lambda s: (s.stuck_percent, s.achievement_id))[:LISTED]


def failing(stats: list[AchievementStats]) -> list[AchievementStats]:
    """Achievements whose condition failed on events, most errors first."""
    found = [s for s in stats if s.condition_errors]
    return sorted(found, key=lambda s: (-s.condition_errors, s.achievement_id))[:LISTED]


async def achievement_stats(console: Console, achievement_id: str) -> AchievementStats | None:
    """The stats shown on an achievement's page (its definition is shown there already)."""
    if console.services.insights is None:
        return None
    return await console.services.insights.stats(achievement_id)


async def explanation(
    console: Console, session: Session | None, user_id: str, achievement_id: str
) -> dict[str, Explanation | str | None]:
    """The user page's explanation (or why there is none); hidden achievements only for
    admin sessions."""
    if console.services.explain is None or not achievement_id:
        return {}
    admin = session is not None and session.can_write
    try:
        found = await console.services.explain.explain(
            user_id, achievement_id, include_hidden=admin
        )
    except AccoladeError as exc:
        return {"explain_error": str(exc)}
    return {"explanation": found}


def routes(console: Console) -> list[ConsoleRoute]:
    services = console.services

    async def page(request: Request, session: Session | None) -> Response:
        assert services.insights is not None
        admin = session is not None and session.can_write
        try:
            days = int(request.query_params.get("days", "30"))
        except ValueError:
            days = 30
        days = days if days in RANGES else 30
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = today - timedelta(days=days - 1)
        charts = []
        try:
            for key, (metric, title) in METRICS.items():
                series = await services.insights.trends(metric, Interval.DAY, start, None)
                charts.append(chart(f"chart-{key}", title, series))
            rare, _ = await services.insights.list_stats(Order.RARITY, 1000, include_hidden=admin)
        except AccoladeError as exc:
            return console.error_page(request, exc)
        held = [s for s in rare if s.holders]
        return console.render.page(
            request,
            "insights.html",
            {
                "days": days,
                "ranges": RANGES,
                "charts": charts,
                "rarest": held[:LISTED],
                "never": [s for s in rare if not s.holders][:LISTED],
                "stuck": stuck(rare),
                "failing": failing(rare),
                "active_days": services.settings.analytics_active_days,
            },
        )

    return [console.route("/insights", page, Permission.READ)]
