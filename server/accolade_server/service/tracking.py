"""TrackEvent(s) and GetProgress: events in, exact progress and awards out."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from accolade_server.config import Settings
from accolade_server.domain.errors import AccoladeError, InvalidArgument, NotFound, Unavailable
from accolade_server.domain.model import Aggregate, Holding
from accolade_server.domain.points import Balance, balance
from accolade_server.domain.state import Event
from accolade_server.domain.users import check_time_zone
from accolade_server.domain.validation import (
    EVENT_TYPE,
    PropertyStats,
    check_properties,
    check_slug,
)
from accolade_server.metrics import Metrics
from accolade_server.rules import engine
from accolade_server.rules.progress import ProgressView, view, visible
from accolade_server.service import batch as batch_
from accolade_server.service.batch import TrackResult
from accolade_server.service.batcher import MicroBatcher
from accolade_server.service.diagnostics import ConditionErrors
from accolade_server.service.pacing import Pace
from accolade_server.service.rulecache import RuleCache
from accolade_server.service.shapes import ShapeRecorder
from accolade_server.store import points as points_store
from accolade_server.store import users as user_store
from accolade_server.store.port import Keys
from accolade_server.store.repository import Repository
from accolade_server.store.uow import UnitOfWork, is_disconnect
from accolade_server.tracing import Tracing

log = structlog.get_logger("accolade.tracking")

MAX_BATCH = 1000
#: Times a batch runs again after losing a race for an event id (see batch.Raced); one of
#: them may be for a connection found dead (see uow.is_disconnect).
RACE_RETRIES = 3
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
    time_zone: str = ""
    #: Gathered while converting `properties` (rpc/convert.py); None: walk them to check.
    property_stats: PropertyStats | None = None


def check_id(value: str, name: str) -> None:
    if not value:
        raise InvalidArgument("is required", field=name)
    if len(value) > MAX_ID or not _PRINTABLE.match(value):
        raise InvalidArgument(
            f"must be 1-{MAX_ID} characters without control characters", field=name
        )


def untracked_reason(event_type: str, duplicate: bool) -> str:
    if duplicate:
        return (
            f"event type {event_type!r} was not in the server's track_event_types option "
            "when this event_id was first received"
        )
    return f"event type {event_type!r} is not in the server's track_event_types option"


class TrackingService:
    def __init__(
        self,
        uow: UnitOfWork,
        settings: Settings,
        rules: RuleCache,
        *,
        clock: Callable[[], datetime] = _now,
        metrics: Metrics | None = None,
        shapes: ShapeRecorder | None = None,
        conditions: ConditionErrors | None = None,
        tracing: Tracing | None = None,
        pace: Pace | None = None,
    ) -> None:
        self.uow = uow
        self.pace = pace  # told of live batches, so that backfills give way to them
        self.shapes = shapes or ShapeRecorder(uow, clock=clock)
        self.settings = settings
        self.rules = rules
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.conditions = conditions or ConditionErrors(self.metrics)
        self.batcher: MicroBatcher[Event, TrackResult | Exception] = MicroBatcher(
            self.commit,
            max_size=settings.batch_max_events,
            max_wait=settings.batch_max_wait_ms / 1000,
            concurrency=settings.batch_concurrency,
            metrics=self.metrics,
            tracing=tracing,
        )

    def validate(self, item: EventInput, now: datetime, prefix: str = "") -> Event:
        check_id(item.event_id, f"{prefix}event_id")
        check_id(item.user_id, f"{prefix}user_id")
        if not item.type:
            raise InvalidArgument("is required", field=f"{prefix}type")
        if not EVENT_TYPE.match(item.type):
            raise InvalidArgument(
                "must be 1-128 characters of letters, digits and _ . : -", field=f"{prefix}type"
            )
        if item.property_stats is None:
            self._check_properties(item.properties, f"{prefix}properties")
        else:
            item.property_stats.check(
                f"{prefix}properties",
                max_bytes=self.settings.max_properties_bytes,
                max_depth=self.settings.max_properties_depth,
                max_items=self.settings.max_property_list_items,
            )
        occurred = item.occurred_at or now
        if occurred > now + MAX_FUTURE:
            raise InvalidArgument(
                f"is {occurred.isoformat()}, more than {int(MAX_FUTURE.total_seconds() // 60)} "
                "minutes in the future",
                field=f"{prefix}occurred_at",
            )
        if item.time_zone:
            check_time_zone(item.time_zone, f"{prefix}time_zone")
        return Event(
            item.event_id,
            item.user_id,
            item.type,
            item.properties,
            occurred,
            time_zone=item.time_zone,
        )

    def _check_properties(self, properties: dict[str, Any], field: str) -> None:
        check_properties(
            properties,
            field,
            max_bytes=self.settings.max_properties_bytes,
            max_depth=self.settings.max_properties_depth,
            max_items=self.settings.max_property_list_items,
        )

    async def track(self, item: EventInput) -> TrackResult:
        """Record one event; concurrent calls share transactions (see MicroBatcher)."""
        try:
            event = self.validate(item, self.clock())
        except AccoladeError:
            self.metrics.events.labels("invalid").inc()
            raise
        result = await self.batcher.submit(event)
        if isinstance(result, Exception):
            raise result
        return result

    async def track_many(
        self, items: Sequence[EventInput | AccoladeError]
    ) -> list[TrackResult | Exception]:
        """One result per item, in order, from one transaction; an invalid item fails alone.

        Items that already failed to convert are passed in as their error and returned as is.
        """
        if len(items) > MAX_BATCH:
            raise InvalidArgument(f"at most {MAX_BATCH} events per call", field="events")
        now = self.clock()
        results: list[TrackResult | Exception | None] = [None] * len(items)
        valid: list[tuple[int, Event]] = []
        for i, item in enumerate(items):
            try:
                if isinstance(item, AccoladeError):
                    raise item
                valid.append((i, self.validate(item, now, f"events[{i}].")))
            except AccoladeError as exc:
                results[i] = exc
                self.metrics.events.labels("invalid").inc()
        if valid:
            outcomes = await self.commit([ev for _, ev in valid])
            for (i, _), outcome in zip(valid, outcomes, strict=True):
                results[i] = outcome
        return [r for r in results if r is not None]

    async def commit(self, batch: Sequence[Event]) -> list[TrackResult | Exception]:
        """Record a batch in one transaction; if that fails, each event in its own, so one
        bad event cannot sink the others. Unavailability fails the whole batch."""
        if self.pace is not None:
            self.pace.live()
        try:
            return list(await self._transaction(batch, self.clock()))
        except Unavailable:
            raise
        except Exception:
            if len(batch) == 1:
                raise
            log.warning("batch failed; retrying its events one by one", size=len(batch))
        outcomes: list[TrackResult | Exception] = []
        for event in batch:
            try:
                outcomes.extend(await self._transaction([event], self.clock()))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    async def _transaction(self, batch: Sequence[Event], now: datetime) -> list[TrackResult]:
        self.metrics.batch_size.observe(len(batch))
        # Matching is pure: done here, with the rule set cached now, it is not done under the
        # users' locks (the transaction matches again only if the definitions changed).
        cached = self.rules.rules
        if cached.reads_user:  # one read, before matching and outside the users' locks
            async with self.uow.transaction() as repo:
                batch = await with_attributes(repo, batch)
        matched = batch_.match_batch(cached, self.settings, batch)
        for attempt in range(RACE_RETRIES + 1):
            errors: list[tuple[str, engine.ConditionError]] = []
            try:
                async with self.uow.transaction() as repo:
                    # One round trip: the users' locks, the definitions version, and the
                    # profile zones of users whose events name none if a rule needs them.
                    zones_of = unzoned(batch) if cached.reads_zone else set()
                    locked = await repo.batch.lock(batch_.users_of(batch), now, zones_of=zones_of)
                    rules = await self.rules.get(repo, locked.definitions_version)
                    if rules.reads_user and not cached.reads_user:
                        # The definitions just changed (rare): read them here; `process`
                        # matches again with the new rule set.
                        batch = await with_attributes(repo, batch)
                    if rules.reads_zone:
                        zones = (
                            locked.zones
                            if cached.reads_zone
                            else await user_store.time_zones(repo, unzoned(batch))
                        )
                        batch, matched = with_zones(rules, batch, matched, zones)
                    cached = rules
                    results = await batch_.process(
                        repo, rules, self.settings, errors, batch, now, matched, locked=True
                    )
                break
            except batch_.Raced:
                if attempt == RACE_RETRIES:
                    raise
                log.info("event ids recorded concurrently; running the batch again")
            except Unavailable as exc:
                if attempt > 0 or not is_disconnect(exc):
                    raise
                log.info("database connection lost; running the batch again")
        for r in results:
            outcome = "duplicate" if r.duplicate else "tracked" if r.tracked else "ignored"
            self.metrics.events.labels(outcome).inc()
        for event_id, err in errors:  # committed: counted once per recorded event
            self.conditions.record(err.achievement_id, err.message, event_id=event_id)
        await self.shapes.record(batch)
        return [
            r if r.tracked else replace(r, untracked_reason=untracked_reason(ev.type, r.duplicate))
            for ev, r in zip(batch, results, strict=True)
        ]

    async def progress(
        self, user_id: str, achievement_ids: Sequence[str], category: str
    ) -> tuple[list[ProgressView], Balance]:
        """The user's progress on every visible achievement, and their points and level."""
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
            for aid, a in found.items():
                compiled[aid] = (
                    a,
                    engine.levels_of(
                        a, self.settings.badge_level_threshold, self.settings.points_per_badge
                    ),
                )
            mine: dict[str, list[Holding]] = defaultdict(list)
            for h in holdings:
                mine[h.achievement_id].append(h)
            # A hidden achievement not earned does not exist for the user: asked for by id,
            # it is as unknown as an id that was never defined.
            compiled = {aid: c for aid, c in compiled.items() if visible(c[0], mine[aid])}
            for i, aid in enumerate(achievement_ids):
                if aid not in compiled:
                    raise NotFound(f"achievement {aid!r} not found", field=f"achievement_ids[{i}]")
            snapshot = await repo.batch.read(Keys(progress=[(user_id, a) for a in compiled]))
            states = {aid: st for (_, aid), st in snapshot.progress.items()}
            lifetime, redeemed = (await points_store.totals(repo, [user_id])).get(user_id, (0, 0))
            zone = ""
            if any(a.rule.aggregate is Aggregate.STREAK_DAYS for a, _ in compiled.values()):
                zone = (await user_store.time_zones(repo, [user_id])).get(user_id, "")
        points = balance(lifetime, redeemed, self.settings.point_levels)
        now = self.clock()
        views = [
            view(a, levels, states.get(aid), mine[aid], held_ids, now=now, zone=zone)
            for aid, (a, levels) in sorted(compiled.items())
            if not category or a.category == category
        ]
        return views, points


async def with_attributes(repo: Repository, batch: Sequence[Event]) -> list[Event]:
    """The batch's events carrying their users' attributes, from one read; an empty mapping
    for a user without a profile, so `user.attributes.x` is a missing key: no match."""
    found = await user_store.attributes(repo, (e.user_id for e in batch))
    return [replace(e, user_attributes=found.get(e.user_id, {})) for e in batch]


def unzoned(batch: Sequence[Event]) -> set[str]:
    """Users of the batch's events that name no zone."""
    return {e.user_id for e in batch if not e.time_zone and not e.user_time_zone}


def with_zones(
    rules: engine.RuleSet,
    batch: Sequence[Event],
    matched: batch_.Matched,
    zones: Mapping[str, str],
) -> tuple[Sequence[Event], batch_.Matched]:
    """The batch's events that name no zone carrying their users' profile `zones`, and the
    matches of those events made again with them; as they were when no user of such an
    event has a zone."""
    if not zones:
        return batch, matched
    events = list(batch)
    changed = []
    for i, e in enumerate(events):
        if not e.time_zone and not e.user_time_zone and e.user_id in zones:
            events[i] = replace(e, user_time_zone=zones[e.user_id])
            changed.append(i)
    if matched.rules is rules:  # else `process` matches the whole batch again anyway
        matches, affected = dict(matched.matches), dict(matched.affected)
        for i in changed:
            if i in matches:
                matches[i] = engine.match(events[i], rules)
                affected[i] = rules.affected(matches[i])
        matched = batch_.Matched(rules, matches, affected)
    return events, matched
