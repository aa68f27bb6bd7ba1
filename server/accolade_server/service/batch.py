"""One transaction for a batch of events, with the semantics of processing them one by one.

Every user of the batch is locked first (sorted, so concurrent batches cannot deadlock);
then the state of all affected (user, achievement) pairs is read in a few set-based queries,
the pure engine runs event by event in order over that state in memory, and the changes,
awards and outcomes are written back in a few statements.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from accolade_server.config import Settings
from accolade_server.domain.model import AwardRecord, AwardSource, Holding
from accolade_server.metrics import Metrics
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


def view_to_json(v: ProgressView) -> dict[str, Any]:
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


def view_from_json(d: dict[str, Any]) -> ProgressView:
    earned = d["earned_time"]
    return ProgressView(
        **{
            **d,
            "status": Status(d["status"]),
            "earned_time": datetime.fromisoformat(earned) if earned else None,
        }
    )


@dataclass
class _Pending:
    """An award decided in this batch, before its cursor is known."""

    index: int  # the event's position in the batch
    user_id: str
    decision: engine.AwardDecision
    event_id: str


async def process(
    repo: Repository,
    rules: engine.RuleSet,
    settings: Settings,
    metrics: Metrics,
    batch: Sequence[engine.Event],
    now: datetime,
) -> list[TrackResult]:
    first: dict[str, int] = {}
    for i, ev in enumerate(batch):
        first.setdefault(ev.event_id, i)
    fresh = sorted(first.values())
    await repo.lock_users({batch[i].user_id for i in fresh}, now)

    tracked = {i: settings.tracks(batch[i].type) for i in fresh}
    inserted = await bulk.insert_events(
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
            }
            for i in fresh
        ],
    )
    results: list[TrackResult | None] = [None] * len(batch)

    # Event ids recorded by earlier transactions: answer with their first outcome.
    seen_before = [i for i in fresh if batch[i].event_id not in inserted]
    if seen_before:
        stored = await bulk.outcomes(repo, (batch[i].event_id for i in seen_before))
        cursors = [c for _, out in stored.values() if out for c in out["awards"]]
        by_cursor = {r.cursor: r for r in await repo.awards_by_cursor(cursors)}
        for i in seen_before:
            was_tracked, out = stored[batch[i].event_id]
            results[i] = TrackResult(
                duplicate=True,
                tracked=was_tracked,
                awards=[by_cursor[c] for c in out["awards"]] if out else [],
                progress=[view_from_json(v) for v in out["progress"]] if out else [],
            )

    work = [i for i in fresh if batch[i].event_id in inserted and tracked[i]]
    for i in fresh:
        if batch[i].event_id in inserted and not tracked[i]:
            results[i] = TrackResult(duplicate=False, tracked=False)
    matches: dict[int, engine.Match] = {}
    affected: dict[int, set[str]] = {}
    for i in work:
        m = matches[i] = engine.match(batch[i], rules)
        for err in m.errors:
            metrics.condition_errors.labels(err.achievement_id).inc()
            log.info(
                "condition did not apply",
                achievement_id=err.achievement_id,
                event_id=batch[i].event_id,
                error=err.message,
            )
        affected[i] = rules.affected(m)
        if not affected[i]:
            results[i] = TrackResult(duplicate=False, tracked=True)
    work = [i for i in work if affected[i]]

    pending: list[_Pending] = []
    done: list[int] = []  # events that changed something, in order
    views_at: dict[int, list[ProgressView]] = {}
    if work:
        keys = {(batch[i].user_id, aid) for i in work for aid in affected[i]}
        states = await bulk.load_progress(repo, keys)
        holdings = await bulk.holdings_of(repo, {u for u, _ in keys})
        seen: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for u, a, h in await bulk.distinct_seen(
            repo,
            {
                (batch[i].user_id, c.achievement_id, c.distinct_key)
                for i in work
                for c in matches[i].contributions
                if c.distinct_key is not None
            },
        ):
            seen[u].add((a, h))
        dirty: dict[tuple[str, str], engine.ProgressState] = {}
        new_keys: list[tuple[str, str, str]] = []
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
            views_at[i] = ledger.views_for(rules, changed, view_states, mine)
            done.append(i)
        await bulk.save_progress(repo, dirty, now)
        await bulk.insert_distinct(repo, new_keys)

    records: dict[int, list[AwardRecord]] = defaultdict(list)
    if pending:
        start = await repo.allocate_cursors(len(pending))
        all_records = []
        points: dict[str, int] = defaultdict(int)
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
            points[p.user_id] += record.points
        await repo.append_awards(all_records)
        await repo.insert_holdings(all_records)
        await bulk.add_points(repo, points, now)

    stored_outcomes = []
    for i in done:
        results[i] = TrackResult(
            duplicate=False, tracked=True, awards=records.get(i, []), progress=views_at[i]
        )
        stored_outcomes.append(
            (
                batch[i].event_id,
                {
                    "awards": [r.cursor for r in records.get(i, [])],
                    "progress": [view_to_json(v) for v in views_at[i]],
                },
            )
        )
    await bulk.set_outcomes(repo, stored_outcomes)

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
