"""Achievement definitions to and from the JSON stored in `achievements.definition`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from accolade_server.domain.model import Achievement, Aggregate, Rule, Tier


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
        "tiers": [{"name": t.name, "threshold": t.threshold, "points": t.points} for t in a.tiers],
        "prerequisites": list(a.prerequisites),
        "start_time": _ts(a.start_time),
        "end_time": _ts(a.end_time),
        "use_level_thresholds": a.use_level_thresholds,
    }


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
        tiers=tuple(Tier(t["name"], float(t["threshold"]), t["points"]) for t in d["tiers"]),
        prerequisites=tuple(d["prerequisites"]),
        start_time=_parse_ts(d["start_time"]),
        end_time=_parse_ts(d["end_time"]),
        use_level_thresholds=d["use_level_thresholds"],
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
