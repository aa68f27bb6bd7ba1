"""Achievement definitions to and from the JSON stored in `achievements.definition`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from accolade_server.domain.model import Achievement, Aggregate, Reward, Rule, Tier
from accolade_server.domain.periods import Repeat


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _streak_json(a: Achievement) -> dict[str, Any]:
    """The STREAK_DAYS options that differ from their defaults (older rows have none)."""
    r = a.rule
    out: dict[str, Any] = {}
    if r.day_start_hour:
        out["day_start_hour"] = r.day_start_hour
    if r.max_event_lateness_days is not None:
        out["max_event_lateness_days"] = r.max_event_lateness_days
    if r.freezes_per_week:
        out["freezes_per_week"] = r.freezes_per_week
    if r.achievement_id:
        out["achievement_id"] = r.achievement_id
    return out


def to_json(a: Achievement) -> dict[str, Any]:
    extra: dict[str, Any] = {"time_zone": a.time_zone} if a.time_zone else {}
    if a.repeat is not Repeat.NONE:
        extra["repeat"] = a.repeat.value
    return {
        **extra,
        "title": a.title,
        "description": a.description,
        "icon_url": a.icon_url,
        "points": a.points,
        "hidden": a.hidden,
        "rule": {
            "event_types": list(a.rule.event_types),
            "condition": a.rule.condition,
            "aggregate": a.rule.aggregate.value,
            "field": a.rule.field,
            "target": a.rule.target,
            **_streak_json(a),
        },
        "tiers": [_tier_json(t) for t in a.tiers],
        "prerequisites": list(a.prerequisites),
        "start_time": _ts(a.start_time),
        "end_time": _ts(a.end_time),
        "use_level_thresholds": a.use_level_thresholds,
        **({"rewards": _rewards_json(a.rewards)} if a.rewards else {}),
    }


def _tier_json(t: Tier) -> dict[str, Any]:
    stored: dict[str, Any] = {"name": t.name, "threshold": t.threshold, "points": t.points}
    if t.rewards:
        stored["rewards"] = _rewards_json(t.rewards)
    return stored


def _rewards_json(rewards: Sequence[Reward]) -> list[dict[str, Any]]:
    """Rewards as stored; `valid_for` in seconds (absent: until revoked)."""
    return [
        {"name": r.name}
        if r.valid_for is None
        else {"name": r.name, "valid_for": r.valid_for.total_seconds()}
        for r in rewards
    ]


def _rewards(stored: list[dict[str, Any]] | None) -> tuple[Reward, ...]:
    """Rewards as stored (absent in definitions of earlier versions: none)."""
    return tuple(
        Reward(r["name"], None if r.get("valid_for") is None else timedelta(seconds=r["valid_for"]))
        for r in stored or ()
    )


def from_row(row: Any) -> Achievement:
    d = row.definition
    r = d["rule"]
    return Achievement(
        id=row.id,
        title=d["title"],
        description=d["description"],
        icon_url=d["icon_url"],
        category=row.category,
        points=d["points"],
        hidden=d["hidden"],
        enabled=row.enabled,
        rule=Rule(
            event_types=tuple(r["event_types"]),
            condition=r["condition"],
            aggregate=Aggregate(r["aggregate"]),
            field=r["field"],
            target=float(r["target"]),
            day_start_hour=r.get("day_start_hour", 0),
            max_event_lateness_days=r.get("max_event_lateness_days"),
            freezes_per_week=r.get("freezes_per_week", 0),
            achievement_id=r.get("achievement_id", ""),
        ),
        tiers=tuple(
            Tier(t["name"], float(t["threshold"]), t["points"], _rewards(t.get("rewards")))
            for t in d["tiers"]
        ),
        prerequisites=tuple(d["prerequisites"]),
        start_time=_parse_ts(d["start_time"]),
        end_time=_parse_ts(d["end_time"]),
        use_level_thresholds=d["use_level_thresholds"],
        time_zone=d.get("time_zone", ""),
        rewards=_rewards(d.get("rewards")),
        repeat=Repeat(d.get("repeat", "")),
        create_time=_utc(row.create_time),
        update_time=_utc(row.update_time),
        revision=row.revision,
        source=row.source,
    )


def _utc(value: datetime) -> datetime:
    from accolade_server.store.db import utc

    result = utc(value)
    assert result is not None
    return result
