"""The achievement form: HTML form fields to and from domain values, and error placement."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.datastructures import FormData

from accolade_server.domain.errors import InvalidArgument
from accolade_server.domain.model import Achievement, Aggregate, Reward, Rule, Tier
from accolade_server.domain.periods import Repeat

AGGREGATES = [
    (Aggregate.COUNT, "count of matching events"),
    (Aggregate.SUM, "sum of a property"),
    (Aggregate.MAX, "largest value of a property"),
    (Aggregate.DISTINCT, "distinct values of a property"),
    (Aggregate.STREAK_DAYS, "days in a row"),
    (Aggregate.PERIOD_STREAK, "completed periods in a row of a repeating achievement"),
]
REPEATS = [
    (Repeat.NONE, "does not repeat"),
    (Repeat.DAILY, "every local day"),
    (Repeat.WEEKLY, "every ISO week (Monday to Sunday)"),
    (Repeat.MONTHLY, "every calendar month"),
]
_SEPARATORS = re.compile(r"[\s,]+")
_TIME_FORMAT = "%Y-%m-%dT%H:%M"


@dataclass(frozen=True, slots=True)
class TierRow:
    name: str = ""
    threshold: str = ""
    points: str = ""
    rewards: str = ""


@dataclass(frozen=True, slots=True)
class FormValues:
    """What the form shows: the user's own text, so a failed save keeps what they typed."""

    id: str = ""
    title: str = ""
    description: str = ""
    icon_url: str = ""
    category: str = ""
    points: str = "0"
    hidden: bool = False
    enabled: bool = True
    event_types: str = ""
    condition: str = ""
    aggregate: str = Aggregate.COUNT.value
    field: str = ""
    target: str = "1"
    tiers: tuple[TierRow, ...] = ()
    use_level_thresholds: bool = False
    prerequisites: str = ""
    start_time: str = ""
    end_time: str = ""
    etag: str = ""
    # STREAK_DAYS options.
    time_zone: str = ""
    day_start_hour: str = "0"
    max_event_lateness_days: str = ""  # empty: the default
    freezes_per_week: str = "0"
    rewards: str = ""
    repeat: str = ""
    #: PERIOD_STREAK: the repeating achievement counted.
    period_source: str = ""


def _time_text(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime(_TIME_FORMAT) if value else ""


def from_achievement(a: Achievement) -> FormValues:
    return FormValues(
        id=a.id,
        title=a.title,
        description=a.description,
        icon_url=a.icon_url,
        category=a.category,
        points=str(a.points),
        hidden=a.hidden,
        enabled=a.enabled,
        event_types=", ".join(a.rule.event_types),
        condition=a.rule.condition,
        aggregate=a.rule.aggregate.value,
        field=a.rule.field,
        target=f"{a.rule.target:g}",
        tiers=tuple(
            TierRow(t.name, f"{t.threshold:g}", str(t.points), rewards_text(t.rewards))
            for t in a.tiers
        ),
        use_level_thresholds=a.use_level_thresholds,
        prerequisites=", ".join(a.prerequisites),
        start_time=_time_text(a.start_time),
        end_time=_time_text(a.end_time),
        etag=a.etag,
        time_zone=a.time_zone,
        day_start_hour=str(a.rule.day_start_hour),
        max_event_lateness_days=""
        if a.rule.max_event_lateness_days is None
        else str(a.rule.max_event_lateness_days),
        freezes_per_week=str(a.rule.freezes_per_week),
        rewards=rewards_text(a.rewards),
        repeat=a.repeat.value,
        period_source=a.rule.achievement_id,
    )


def _text(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _texts(form: FormData, name: str) -> list[str]:
    return [v for v in form.getlist(name) if isinstance(v, str)]


def from_form(form: FormData) -> FormValues:
    names, thresholds, points, rewards = (
        _texts(form, "tier_name"),
        _texts(form, "tier_threshold"),
        _texts(form, "tier_points"),
        _texts(form, "tier_rewards"),
    )
    rows = max(len(names), len(thresholds), len(points), len(rewards))

    def at(values: list[str], i: int) -> str:
        return values[i] if i < len(values) else ""

    return FormValues(
        id=_text(form, "id").strip(),
        title=_text(form, "title"),
        description=_text(form, "description"),
        icon_url=_text(form, "icon_url").strip(),
        category=_text(form, "category").strip(),
        points=_text(form, "points").strip() or "0",
        hidden=bool(_text(form, "hidden")),
        enabled=bool(_text(form, "enabled")),
        event_types=_text(form, "event_types"),
        condition=_text(form, "condition"),
        aggregate=_text(form, "aggregate") or Aggregate.COUNT.value,
        field=_text(form, "field").strip(),
        target=_text(form, "target").strip() or "1",
        tiers=tuple(
            TierRow(at(names, i), at(thresholds, i), at(points, i), at(rewards, i))
            for i in range(rows)
        ),
        use_level_thresholds=bool(_text(form, "use_level_thresholds")),
        prerequisites=_text(form, "prerequisites"),
        start_time=_text(form, "start_time").strip(),
        end_time=_text(form, "end_time").strip(),
        etag=_text(form, "etag"),
        time_zone=_text(form, "time_zone").strip(),
        day_start_hour=_text(form, "day_start_hour").strip() or "0",
        max_event_lateness_days=_text(form, "max_event_lateness_days").strip(),
        freezes_per_week=_text(form, "freezes_per_week").strip() or "0",
        rewards=_text(form, "rewards"),
        repeat=_text(form, "repeat").strip(),
        period_source=_text(form, "period_source").strip(),
    )


def _int(text: str, field: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument("must be a whole number", field=field) from None


def _float(text: str, field: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgument("must be a number", field=field) from None
    if not math.isfinite(value):
        raise InvalidArgument("must be a finite number", field=field)
    return value


def _time(text: str, field: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text[:16], _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise InvalidArgument(
            "must be a date and time (YYYY-MM-DDTHH:MM, UTC)", field=field
        ) from None


def split_list(text: str) -> tuple[str, ...]:
    """Items of a comma- or space-separated field."""
    return tuple(item for item in _SEPARATORS.split(text) if item)


_PROPERTY = re.compile(r"\bevent\.properties\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")
_STRING = re.compile(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"")


def condition_properties(condition: str) -> list[str]:
    """The `event.properties.…` paths a condition reads (outside string literals)."""
    code = _STRING.sub('""', condition)
    return sorted(set(_PROPERTY.findall(code)))


def to_achievement(v: FormValues) -> Achievement:
    """The definition the form describes; InvalidArgument names the field in the form's terms."""
    try:
        aggregate = Aggregate(v.aggregate)
    except ValueError:
        raise InvalidArgument(
            f"unknown aggregate {v.aggregate!r}", field="achievement.rule.aggregate"
        ) from None
    tiers = tuple(
        Tier(
            row.name.strip(),
            _float(row.threshold, f"achievement.tiers[{i}].threshold"),
            _int(row.points.strip() or "0", f"achievement.tiers[{i}].points"),
            parse_rewards(row.rewards, f"achievement.tiers[{i}].rewards"),
        )
        for i, row in enumerate(v.tiers)
    )
    return Achievement(
        id=v.id,
        title=v.title,
        description=v.description,
        icon_url=v.icon_url,
        category=v.category,
        points=_int(v.points, "achievement.points"),
        hidden=v.hidden,
        enabled=v.enabled,
        rule=Rule(
            event_types=split_list(v.event_types),
            condition=v.condition,
            aggregate=aggregate,
            field=v.field,
            target=_float(v.target, "achievement.rule.target"),
            day_start_hour=_int(v.day_start_hour, "achievement.rule.day_start_hour"),
            max_event_lateness_days=_int(
                v.max_event_lateness_days, "achievement.rule.max_event_lateness_days"
            )
            if v.max_event_lateness_days
            else None,
            freezes_per_week=_int(v.freezes_per_week, "achievement.rule.freezes_per_week"),
            achievement_id=v.period_source,
        ),
        tiers=tiers,
        prerequisites=split_list(v.prerequisites),
        start_time=_time(v.start_time, "achievement.start_time"),
        end_time=_time(v.end_time, "achievement.end_time"),
        use_level_thresholds=v.use_level_thresholds,
        time_zone=v.time_zone,
        rewards=parse_rewards(v.rewards, "achievement.rewards"),
        repeat=_repeat(v.repeat),
    )


def _repeat(text: str) -> Repeat:
    try:
        return Repeat(text)
    except ValueError:
        names = ", ".join(r.value for r in Repeat if r.value)
        raise InvalidArgument(
            f"must be one of {names} (or empty)", field="achievement.repeat"
        ) from None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_REWARD = re.compile(r"^(?P<name>[^@]+)(?:@(?P<n>\d+)(?P<unit>[smhd]))?$")


def rewards_text(rewards: tuple[Reward, ...]) -> str:
    """Rewards as the form shows them: `name` or `name@30d`, comma-separated."""

    def one(r: Reward) -> str:
        if r.valid_for is None:
            return r.name
        seconds = int(r.valid_for.total_seconds())
        unit = next(u for u in ("d", "h", "m", "s") if seconds % _UNITS[u] == 0)
        return f"{r.name}@{seconds // _UNITS[unit]}{unit}"

    return ", ".join(one(r) for r in rewards)


def parse_rewards(text: str, field: str) -> tuple[Reward, ...]:
    """`feature:pro, coupon:SPRING10@30d`: each reward, valid for the time after `@`
    (s, m, h or d) or until revoked."""
    out = []
    for i, item in enumerate(split_list(text)):
        match = _REWARD.match(item)
        if match is None:
            raise InvalidArgument(
                f"{item!r}: write name or name@30d (s, m, h or d)", field=f"{field}[{i}].valid_for"
            )
        valid_for = None
        if match.group("n"):
            valid_for = timedelta(seconds=int(match.group("n")) * _UNITS[match.group("unit")])
        out.append(Reward(match.group("name"), valid_for))
    return tuple(out)


#: Error slots of the form; tier rows add `tiers-N-name|threshold|points`.
SLOTS = (
    "general",
    "id",
    "title",
    "description",
    "icon_url",
    "category",
    "points",
    "enabled",
    "hidden",
    "rule-event_types",
    "rule-condition",
    "rule-aggregate",
    "rule-field",
    "rule-target",
    "tiers",
    "use_level_thresholds",
    "prerequisites",
    "start_time",
    "end_time",
    "time_zone",
    "rule-day_start_hour",
    "rule-max_event_lateness_days",
    "rule-freezes_per_week",
    "rewards",
    "repeat",
    "rule-achievement_id",
)
TIER_PARTS = ("name", "threshold", "points", "rewards")
_TIER_FIELD = re.compile(r"^tiers\[(\d+)\]\.(name|threshold|points|rewards)(?:\[\d+\].*)?$")


def slot_of(field: str | None, tier_rows: int) -> str:
    """The form slot an error's field path belongs to (`general` when none fits)."""
    if not field:
        return "general"
    path = field.removeprefix("achievement.")
    if path == "rule":
        return "rule-event_types"
    tier = _TIER_FIELD.match(path)
    if tier:
        index = int(tier.group(1))
        return f"tiers-{index}-{tier.group(2)}" if index < tier_rows else "tiers"
    if path.startswith("rewards"):
        return "rewards"
    slot = re.sub(r"\[\d+\]", "", path).replace(".", "-")
    return slot if slot in SLOTS else "general"


def all_slots(tier_rows: int) -> list[str]:
    return [
        *SLOTS,
        *(f"tiers-{i}-{part}" for i in range(tier_rows) for part in TIER_PARTS),
    ]


_POSITION = re.compile(r"Syntax error at (\d+):(\d+)")


def condition_position(message: str) -> tuple[int, int] | None:
    """(line, column) of a CEL syntax error message, for the editor to point at."""
    found = _POSITION.search(message)
    return (int(found.group(1)), int(found.group(2))) if found else None
