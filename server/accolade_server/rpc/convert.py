"""Proto messages to and from domain values."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.struct_pb2 import Struct, Value
from google.protobuf.timestamp_pb2 import Timestamp

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import points_pb2
from accolade.v1 import types_pb2 as pb
from accolade_server.domain import shapes
from accolade_server.domain.changes import Kind, ProgressPolicy
from accolade_server.domain.errors import InvalidArgument
from accolade_server.domain.model import (
    MUTABLE_FIELDS,
    RULE_FIELDS,
    SPENDING,
    Achievement,
    Aggregate,
    AwardKind,
    AwardRecord,
    AwardSource,
    DefinitionStatus,
    Presentation,
    Reward,
    Rule,
    Tier,
)
from accolade_server.domain.periods import Repeat
from accolade_server.domain.points import Balance
from accolade_server.domain.rewards import expiry, granted
from accolade_server.domain.validation import PropertyStats
from accolade_server.service.achievements import ApplyResult
from accolade_server.wire import (
    AGGREGATE_TO_PROTO as _AGGREGATE_TO_PROTO,
)
from accolade_server.wire import progress_to_proto as progress_to_proto
from accolade_server.wire import set_timestamp as set_timestamp

_AGGREGATE_TO_DOMAIN = {
    pb.AGGREGATE_UNSPECIFIED: Aggregate.COUNT,
    pb.AGGREGATE_COUNT: Aggregate.COUNT,
    pb.AGGREGATE_SUM: Aggregate.SUM,
    pb.AGGREGATE_MAX: Aggregate.MAX,
    pb.AGGREGATE_DISTINCT: Aggregate.DISTINCT,
    pb.AGGREGATE_STREAK_DAYS: Aggregate.STREAK_DAYS,
    pb.AGGREGATE_PERIOD_STREAK: Aggregate.PERIOD_STREAK,
}

MIN_SECONDS = -62135596800  # 0001-01-01T00:00:00Z
MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z


def timestamp_to_datetime(ts: Timestamp, field: str) -> datetime:
    if not MIN_SECONDS <= ts.seconds <= MAX_SECONDS or not 0 <= ts.nanos < 1_000_000_000:
        raise InvalidArgument("is not a valid timestamp", field=field)
    return ts.ToDatetime(tzinfo=UTC)


def datetime_to_timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    set_timestamp(ts, value)
    return ts


def optional_time(msg: Any, name: str, field: str) -> datetime | None:
    return timestamp_to_datetime(getattr(msg, name), field) if msg.HasField(name) else None


def rule_from_proto(rule: pb.Rule, field: str) -> Rule:
    aggregate = _AGGREGATE_TO_DOMAIN.get(rule.aggregate)
    if aggregate is None:
        raise InvalidArgument(
            f"unknown value {rule.aggregate}; one of {_valid_names(pb.Aggregate, 'AGGREGATE_')}",
            field=f"{field}.aggregate",
        )
    return Rule(
        event_types=tuple(rule.event_types),
        condition=rule.condition,
        aggregate=aggregate,
        field=rule.field,
        target=rule.target or 1.0,
        day_start_hour=rule.day_start_hour,
        max_event_lateness_days=rule.max_event_lateness_days
        if rule.HasField("max_event_lateness_days")
        else None,
        freezes_per_week=rule.freezes_per_week,
        achievement_id=rule.achievement_id,
    )


def achievement_from_proto(a: pb.Achievement, field: str = "achievement") -> Achievement:
    if not a.HasField("rule"):
        raise InvalidArgument("is required", field=f"{field}.rule")
    return Achievement(
        id=a.id,
        title=a.title,
        description=a.description,
        icon_url=a.icon_url,
        category=a.category,
        points=a.points,
        hidden=a.hidden,
        enabled=a.enabled if a.HasField("enabled") else True,
        rule=rule_from_proto(a.rule, f"{field}.rule"),
        tiers=tuple(_tier(t) for t in a.tiers),
        prerequisites=tuple(a.prerequisites),
        start_time=optional_time(a, "start_time", f"{field}.start_time"),
        end_time=optional_time(a, "end_time", f"{field}.end_time"),
        use_level_thresholds=a.use_level_thresholds,
        time_zone=a.time_zone,
        rewards=rewards_from_proto(a.rewards),
        repeat=_repeat_from_proto(a.repeat, f"{field}.repeat"),
    )


REPEAT_TO_PROTO = {
    Repeat.NONE: pb.REPEAT_UNSPECIFIED,
    Repeat.DAILY: pb.REPEAT_DAILY,
    Repeat.WEEKLY: pb.REPEAT_WEEKLY,
    Repeat.MONTHLY: pb.REPEAT_MONTHLY,
}
_REPEAT_TO_DOMAIN = {v: k for k, v in REPEAT_TO_PROTO.items()}


def _repeat_from_proto(value: int, field: str) -> Repeat:
    repeat: Repeat | None = _REPEAT_TO_DOMAIN.get(value)  # type: ignore[call-overload]
    if repeat is None:
        raise InvalidArgument(
            f"unknown value {value}; one of {_valid_names(pb.Repeat, 'REPEAT_')}", field=field
        )
    return repeat


def _tier(t: pb.Tier) -> Tier:
    return Tier(t.name, t.threshold, t.points, rewards_from_proto(t.rewards))


def rewards_from_proto(rewards: Iterable[points_pb2.Reward]) -> tuple[Reward, ...]:
    return tuple(
        Reward(r.name, r.valid_for.ToTimedelta() if r.HasField("valid_for") else None)
        for r in rewards
    )


def rewards_to_proto(rewards: Iterable[Reward]) -> list[points_pb2.Reward]:
    out = []
    for r in rewards:
        message = points_pb2.Reward(name=r.name)
        if r.valid_for is not None:
            message.valid_for.FromTimedelta(r.valid_for)
        out.append(message)
    return out


def rule_to_proto(rule: Rule) -> pb.Rule:
    msg = pb.Rule(
        event_types=rule.event_types,
        condition=rule.condition,
        aggregate=_AGGREGATE_TO_PROTO[rule.aggregate],
        field=rule.field,
        target=rule.target,
        day_start_hour=rule.day_start_hour,
        freezes_per_week=rule.freezes_per_week,
        achievement_id=rule.achievement_id,
    )
    if rule.max_event_lateness_days is not None:
        msg.max_event_lateness_days = rule.max_event_lateness_days
    return msg


def achievement_to_proto(a: Achievement, status: DefinitionStatus | None = None) -> pb.Achievement:
    msg = pb.Achievement(
        id=a.id,
        title=a.title,
        description=a.description,
        icon_url=a.icon_url,
        category=a.category,
        points=a.points,
        hidden=a.hidden,
        enabled=a.enabled,
        rule=rule_to_proto(a.rule),
        tiers=[
            pb.Tier(
                name=t.name,
                threshold=t.threshold,
                points=t.points,
                rewards=rewards_to_proto(t.rewards),
            )
            for t in a.tiers
        ],
        prerequisites=a.prerequisites,
        etag=a.etag,
        use_level_thresholds=a.use_level_thresholds,
        time_zone=a.time_zone,
        rewards=rewards_to_proto(a.rewards),
        repeat=REPEAT_TO_PROTO[a.repeat],
    )
    for name in ("start_time", "end_time", "create_time", "update_time"):
        value = getattr(a, name)
        if value is not None:
            getattr(msg, name).CopyFrom(datetime_to_timestamp(value))
    if status is not None:
        msg.broken_reason = status.broken_reason
        msg.condition_error_count = status.condition_error_count
        msg.last_condition_error = status.last_condition_error
        if status.last_condition_error_time is not None:
            msg.last_condition_error_time.CopyFrom(
                datetime_to_timestamp(status.last_condition_error_time)
            )
    return msg


def patch_from_mask(a: pb.Achievement, paths: list[str]) -> dict[str, Any]:
    """Domain field values for the update mask paths (AIP-134 semantics, see admin.proto)."""
    full = achievement_from_proto(a) if a.HasField("rule") else None
    if not paths:
        paths = [f.name for f, _ in a.ListFields() if f.name not in ("id", "etag")]
    elif paths == ["*"]:
        if full is None:
            raise InvalidArgument("is required to replace everything", field="achievement.rule")
        return {name: getattr(full, name) for name in MUTABLE_FIELDS}
    patch: dict[str, Any] = {}
    for path in paths:
        head, _, sub = path.partition(".")
        if head == "rule":
            rule = rule_from_proto(a.rule, "achievement.rule")
            if sub:
                patch[path] = getattr(rule, sub) if sub in RULE_FIELDS else None
            else:
                patch["rule"] = rule
        elif head in MUTABLE_FIELDS and not sub:
            if head in ("start_time", "end_time"):
                patch[head] = optional_time(a, head, f"achievement.{head}")
            elif head == "enabled":
                patch[head] = a.enabled
            elif head == "tiers":
                patch[head] = tuple(_tier(t) for t in a.tiers)
            elif head == "rewards":
                patch[head] = rewards_from_proto(a.rewards)
            elif head == "prerequisites":
                patch[head] = tuple(a.prerequisites)
            elif head == "repeat":
                patch[head] = _repeat_from_proto(a.repeat, "achievement.repeat")
            else:
                patch[head] = getattr(a, head)
        else:
            patch[path] = None  # rejected with a clear message by the service
    return patch


_SOURCE_TO_PROTO = {
    AwardSource.RULE: pb.AWARD_SOURCE_RULE,
    AwardSource.MANUAL: pb.AWARD_SOURCE_MANUAL,
    AwardSource.BACKFILL: pb.AWARD_SOURCE_BACKFILL,
    AwardSource.BACKFILL_NOTIFIED: pb.AWARD_SOURCE_BACKFILL_NOTIFIED,
}
_KIND_TO_PROTO = {
    AwardKind.AWARD: pb.AWARD_KIND_AWARD,
    AwardKind.REVOCATION: pb.AWARD_KIND_REVOCATION,
    AwardKind.ERASURE: pb.AWARD_KIND_ERASURE,
    AwardKind.LEVEL: pb.AWARD_KIND_LEVEL,
    AwardKind.REDEMPTION: pb.AWARD_KIND_REDEMPTION,
    AwardKind.REFUND: pb.AWARD_KIND_REFUND,
}


def award_to_proto(r: AwardRecord, achievement: Achievement | None) -> pb.Award:
    """An award log entry with the presentation of `achievement` as defined now (None: the
    achievement no longer exists, and the presentation is empty)."""
    shown = Presentation.of(achievement)
    msg = pb.Award(
        cursor=r.cursor,
        user_id=r.user_id,
        achievement_id=r.achievement_id,
        tier=r.tier,
        points=r.points,
        source=_SOURCE_TO_PROTO[r.source],
        reason=r.reason,
        actor=r.actor,
        award_time=datetime_to_timestamp(r.award_time),
        revoked=r.revoked,
        event_id="" if r.kind in SPENDING else r.event_id or "",
        title=shown.title,
        description=shown.description,
        icon_url=shown.icon_url,
        category=shown.category,
        hidden=shown.hidden,
        kind=_KIND_TO_PROTO[r.kind],
        redemption_id=r.redemption_id,
        reward_id=r.reward_id,
        rewards=_award_rewards(r, achievement),
        period=r.period,
    )
    if r.period_start is not None:
        set_timestamp(msg.period_start_time, r.period_start)
    return msg


def _award_rewards(r: AwardRecord, achievement: Achievement | None) -> list[points_pb2.Entitlement]:
    """What an award grants (with expiry) or a revocation removes, as defined now."""
    if r.kind not in (AwardKind.AWARD, AwardKind.REVOCATION):
        return []
    out = []
    for w in granted(achievement, r.tier):
        e = points_pb2.Entitlement(
            name=w.name,
            achievement_id=r.achievement_id,
            tier=r.tier,
            award_cursor=r.cursor,
            grant_time=datetime_to_timestamp(r.award_time),
        )
        ends = expiry(w, r.award_time)
        if ends is not None and r.kind is AwardKind.AWARD:
            e.expire_time.CopyFrom(datetime_to_timestamp(ends))
        out.append(e)
    return out


def balance_to_proto(b: Balance) -> points_pb2.PointsBalance:
    return points_pb2.PointsBalance(
        lifetime_points=b.lifetime,
        spendable_points=b.spendable,
        level=b.level,
        next_level=b.next_level,
        next_level_threshold=b.next_threshold,
        points_to_next_level=b.to_next_level,
    )


def awards_to_proto(
    records: Iterable[AwardRecord], definition: Callable[[str], Achievement | None]
) -> list[pb.Award]:
    """`award_to_proto` of each record, with its achievement's `definition(id)`."""
    return [award_to_proto(r, definition(r.achievement_id)) for r in records]


def source_from_proto(value: int) -> AwardSource | None:
    """None (all sources) for AWARD_SOURCE_UNSPECIFIED."""
    if value == pb.AWARD_SOURCE_UNSPECIFIED:
        return None
    for source, proto in _SOURCE_TO_PROTO.items():
        if proto == value:
            return source
    raise InvalidArgument(f"unknown award source {value}", field="source")


def struct_to_dict(
    struct: Struct, field: str, stats: PropertyStats | None = None
) -> dict[str, Any]:
    """A Struct as plain Python values; non-finite numbers are refused (JSON has none).

    With `stats`, what `check_properties` bounds (size, depth, list length, NUL) is gathered
    in the same walk, for `PropertyStats.check`.
    """
    return _struct(struct, field, PropertyStats() if stats is None else stats, 1)


def _struct(struct: Struct, field: str, stats: PropertyStats, depth: int) -> dict[str, Any]:
    if depth > stats.depth:
        stats.depth = depth
    out = {}
    for key, v in struct.fields.items():
        stats.size += len(key)
        if "\x00" in key:
            stats.nul_key = True
        out[key] = _value(v, field, stats, depth + 1)
    return out


def _value(v: Value, field: str, stats: PropertyStats, depth: int) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "string_value":
        s = v.string_value
        stats.size += len(s)
        if "\x00" in s:
            stats.nul_string = True
        return s
    if kind == "number_value":
        stats.size += 8
        if not math.isfinite(v.number_value):
            raise InvalidArgument("numbers must be finite (no NaN or Infinity)", field=field)
        return v.number_value
    if kind == "bool_value":
        stats.size += 8
        return v.bool_value
    if kind == "struct_value":
        return _struct(v.struct_value, field, stats, depth)
    if kind == "list_value":
        if depth > stats.depth:
            stats.depth = depth
        values = v.list_value.values
        if len(values) > stats.longest_list:
            stats.longest_list = len(values)
        return [_value(item, field, stats, depth + 1) for item in values]
    stats.size += 8
    return None


_POLICY_TO_DOMAIN = {
    apb.PROGRESS_POLICY_UNSPECIFIED: ProgressPolicy.UNSPECIFIED,
    apb.PROGRESS_POLICY_KEEP: ProgressPolicy.KEEP,
    apb.PROGRESS_POLICY_RESET: ProgressPolicy.RESET,
    apb.PROGRESS_POLICY_REEVALUATE: ProgressPolicy.REEVALUATE,
    apb.PROGRESS_POLICY_REVOKE_NON_QUALIFYING: ProgressPolicy.REVOKE_NON_QUALIFYING,
}
_CHANGE_KIND_TO_PROTO = {
    Kind.CREATE: apb.AchievementChange.KIND_CREATE,
    Kind.UPDATE: apb.AchievementChange.KIND_UPDATE,
    Kind.UNCHANGED: apb.AchievementChange.KIND_UNCHANGED,
}
_TYPE_TO_PROTO = {
    shapes.STRING: apb.PROPERTY_TYPE_STRING,
    shapes.NUMBER: apb.PROPERTY_TYPE_NUMBER,
    shapes.BOOL: apb.PROPERTY_TYPE_BOOL,
    shapes.OBJECT: apb.PROPERTY_TYPE_OBJECT,
    shapes.LIST: apb.PROPERTY_TYPE_LIST,
    shapes.NULL: apb.PROPERTY_TYPE_NULL,
}
_TYPE_TO_DOMAIN = {proto: bit for bit, proto in _TYPE_TO_PROTO.items()}
MAX_SOURCE = 512


def _valid_names(enum: Any, prefix: str) -> str:
    return ", ".join(
        name.removeprefix(prefix).lower()
        for name in enum.keys()  # noqa: SIM118 (an EnumTypeWrapper, not a dict)
        if not name.endswith("UNSPECIFIED")
    )


def progress_policy_from_proto(value: int) -> ProgressPolicy:
    policy: ProgressPolicy | None = _POLICY_TO_DOMAIN.get(value)  # type: ignore[call-overload]
    if policy is None:
        raise InvalidArgument(
            f"unknown value {value}; one of {_valid_names(apb.ProgressPolicy, 'PROGRESS_POLICY_')}",
            field="progress_policy",
        )
    return policy


def source_name(value: str) -> str:
    if len(value) > MAX_SOURCE or any(ch < " " for ch in value):
        raise InvalidArgument(
            f"must be at most {MAX_SOURCE} characters without control characters", field="source"
        )
    return value


def event_type_from_proto(t: apb.EventType) -> shapes.EventTypeShape:
    return shapes.EventTypeShape(
        t.name,
        tuple(
            shapes.PropertyShape(p.path, _TYPE_TO_DOMAIN.get(p.declared_type, 0))
            for p in t.properties
        ),
    )


def event_type_to_proto(shape: shapes.EventTypeShape) -> apb.EventType:
    return apb.EventType(
        name=shape.name,
        properties=[
            apb.PropertyShape(
                path=p.path,
                declared_type=_TYPE_TO_PROTO.get(p.declared, apb.PROPERTY_TYPE_UNSPECIFIED),
                observed_types=[proto for bit, proto in _TYPE_TO_PROTO.items() if p.observed & bit],
            )
            for p in shape.properties
        ],
    )


def apply_result_to_proto(result: ApplyResult) -> apb.ApplyAchievementsResponse:
    return apb.ApplyAchievementsResponse(
        created=result.ids(Kind.CREATE),
        updated=result.ids(Kind.UPDATE),
        unchanged=result.ids(Kind.UNCHANGED),
        changes=[
            apb.AchievementChange(
                id=c.id,
                kind=_CHANGE_KIND_TO_PROTO[c.kind],
                fields=[
                    apb.FieldChange(field=f.field, old_value=f.old, new_value=f.new)
                    for f in c.fields
                ],
                previous_source=c.previous_source,
            )
            for c in result.changes
        ],
        warnings=result.warnings,
    )
