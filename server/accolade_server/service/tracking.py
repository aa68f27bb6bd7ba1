"""TrackEvent(s) and GetProgress: events in, exact progress and awards out."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from accolade_server.config import Settings
from accolade_server.domain.errors import AccoladeError, InvalidArgument, NotFound
from accolade_server.domain.model import AwardRecord, AwardSource
from accolade_server.domain.validation import EVENT_TYPE, check_slug
from accolade_server.metrics import Metrics
from accolade_server.rules import engine
from accolade_server.rules.progress import ProgressView, Status, view
from accolade_server.service import ledger
from accolade_server.service.rulecache import RuleCache
from accolade_server.store.repository import Repository
from accolade_server.store.uow import UnitOfWork

log = structlog.get_logger("accolade.tracking")

MAX_BATCH = 1000
MAX_ID = 128
MAX_FUTURE = timedelta(minutes=5)
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]+$")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class EventInput:
    event_id: str
    user_id: str
    type: str
    properties: dict[str, Any]
    occurred_at: datetime | None


@dataclass(frozen=True, slots=True)
class TrackResult:
    duplicate: bool
    tracked: bool
    awards: list[AwardRecord] = field(default_factory=list)
    progress: list[ProgressView] = field(default_factory=list)


def check_id(value: str, name: str) -> None:
    if not value:
        raise InvalidArgument("is required", field=name)
    if len(value) > MAX_ID or not _PRINTABLE.match(value):
        raise InvalidArgument(
            f"must be 1-{MAX_ID} characters without control characters", field=name
        )


def _view_to_json(v: ProgressView) -> dict[str, Any]:
    return {
        "achievement_id": v.achievement_id,
        "status": v.status.value,
        "current": v.current,
        "target": v.target,
        "percent": v.percent,
        "tier": v.tier,
        "earned_time": v.earned_time.isoformat() if v.earned_time else None,
        "title": v.title,
        "description": v.description,
        "icon_url": v.icon_url,
        "category": v.category,
        "hidden": v.hidden,
    }


def _view_from_json(d: dict[str, Any]) -> ProgressView:
    earned = d["earned_time"]
    return ProgressView(
        **{
            **d,
            "status": Status(d["status"]),
            "earned_time": datetime.fromisoformat(earned) if earned else None,
        }
    )


class TrackingService:
    def __init__(
        self,
        uow: UnitOfWork,
        settings: Settings,
        rules: RuleCache,
        *,
        clock: Callable[[], datetime] = _now,
        metrics: Metrics | None = None,
    ) -> None:
        self.uow = uow
        self.settings = settings
        self.rules = rules
        self.clock = clock
        self.metrics = metrics or Metrics()

    def validate(self, item: EventInput, now: datetime, prefix: str = "") -> engine.Event:
        check_id(item.event_id, f"{prefix}event_id")
        check_id(item.user_id, f"{prefix}user_id")
        if not item.type:
            raise InvalidArgument("is required", field=f"{prefix}type")
        if not EVENT_TYPE.match(item.type):
            raise InvalidArgument(
                "must be 1-128 characters of letters, digits and _ . : -", field=f"{prefix}type"
            )
        occurred = item.occurred_at or now
        if occurred > now + MAX_FUTURE:
            raise InvalidArgument(
                f"is {occurred.isoformat()}, more than {int(MAX_FUTURE.total_seconds() // 60)} "
                "minutes in the future",
                field=f"{prefix}occurred_at",
            )
        return engine.Event(item.event_id, item.user_id, item.type, item.properties, occurred)

    async def track(self, item: EventInput) -> TrackResult:
        result = (await self.track_many([item], prefix=""))[0]
        if isinstance(result, AccoladeError):
            raise result
        return result

    async def track_many(
        self, items: Sequence[EventInput | AccoladeError], *, prefix: str | None = None
    ) -> list[TrackResult | AccoladeError]:
        """One result per item, in order; an invalid item fails alone.

        Items that already failed to convert are passed in as their error and returned as is.
        """
        if len(items) > MAX_BATCH:
            raise InvalidArgument(f"at most {MAX_BATCH} events per call", field="events")
        now = self.clock()
        results: list[TrackResult | AccoladeError | None] = [None] * len(items)
        valid: list[tuple[int, engine.Event]] = []
        for i, item in enumerate(items):
            if isinstance(item, AccoladeError):
                results[i] = item
                self.metrics.events.labels("invalid").inc()
                continue
            try:
                valid.append(
                    (i, self.validate(item, now, f"events[{i}]." if prefix is None else prefix))
                )
            except AccoladeError as exc:
                results[i] = exc
                self.metrics.events.labels("invalid").inc()
        if valid:
            try:
                outcomes = await self._transaction([ev for _, ev in valid], now)
            except AccoladeError:
                raise
            except Exception:
                if len(valid) == 1:
                    raise
                # Something in the batch failed: retry each event alone so one bad event
                # cannot sink the others.
                log.warning("batch failed; retrying events one by one", size=len(valid))
                outcomes = []
                for _, ev in valid:
                    try:
                        outcomes.extend(await self._transaction([ev], now))
                    except AccoladeError as exc:
                        outcomes.append(exc)
            for (i, _), outcome in zip(valid, outcomes, strict=True):
                results[i] = outcome
        return [r for r in results if r is not None]

    async def _transaction(
        self, batch: Sequence[engine.Event], now: datetime
    ) -> list[TrackResult | AccoladeError]:
        self.metrics.batch_size.observe(len(batch))
        async with self.uow.transaction() as repo:
            rules = await self.rules.get(repo)
            await repo.lock_users((ev.user_id for ev in batch), now)
            results = [await self._one(repo, rules, ev, now) for ev in batch]
        for r in results:
            outcome = "duplicate" if r.duplicate else "tracked" if r.tracked else "ignored"
            self.metrics.events.labels(outcome).inc()
        return list(results)

    async def _one(
        self, repo: Repository, rules: engine.RuleSet, ev: engine.Event, now: datetime
    ) -> TrackResult:
        tracked = self.settings.tracks(ev.type)
        inserted = await repo.insert_event(
            event_id=ev.event_id,
            user_id=ev.user_id,
            type=ev.type,
            properties=ev.properties,
            occurred_at=ev.occurred_at,
            received_at=now,
            tracked=tracked,
        )
        if not inserted:
            return await self._replay(repo, ev.event_id)
        if not tracked:
            return TrackResult(duplicate=False, tracked=False)
        matched = engine.match(ev, rules)
        for err in matched.errors:
            self.metrics.condition_errors.labels(err.achievement_id).inc()
            log.info(
                "condition did not apply",
                achievement_id=err.achievement_id,
                event_id=ev.event_id,
                error=err.message,
            )
        affected = rules.affected(matched)
        if not affected:
            return TrackResult(duplicate=False, tracked=True)
        holdings = await repo.holdings(ev.user_id)
        keys = [
            (c.achievement_id, c.distinct_key)
            for c in matched.contributions
            if c.distinct_key is not None
        ]
        state = engine.UserState(
            progress=await repo.load_progress(ev.user_id, affected),
            held=frozenset(h.achievement_id for h in holdings),
            distinct_seen=await repo.distinct_seen(ev.user_id, keys),
        )
        outcome = engine.apply(
            matched, state, rules, awards_enabled=self.settings.enable_achievements
        )
        await repo.save_progress(ev.user_id, outcome.progress, now)
        await repo.insert_distinct(ev.user_id, outcome.distinct_new)
        records = await ledger.record_awards(
            repo,
            ev.user_id,
            outcome.awards,
            holdings,
            source=AwardSource.RULE,
            now=now,
            event_id=ev.event_id,
        )
        states = {**state.progress, **outcome.progress}
        changed = [*outcome.progress, *(r.achievement_id for r in records)]
        views = ledger.views_for(rules, changed, states, holdings)
        await repo.set_event_outcome(
            ev.event_id,
            {"awards": [r.cursor for r in records], "progress": [_view_to_json(v) for v in views]},
        )
        return TrackResult(duplicate=False, tracked=True, awards=records, progress=views)

    async def _replay(self, repo: Repository, event_id: str) -> TrackResult:
        """The first outcome of an event id seen before."""
        tracked, outcome = await repo.event_outcome(event_id)
        if not outcome:
            return TrackResult(duplicate=True, tracked=tracked)
        return TrackResult(
            duplicate=True,
            tracked=tracked,
            awards=await repo.awards_by_cursor(outcome["awards"]),
            progress=[_view_from_json(v) for v in outcome["progress"]],
        )

    async def progress(
        self, user_id: str, achievement_ids: Sequence[str], category: str
    ) -> tuple[list[ProgressView], int]:
        """The user's progress on every visible achievement, and their total points."""
        check_id(user_id, "user_id")
        for i, aid in enumerate(achievement_ids):
            check_slug(aid, f"achievement_ids[{i}]")
        async with self.uow.transaction() as repo:
            rules = await self.rules.get(repo)
            holdings = await repo.holdings(user_id)
            held_ids = {h.achievement_id for h in holdings}
            wanted = set(achievement_ids) or set(rules.by_id) | held_ids
            compiled: dict[str, tuple[Any, Sequence[engine.Level]]] = {
                aid: (rules.by_id[aid].achievement, rules.by_id[aid].levels)
                for aid in wanted
                if aid in rules.by_id
            }
            missing = sorted(wanted - set(compiled))
            found = await repo.get_achievements(missing)
            for i, aid in enumerate(achievement_ids):
                if aid not in compiled and aid not in found:
                    raise NotFound(f"achievement {aid!r} not found", field=f"achievement_ids[{i}]")
            for aid, a in found.items():
                compiled[aid] = (
                    a,
                    engine.levels_of(
                        a, self.settings.badge_level_threshold, self.settings.points_per_badge
                    ),
                )
            states = await repo.load_progress(user_id, compiled)
            points = await repo.points(user_id)
        views = [
            view(
                a,
                levels,
                states.get(aid),
                [h for h in holdings if h.achievement_id == aid],
                held_ids,
            )
            for aid, (a, levels) in sorted(compiled.items())
            if not category or a.category == category
        ]
        return views, points
