"""Analytics for product owners: per-achievement stats (rarity, funnel, time to earn) and
trends, from the counters the write path keeps (`store/insights.py`). Counts are exact."""

from __future__ import annotations

import base64
import enum
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from accolade_server.config import Settings
from accolade_server.domain.errors import InvalidArgument, NotFound
from accolade_server.domain.model import Achievement, AwardSource
from accolade_server.domain.validation import check_slug
from accolade_server.rules import engine
from accolade_server.store import insights_read as read
from accolade_server.store.insights import day_of, earn_upper, hour_of, week_of
from accolade_server.store.uow import UnitOfWork

#: Most buckets one GetTrends answer holds.
MAX_BUCKETS = 5000
#: How an award's source is counted in the stats (anything else: a grant, "manual").
_BY_SOURCE = {
    AwardSource.RULE.value: "rule",
    AwardSource.BACKFILL.value: "backfill",
    AwardSource.BACKFILL_NOTIFIED.value: "backfill",
}
MAX_PAGE = 1000
DEFAULT_PAGE = 100


def _now() -> datetime:
    return datetime.now(UTC)


class Metric(enum.StrEnum):
    AWARDS = "awards"
    EVENTS = "events"
    ACTIVE_USERS = "active_users"
    POINTS = "points"
    #: Redemption entries of the points ledger (a later refund does not remove one).
    REDEMPTIONS = "redemptions"


class Interval(enum.StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"


class Order(enum.StrEnum):
    RARITY = "rarity"  # rarest first
    COMPLETION = "completion"  # lowest completion first ("stuck")


@dataclass(frozen=True, slots=True)
class LevelStats:
    tier: str
    threshold: float
    holders: int
    rarity_percent: float
    #: Holders of this level among holders of the previous one (the first: among starters).
    conversion_percent: float
    rule_awards: int
    manual_awards: int
    revocations: int
    #: Made by backfills from stored history (AwardSource.BACKFILL*), not by a live event.
    backfill_awards: int
    #: Seconds from first progress to the rule award (upper bound of a bucket 19 % wide);
    #: None when no rule award of the level falls in the range.
    median_seconds: float | None
    p90_seconds: float | None


@dataclass(frozen=True, slots=True)
class AchievementStats:
    achievement_id: str
    title: str
    hidden: bool
    active_users: int
    started: int
    #: Holders of any level (of the first) and of every level (of the last).
    holders: int
    completed: int
    rarity_percent: float
    completion_percent: float
    levels: list[LevelStats]
    rule_awards: int
    manual_awards: int
    revocations: int
    backfill_awards: int
    #: Events the condition (or the aggregate's field) failed on, on every replica since
    #: the counters exist; the newest error of a user not erased since, and when.
    condition_errors: int
    last_condition_error: str
    last_condition_error_time: datetime | None
    #: The lowest level-to-level conversion (the funnel's weakest step); "" for one level.
    stuck_tier: str = ""
    stuck_percent: float = 100.0


@dataclass(frozen=True, slots=True)
class Point:
    start_time: datetime
    value: float


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    points: list[Point] = field(default_factory=list)


def percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole > 0 else 0.0


def percentile(hist: Counter[int], q: float) -> float | None:
    total = sum(hist.values())
    if not total:
        return None
    rank, seen = q * total, 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return round(earn_upper(bucket), 1)
    return round(earn_upper(max(hist)), 1)


def check_range(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end <= start:
        raise InvalidArgument("must be after start_time", field="end_time")


class InsightsService:
    def __init__(
        self,
        uow: UnitOfWork,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.uow = uow
        self.settings = settings
        self.clock = clock

    def active_since(self) -> datetime | None:
        """The first UTC day an active user's last event may fall on (None: any day)."""
        days = self.settings.analytics_active_days
        return day_of(self.clock()) - timedelta(days=days - 1) if days else None

    async def stats(
        self,
        achievement_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        include_hidden: bool = True,
    ) -> AchievementStats:
        check_slug(achievement_id, "achievement_id")
        check_range(start, end)
        async with self.uow.transaction() as repo:
            a = await repo.get_achievement(achievement_id)
            if a is None or (a.hidden and not include_hidden):
                raise NotFound(f"achievement {achievement_id!r} not found", field="achievement_id")
            found = await self._stats(repo.conn, [a], start, end)
        return found[0]

    async def list_stats(
        self,
        order: Order = Order.RARITY,
        page_size: int = 0,
        page_token: str = "",
        *,
        include_hidden: bool = True,
    ) -> tuple[list[AchievementStats], str]:
        if page_size < 0:
            raise InvalidArgument("must not be negative", field="page_size")
        size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
        offset = _offset(page_token)
        async with self.uow.transaction() as repo:
            every = [a for a in await repo.all_achievements() if include_hidden or not a.hidden]
            stats = await self._stats(repo.conn, every, None, None)
        if order is Order.RARITY:
            stats.sort(key=lambda s: (s.rarity_percent, s.achievement_id))
        else:
            stats.sort(key=lambda s: (s.completion_percent, s.achievement_id))
        page = stats[offset : offset + size]
        more = offset + size < len(stats)
        return page, _token(offset + size) if more else ""

    async def _stats(
        self,
        conn: AsyncConnection,
        achievements: Sequence[Achievement],
        start: datetime | None,
        end: datetime | None,
    ) -> list[AchievementStats]:
        ids = [a.id for a in achievements] if len(achievements) <= 1 else None
        aligned = all(t is None or t == day_of(t) for t in (start, end))
        period = "d" if aligned else "h"
        s = (start if aligned else hour_of(start)) if start else None
        e = end
        if e is not None and not aligned and e != hour_of(e):
            e = hour_of(e) + timedelta(hours=1)
        ds = day_of(start) if start else None
        de = (day_of(end) + timedelta(days=0 if end == day_of(end) else 1)) if end else None
        found = await read.stats_counts(conn, ids, self.active_since(), (period, s, e), (ds, de))
        totals, active = found.totals, found.active
        counts: dict[tuple[str, str, str], int] = Counter()  # (aid, tier, kind)
        for m, aid, tier, key, n, _ in found.levels:
            kind = "revocation" if m == "revocation" else _BY_SOURCE.get(key, "manual")
            counts[aid, tier, kind] += n
        earn: dict[tuple[str, str], Counter[int]] = defaultdict(Counter)
        for _, aid, tier, key, n, _ in found.earn:
            earn[aid, tier][int(key)] += n
        failing = [a.id for a in achievements if totals[a.id, "errors", ""]]
        newest = await read.last_errors(conn, failing)
        return [self._one(a, totals, active, counts, earn, newest) for a in achievements]

    def _one(
        self,
        a: Achievement,
        totals: Counter[tuple[str, str, str]],
        active: int,
        counts: dict[tuple[str, str, str], int],
        earn: dict[tuple[str, str], Counter[int]],
        newest: dict[str, tuple[str, datetime]],
    ) -> AchievementStats:
        levels = engine.levels_of(
            a, self.settings.badge_level_threshold, self.settings.points_per_badge
        )
        started = totals[a.id, "started", ""]
        out: list[LevelStats] = []
        previous = started
        for level in levels:
            holders = totals[a.id, "holders", level.name]
            hist = earn.get((a.id, level.name), Counter())
            out.append(
                LevelStats(
                    tier=level.name,
                    threshold=level.threshold,
                    holders=holders,
                    rarity_percent=percent(holders, active),
                    conversion_percent=percent(holders, previous),
                    rule_awards=counts.get((a.id, level.name, "rule"), 0),
                    manual_awards=counts.get((a.id, level.name, "manual"), 0),
                    revocations=counts.get((a.id, level.name, "revocation"), 0),
                    backfill_awards=counts.get((a.id, level.name, "backfill"), 0),
                    median_seconds=percentile(hist, 0.5),
                    p90_seconds=percentile(hist, 0.9),
                )
            )
            previous = holders
        first = out[0].holders if out else 0
        last = out[-1].holders if out else 0
        steps = out[1:]
        stuck = min(steps, key=lambda lv: lv.conversion_percent) if steps else None
        found = newest.get(a.id)
        message, when = found if found else ("", None)
        return AchievementStats(
            achievement_id=a.id,
            title=a.title,
            hidden=a.hidden,
            active_users=active,
            started=started,
            holders=first,
            completed=last,
            rarity_percent=percent(first, active),
            completion_percent=percent(last, started),
            levels=out,
            rule_awards=sum(lv.rule_awards for lv in out),
            manual_awards=sum(lv.manual_awards for lv in out),
            revocations=sum(lv.revocations for lv in out),
            backfill_awards=sum(lv.backfill_awards for lv in out),
            condition_errors=totals[a.id, "errors", ""],
            last_condition_error=message,
            last_condition_error_time=when,
            stuck_tier=stuck.tier if stuck else "",
            stuck_percent=stuck.conversion_percent if stuck else 100.0,
        )

    async def trends(
        self,
        metric: Metric,
        interval: Interval,
        start: datetime | None,
        end: datetime | None,
        achievement_ids: Sequence[str] = (),
        event_types: Sequence[str] = (),
    ) -> list[Series]:
        """Zero-filled series, one per achievement asked for (awards, points), per event type
        (events) or one; buckets start at whole hours, UTC days, or Mondays (UTC)."""
        for i, aid in enumerate(achievement_ids):
            check_slug(aid, f"achievement_ids[{i}]")
        if start is None:
            raise InvalidArgument("is required", field="start_time")
        end = end or self.clock()
        check_range(start, end)
        floor = {Interval.HOUR: hour_of, Interval.DAY: day_of, Interval.WEEK: week_of}[interval]
        step = {
            Interval.HOUR: timedelta(hours=1),
            Interval.DAY: timedelta(days=1),
            Interval.WEEK: timedelta(weeks=1),
        }[interval]
        first = floor(start)
        if (end - first) / step > MAX_BUCKETS:
            raise InvalidArgument(
                f"the range holds more than {MAX_BUCKETS} {interval.value}s; "
                "shorten it or choose a longer interval",
                field="end_time",
            )
        buckets = []
        b = first
        while b < end:
            buckets.append(b)
            b += step
        period = {Interval.HOUR: "h", Interval.DAY: "d", Interval.WEEK: "d"}[interval]
        by, name = "", ""
        if metric is Metric.EVENTS:
            by, name = "key", "event"
        elif metric is Metric.ACTIVE_USERS:
            name = "active"
            period = {Interval.HOUR: "h", Interval.DAY: "d", Interval.WEEK: "w"}[interval]
        elif metric is Metric.REDEMPTIONS:
            name = "redemption"  # the write path counts every log entry kind under its name
        else:
            name = "award"
            by = "achievement_id" if achievement_ids else ""
        async with self.uow.transaction() as repo:
            rows = await read.series(
                repo.conn,
                name,
                period,
                first,
                end,
                by=by,
                achievement_ids=achievement_ids if metric in (Metric.AWARDS, Metric.POINTS) else (),
                keys=event_types if metric is Metric.EVENTS else (),
            )
        values: dict[str, Counter[datetime]] = defaultdict(Counter)
        labels = list(dict.fromkeys(achievement_ids)) if by == "achievement_id" else []
        labels += list(event_types) if metric is Metric.EVENTS else []
        for bucket, label, n, amount in rows:
            values[label][floor(bucket)] += amount if metric is Metric.POINTS else n
        if not by:
            labels = [""]
        labels += sorted(set(values) - set(labels))
        return [
            Series(label, [Point(t, float(values[label][t])) for t in buckets]) for label in labels
        ]


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o{offset}".encode()).decode()


def _offset(token: str) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if not text.startswith("o"):
            raise ValueError(text)
        return max(0, int(text[1:]))
    except ValueError:
        raise InvalidArgument("is not a token from an earlier answer", field="page_token") from None
