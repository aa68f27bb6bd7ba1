"""Achievement definitions to and from the JSON stored in `achievements.definition`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from accolade_server.domain.model import Achievement, Aggregate, Reward, Rule, Tier


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def to_json(a: Achievement) -> dict[str, Any]:
    return {
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
        ),
        tiers=tuple(
            Tier(t["name"], float(t["threshold"]), t["points"], _rewards(t.get("rewards")))
            for t in d["tiers"]
        ),
        prerequisites=tuple(d["prerequisites"]),
        start_time=_parse_ts(d["start_time"]),
        end_time=_parse_ts(d["end_time"]),
        use_level_thresholds=d["use_level_thresholds"],
        rewards=_rewards(d.get("rewards")),
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
