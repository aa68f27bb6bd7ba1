"""Achievement definitions as YAML (or JSON) files, in two accepted shapes.

The native shape mirrors the `Achievement` message::

    achievements:
      - id: big-spender
        title: Big spender
        rule: {event_types: [purchase_completed], condition: "event.properties.amount >= 100"}
        tiers: [{name: bronze, threshold: 1}, {name: gold, threshold: 10, points: 50}]

The original specification's shape is accepted too and mapped onto it::

    achievement_rules:
      - rule_name: "FirstPurchase"            # -> title
        condition: event == "purchase_completed"  # -> rule.event_types, COUNT, target 1
        award_badge: true                     # -> enabled
        badge_id: "welcome-badge"             # -> id
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from accolade._errors import AccoladeError
from accolade.v1 import types_pb2

_OUTPUT_ONLY = (
    "create_time",
    "update_time",
    "etag",
    "broken_reason",
    "condition_error_count",
    "last_condition_error",
    "last_condition_error_time",
)
_EVENT_EQ = re.compile(r'^\s*event\s*==\s*["\']([^"\']+)["\']\s*$')
_QUOTED = r"(?:\"[^\"]+\"|'[^']+')"
_EVENT_IN = re.compile(rf"^\s*event\s+in\s+\[\s*({_QUOTED}(?:\s*,\s*{_QUOTED})*)\s*\]\s*$")
_SPEC_KEYS = {
    "rule_name",
    "condition",
    "award_badge",
    "badge_id",
    "description",
    "points",
    "category",
    "icon_url",
    "hidden",
}


class DefinitionError(AccoladeError, ValueError):
    """A definitions file that cannot be read; the message names the entry and field."""


def _load_text(text: str, source: str) -> Any:
    try:
        import yaml
    except ImportError:  # the client-only install: JSON is YAML's subset we can read
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise DefinitionError(
                f"{source}: reading YAML needs PyYAML (pip install pyyaml); as JSON it fails: {exc}"
            ) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{source}: not valid YAML: {exc}") from exc


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()).strip(
        "-"
    )


def _from_spec_entry(entry: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = set(entry) - _SPEC_KEYS
    if unknown:
        raise DefinitionError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name = str(entry.get("rule_name") or "")
    condition = str(entry.get("condition") or "")
    if match := _EVENT_EQ.match(condition):
        event_types = [match.group(1)]
    elif match := _EVENT_IN.match(condition):
        event_types = [t.strip().strip("\"'") for t in match.group(1).split(",") if t.strip()]
    else:
        raise DefinitionError(
            f'{where}.condition: expected `event == "type"` or `event in ["a", "b"]` in the '
            "achievement_rules shape; use the `achievements` shape for CEL conditions"
        )
    achievement: dict[str, Any] = {
        "id": str(entry.get("badge_id") or _slug(name)),
        "title": name,
        "enabled": bool(entry.get("award_badge", True)),
        "rule": {"event_types": event_types, "aggregate": "AGGREGATE_COUNT", "target": 1},
    }
    for key in ("description", "points", "category", "icon_url", "hidden"):
        if key in entry:
            achievement[key] = entry[key]
    return achievement


def _normalise(entry: dict[str, Any]) -> dict[str, Any]:
    rule = entry.get("rule")
    if isinstance(rule, dict) and isinstance(rule.get("aggregate"), str):
        aggregate = rule["aggregate"].upper()
        if not aggregate.startswith("AGGREGATE_"):
            aggregate = "AGGREGATE_" + aggregate
        entry = {**entry, "rule": {**rule, "aggregate": aggregate}}
    return entry


def parse(data: Any, source: str = "<definitions>") -> list[types_pb2.Achievement]:
    """Achievements from already-parsed YAML/JSON data in either shape."""
    if not isinstance(data, dict) or not ({"achievements", "achievement_rules"} & set(data)):
        raise DefinitionError(
            f"{source}: expected a top-level `achievements:` or `achievement_rules:` list"
        )
    entries: list[tuple[str, dict[str, Any]]] = []
    for key in ("achievements", "achievement_rules"):
        items = data.get(key) or []
        if not isinstance(items, list):
            raise DefinitionError(f"{source}: `{key}` must be a list")
        for i, item in enumerate(items):
            where = f"{source}: {key}[{i}]"
            if not isinstance(item, dict):
                raise DefinitionError(f"{where}: expected a mapping")
            entry = _from_spec_entry(item, where) if key == "achievement_rules" else item
            entries.append((where, _normalise(entry)))
    result = []
    for where, entry in entries:
        for name in _OUTPUT_ONLY:
            entry.pop(name, None)
        try:
            result.append(json_format.ParseDict(entry, types_pb2.Achievement()))
        except json_format.ParseError as exc:
            raise DefinitionError(f"{where}: {exc}") from exc
    return result


def load(path: str | os.PathLike[str]) -> list[types_pb2.Achievement]:
    """Read a YAML or JSON definitions file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(f"{path}: {exc.strerror}") from exc
    return parse(_load_text(text, str(path)), str(path))


def to_data(achievements: list[types_pb2.Achievement]) -> dict[str, Any]:
    """The native shape for `achievements`, without output-only fields."""
    out = []
    for a in achievements:
        d = json_format.MessageToDict(a, preserving_proto_field_name=True)
        for name in _OUTPUT_ONLY:
            d.pop(name, None)
        d["enabled"] = a.enabled if a.HasField("enabled") else True  # unset means enabled
        # JSON renders int64 as strings; YAML readers deserve numbers.
        if "points" in d:
            d["points"] = int(d["points"])
        for tier in d.get("tiers", []):
            if "points" in tier:
                tier["points"] = int(tier["points"])
        rule = d.get("rule", {})
        if "aggregate" in rule:
            rule["aggregate"] = rule["aggregate"].removeprefix("AGGREGATE_").lower()
        out.append(d)
    return {"achievements": out}


def dump(achievements: list[types_pb2.Achievement]) -> str:
    """YAML text (JSON when PyYAML is not installed) in the native shape."""
    data = to_data(achievements)
    try:
        import yaml
    except ImportError:
        return json.dumps(data, indent=2) + "\n"
    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
