"""One transaction for a batch of events, with the semantics of processing them one by one.

Every user of the batch is locked first (sorted, so concurrent batches cannot deadlock);
then one set-based read brings the stored outcomes of ids seen before and the state of all
affected (user, achievement) pairs, the pure engine folds the events in order over that
snapshot (`engine.fold`), and the events (each with its outcome), changes and award-log
entries are written back through the store port in one statement (on PostgreSQL; a few on
SQLite). Award cursors are allocated just before that write, so the award log's head row
stays locked only for it and the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from accolade.v1 import types_pb2 as pb
from accolade_server.config import Settings
from accolade_server.domain.model import AwardRecord
from accolade_server.domain.state import Event
from accolade_server.rules import engine
from accolade_server.service import economy, ledger, outcomes
from accolade_server.store.port import Changes, EventRow, FailedCondition, Keys
from accolade_server.store.repository import Repository

log = structlog.get_logger("accolade.tracking")


@dataclass(frozen=True, slots=True)
class TrackResult:
    duplicate: bool
    tracked: bool
    awards: list[AwardRecord] = field(default_factory=list)
    #: The progress messages of the response, built once from the state (see outcomes.py).
    progress: list[pb.Progress] = field(default_factory=list)
    #: Why the event was not tracked; empty when it was (set by the tracking service).
    untracked_reason: str = ""
    #: (achievement id, reason) of achievements the event matched but did not count for.
    not_counted: list[tuple[str, str]] = field(default_factory=list)


def _visible_late(rules: engine.RuleSet, step: engine.StepOutcome) -> list[tuple[str, str]]:
    """The step's contributions not counted, less those of hidden achievements not held."""
    held = {h.achievement_id for h in step.holdings}
    return [
        (aid, reason)
        for aid, reason in step.late
        if aid in held or not rules.by_id[aid].achievement.hidden
    ]


class Raced(Exception):
    """An event id of the batch was recorded by a concurrent transaction (of another user)
    after this one looked: roll back and run the batch again, which then sees it."""


def users_of(batch: Sequence[Event]) -> set[str]:
    """The users `process` locks: those of the batch's first occurrence of each event id."""
    return {batch[i].user_id for i in _first_occurrences(batch).values()}


def _first_occurrences(batch: Sequence[Event]) -> dict[str, int]:
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
    #: Per event (by index), the achievements whose state it needs: matched ones and their
    #: dependents.
    affected: dict[int, set[str]]

    def keys(self, batch: Sequence[Event], fresh: Sequence[int]) -> Keys:
        matched = [i for i in fresh if self.affected.get(i)]
        return Keys(
            event_ids=[batch[i].event_id for i in fresh],
            progress={(batch[i].user_id, aid) for i in matched for aid in self.affected[i]},
            holdings={batch[i].user_id for i in matched},
            distinct={
                (batch[i].user_id, c.achievement_id, c.distinct_key)
                for i in matched
                for c in self.matches[i].contributions
                if c.distinct_key is not None
            },
        )


def match_batch(rules: engine.RuleSet, settings: Settings, batch: Sequence[Event]) -> Matched:
    matches = {
        i: engine.match(batch[i], rules)
        for i in sorted(_first_occurrences(batch).values())
        if settings.tracks(batch[i].type)
    }
    return Matched(rules, matches, {i: rules.affected(m) for i, m in matches.items()})


async def process(
    repo: Repository,
    rules: engine.RuleSet,
    settings: Settings,
    condition_errors: list[tuple[str, engine.ConditionError]],
    batch: Sequence[Event],
    now: datetime,
    matched: Matched | None = None,
    *,
    locked: bool = False,
) -> list[TrackResult]:
    """Lock → snapshot → fold → allocate → write; results in the batch's order. With
    `locked`, the caller has locked `users_of(batch)` in this transaction already."""
    store = repo.batch
    first = _first_occurrences(batch)
    fresh = sorted(first.values())
    if matched is None or matched.rules is not rules:
        matched = match_batch(rules, settings, batch)
    # The user locks make an earlier event of the same user visible once it has committed.
    if not locked:
        await store.lock_users({batch[i].user_id for i in fresh}, now)
    snapshot = await store.read(matched.keys(batch, fresh))
    results = await _replayed(repo, batch, fresh, snapshot.outcomes)
    fresh = [i for i in fresh if i not in results]
    # The engine collects condition errors; the caller counts (and logs) those of newly
    # recorded events once the transaction has committed.
    failed: list[FailedCondition] = []
    for i in fresh:
        if i in matched.matches:
            errors = matched.matches[i].errors
            condition_errors.extend((batch[i].event_id, e) for e in errors)
            failed.extend(
                FailedCondition(batch[i].user_id, e.achievement_id, e.message) for e in errors
            )
    work = [i for i in fresh if matched.affected.get(i)]
    folded = engine.fold(
        [engine.Tracked(batch[i], matched.matches[i]) for i in work],
        snapshot,
        rules,
        now=now,
        awards_enabled=settings.enable_achievements,
    )
    pending = [
        ledger.Pending.of(step.user_id, d, event_id=batch[i].event_id)
        for i, step in zip(work, folded.steps, strict=True)
        for d in step.decisions
    ]
    pending = await economy.extend(repo, rules, settings, pending)  # rewards, levels
    records = await ledger.allocate(store, pending, now)
    each = iter(records)
    rows = {i: EventRow(batch[i], settings.tracks(batch[i].type)) for i in fresh}
    for i, step in zip(work, folded.steps, strict=True):
        mine = [next(each) for _ in step.decisions]
        ev = batch[i]
        zone = ev.time_zone or ev.user_time_zone
        views = ledger.views_for(
            rules, step.changed, step.states, step.holdings, now=now, zone=zone
        )
        progress = outcomes.messages(views)
        late = _visible_late(rules, step) if step.late else []
        results[i] = TrackResult(False, True, mine, progress, not_counted=late)
        rows[i] = EventRow(batch[i], True, outcomes.encode(mine, progress, late))
    # An id another transaction recorded after the snapshot (another user's event, so not
    # behind our locks) sends the batch round again, when it is seen as a duplicate.
    changes = Changes(list(rows.values()), folded.progress, folded.distinct_new, failed=failed)
    inserted = await store.write(changes, records, now)
    if inserted != len(fresh):
        raise Raced(f"{len(fresh) - inserted} event ids were recorded concurrently")
    return _in_order(batch, first, results, rows)


async def _replayed(
    repo: Repository,
    batch: Sequence[Event],
    fresh: Sequence[int],
    stored: dict[str, tuple[bool, Any]],
) -> dict[int, TrackResult]:
    """Event ids recorded by earlier transactions: answered with their first outcome."""
    if not stored:
        return {}
    cursors = [c for _, out in stored.values() if out for c in outcomes.award_cursors(out)]
    by_cursor = {r.cursor: r for r in await repo.awards_by_cursor(cursors)}
    results = {}
    for i in fresh:
        if batch[i].event_id in stored:
            was_tracked, out = stored[batch[i].event_id]
            results[i] = TrackResult(
                duplicate=True,
                tracked=was_tracked,
                awards=[by_cursor[c] for c in outcomes.award_cursors(out) if c in by_cursor]
                if out
                else [],
                progress=outcomes.decode_progress(out) if out else [],
                not_counted=outcomes.not_counted(out) if out else [],
            )
    return results


def _in_order(
    batch: Sequence[Event],
    first: dict[str, int],
    results: dict[int, TrackResult],
    rows: dict[int, EventRow],
) -> list[TrackResult]:
    """One result per event; a repeated id inside the batch gets its first occurrence's."""
    final = []
    for n, ev in enumerate(batch):
        i = first[ev.event_id]
        result = results.get(i) or TrackResult(duplicate=False, tracked=rows[i].tracked)
        if i != n:
            result = TrackResult(
                True, result.tracked, result.awards, result.progress, not_counted=result.not_counted
            )
        final.append(result)
    return final
