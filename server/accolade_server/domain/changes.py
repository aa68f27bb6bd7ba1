"""What a new definition changes in a stored one, in a definitions file's terms. Pure.

Paths are those of the YAML native shape (`title`, `rule.condition`, `tiers[1].threshold`);
values are JSON text, so `""` (an empty string) differs from an absent value (empty text).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from accolade_server.domain.model import FIELD_AGGREGATES, Achievement, Reward


class ProgressPolicy(enum.StrEnum):
    """What happens to stored progress when a change alters its meaning (see admin.proto)."""

    UNSPECIFIED = "unspecified"  # refuse when users have progress
    KEEP = "keep"
    RESET = "reset"
    #: Recompute from stored events (a backfill); award new levels, keep those held.
    REEVALUATE = "reevaluate"
    #: Recompute; also revoke levels no longer reached.
    REVOKE_NON_QUALIFYING = "revoke_non_qualifying"

    @property
    def recomputes(self) -> bool:
        return self in (ProgressPolicy.REEVALUATE, ProgressPolicy.REVOKE_NON_QUALIFYING)


class Kind(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    old: str
    new: str


def _plain(value: Any) -> Any:
    """Values as a file writes them: whole floats as integers, times as ISO text."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def as_file(a: Achievement) -> dict[str, Any]:
    """The definition as a native-shape entry (without the id)."""
    return {
        "title": a.title,
        "description": a.description,
        "icon_url": a.icon_url,
        "category": a.category,
        "points": a.points,
        "hidden": a.hidden,
        "enabled": a.enabled,
        "rule": {
            "event_types": list(a.rule.event_types),
            "condition": a.rule.condition,
            "aggregate": a.rule.aggregate.value,
            "field": a.rule.field,
            "target": a.rule.target,
            **({"achievement_id": a.rule.achievement_id} if a.rule.achievement_id else {}),
        },
        **({"repeat": a.repeat.value} if a.repeat.value else {}),
        "tiers": [
            {
                "name": t.name,
                "threshold": t.threshold,
                "points": t.points,
                **({"rewards": _rewards(t.rewards)} if t.rewards else {}),
            }
            for t in a.tiers
        ],
        "prerequisites": list(a.prerequisites),
        "start_time": a.start_time,
        "end_time": a.end_time,
        "use_level_thresholds": a.use_level_thresholds,
        "rewards": _rewards(a.rewards),
    }


def _rewards(rewards: tuple[Reward, ...]) -> list[dict[str, Any]]:
    """Rewards as in a file, validity in seconds."""
    return [
        {"name": r.name}
        if r.valid_for is None
        else {"name": r.name, "valid_for": f"{int(r.valid_for.total_seconds())}s"}
        for r in rewards
    ]


def _text(value: Any) -> str:
    return json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"))


def diff(old: Achievement, new: Achievement) -> list[FieldChange]:
    """Every field whose value differs; tiers compared position by position."""
    changes: list[FieldChange] = []

    def walk(path: str, a: Any, b: Any) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in {**a, **b}:  # a tier's rewards are there only when it has some
                walk(f"{path}.{key}" if path else key, a.get(key), b.get(key))
        elif path == "tiers":
            for i in range(max(len(a), len(b))):
                if i >= len(a):
                    changes.append(FieldChange(f"tiers[{i}]", "", _text(b[i])))
                elif i >= len(b):
                    changes.append(FieldChange(f"tiers[{i}]", _text(a[i]), ""))
                else:
                    walk(f"tiers[{i}]", a[i], b[i])
        elif _plain(a) != _plain(b):
            changes.append(
                FieldChange(path, "" if a is None else _text(a), "" if b is None else _text(b))
            )

    walk("", as_file(old), as_file(new))
    return changes


#: Fields an entry may leave unset, with their unset value.
_OPTIONAL = {
    "description": "",
    "icon_url": "",
    "category": "",
    "points": 0,
    "hidden": False,
    "prerequisites": (),
    "start_time": None,
    "end_time": None,
    "use_level_thresholds": False,
    "tiers": (),
    "rewards": (),
}


def removed_fields(old: Achievement, new: Achievement, *, says_enabled: bool) -> list[str]:
    """Fields `old` has that `new` leaves unset, so replacing `old` by `new` clears them.

    `says_enabled` tells whether the new definition sets `enabled` at all: an entry that
    does not say it would turn a disabled achievement on.
    """
    removed = [
        name
        for name, unset in _OPTIONAL.items()
        if getattr(old, name) != unset
        and getattr(new, name) == unset
        and not (name == "tiers" and new.use_level_thresholds)
    ]
    if old.rule.condition and not new.rule.condition:
        removed.append("rule.condition")
    if not old.enabled and new.enabled and not says_enabled:
        removed.append("enabled")
    return removed


def _levels(a: Achievement) -> list[float] | str:
    """The thresholds `a` awards at (as `rules.engine.levels_of` picks them): its tiers', the
    server's level table, or its single target."""
    if a.tiers:
        return [t.threshold for t in a.tiers]
    return "level thresholds" if a.use_level_thresholds else [a.rule.target]


def meaning_changes(old: Achievement, new: Achievement) -> list[str]:
    """Changes that alter what stored progress means or which levels it reaches: event
    types, aggregate, field, condition, thresholds (tiers' or the target)."""
    out = []
    if set(old.rule.event_types) != set(new.rule.event_types):
        out.append(
            f"rule.event_types {_text(sorted(old.rule.event_types))} -> "
            f"{_text(sorted(new.rule.event_types))}"
        )
    if old.rule.aggregate != new.rule.aggregate:
        out.append(f"rule.aggregate {old.rule.aggregate.value} -> {new.rule.aggregate.value}")
    if old.rule.field != new.rule.field and (
        old.rule.aggregate in FIELD_AGGREGATES or new.rule.aggregate in FIELD_AGGREGATES
    ):
        out.append(f"rule.field {_text(old.rule.field)} -> {_text(new.rule.field)}")
    if old.rule.condition.strip() != new.rule.condition.strip():
        out.append(f"rule.condition {_text(old.rule.condition)} -> {_text(new.rule.condition)}")
    before, after = _levels(old), _levels(new)
    if before != after:
        where = "tiers" if old.tiers or new.tiers else "rule.target"
        out.append(f"{where} thresholds {_text(before)} -> {_text(after)}")
    if old.repeat != new.repeat:  # the stored period and its counts mean something else
        out.append(f"repeat {_text(old.repeat.value)} -> {_text(new.repeat.value)}")
    if old.rule.achievement_id != new.rule.achievement_id:
        out.append(
            f"rule.achievement_id {_text(old.rule.achievement_id)} -> "
            f"{_text(new.rule.achievement_id)}"
        )
    return out
