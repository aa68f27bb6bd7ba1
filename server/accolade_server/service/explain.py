"""ExplainProgress: for one user and achievement, what each level needs and what is missing,
in the achievement's own terms ("6 more purchase events"). Reads only; the rule engine's
view (`rules/progress.py`) decides the status, so the explanation cannot disagree with it."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import UTC, datetime

from accolade_server.config import Settings
from accolade_server.domain.errors import NotFound
from accolade_server.domain.model import Achievement, Aggregate
from accolade_server.domain.validation import check_slug
from accolade_server.rules import engine
from accolade_server.rules.progress import Status, view
from accolade_server.service.rulecache import RuleCache
from accolade_server.service.tracking import check_id
from accolade_server.store import insights_read as read
from accolade_server.store import users as user_store
from accolade_server.store.port import Keys
from accolade_server.store.uow import UnitOfWork


def _now() -> datetime:
    return datetime.now(UTC)


class LevelState(enum.StrEnum):
    HELD = "held"
    #: The rule can still award it: `remaining` more is needed.
    OPEN = "open"
    #: Decided without being held (revoked, or reached while awards were off): the rule will
    #: not award it again; only a grant can.
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class LevelExplanation:
    tier: str
    threshold: float
    state: LevelState
    remaining: float
    earned_time: datetime | None
    summary: str


@dataclass(frozen=True, slots=True)
class Prerequisite:
    achievement_id: str
    held: bool


@dataclass(frozen=True, slots=True)
class Feed:
    event_type: str
    #: Whether the server tracks this type (option track_event_types).
    tracked: bool
    last_sent: datetime | None


@dataclass(frozen=True, slots=True)
class Explanation:
    achievement_id: str
    title: str
    status: Status
    aggregate: Aggregate
    field: str
    condition: str
    value: float
    #: The definition is enabled, and the server awards (option enable_achievements).
    enabled: bool
    awards_enabled: bool
    #: Whether now falls in the achievement's window, and the window.
    in_window: bool
    start_time: datetime | None
    end_time: datetime | None
    prerequisites: list[Prerequisite]
    feeds: list[Feed]
    levels: list[LevelExplanation]
    #: Condition errors on this user's events (the condition, or the aggregate's field,
    #: failed: the event did not count), the last one and when; and on anyone's events.
    condition_errors: int
    last_condition_error: str
    last_condition_error_time: datetime | None
    achievement_condition_errors: int
    #: Why the definition cannot run on this server; "" when it can.
    broken_reason: str
    #: The reasons, in order, in plain words.
    summary: list[str] = dc_field(default_factory=list)


def _number(x: float) -> str:
    return f"{x:g}"


def needs(a: Achievement, remaining: float, threshold: float) -> str:
    """What is missing, in the achievement's terms."""
    types = " or ".join(a.rule.event_types) or "event"
    agg = a.rule.aggregate
    if agg is Aggregate.COUNT:
        return f"{_number(remaining)} more {types} event{'s' if remaining != 1 else ''}"
    if agg is Aggregate.SUM:
        return f"{_number(remaining)} more {a.rule.field} (summed over {types} events)"
    if agg is Aggregate.MAX:
        return f"a {types} event with {a.rule.field} of at least {_number(threshold)}"
    if agg is Aggregate.DISTINCT:
        return f"{_number(remaining)} more distinct {a.rule.field} values in {types} events"
    return f"{_number(remaining)} more days in a row with a {types} event"


class ExplainService:
    def __init__(
        self,
        uow: UnitOfWork,
        settings: Settings,
        rules: RuleCache,
        *,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.uow = uow
        self.settings = settings
        self.rules = rules
        self.clock = clock

    async def explain(
        self, user_id: str, achievement_id: str, *, include_hidden: bool = True
    ) -> Explanation:
        check_id(user_id, "user_id")
        check_slug(achievement_id, "achievement_id")
        now = self.clock()
        async with self.uow.transaction() as repo:
            rules = await self.rules.get(repo)
            compiled = rules.by_id.get(achievement_id)
            a = compiled.achievement if compiled else await repo.get_achievement(achievement_id)
            if a is None or (a.hidden and not include_hidden):
                raise NotFound(f"achievement {achievement_id!r} not found", field="achievement_id")
            levels = (
                compiled.levels
                if compiled
                else engine.levels_of(
                    a, self.settings.badge_level_threshold, self.settings.points_per_badge
                )
            )
            holdings = await repo.holdings(user_id)
            snap = await repo.batch.read(Keys(progress=[(user_id, achievement_id)]))
            seen = await read.last_seen(repo.conn, user_id)
            failed = await read.user_errors(repo.conn, user_id, achievement_id)
            everyone = (await read.totals(repo.conn, [achievement_id]))[a.id, "errors", ""]
            zone = ""  # local days (STREAK_DAYS) in the user's zone when the profile names one
            if a.rule.aggregate is Aggregate.STREAK_DAYS:
                zone = (await user_store.time_zones(repo, [user_id])).get(user_id, "")
        state = snap.progress.get((user_id, achievement_id))
        held_ids = {h.achievement_id for h in holdings}
        mine = [h for h in holdings if h.achievement_id == achievement_id]
        v = view(a, levels, state, mine, held_ids, now=now, zone=zone)
        value = v.current if a.rule.event_types else (state.value if state else 0.0)
        by_tier = {h.tier: h for h in mine}
        decided = state.level if state else 0
        names = [lv.name for lv in levels]
        top_held = max((names.index(h.tier) for h in mine if h.tier in names), default=-1)
        out: list[LevelExplanation] = []
        for i, level in enumerate(levels):
            label = level.name or "the achievement"
            held = by_tier.get(level.name)
            if held is not None or i <= top_held:
                out.append(
                    LevelExplanation(
                        level.name,
                        level.threshold,
                        LevelState.HELD,
                        0.0,
                        held.earned_time if held else None,
                        f"{label}: held",
                    )
                )
            elif i < decided:
                out.append(
                    LevelExplanation(
                        level.name,
                        level.threshold,
                        LevelState.CLOSED,
                        0.0,
                        None,
                        f"{label}: revoked or reached while awards were off; the rule will "
                        "not award it again (only a grant can)",
                    )
                )
            else:
                left = max(0.0, level.threshold - value)
                if not a.rule.event_types:
                    missing = [p for p in a.prerequisites if p not in held_ids]
                    text = f"{label}: needs {', '.join(missing)}" if missing else f"{label}: met"
                else:
                    text = f"{label}: {_number(value)} of {_number(level.threshold)}; " + needs(
                        a, left, level.threshold
                    )
                out.append(
                    LevelExplanation(level.name, level.threshold, LevelState.OPEN, left, None, text)
                )
        prereqs = [Prerequisite(p, p in held_ids) for p in a.prerequisites]
        feeds = [Feed(t, self.settings.tracks(t), seen.get(t)) for t in a.rule.event_types]
        window = engine.in_window(a, now)
        broken_reason = rules.broken.get(a.id, (a, ""))[1]
        errors, last_error, last_error_time = failed if failed else (0, "", None)
        summary: list[str] = []
        if not a.enabled:
            summary.append("the achievement is disabled: no event counts towards it")
        if broken_reason:
            summary.append(f"the definition cannot run on this server: {broken_reason}")
        if not self.settings.enable_achievements:
            summary.append("awards are off on this server (option enable_achievements)")
        if not window:
            summary.append("now is outside the achievement's active window")
        missing = [p.achievement_id for p in prereqs if not p.held]
        if missing:
            summary.append(f"prerequisites not held: {', '.join(missing)}")
        for f in feeds:
            if not f.tracked:
                summary.append(f"event type {f.event_type!r} is not tracked by this server")
            elif f.last_sent is None:
                summary.append(f"no {f.event_type} event from this user yet")
        if errors:
            summary.append(
                f"its condition failed on {errors} of this user's events, which did not "
                f"count (last: {last_error})"
            )
        summary.extend(lv.summary for lv in out if lv.state is not LevelState.HELD)
        return Explanation(
            achievement_id=a.id,
            title=a.title,
            status=v.status,
            aggregate=a.rule.aggregate,
            field=a.rule.field,
            condition=a.rule.condition,
            value=value,
            enabled=a.enabled,
            awards_enabled=self.settings.enable_achievements,
            in_window=window,
            start_time=a.start_time,
            end_time=a.end_time,
            prerequisites=prereqs,
            feeds=feeds,
            levels=out,
            condition_errors=errors,
            last_condition_error=last_error,
            last_condition_error_time=last_error_time,
            achievement_condition_errors=everyone,
            broken_reason=broken_reason,
            summary=summary,
        )
