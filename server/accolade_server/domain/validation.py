"""Validation of achievement definitions, with errors that name the offending field."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from accolade_server.domain import days, rewards
from accolade_server.domain.errors import InvalidArgument
from accolade_server.domain.model import FIELD_AGGREGATES, Achievement, Aggregate
from accolade_server.domain.periods import Repeat
from accolade_server.domain.users import check_time_zone
from accolade_server.rules.cel import compile_condition

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
EVENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
PROPERTY_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,7}$")

MAX_TITLE = 200
MAX_DESCRIPTION = 2000
MAX_ICON_URL = 2048
MAX_CONDITION = 4096
MAX_EVENT_TYPES = 50
MAX_TIERS = 20
MAX_PREREQUISITES = 50
MAX_POINTS = 1_000_000_000
MAX_VALUE = 1e15


def check_slug(value: str, field: str) -> None:
    if not SLUG.match(value):
        raise InvalidArgument(
            f"{value!r} is not a valid id: use 1-64 characters of a-z, 0-9, '_' and '-', "
            "starting with a letter or digit",
            field=field,
        )


def _check_number(value: float, field: str, *, positive: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (positive and value == 0) or value > MAX_VALUE:
        bound = "greater than 0" if positive else "at least 0"
        raise InvalidArgument(f"must be a finite number {bound} and at most 1e15", field=field)


def validate_achievement(a: Achievement, prefix: str = "achievement") -> None:
    """Check one definition on its own (prerequisites are checked by `validate_graph`)."""
    check_slug(a.id, f"{prefix}.id")
    if not a.title.strip():
        raise InvalidArgument("is required", field=f"{prefix}.title")
    for name, value, limit in (
        ("title", a.title, MAX_TITLE),
        ("description", a.description, MAX_DESCRIPTION),
        ("icon_url", a.icon_url, MAX_ICON_URL),
    ):
        if len(value) > limit:
            raise InvalidArgument(f"is longer than {limit} characters", field=f"{prefix}.{name}")
    if a.icon_url and not re.match(r"^https?://\S+$", a.icon_url):
        raise InvalidArgument("must be an http(s) URL", field=f"{prefix}.icon_url")
    if a.category:
        check_slug(a.category, f"{prefix}.category")
    if not 0 <= a.points <= MAX_POINTS:
        raise InvalidArgument(f"must be between 0 and {MAX_POINTS}", field=f"{prefix}.points")
    if a.start_time and a.end_time and a.start_time >= a.end_time:
        raise InvalidArgument("must be after start_time", field=f"{prefix}.end_time")
    if a.time_zone:
        check_time_zone(a.time_zone, f"{prefix}.time_zone")
    _validate_rule(a, f"{prefix}.rule")
    _validate_streak(a, f"{prefix}.rule")
    _validate_repeat(a, prefix)
    _validate_tiers(a, prefix)
    rewards.validate(a, prefix)
    _validate_prerequisite_list(a, f"{prefix}.prerequisites")


def _validate_rule(a: Achievement, prefix: str) -> None:
    rule = a.rule
    if rule.aggregate is Aggregate.PERIOD_STREAK:
        _validate_period_streak(a, prefix)
        return
    if rule.achievement_id:
        raise InvalidArgument(
            f"applies only to PERIOD_STREAK, not {rule.aggregate.name}",
            field=f"{prefix}.achievement_id",
        )
    if not rule.event_types:
        if not a.prerequisites:
            raise InvalidArgument(
                "at least one event type is required (or, for a meta-achievement earned by "
                "earning others, none and a list of prerequisites)",
                field=f"{prefix}.event_types",
            )
        if rule.condition or rule.field or rule.aggregate is not Aggregate.COUNT or a.tiers:
            raise InvalidArgument(
                "a meta-achievement (no event types) has no condition, aggregate, field or tiers",
                field=prefix,
            )
        return
    if len(rule.event_types) > MAX_EVENT_TYPES:
        raise InvalidArgument(
            f"at most {MAX_EVENT_TYPES} event types", field=f"{prefix}.event_types"
        )
    if len(set(rule.event_types)) != len(rule.event_types):
        raise InvalidArgument("contains duplicates", field=f"{prefix}.event_types")
    for i, event_type in enumerate(rule.event_types):
        if not EVENT_TYPE.match(event_type):
            raise InvalidArgument(
                f"{event_type!r} is not a valid event type: 1-128 characters of letters, digits "
                "and _ . : -",
                field=f"{prefix}.event_types[{i}]",
            )
    if len(rule.condition) > MAX_CONDITION:
        raise InvalidArgument(
            f"is longer than {MAX_CONDITION} characters", field=f"{prefix}.condition"
        )
    if rule.condition.strip():
        try:
            compile_condition(rule.condition)
        except InvalidArgument as exc:
            raise InvalidArgument(exc.detail, field=f"{prefix}.condition") from exc
    if rule.aggregate in FIELD_AGGREGATES:
        if not rule.field:
            raise InvalidArgument(
                f"is required for aggregate {rule.aggregate.name}", field=f"{prefix}.field"
            )
        if not PROPERTY_PATH.match(rule.field):
            raise InvalidArgument(
                f"{rule.field!r} is not a property name (e.g. 'amount' or 'item.price')",
                field=f"{prefix}.field",
            )
    elif rule.field:
        raise InvalidArgument(
            f"is only read by SUM, MAX and DISTINCT, not {rule.aggregate.name}",
            field=f"{prefix}.field",
        )
    _check_number(rule.target, f"{prefix}.target", positive=True)
    if rule.aggregate in (Aggregate.COUNT, Aggregate.DISTINCT, Aggregate.STREAK_DAYS) and (
        rule.target != int(rule.target)
    ):
        raise InvalidArgument(
            f"must be a whole number for {rule.aggregate.name}", field=f"{prefix}.target"
        )


def _validate_period_streak(a: Achievement, prefix: str) -> None:
    """A PERIOD_STREAK rule: no events of its own, a repeating achievement to count (its
    existence is checked with the other definitions: `check_period_source`)."""
    rule = a.rule
    if rule.event_types:
        raise InvalidArgument(
            "a PERIOD_STREAK rule has no event types: it counts the completed periods of "
            "rule.achievement_id",
            field=f"{prefix}.event_types",
        )
    if rule.condition or rule.field:
        raise InvalidArgument(
            "a PERIOD_STREAK rule has no condition or field",
            field=f"{prefix}.condition" if rule.condition else f"{prefix}.field",
        )
    if not rule.achievement_id:
        raise InvalidArgument(
            "is required for PERIOD_STREAK: the repeating achievement whose periods are counted",
            field=f"{prefix}.achievement_id",
        )
    check_slug(rule.achievement_id, f"{prefix}.achievement_id")
    if rule.achievement_id == a.id:
        raise InvalidArgument(
            "cannot name the achievement itself", field=f"{prefix}.achievement_id"
        )
    _check_number(rule.target, f"{prefix}.target", positive=True)
    if rule.target != int(rule.target):
        raise InvalidArgument("must be a whole number for PERIOD_STREAK", field=f"{prefix}.target")


def check_period_source(a: Achievement, source: Achievement | None, prefix: str) -> None:
    """A PERIOD_STREAK rule's `achievement_id` names an existing repeating achievement
    (`source`, as it will be after the change; None when there is none)."""
    if a.rule.aggregate is not Aggregate.PERIOD_STREAK:
        return
    field = f"{prefix}.rule.achievement_id"
    if source is None:
        raise InvalidArgument(f"unknown achievement {a.rule.achievement_id!r}", field=field)
    if source.repeat is Repeat.NONE:
        raise InvalidArgument(
            f"achievement {source.id!r} does not repeat (set its repeat to daily, weekly or "
            "monthly)",
            field=field,
        )


#: Aggregates a repeating achievement may use: their value starts again each period.
REPEAT_AGGREGATES = frozenset({Aggregate.COUNT, Aggregate.SUM, Aggregate.MAX})


def _validate_repeat(a: Achievement, prefix: str) -> None:
    if a.repeat is Repeat.NONE:
        return
    if not a.rule.event_types:
        raise InvalidArgument(
            "only an achievement with event types repeats (not a meta-achievement or a "
            "PERIOD_STREAK rule)",
            field=f"{prefix}.repeat",
        )
    if a.rule.aggregate not in REPEAT_AGGREGATES:
        raise InvalidArgument(
            f"a repeating achievement counts with COUNT, SUM or MAX, not {a.rule.aggregate.name}",
            field=f"{prefix}.repeat",
        )


def _validate_streak(a: Achievement, prefix: str) -> None:
    """The STREAK_DAYS options: in range, and set only on a STREAK_DAYS rule (the day
    start hour also on a repeating achievement)."""
    rule = a.rule
    for name, value, low, high, unset in (
        ("day_start_hour", rule.day_start_hour, 0, 23, 0),
        ("max_event_lateness_days", rule.max_event_lateness_days, 0, days.MAX_LATENESS, None),
        ("freezes_per_week", rule.freezes_per_week, 0, days.MAX_FREEZES, 0),
    ):
        if value == unset:
            continue
        if rule.aggregate is not Aggregate.STREAK_DAYS and not (
            name == "day_start_hour" and a.repeat is not Repeat.NONE
        ):
            raise InvalidArgument(
                f"applies only to STREAK_DAYS, not {rule.aggregate.name}", field=f"{prefix}.{name}"
            )
        assert value is not None
        if not low <= value <= high:
            raise InvalidArgument(f"must be between {low} and {high}", field=f"{prefix}.{name}")


def _validate_tiers(a: Achievement, prefix: str) -> None:
    if a.tiers and a.use_level_thresholds:
        raise InvalidArgument(
            "set either tiers or use_level_thresholds, not both",
            field=f"{prefix}.use_level_thresholds",
        )
    if len(a.tiers) > MAX_TIERS:
        raise InvalidArgument(f"at most {MAX_TIERS} tiers", field=f"{prefix}.tiers")
    names: set[str] = set()
    previous = 0.0
    for i, tier in enumerate(a.tiers):
        field = f"{prefix}.tiers[{i}]"
        if not tier.name.strip() or len(tier.name) > 64:
            raise InvalidArgument("is required (at most 64 characters)", field=f"{field}.name")
        if tier.name in names:
            raise InvalidArgument(f"duplicate tier name {tier.name!r}", field=f"{field}.name")
        names.add(tier.name)
        _check_number(tier.threshold, f"{field}.threshold", positive=True)
        if tier.threshold <= previous:
            raise InvalidArgument(
                f"thresholds must be strictly increasing ({tier.threshold:g} follows {previous:g})",
                field=f"{field}.threshold",
            )
        previous = tier.threshold
        if not 0 <= tier.points <= MAX_POINTS:
            raise InvalidArgument(f"must be between 0 and {MAX_POINTS}", field=f"{field}.points")


def _validate_prerequisite_list(a: Achievement, field: str) -> None:
    if len(a.prerequisites) > MAX_PREREQUISITES:
        raise InvalidArgument(f"at most {MAX_PREREQUISITES} prerequisites", field=field)
    if len(set(a.prerequisites)) != len(a.prerequisites):
        raise InvalidArgument("contains duplicates", field=field)
    for i, pid in enumerate(a.prerequisites):
        check_slug(pid, f"{field}[{i}]")
        if pid == a.id:
            raise InvalidArgument("an achievement cannot require itself", field=f"{field}[{i}]")


def validate_graph(
    changed: Iterable[tuple[str, Achievement]], prerequisites: Mapping[str, tuple[str, ...]]
) -> None:
    """Check that the prerequisites of `changed` exist and form no cycle.

    `changed` pairs each new definition with its field prefix; `prerequisites` maps every
    achievement id that will exist after the change to its prerequisites.
    """
    for prefix, a in changed:
        for i, pid in enumerate(a.prerequisites):
            if pid not in prerequisites:
                raise InvalidArgument(
                    f"unknown achievement {pid!r}", field=f"{prefix}.prerequisites[{i}]"
                )
    for prefix, a in changed:
        cycle = _find_cycle(a.id, prerequisites)
        if cycle:
            raise InvalidArgument(
                "prerequisite cycle: " + " -> ".join(cycle), field=f"{prefix}.prerequisites"
            )


def _find_cycle(start: str, graph: Mapping[str, tuple[str, ...]]) -> list[str] | None:
    """Depth-first search for a path from `start` back to itself."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, ()):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def check_properties(
    properties: Mapping[str, Any], field: str, *, max_bytes: int, max_depth: int, max_items: int
) -> None:
    """Bounded size, depth and list length, and no NUL characters (PostgreSQL cannot store
    them), for event properties and user attributes alike. List length bounds what CEL
    comprehensions (`.map()` …) cost."""
    stack: list[tuple[Any, int]] = [(properties, 1)]
    size = 0
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > max_depth:
                raise InvalidArgument(
                    f"nested deeper than {max_depth} levels (max_properties_depth)",
                    field=field,
                )
            if isinstance(value, list) and len(value) > max_items:
                raise InvalidArgument(
                    f"has a list of {len(value)} items; at most {max_items} "
                    "(max_property_list_items)",
                    field=field,
                )
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, inner in items:
                if isinstance(key, str):
                    size += len(key)
                    if "\x00" in key:
                        raise InvalidArgument("keys must not contain NUL", field=field)
                stack.append((inner, depth + 1))
        elif isinstance(value, str):
            size += len(value)
            if "\x00" in value:
                raise InvalidArgument("strings must not contain NUL characters", field=field)
        else:
            size += 8
        if size > max_bytes:
            raise InvalidArgument(
                f"larger than {max_bytes} bytes (max_properties_bytes)", field=field
            )


@dataclass(slots=True)
class PropertyStats:
    """What `check_properties` bounds, gathered while converting the properties (see
    `rpc/convert.py` `struct_to_dict`), so they are not walked a second time."""

    size: int = 0  # as check_properties counts it: key and string lengths, 8 per other value
    depth: int = 0  # of the deepest object or list (the properties themselves: 1)
    longest_list: int = 0
    nul_key: bool = False
    nul_string: bool = False

    def check(self, field: str, *, max_bytes: int, max_depth: int, max_items: int) -> None:
        """The errors of `check_properties` for the same limits."""
        if self.depth > max_depth:
            raise InvalidArgument(
                f"nested deeper than {max_depth} levels (max_properties_depth)", field=field
            )
        if self.longest_list > max_items:
            raise InvalidArgument(
                f"has a list of {self.longest_list} items; at most {max_items} "
                "(max_property_list_items)",
                field=field,
            )
        if self.nul_key:
            raise InvalidArgument("keys must not contain NUL", field=field)
        if self.nul_string:
            raise InvalidArgument("strings must not contain NUL characters", field=field)
        if self.size > max_bytes:
            raise InvalidArgument(
                f"larger than {max_bytes} bytes (max_properties_bytes)", field=field
            )
