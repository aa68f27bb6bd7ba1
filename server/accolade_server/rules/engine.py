"""The rule engine: pure functions from (event, user state, definitions) to changes and awards.

Two steps, both pure:

1. `match(event, rules)` evaluates, for the achievements the event's type can feed, the active
   window, the CEL condition and the aggregate's field, and returns each achievement's
   contribution. `rules.affected(match)` then names the achievements whose state the caller must
   load (the matched ones and, transitively, the achievements that require them).
2. `apply(event, matched, state, rules, …)` folds the contributions into the user's state and
   decides which levels are awarded, cascading through prerequisites and meta-achievements.

Semantics (documented in README.md):
- Progress accrues while an achievement is locked by prerequisites; the levels it has reached
  are awarded as soon as the prerequisites are earned (in the same transaction).
- A meta-achievement (no event types, only prerequisites) is earned when all are earned.
- With awards disabled (`enable_achievements = false`) progress still counts and levels reached
  are consumed without an award, so turning awards back on never awards retroactively.
- `level` counts the levels the rule has decided; a revoked award is not re-earned by the rule.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import cel

from accolade_server.domain.errors import InvalidArgument
from accolade_server.domain.model import Achievement, Aggregate
from accolade_server.rules.cel import compile_condition

#: Names given to `badge_level_threshold` levels; further levels are called level-4, level-5, …
LEVEL_NAMES = ("bronze", "silver", "gold", "platinum", "diamond")


@dataclass(frozen=True, slots=True)
class Event:
    event_id: str
    user_id: str
    type: str
    properties: Mapping[str, Any]
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class Level:
    """One awardable step: a tier, a `badge_level_threshold` level, or the single level."""

    name: str  # empty for a single-level achievement
    threshold: float
    points: int


@dataclass(frozen=True, slots=True)
class Compiled:
    achievement: Achievement
    levels: tuple[Level, ...]
    program: Any  # cel.Program, or None for "always"

    @property
    def id(self) -> str:
        return self.achievement.id

    @property
    def is_meta(self) -> bool:
        return not self.achievement.rule.event_types


@dataclass(frozen=True, slots=True)
class ProgressState:
    """A user's stored aggregate state for one achievement."""

    value: float = 0.0
    level: int = 0
    streak_day: int | None = None
    streak_current: int = 0


@dataclass(frozen=True, slots=True)
class Contribution:
    achievement_id: str
    amount: float = 1.0  # COUNT: 1, SUM/MAX: the field's value
    distinct_key: str | None = None  # DISTINCT: a hash of the field's value
    day: int | None = None  # STREAK_DAYS: the event's UTC day number


@dataclass(frozen=True, slots=True)
class ConditionError:
    achievement_id: str
    message: str


@dataclass(frozen=True, slots=True)
class Match:
    contributions: tuple[Contribution, ...]
    errors: tuple[ConditionError, ...] = ()


@dataclass(frozen=True, slots=True)
class UserState:
    progress: Mapping[str, ProgressState]
    #: Achievements the user holds at least one level of (prerequisites are met by these).
    held: frozenset[str]
    #: (achievement id, distinct key) pairs already counted among this event's contributions.
    distinct_seen: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True, slots=True)
class AwardDecision:
    achievement_id: str
    level_index: int
    tier: str
    points: int


@dataclass(frozen=True, slots=True)
class Outcome:
    #: New state of every achievement whose state changed.
    progress: dict[str, ProgressState] = field(default_factory=dict)
    #: DISTINCT keys to record.
    distinct_new: tuple[tuple[str, str], ...] = ()
    awards: tuple[AwardDecision, ...] = ()


def levels_of(
    a: Achievement, level_thresholds: Sequence[float], points_per_badge: int
) -> tuple[Level, ...]:
    """The levels an achievement awards, with the points each is worth."""
    default_points = a.points or points_per_badge
    if a.tiers:
        return tuple(Level(t.name, t.threshold, t.points or default_points) for t in a.tiers)
    if a.use_level_thresholds:
        return tuple(
            Level(LEVEL_NAMES[i] if i < len(LEVEL_NAMES) else f"level-{i + 1}", t, default_points)
            for i, t in enumerate(level_thresholds)
        )
    return (Level("", a.rule.target, default_points),)


def compile_program(a: Achievement) -> Any:
    """The achievement's compiled condition (None for "always"); raises InvalidArgument
    (field `rule.condition`) when this version cannot compile it."""
    condition = a.rule.condition.strip()
    if not condition:
        return None
    try:
        return compile_condition(condition)
    except InvalidArgument as exc:
        raise InvalidArgument(exc.detail, field="rule.condition") from exc
    except Exception as exc:  # the CEL library's own failure: the same, for one definition
        raise InvalidArgument(f"{type(exc).__name__}: {exc}", field="rule.condition") from exc


def load_problem(a: Achievement) -> str:
    """Why this version cannot run a stored definition, or "" when it can.

    Writes are validated in full (domain/validation.py); loading only compiles, so a row
    written by an older version that breaks a newer limit is skipped, never fatal.
    """
    try:
        compile_program(a)
    except InvalidArgument as exc:
        return str(exc)
    return ""


class RuleSet:
    """The active definitions, compiled and indexed by event type.

    Built once per definitions version; an event only ever looks at the achievements its type
    feeds, so its cost does not grow with the number of achievements defined. An enabled
    definition that does not compile is left out and listed in `broken` (id → reason): it
    earns nothing by rule, and every other achievement works as usual.
    """

    def __init__(
        self,
        achievements: Iterable[Achievement],
        *,
        level_thresholds: Sequence[float] = (100, 250, 500),
        points_per_badge: int = 0,
    ) -> None:
        self.by_id: dict[str, Compiled] = {}
        self.by_type: dict[str, list[Compiled]] = {}
        self.dependents: dict[str, list[str]] = {}
        self.broken: dict[str, tuple[Achievement, str]] = {}
        for a in achievements:
            if not a.enabled:
                continue
            try:
                program = compile_program(a)
            except InvalidArgument as exc:
                self.broken[a.id] = (a, str(exc))
                continue
            compiled = Compiled(a, levels_of(a, level_thresholds, points_per_badge), program)
            self.by_id[a.id] = compiled
            for event_type in a.rule.event_types:
                self.by_type.setdefault(event_type, []).append(compiled)
            for pid in a.prerequisites:
                self.dependents.setdefault(pid, []).append(a.id)

    def __len__(self) -> int:
        return len(self.by_id)

    def affected(self, matched: Match) -> set[str]:
        """Matched achievements plus, transitively, those that require them."""
        return self.closure(c.achievement_id for c in matched.contributions)

    def closure(self, ids: Iterable[str]) -> set[str]:
        """`ids` plus, transitively, the achievements that require them."""
        if not self.dependents:  # no prerequisites defined: nothing to follow
            return set(ids)
        todo = list(ids)
        seen: set[str] = set()
        while todo:
            aid = todo.pop()
            if aid in seen:
                continue
            seen.add(aid)
            todo.extend(self.dependents.get(aid, ()))
        return seen


def utc_day(moment: datetime) -> int:
    return moment.astimezone(UTC).date().toordinal()


def _lookup(properties: Mapping[str, Any], path: str) -> Any:
    value: Any = properties
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(path)
        value = value[part]
    return value


def _normalise(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def distinct_key(value: Any) -> str:
    """A stable key for any JSON value (1 and 1.0 are the same value, at any depth)."""
    value = _normalise(value)
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def in_window(a: Achievement, moment: datetime) -> bool:
    """Whether `moment` falls in the achievement's active window."""
    return (a.start_time is None or moment >= a.start_time) and (
        a.end_time is None or moment < a.end_time
    )


def match(event: Event, rules: RuleSet) -> Match:
    """Which achievements the event counts for, and how much."""
    candidates = rules.by_type.get(event.type)
    if not candidates:
        return Match(())
    context: cel.Context | None = None
    contributions: list[Contribution] = []
    errors: list[ConditionError] = []
    # Results by program: achievements with the same condition text share one compiled
    # program (see compile_condition), and evaluation is pure, so each runs once per event.
    evaluated: dict[int, Any] = {}
    for compiled in candidates:
        a = compiled.achievement
        if (a.start_time is not None or a.end_time is not None) and not in_window(
            a, event.occurred_at
        ):
            continue
        program = compiled.program
        if program is not None:
            if context is None:  # built once per event, only if a condition needs it
                context = cel.Context(
                    {
                        "event": {
                            "type": event.type,
                            "user_id": event.user_id,
                            "properties": dict(event.properties),
                            "occurred_at": event.occurred_at,
                        }
                    }
                )
            key = id(program)
            if key in evaluated:
                result = evaluated[key]
            else:
                try:
                    result = program.execute(context)
                except Exception as exc:  # missing property, wrong type: "no match"
                    result = exc
                evaluated[key] = result
            if isinstance(result, Exception):
                errors.append(ConditionError(a.id, _describe(result)))
                continue
            if result is not True:
                if result is not False:  # e.g. `event.properties.amount`: a mistake, say so
                    errors.append(
                        ConditionError(a.id, f"condition returned {result!r}, not true or false")
                    )
                continue
        contribution = _contribution(compiled, event)
        if isinstance(contribution, ConditionError):
            errors.append(contribution)
        else:
            contributions.append(contribution)
    return Match(tuple(contributions), tuple(errors))


def _describe(exc: Exception) -> str:
    """A condition's evaluation error in the user's terms."""
    if isinstance(exc, KeyError):  # the CEL library's missing map key
        return f"condition reads {exc}, which the event does not have"
    return f"condition failed: {type(exc).__name__}: {exc}"


def _contribution(compiled: Compiled, event: Event) -> Contribution | ConditionError:
    rule = compiled.achievement.rule
    aid = compiled.id
    if rule.aggregate is Aggregate.COUNT:
        return Contribution(aid)
    if rule.aggregate is Aggregate.STREAK_DAYS:
        return Contribution(aid, day=utc_day(event.occurred_at))
    try:
        value = _lookup(event.properties, rule.field)
    except KeyError:
        return ConditionError(aid, f"event has no property {rule.field!r}")
    if rule.aggregate is Aggregate.DISTINCT:
        return Contribution(aid, distinct_key=distinct_key(value))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ConditionError(aid, f"property {rule.field!r} is not a number: {value!r}")
    return Contribution(aid, amount=float(value))


def _fold(
    state: ProgressState, aggregate: Aggregate, c: Contribution, is_new: bool
) -> ProgressState:
    # ProgressState(...) rather than dataclasses.replace: this runs for every contribution.
    if aggregate is Aggregate.COUNT:
        return ProgressState(state.value + 1, state.level, state.streak_day, state.streak_current)
    if aggregate is Aggregate.SUM:
        return ProgressState(
            state.value + c.amount, state.level, state.streak_day, state.streak_current
        )
    if aggregate is Aggregate.MAX:
        if c.amount <= state.value:
            return state
        return ProgressState(c.amount, state.level, state.streak_day, state.streak_current)
    if aggregate is Aggregate.DISTINCT:
        if not is_new:
            return state
        return ProgressState(state.value + 1, state.level, state.streak_day, state.streak_current)
    # STREAK_DAYS: the value is the best streak; late (out-of-order) days are ignored.
    assert c.day is not None
    last = state.streak_day
    if last is not None and c.day <= last:
        return state
    current = state.streak_current + 1 if last is not None and c.day == last + 1 else 1
    return ProgressState(max(state.value, float(current)), state.level, c.day, current)


def apply(
    matched: Match,
    state: UserState,
    rules: RuleSet,
    *,
    awards_enabled: bool = True,
    also: Iterable[str] = (),
) -> Outcome:
    """Fold the contributions into the state and decide the awards.

    `also` names further achievements to re-check, e.g. the dependents of a manual grant.
    """
    progress: dict[str, ProgressState] = {}
    distinct_new: list[tuple[str, str]] = []
    seen_keys = set(state.distinct_seen)

    known = state.progress

    def current(aid: str) -> ProgressState:
        return progress.get(aid) or known.get(aid) or _EMPTY

    for c in matched.contributions:
        compiled = rules.by_id[c.achievement_id]
        is_new = False
        if c.distinct_key is not None:
            pair = (c.achievement_id, c.distinct_key)
            is_new = pair not in seen_keys
            if is_new:
                seen_keys.add(pair)
                distinct_new.append(pair)
        before = progress.get(c.achievement_id) or known.get(c.achievement_id) or _EMPTY
        after = _fold(before, compiled.achievement.rule.aggregate, c, is_new)
        if after != before:
            progress[c.achievement_id] = after

    held = set(state.held)
    awards: list[AwardDecision] = []
    todo = sorted(rules.affected(matched) | rules.closure(also))
    while todo:
        newly_held: list[str] = []
        for aid in todo:
            candidate = rules.by_id.get(aid)
            if candidate is None:
                continue
            prerequisites = candidate.achievement.prerequisites
            locked = bool(prerequisites) and not all(p in held for p in prerequisites)
            # Locked: progress accrues and levels wait, unless awards are off, when reached
            # levels are consumed all the same (no retroactive awards once turned back on).
            if locked and (awards_enabled or candidate.is_meta):
                continue
            st = current(aid)
            reached = _levels_reached(candidate, st)
            if reached <= st.level:
                continue
            if awards_enabled:
                for index in range(st.level, reached):
                    level = candidate.levels[index]
                    awards.append(AwardDecision(aid, index, level.name, level.points))
                if aid not in held:
                    held.add(aid)
                    newly_held.append(aid)
            progress[aid] = ProgressState(st.value, reached, st.streak_day, st.streak_current)
        todo = sorted({d for aid in newly_held for d in rules.dependents.get(aid, ())})
    return Outcome(progress, tuple(distinct_new), tuple(awards))


_EMPTY = ProgressState()


def _levels_reached(compiled: Compiled, st: ProgressState) -> int:
    if compiled.is_meta:
        return 1
    value = st.value
    return sum(value >= level.threshold for level in compiled.levels)
