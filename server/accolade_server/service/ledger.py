"""Appending awards to the log, with their holdings and points, inside a unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from accolade_server.domain.model import AwardRecord, AwardSource, Holding
from accolade_server.rules import engine
from accolade_server.rules.progress import ProgressView, view, visible
from accolade_server.store import bulk
from accolade_server.store.repository import Repository


async def record_awards(
    repo: Repository,
    user_id: str,
    decisions: Sequence[engine.AwardDecision],
    holdings: list[Holding],
    *,
    source: AwardSource,
    now: datetime,
    event_id: str | None = None,
    reason: str = "",
    actor: str = "",
) -> list[AwardRecord]:
    """Append the decided awards the user does not already hold; update holdings and points.

    `holdings` (the user's, loaded under the user's lock) is extended in place.
    """
    held = {(h.achievement_id, h.tier) for h in holdings}
    fresh = [d for d in decisions if (d.achievement_id, d.tier) not in held]
    if not fresh:
        return []
    first = await repo.allocate_cursors(len(fresh))
    records = [
        AwardRecord(
            cursor=first + i,
            user_id=user_id,
            achievement_id=d.achievement_id,
            tier=d.tier,
            points=d.points,
            source=source,
            award_time=now,
            reason=reason,
            actor=actor,
            event_id=event_id,
        )
        for i, d in enumerate(fresh)
    ]
    await repo.append_awards(records)
    await repo.insert_holdings(records)
    await repo.add_points(user_id, sum(r.points for r in records), now)
    holdings.extend(
        Holding(r.achievement_id, r.tier, r.cursor, r.points, r.award_time) for r in records
    )
    return records


async def cascade(
    repo: Repository,
    rules: engine.RuleSet,
    user_id: str,
    holdings: list[Holding],
    start: Sequence[str],
    *,
    awards_enabled: bool,
    now: datetime,
) -> tuple[list[AwardRecord], dict[str, engine.ProgressState]]:
    """Award what becomes earnable because `start` achievements were just earned."""
    ids = rules.closure(start)
    state = engine.UserState(
        progress={
            aid: st
            for (_, aid), st in (
                await bulk.load_progress(repo, ((user_id, a) for a in ids))
            ).items()
        },
        held=frozenset(h.achievement_id for h in holdings),
    )
    outcome = engine.apply(
        engine.Match(()), state, rules, awards_enabled=awards_enabled, also=start
    )
    await bulk.save_progress(
        repo, {(user_id, aid): st for aid, st in outcome.progress.items()}, now
    )
    records = await record_awards(
        repo, user_id, outcome.awards, holdings, source=AwardSource.RULE, now=now
    )
    return records, outcome.progress


def views_for(
    rules: engine.RuleSet,
    ids: Sequence[str],
    states: dict[str, engine.ProgressState],
    holdings: Sequence[Holding],
    *,
    now: datetime,
) -> list[ProgressView]:
    """Progress views of the given (active) achievements the user may see."""
    held_ids = {h.achievement_id for h in holdings}
    today = engine.utc_day(now)
    out = []
    for aid in sorted(set(ids)):
        compiled = rules.by_id.get(aid)
        if compiled is None:
            continue
        mine = [h for h in holdings if h.achievement_id == aid]
        if not visible(compiled.achievement, mine):
            continue
        out.append(
            view(
                compiled.achievement,
                compiled.levels,
                states.get(aid),
                mine,
                held_ids,
                today=today,
            )
        )
    return out
