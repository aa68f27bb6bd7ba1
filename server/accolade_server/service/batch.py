"""One transaction for a batch of events, with the semantics of processing them one by one.

Every user of the batch is locked first (sorted, so concurrent batches cannot deadlock);
then one set-based read brings the stored outcomes of ids seen before and the state of all
affected (user, achievement) pairs, the pure engine runs event by event in order over that
state in memory, and the events (each with its outcome), changes and awards are written
back in one statement (on PostgreSQL; a few on SQLite). Award cursors are allocated just
before that write, so the award log's head row stays locked only for it and the commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import structlog

from accolade_server.config import Settings
from accolade_server.domain.model import Aggregate, AwardRecord, AwardSource, Holding
from accolade_server.rules import engine
from accolade_server.rules.progress import ProgressView, Status
from accolade_server.service import ledger
from accolade_server.store import bulk
from accolade_server.store.repository import Repository

log = structlog.get_logger("accolade.tracking")


@dataclass(frozen=True, slots=True)
class TrackResult:
    duplicate: bool
    tracked: bool
    awards: list[AwardRecord] = field(default_factory=list)
    progress: list[ProgressView] = field(default_factory=list)
    #: Why the event was not tracked; empty when it was (set by the tracking service).
    untracked_reason: str = ""


# A stored outcome is {"awards": [cursor, …], "views": [view, …]}, each view a list of the
# ProgressView fields in this order (positional: about half the size of an object per view,
# which keeps most outcomes small enough for PostgreSQL to store inline, uncompressed).
# Trailing default values are left out, and a shorter list (from an earlier version, with
# fewer fields) reads as the defaults. Outcomes stored by earlier versions may have
# "progress": [object, …] instead; both are read.
_VIEW_FIELDS = (
    "achievement_id",
    "status",
    "current",
    "target",
    "percent",
    "tier",
    "earned_time",
    "title",
    "description",
    "icon_url",
    "category",
    "hidden",
    # Added later: optional on read.
    "levels_earned",
    "levels_total",
    "next_tier",
    "next_threshold",
    "previous_threshold",
    "step_percent",
    "overall_percent",
    "aggregate",
    "current_streak",
    "best_streak",
)
_REQUIRED = 12
_DEFAULTS = tuple(f.default for f in fields(ProgressView))[_REQUIRED:]
_STATUS_VALUE = {s: s.value for s in Status}


def view_to_json(v: ProgressView) -> list[Any]:
    stored = [
        v.achievement_id,
        _STATUS_VALUE[v.status],
        v.current,
        v.target,
        v.percent,
        v.tier,
        v.earned_time.isoformat() if v.earned_time else None,
        v.title,
        v.description,
        v.icon_url,
        v.category,
        v.hidden,
        v.levels_earned,
        v.levels_total,
        v.next_tier,
        v.next_threshold,
        v.previous_threshold,
        v.step_percent,
        v.overall_percent,
        v.aggregate.value if v.aggregate else None,
        v.current_streak,
        v.best_streak,
    ]
    while len(stored) > _REQUIRED and stored[-1] == _DEFAULTS[len(stored) - 1 - _REQUIRED]:
        stored.pop()
    return stored


def view_from_json(stored: list[Any] | dict[str, Any]) -> ProgressView:
    if isinstance(stored, dict):
        d = {k: v for k, v in stored.items() if k in _VIEW_FIELDS}
    else:
        d = dict(zip(_VIEW_FIELDS, stored[: len(_VIEW_FIELDS)], strict=False))
    earned = d["earned_time"]
    aggregate = d.get("aggregate")
    return ProgressView(
        **{
            **d,
            "status": Status(d["status"]),
            "earned_time": datetime.fromisoformat(earned) if earned else None,
            "aggregate": Aggregate(aggregate) if aggregate else None,
        }
    )


def outcome_to_json(records: Sequence[AwardRecord], views: Sequence[ProgressView]) -> Any:
    return {"awards": [r.cursor for r in records], "views": [view_to_json(v) for v in views]}


def views_of_outcome(out: dict[str, Any]) -> list[ProgressView]:
    """The stored views, less those of hidden achievements not earned (which earlier
    versions stored, redacted)."""
    views = (view_from_json(v) for v in out.get("views", out.get("progress", ())))
    return [v for v in views if not v.hidden or v.status is Status.UNLOCKED]


@dataclass
class _Pending:
    """An award decided in this batch, before its cursor is known."""

    index: int  # the event's position in the batch
    user_id: str
    decision: engine.AwardDecision
    event_id: str


class Raced(Exception):
    """An event id of the batch was recorded by a concurrent transaction (of another user)
    after this one looked: roll back and run the batch again, which then sees it."""


def _first_occurrences(batch: Sequence[engine.Event]) -> dict[str, int]:
    first: dict[str, int] = {}
    for i, ev in enumerate(batch):
        first.setdefault(ev.event_id, i)
    return first


@dataclass(frozen=True, slots=True)
class Matched:
    """The pure first step for a batch: which achievements each tracked event feeds, under
    one rule set. Computed before the transaction, so it is not done under the users' locks;
    `process` uses it only if the transaction sees the same rule set."""

    rules: engine.RuleSet
    matches: dict[int, engine.Match]


def match_batch(
    rules: engine.RuleSet, settings: Settings, batch: Sequence[engine.Event]
) -> Matched:
    return Matched(
        rules,
        {
            i: engine.match(batch[i], rules)
            for i in sorted(_first_occurrences(batch).values())
            if settings.tracks(batch[i].type)
        },
    )


async def process(
    repo: Repository,
    rules: engine.RuleSet,
    settings: Settings,
    condition_errors: list[tuple[str, engine.ConditionError]],
    batch: Sequence[engine.Event],
    now: datetime,
    matched_before: Matched | None = None,
) -> list[TrackResult]:
    first = _first_occurrences(batch)
    fresh = sorted(first.values())
    await repo.lock_users({batch[i].user_id for i in fresh}, now)
    results: list[TrackResult | None] = [None] * len(batch)

    # Match first (pure), so that one read brings everything the batch needs: the stored
    # outcomes of ids recorded before, and the state the matched achievements need.
    tracked = {i: settings.tracks(batch[i].type) for i in fresh}
    if matched_before is None or matched_before.rules is not rules:
        matched_before = match_batch(rules, settings, batch)
    matches = matched_before.matches
    affected = {i: rules.affected(m) for i, m in matches.items()}
    matched = [i for i in fresh if affected.get(i)]
    # The user locks make an earlier event of the same user visible here once its
    # transaction has committed.
    stored, states, holdings, distinct = await bulk.read_batch(
        repo,
        [batch[i].event_id for i in fresh],
        {(batch[i].user_id, aid) for i in matched for aid in affected[i]},
        {batch[i].user_id for i in matched},
        {
            (batch[i].user_id, c.achievement_id, c.distinct_key)
            for i in matched
            for c in matches[i].contributions
            if c.distinct_key is not None
        },
    )

    # Event ids recorded by earlier transactions: answer with their first outcome.
    if stored:
        seen_before = [i for i in fresh if batch[i].event_id in stored]
        cursors = [c for _, out in stored.values() if out for c in out["awards"]]
        by_cursor = {r.cursor: r for r in await repo.awards_by_cursor(cursors)}
        for i in seen_before:
            was_tracked, out = stored[batch[i].event_id]
            results[i] = TrackResult(
                duplicate=True,
                tracked=was_tracked,
                awards=[by_cursor[c] for c in out["awards"]] if out else [],
                progress=views_of_outcome(out) if out else [],
            )
        fresh = [i for i in fresh if batch[i].event_id not in stored]

    # The engine collects condition errors; the caller counts (and logs) those of newly
    # recorded events once the transaction has committed.
    for i in fresh:
        if i in matches:
            condition_errors.extend((batch[i].event_id, e) for e in matches[i].errors)
    work = [i for i in fresh if affected.get(i)]

    pending: list[_Pending] = []
    done: list[int] = []  # events that changed something, in order
    views_at: dict[int, list[ProgressView]] = {}
    dirty: dict[tuple[str, str], engine.ProgressState] = {}
    new_keys: list[tuple[str, str, str]] = []
    if work:
        seen: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for u, a, h in distinct:
            seen[u].add((a, h))
        for i in work:
            ev = batch[i]
            user = ev.user_id
            mine = holdings[user]
            state = engine.UserState(
                progress={aid: states[(user, aid)] for aid in affected[i] if (user, aid) in states},
                held=frozenset(h.achievement_id for h in mine),
                distinct_seen=frozenset(seen[user]),
            )
            out = engine.apply(
                matches[i], state, rules, awards_enabled=settings.enable_achievements
            )
            for aid, st in out.progress.items():
                states[(user, aid)] = dirty[(user, aid)] = st
            for aid, h in out.distinct_new:
                seen[user].add((aid, h))
                new_keys.append((user, aid, h))
            held = {(h.achievement_id, h.tier) for h in mine}
            awarded = []
            for d in out.awards:
                if (d.achievement_id, d.tier) not in held:  # e.g. already granted by hand
                    held.add((d.achievement_id, d.tier))
                    pending.append(_Pending(i, user, d, ev.event_id))
                    mine.append(Holding(d.achievement_id, d.tier, 0, d.points, now))
                    awarded.append(d.achievement_id)
            changed = [*out.progress, *awarded]
            view_states = {aid: states[(user, aid)] for aid in changed if (user, aid) in states}
            views_at[i] = ledger.views_for(rules, changed, view_states, mine, now=now)
            done.append(i)

    # Cursors last: allocating locks the award log's head row until commit, so the rest of
    # the transaction is the one statement that writes the batch.
    records: dict[int, list[AwardRecord]] = defaultdict(list)
    all_records: list[AwardRecord] = []
    if pending:
        start = await repo.allocate_cursors(len(pending))
        for n, p in enumerate(pending):
            record = AwardRecord(
                cursor=start + n,
                user_id=p.user_id,
                achievement_id=p.decision.achievement_id,
                tier=p.decision.tier,
                points=p.decision.points,
                source=AwardSource.RULE,
                award_time=now,
                event_id=p.event_id,
            )
            records[p.index].append(record)
            all_records.append(record)

    # Each event is stored with the outcome a retry will get. An id that another transaction
    # recorded after `outcomes` looked (another user's event, so not behind our locks) sends
    # the batch round again, when it is seen as a duplicate.
    outcome: dict[int, dict[str, Any]] = {}
    for i in done:
        results[i] = TrackResult(
            duplicate=False, tracked=True, awards=records.get(i, []), progress=views_at[i]
        )
        outcome[i] = outcome_to_json(records.get(i, []), views_at[i])
    inserted = await bulk.write_batch(
        repo,
        [
            {
                "event_id": batch[i].event_id,
                "user_id": batch[i].user_id,
                "type": batch[i].type,
                "properties": dict(batch[i].properties),
                "occurred_at": batch[i].occurred_at,
                "received_at": now,
                "tracked": tracked[i],
                "outcome": outcome.get(i),
            }
            for i in fresh
        ],
        dirty,
        new_keys,
        all_records,
        now,
    )
    if inserted != len(fresh):
        raise Raced(f"{len(fresh) - inserted} event ids were recorded concurrently")
    for i in fresh:
        if results[i] is None:
            results[i] = TrackResult(duplicate=False, tracked=tracked[i])

    # A repeated id inside the batch gets the first occurrence's outcome.
    final: list[TrackResult] = []
    for i, ev in enumerate(batch):
        result = results[i]
        if result is None:
            origin = results[first[ev.event_id]]
            assert origin is not None
            result = TrackResult(True, origin.tracked, origin.awards, origin.progress)
        final.append(result)
    return final
