"""One user's state for one achievement, recomputed from stored events. Pure.

Previews and backfill jobs both call `recompute`, so a preview counts exactly what the
backfill then does. It runs the engine as the live path does (`engine.match`, then
`engine.fold` over a snapshot), with two differences: only the achievement's own
contributions are kept (the other achievements already counted these events), and its state
starts from zero (the value is recomputed, not added to), keeping the levels already decided
so that nothing held or decided is awarded twice.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from accolade_server.domain.model import AwardKind, Holding
from accolade_server.domain.state import DistinctKey, Event, ProgressState, Snapshot, UserKey
from accolade_server.rules import engine


class Mode(enum.StrEnum):
    """What to do with levels held that the recomputed progress no longer reaches."""

    REEVALUATE = "reevaluate"  # keep them
    REVOKE_NON_QUALIFYING = "revoke_non_qualifying"  # revoke them, with their points


@dataclass(frozen=True, slots=True)
class Recomputed:
    user_id: str
    #: The achievement's recomputed state (value from history).
    state: ProgressState
    #: Levels the recomputed value reaches.
    reached: int
    #: Levels of the achievement the user holds now.
    held: int
    #: Award-log decisions: awards (of the achievement and what it completes) and, in
    #: REVOKE_NON_QUALIFYING, revocations.
    decisions: tuple[engine.AwardDecision, ...]
    #: Every state to write (the achievement's and its dependents').
    progress: Mapping[UserKey, ProgressState]
    distinct: tuple[DistinctKey, ...]
    events: int
    #: Whether the user has anything to recompute: matching events, stored progress or
    #: holdings of the achievement (a user with none is left as they are).
    touched: bool = True

    @property
    def awards(self) -> int:
        return sum(d.kind is AwardKind.AWARD for d in self.decisions)

    @property
    def revocations(self) -> int:
        return sum(d.kind is AwardKind.REVOCATION for d in self.decisions)

    @property
    def affected(self) -> bool:
        return bool(self.decisions)


def reached(compiled: engine.Compiled, value: float) -> int:
    return sum(value >= level.threshold for level in compiled.levels)


def _tier_index(compiled: engine.Compiled, tier: str) -> int:
    for i, level in enumerate(compiled.levels):
        if level.name == tier:
            return i
    return -1


def recompute(
    user_id: str,
    events: Sequence[Event],
    rules: engine.RuleSet,
    achievement_id: str,
    *,
    holdings: Sequence[Holding],
    stored: Mapping[UserKey, ProgressState],
    mode: Mode,
    now: datetime,
    awards_enabled: bool = True,
) -> Recomputed:
    """`stored` holds the user's stored progress of the achievement and its dependents
    (`rules.closure`); `holdings` every holding of the user."""
    compiled = rules.by_id[achievement_id]
    key = (user_id, achievement_id)
    old = stored.get(key, ProgressState())
    snapshot = Snapshot(
        progress={**stored, key: ProgressState(0.0, old.level)},
        holdings={user_id: list(holdings)},
    )
    # Every event is matched; their contributions are folded in one step, in event order.
    # `apply` folds a step's contributions one by one, so the state is the one event-by-event
    # folding reaches, and the levels it reaches are awarded once, in order, as they would
    # have been one at a time (a recompute has no per-event outcome to attribute them to).
    contributions: list[engine.Contribution] = []
    for event in events:
        for c in engine.match(event, rules).contributions:
            if c.achievement_id == achievement_id:
                contributions.append(c)
    steps: list[engine.FoldStep] = []
    if contributions:
        steps.append(engine.Tracked(events[-1], engine.Match(tuple(contributions))))
    folded = engine.fold(steps, snapshot, rules, now=now, awards_enabled=awards_enabled)
    decisions = [d for step in folded.steps for d in step.decisions]
    out = dict(folded.progress)
    state = out.get(key, snapshot.progress[key])
    out[key] = state  # written even when nothing counted: the value is replaced
    mine_held = [h for h in holdings if h.achievement_id == achievement_id]
    held = 1 + max((_tier_index(compiled, h.tier) for h in mine_held), default=-1)
    reach = reached(compiled, state.value)
    if mode is Mode.REVOKE_NON_QUALIFYING:
        gone = sorted(
            (h for h in mine_held if _tier_index(compiled, h.tier) >= reach),
            key=lambda h: _tier_index(compiled, h.tier),
        )
        for h in gone:
            decisions.append(
                engine.AwardDecision(
                    achievement_id,
                    _tier_index(compiled, h.tier),
                    h.tier,
                    -h.points,
                    kind=AwardKind.REVOCATION,
                )
            )
        if state.level > reach:
            state = ProgressState(state.value, reach, state.streak_day, state.streak_current)
            out[key] = state
    return Recomputed(
        user_id=user_id,
        state=state,
        reached=reach,
        held=held,
        decisions=tuple(decisions),
        progress=out,
        distinct=folded.distinct_new,
        events=len(events),
        touched=bool(events) or key in stored or bool(mine_held),
    )
