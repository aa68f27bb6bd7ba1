"""The rule engine: pure functions from (event, user state, definitions) to changes and awards.

Two steps, both pure:

1. `match(event, rules)` evaluates, for the achievements the event's type can feed, the active
   window, the CEL condition and the aggregate's field, and returns each achievement's
   contribution. `rules.affected(match)` then names the achievements whose state the caller must
   load (the matched ones and, transitively, the achievements that require them).
2. `apply(matched, state, rules, …)` folds the contributions into the user's state and
   decides which levels are awarded, cascading through prerequisites and meta-achievements.
3. `fold(steps, snapshot, rules, …)` runs a whole batch — tracked events, manual grants and
   revocations, in order — over a snapshot of the stored state, carrying each user's state
   from one step to the next, and returns the batch's changes and award-log decisions. The
   write path and the unit tests both use it.

Semantics (documented in README.md):
- Progress accrues while an achievement is locked by prerequisites; the levels it has reached
  are awarded as soon as the prerequisites are earned (in the same transaction).
- A meta-achievement (no event types, only prerequisites) is earned when all are earned.
- With awards disabled (`enable_achievements = false`) progress still counts and levels reached
  are consumed without an award, so turning awards back on never awards retroactively.
- `level` counts the levels decided: a level is decided once, by the rule or by hand.
- STREAK_DAYS counts local days (`domain/days.py`) from a bounded set of days, so late and
  out-of-order events fill their days; a day before the lateness window is not counted and
  reported (`Outcome.late`, `StepOutcome.late`).
- Repeating achievements (`Achievement.repeat`): progress counts per local period
  (`domain/periods.py`); an event of a later period starts it again from zero (levels too),
  one of an earlier period is not counted and reported like a late day; each level reached
  in a period is its own award, with the period. A period is *completed* when its first
  level is reached; PERIOD_STREAK rules read the run of consecutive completed periods.
- Tiers: a rule never awards (or notifies) a tier at or below one the user holds; granting a
  tier decides every lower tier too (they are not awarded later); revoking without a tier
  revokes the highest tier held, with a tier that tier and every higher one held, or with
  `all_tiers` every tier. A revoked tier is not awarded again by the rule (only by hand).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import cel

from accolade_server.domain import days as days_
from accolade_server.domain import periods
from accolade_server.domain.errors import InvalidArgument
from accolade_server.domain.model import (
    Achievement,
    Aggregate,
    AwardKind,
    AwardSource,
    Holding,
    Rule,
)
from accolade_server.domain.state import DistinctKey, UserKey
from accolade_server.domain.state import Event as Event  # re-exported for the engine's callers
from accolade_server.domain.state import ProgressState as ProgressState
from accolade_server.domain.state import Snapshot as Snapshot
from accolade_server.rules.cel import compile_condition, reads_user

#: Names given to `badge_level_threshold` levels; further levels are called level-4, level-5, …
LEVEL_NAMES = ("bronze", "silver", "gold", "platinum", "diamond")


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
        rule = self.achievement.rule
        return not rule.event_types and rule.aggregate is not Aggregate.PERIOD_STREAK


@dataclass(frozen=True, slots=True)
class Contribution:
    achievement_id: str
    amount: float = 1.0  # COUNT: 1, SUM/MAX: the field's value
    distinct_key: str | None = None  # DISTINCT: a hash of the field's value
    day: int | None = None  # STREAK_DAYS: the event's local day (see domain/days.py)
    #: Repeating achievements: the event's period (its first day) and the period's start.
    period: int | None = None
    period_start: datetime | None = None


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
    #: (achievement id, distinct key) pairs already counted (read, not changed, by `apply`).
    distinct_seen: AbstractSet[tuple[str, str]] = frozenset()


@dataclass(frozen=True, slots=True)
class AwardDecision:
    """An award-log entry decided, before its cursor is known."""

    achievement_id: str
    level_index: int  # -1 for a held tier the definition no longer names
    tier: str
    points: int  # negative for a revocation
    source: AwardSource = AwardSource.RULE
    kind: AwardKind = AwardKind.AWARD
    #: Awards of a repeating achievement: the period's label and start (see Award.period).
    period: str = ""
    period_start: datetime | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    #: New state of every achievement whose state changed.
    progress: dict[str, ProgressState] = field(default_factory=dict)
    #: DISTINCT keys to record.
    distinct_new: tuple[tuple[str, str], ...] = ()
    awards: tuple[AwardDecision, ...] = ()
    #: (achievement id, reason) of contributions not counted (a STREAK_DAYS day too late).
    late: tuple[tuple[str, str], ...] = ()


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
        #: Whether some enabled condition reads `user`: then events are matched with their
        #: users' attributes (`Event.user_attributes`), read once per batch.
        self.reads_user = False
        #: Whether some enabled rule counts local days (STREAK_DAYS): then events that name
        #: no zone are matched with their users' profile zones (`Event.user_time_zone`).
        self.reads_zone = False
        for a in achievements:
            if not a.enabled:
                continue
            try:
                program = compile_program(a)
            except InvalidArgument as exc:
                self.broken[a.id] = (a, str(exc))
                continue
            self.reads_user = self.reads_user or (program is not None and reads_user(program))
            self.reads_zone = self.reads_zone or (
                (a.rule.aggregate is Aggregate.STREAK_DAYS or a.repeat is not periods.Repeat.NONE)
                and bool(a.rule.event_types)
            )
            compiled = Compiled(a, levels_of(a, level_thresholds, points_per_badge), program)
            self.by_id[a.id] = compiled
            for event_type in a.rule.event_types:
                self.by_type.setdefault(event_type, []).append(compiled)
            for pid in a.prerequisites:
                self.dependents.setdefault(pid, []).append(a.id)
            if a.rule.aggregate is Aggregate.PERIOD_STREAK and a.rule.achievement_id:
                # Re-checked whenever the repeating achievement's progress changes.
                self.dependents.setdefault(a.rule.achievement_id, []).append(a.id)

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
                # The mappings as they are (the library converts them; nothing changes them).
                context = cel.Context(
                    {
                        "event": {
                            "type": event.type,
                            "user_id": event.user_id,
                            "properties": _as_dict(event.properties),
                            "occurred_at": event.occurred_at,
                        },
                        "user": {"attributes": _as_dict(event.user_attributes or {})},
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


def _as_dict(m: Mapping[str, Any]) -> dict[str, Any]:
    return m if type(m) is dict else dict(m)


def _describe(exc: Exception) -> str:
    """A condition's evaluation error in the user's terms."""
    if isinstance(exc, KeyError):  # the CEL library's missing map key
        return f"condition reads {exc}, which the event does not have"
    return f"condition failed: {type(exc).__name__}: {exc}"


def _contribution(compiled: Compiled, event: Event) -> Contribution | ConditionError:
    found = _plain_contribution(compiled, event)
    repeat = compiled.achievement.repeat
    if repeat is periods.Repeat.NONE or isinstance(found, ConditionError):
        return found
    zone = event.time_zone or event.user_time_zone or compiled.achievement.time_zone
    hour = compiled.achievement.rule.day_start_hour
    period = periods.period_of(days_.local_day(event.occurred_at, zone, hour), repeat)
    start = periods.local_start(days_.day_date(period), days_.zone(zone), hour)
    return Contribution(
        found.achievement_id, found.amount, found.distinct_key, found.day, period, start
    )


def _plain_contribution(compiled: Compiled, event: Event) -> Contribution | ConditionError:
    rule = compiled.achievement.rule
    aid = compiled.id
    if rule.aggregate is Aggregate.COUNT:
        return Contribution(aid)
    if rule.aggregate is Aggregate.STREAK_DAYS:
        zone = event.time_zone or event.user_time_zone or compiled.achievement.time_zone
        return Contribution(aid, day=days_.local_day(event.occurred_at, zone, rule.day_start_hour))
    try:
        value = _lookup(event.properties, rule.field)
    except KeyError:
        return ConditionError(aid, f"event has no property {rule.field!r}")
    if rule.aggregate is Aggregate.DISTINCT:
        return Contribution(aid, distinct_key=distinct_key(value))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ConditionError(aid, f"property {rule.field!r} is not a number: {value!r}")
    return Contribution(aid, amount=float(value))


def _fold(state: ProgressState, rule: Rule, c: Contribution, is_new: bool) -> ProgressState:
    """The state with one contribution; raises days.Late for a STREAK_DAYS day too late."""
    aggregate = rule.aggregate
    # ProgressState(...) rather than dataclasses.replace: this runs for every contribution.
    if aggregate is Aggregate.COUNT:
        return ProgressState(
            state.value + 1, state.level, state.streak_day, state.streak_current, None, state.period
        )
    if aggregate is Aggregate.SUM:
        return ProgressState(
            state.value + c.amount,
            state.level,
            state.streak_day,
            state.streak_current,
            None,
            state.period,
        )
    if aggregate is Aggregate.MAX:
        if c.amount <= state.value:
            return state
        return ProgressState(
            c.amount, state.level, state.streak_day, state.streak_current, None, state.period
        )
    if aggregate is Aggregate.DISTINCT:
        if not is_new:
            return state
        return ProgressState(state.value + 1, state.level, state.streak_day, state.streak_current)
    # STREAK_DAYS: a set of days (late and out-of-order days fill theirs); the value is the
    # best streak, which never goes down.
    assert c.day is not None
    before = stored_days(state, rule.lateness)
    after = days_.add(before, c.day, rule.lateness, rule.freezes_per_week)
    if after is before:
        return state
    streak = after.summary(rule.freezes_per_week)
    return ProgressState(
        max(state.value, float(streak.best)), state.level, after.latest, streak.current, after
    )


def stored_days(state: ProgressState, lateness: int) -> days_.Days | None:
    """The days of a STREAK_DAYS state, also of one stored before day sets."""
    if state.days is not None or state.streak_day is None:
        return state.days
    return days_.Days.legacy(state.streak_day, state.streak_current, state.value, lateness)


def _late_reason(state: ProgressState, rule: Rule, day: int) -> str:
    latest = state.streak_day
    when = days_.day_date(day).isoformat()
    if latest is None:
        return f"day {when} is too late to count"
    if day >= latest - rule.lateness:  # settled while max_event_lateness_days was lower
        return f"day {when} was settled before max_event_lateness_days was raised"
    return (
        f"day {when} is more than {rule.lateness} days before the latest day counted "
        f"({days_.day_date(latest).isoformat()}; max_event_lateness_days)"
    )


def apply(
    matched: Match,
    state: UserState,
    rules: RuleSet,
    *,
    awards_enabled: bool = True,
    also: Iterable[str] = (),
    affected: AbstractSet[str] | None = None,
) -> Outcome:
    """Fold the contributions into the state and decide the awards.

    `also` names further achievements to re-check, e.g. the dependents of a manual grant;
    `affected`, when the caller has it, is `rules.affected(matched) | rules.closure(also)`.
    """
    progress: dict[str, ProgressState] = {}
    distinct_new: list[tuple[str, str]] = []
    late: list[tuple[str, str]] = []
    seen_keys = state.distinct_seen

    known = state.progress

    def current(aid: str) -> ProgressState:
        return progress.get(aid) or known.get(aid) or _EMPTY

    for c in matched.contributions:
        compiled = rules.by_id[c.achievement_id]
        is_new = False
        if c.distinct_key is not None:
            pair = (c.achievement_id, c.distinct_key)
            is_new = pair not in seen_keys and pair not in distinct_new
            if is_new:
                distinct_new.append(pair)
        stored = before = progress.get(c.achievement_id) or known.get(c.achievement_id) or _EMPTY
        rule = compiled.achievement.rule
        if c.period is not None:  # a repeating achievement
            counted = before.period
            repeat = compiled.achievement.repeat
            if counted is not None and c.period < counted.period:
                late.append((c.achievement_id, _closed_reason(counted, c.period, repeat)))
                continue
            if counted is None or c.period > counted.period:  # a new period: from zero
                assert c.period_start is not None
                again = (
                    counted.reset(c.period, c.period_start)
                    if counted is not None
                    else periods.Counted(c.period, c.period_start)
                )
                before = ProgressState(period=again)
        try:
            after = _fold(before, rule, c, is_new)
        except days_.Late:
            assert c.day is not None
            late.append((c.achievement_id, _late_reason(before, rule, c.day)))
            continue
        if after is not stored and after != stored:
            progress[c.achievement_id] = after

    held = set(state.held)
    awards: list[AwardDecision] = []
    if affected is None:
        affected = rules.affected(matched) | rules.closure(also)
    todo = sorted(affected)
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
            a = candidate.achievement
            if a.rule.aggregate is Aggregate.PERIOD_STREAK:
                source = current(a.rule.achievement_id).period
                run = float(source.streak) if source is not None else 0.0
                if run != st.value:
                    st = progress[aid] = ProgressState(run, st.level)
            reached = _levels_reached(candidate, st)
            if reached <= st.level:
                continue
            counted = st.period
            label = ""
            if counted is not None:
                label = periods.label(counted.period, a.repeat)
                if st.level == 0:  # the period's first level: the period is completed
                    counted = counted.complete(a.repeat)
                    newly_held.append(aid)  # its PERIOD_STREAK rules are re-checked
            if awards_enabled:
                for index in range(st.level, reached):
                    level = candidate.levels[index]
                    awards.append(
                        AwardDecision(
                            aid,
                            index,
                            level.name,
                            level.points,
                            period=label,
                            period_start=counted.start if counted is not None else None,
                        )
                    )
                if aid not in held:
                    held.add(aid)
                    if aid not in newly_held:
                        newly_held.append(aid)
            progress[aid] = ProgressState(
                st.value, reached, st.streak_day, st.streak_current, st.days, counted
            )
        # Only what requires a newly held achievement is re-checked (nothing, mostly).
        todo = (
            sorted({d for aid in newly_held for d in rules.dependents.get(aid, ())})
            if newly_held and rules.dependents
            else []
        )
    return Outcome(progress, tuple(distinct_new), tuple(awards), tuple(late))


_EMPTY = ProgressState()


def _closed_reason(counted: periods.Counted, period: int, repeat: periods.Repeat) -> str:
    return (
        f"period {periods.label(period, repeat)} is closed: progress is counted for "
        f"{periods.label(counted.period, repeat)} (the achievement repeats {repeat.value})"
    )


def _levels_reached(compiled: Compiled, st: ProgressState) -> int:
    if compiled.is_meta:
        return 1
    value = st.value
    return sum(value >= level.threshold for level in compiled.levels)


# -- a whole batch ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tracked:
    """A tracked event with what it matched (see `match`)."""

    event: Event
    match: Match


@dataclass(frozen=True, slots=True)
class Grant:
    """A manual grant of `levels[index]` (the achievement may be disabled, so its levels
    come with the step)."""

    user_id: str
    achievement_id: str
    levels: tuple[Level, ...]
    index: int


@dataclass(frozen=True, slots=True)
class Revoke:
    """A manual revocation: of the highest tier held (`tier` None), of `tier` and every higher
    tier held, or of every tier held (`all_tiers`)."""

    user_id: str
    achievement_id: str
    levels: tuple[Level, ...]  # empty when the achievement no longer exists
    tier: str | None = None
    all_tiers: bool = False


FoldStep = Tracked | Grant | Revoke


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What one step decided, and the user's state right after it (for progress views)."""

    user_id: str
    decisions: tuple[AwardDecision, ...]
    #: Achievements whose progress or holdings the step changed, and their states.
    changed: tuple[str, ...]
    states: Mapping[str, ProgressState]
    holdings: tuple[Holding, ...]
    #: (achievement id, reason) of the event's contributions not counted (see Outcome.late).
    late: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Folded:
    steps: tuple[StepOutcome, ...]  # one per step, in order
    #: The final state of every (user, achievement) whose state changed.
    progress: dict[UserKey, ProgressState]
    #: DISTINCT values to record.
    distinct_new: tuple[DistinctKey, ...]


def _index(levels: Sequence[Level], tier: str) -> int:
    for i, level in enumerate(levels):
        if level.name == tier:
            return i
    return -1


def _top_held(levels: Sequence[Level], holdings: Iterable[Holding], aid: str) -> int:
    """1 + the index of the highest tier of `aid` held (0 when none is)."""
    return 1 + max(
        (_index(levels, h.tier) for h in holdings if h.achievement_id == aid), default=-1
    )


def fold(
    steps: Sequence[FoldStep],
    snapshot: Snapshot,
    rules: RuleSet,
    *,
    now: datetime,
    awards_enabled: bool = True,
) -> Folded:
    """Run `steps` in order over `snapshot` (not changed) and decide the award-log entries.

    The snapshot must hold the progress of every (user, achievement) the steps affect
    (`rules.affected`, or `rules.closure` of a granted or revoked achievement), the holdings of
    their users and the DISTINCT values they carry; missing entries read as empty.
    """
    progress = dict(snapshot.progress)
    holdings = {u: list(hs) for u, hs in snapshot.holdings.items()}
    seen: dict[str, set[tuple[str, str]]] = {}
    for u, a, h in snapshot.distinct:
        seen.setdefault(u, set()).add((a, h))
    dirty: dict[UserKey, ProgressState] = {}
    distinct_new: list[DistinctKey] = []
    outcomes: list[StepOutcome] = []

    def decide(mine: list[Holding], decisions: Iterable[AwardDecision]) -> list[AwardDecision]:
        """The rule's awards of tiers above those held (the rest were decided before); a
        repeating achievement's, above those held in the same period."""
        kept = []
        for d in decisions:
            own = [h for h in mine if h.period == d.period] if d.period else mine
            if d.level_index >= _top_held(
                rules.by_id[d.achievement_id].levels, own, d.achievement_id
            ):
                kept.append(d)
                mine.append(Holding(d.achievement_id, d.tier, 0, d.points, now, d.period))
        return kept

    def cascade(
        user: str, mine: list[Holding], matched: Match, also: Sequence[str]
    ) -> tuple[list[AwardDecision], list[str], tuple[tuple[str, str], ...]]:
        """`apply` for one user; the awards kept, the achievements changed and the
        contributions not counted."""
        ids = rules.affected(matched) | rules.closure(also) if also else rules.affected(matched)
        state = UserState(
            progress={aid: progress[(user, aid)] for aid in ids if (user, aid) in progress},
            held=frozenset(h.achievement_id for h in mine),
            # Not copied: `apply` only reads it (the batch's own set, updated below).
            distinct_seen=seen.get(user, frozenset()),
        )
        out = apply(matched, state, rules, awards_enabled=awards_enabled, also=also, affected=ids)
        for aid, st in out.progress.items():
            progress[(user, aid)] = dirty[(user, aid)] = st
        if out.distinct_new:
            mine_seen = seen.setdefault(user, set())
            for aid, h in out.distinct_new:
                mine_seen.add((aid, h))
                distinct_new.append((user, aid, h))
        kept = decide(mine, out.awards) if out.awards else []
        return kept, [*out.progress, *(d.achievement_id for d in kept)], out.late

    def raise_level(user: str, aid: str, level: int) -> bool:
        st = progress.get((user, aid), _EMPTY)
        if st.level >= level:
            return False
        new = ProgressState(st.value, level, st.streak_day, st.streak_current, st.days, st.period)
        progress[(user, aid)] = dirty[(user, aid)] = new
        return True

    for step in steps:
        kept: list[AwardDecision] = []
        changed: list[str] = []
        late: tuple[tuple[str, str], ...] = ()
        if isinstance(step, Tracked):
            user = step.event.user_id
            mine = holdings.setdefault(user, [])
            kept, changed, late = cascade(user, mine, step.match, ())
        elif isinstance(step, Grant):
            user, aid = step.user_id, step.achievement_id
            mine = holdings.setdefault(user, [])
            level = step.levels[step.index]
            if not any(
                h.achievement_id == aid and h.tier == level.name and not h.period for h in mine
            ):
                kept.append(
                    AwardDecision(aid, step.index, level.name, level.points, AwardSource.MANUAL)
                )
                mine.append(Holding(aid, level.name, 0, level.points, now))
                if not _repeats(rules, aid):  # a period's levels are the rule's to decide
                    raise_level(user, aid, step.index + 1)
                more, changed, _ = cascade(user, mine, Match(()), (aid,))
                kept.extend(more)
                changed.insert(0, aid)
        else:
            user, aid = step.user_id, step.achievement_id
            mine = holdings.setdefault(user, [])
            gone = _revoked(step, [h for h in mine if h.achievement_id == aid])
            for held in gone:
                index = _index(step.levels, held.tier)
                kept.append(
                    AwardDecision(
                        aid,
                        index,
                        held.tier,
                        -held.points,
                        AwardSource.MANUAL,
                        AwardKind.REVOCATION,
                        held.period,
                    )
                )
                mine.remove(held)
            if gone and not _repeats(rules, aid):
                top = max(_index(step.levels, h.tier) for h in gone)
                if top >= 0:
                    raise_level(user, aid, top + 1)
                changed = [aid]
        states = {aid: progress[(user, aid)] for aid in changed if (user, aid) in progress}
        outcomes.append(StepOutcome(user, tuple(kept), tuple(changed), states, tuple(mine), late))
    return Folded(tuple(outcomes), dirty, tuple(distinct_new))


def _repeats(rules: RuleSet, aid: str) -> bool:
    compiled = rules.by_id.get(aid)
    return compiled is not None and compiled.achievement.repeat is not periods.Repeat.NONE


def _revoked(step: Revoke, held: list[Holding]) -> list[Holding]:
    """The holdings a revocation removes, lowest tier first."""

    def rank(h: Holding) -> tuple[int, int]:
        return _index(step.levels, h.tier), h.award_cursor

    held.sort(key=rank)
    if step.all_tiers or not held:
        return held
    if step.tier is None:
        return held[-1:]
    index = _index(step.levels, step.tier)
    if index < 0:
        return [h for h in held if h.tier == step.tier]
    return [h for h in held if _index(step.levels, h.tier) >= index]
