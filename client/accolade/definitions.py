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
        badge_id: "welcome-badge"             # -> id (default: rule_name as a slug)

Either file may also define leaderboards (`Leaderboard` messages; applied with
`ApplyLeaderboards` after the achievements, in a transaction of their own)::

    leaderboards:
      - {id: weekly-points, metric: period_points, period: weekly, time_zone: Europe/Berlin}

Either file may declare the properties events carry, so that the server can check
conditions against them before the first event arrives (see `DeclareEventType`)::

    event_types:
      purchase_completed: {amount: number, item.sku: string}

Errors speak the file's language: every error of the file at once, each with the path to
the bad entry as written (``achievements[2].rule.aggregate``) and, for enums, the valid
values. Enum values may be written `sum`, `SUM` or `AGGREGATE_SUM` (see `parse_enum`).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.timestamp_pb2 import Timestamp

from accolade._enums import parse_enum, short_name
from accolade._errors import AccoladeError
from accolade.v1 import admin_pb2, leaderboards_pb2, types_pb2

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
_SPEC_KEYS = (
    "rule_name",
    "condition",
    "award_badge",
    "badge_id",
    "description",
    "points",
    "category",
    "icon_url",
    "hidden",
)
_TOP_KEYS = ("achievements", "achievement_rules", "event_types", "leaderboards")


class DefinitionError(AccoladeError, ValueError):
    """A definitions file that cannot be read; the message names every bad entry and field.

    `errors` lists them one by one (``achievements[2].rule.aggregate: …``).
    """

    def __init__(self, message: str, errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors) or [message]


@dataclass
class Definitions:
    """What a file defines: achievements (with the file path of each entry) and event types."""

    achievements: list[types_pb2.Achievement] = field(default_factory=list)
    #: For each achievement, where it is in the file (``achievement_rules[1]``).
    origins: list[str] = field(default_factory=list)
    event_types: list[admin_pb2.EventType] = field(default_factory=list)
    leaderboards: list[leaderboards_pb2.Leaderboard] = field(default_factory=list)


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


def _unknown(key: object, where: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(key), list(valid), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"{where}.{key}: unknown field{hint}; valid: {', '.join(valid)}"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "nothing" if value is None else type(value).__name__


class _Reader:
    """Checks parsed YAML against a message type, collecting every error, and returns the
    entry in the form `json_format.ParseDict` reads (enums as numbers, times as RFC 3339)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def message(self, data: Any, descriptor: Descriptor, where: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.errors.append(f"{where}: expected a mapping, got {_kind(data)}")
            return {}
        by_name = {f.name: f for f in descriptor.fields}
        by_name.update({f.json_name: f for f in descriptor.fields})
        valid = [f.name for f in descriptor.fields if f.name not in _OUTPUT_ONLY]
        out: dict[str, Any] = {}
        for key, value in data.items():
            fd = by_name.get(key) if isinstance(key, str) else None
            if fd is None:
                self.errors.append(_unknown(key, where, valid))
            elif fd.name not in _OUTPUT_ONLY:
                out[fd.name] = self.field(value, fd, f"{where}.{fd.name}")
        return out

    def field(self, value: Any, fd: FieldDescriptor, where: str) -> Any:
        if fd.is_repeated:
            if not isinstance(value, list):
                self.errors.append(f"{where}: expected a list, got {_kind(value)}")
                return []
            return [self.single(v, fd, f"{where}[{i}]") for i, v in enumerate(value)]
        return self.single(value, fd, where)

    def single(self, value: Any, fd: FieldDescriptor, where: str) -> Any:
        t = fd.type
        if t == FieldDescriptor.TYPE_MESSAGE:
            assert fd.message_type is not None
            if fd.message_type.full_name == Timestamp.DESCRIPTOR.full_name:
                return self.timestamp(value, where)
            if fd.message_type.full_name == "google.protobuf.Duration":
                return self.duration(value, where)
            return self.message(value, fd.message_type, where)
        if t == FieldDescriptor.TYPE_ENUM:
            try:
                return parse_enum(fd.enum_type, value)
            except ValueError as exc:
                self.errors.append(f"{where}: {exc}")
                return 0
        if t == FieldDescriptor.TYPE_STRING:
            if not isinstance(value, str):
                hint = f' (quote it: "{value}")' if isinstance(value, int | float) else ""
                self.errors.append(f"{where}: expected text, got {_kind(value)}{hint}")
            return value
        if t == FieldDescriptor.TYPE_BOOL:
            if not isinstance(value, bool):
                self.errors.append(f"{where}: expected true or false, got {_kind(value)}")
            return value
        if t == FieldDescriptor.TYPE_DOUBLE or t == FieldDescriptor.TYPE_FLOAT:
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.errors.append(f"{where}: expected a number, got {_kind(value)}")
            return value
        # integers
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            self.errors.append(f"{where}: expected a whole number, got {_kind(value)}")
            return value
        return int(value)

    def duration(self, value: Any, where: str) -> str | None:
        """A duration: seconds as a number, or text like 90s, 30m, 12h, 30d."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return f"{int(value)}s" if value == int(value) else f"{value}s"
        match = _DURATION.match(value) if isinstance(value, str) else None
        if match is None:
            self.errors.append(f"{where}: expected a duration like 3600s, 30m, 12h or 30d")
            return None
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds}s"

    def timestamp(self, value: Any, where: str) -> str | None:
        if isinstance(value, datetime):  # YAML reads unquoted times as datetimes
            if value.tzinfo is None:
                self.errors.append(f"{where}: give a time zone (e.g. 2026-01-01T00:00:00Z)")
                return None
            ts = Timestamp()
            ts.FromDatetime(value)
            return ts.ToJsonString()
        if not isinstance(value, str):
            self.errors.append(f"{where}: expected a time like 2026-01-01T00:00:00Z")
            return None
        try:
            Timestamp().FromJsonString(value)
        except ValueError:
            self.errors.append(f"{where}: {value!r} is not a time like 2026-01-01T00:00:00Z")
            return None
        return value


def _from_spec_entry(entry: dict[str, Any], where: str, errors: list[str]) -> dict[str, Any]:
    for key in entry:
        if key not in _SPEC_KEYS:
            errors.append(_unknown(key, where, _SPEC_KEYS))
    name = entry.get("rule_name")
    if not isinstance(name, str) or not name.strip():
        errors.append(f"{where}.rule_name: is required (text)")
        name = ""
    condition = str(entry.get("condition") or "")
    event_types: list[str] = []
    if match := _EVENT_EQ.match(condition):
        event_types = [match.group(1)]
    elif match := _EVENT_IN.match(condition):
        event_types = [t.strip().strip("\"'") for t in match.group(1).split(",") if t.strip()]
    else:
        errors.append(
            f'{where}.condition: expected `event == "type"` or `event in ["a", "b"]` in the '
            "achievement_rules shape; use the `achievements` shape for CEL conditions"
        )
    achievement: dict[str, Any] = {
        "id": entry["badge_id"] if "badge_id" in entry else _slug(name),
        "title": name,
        "rule": {"event_types": event_types, "aggregate": "count", "target": 1},
    }
    if "award_badge" in entry:  # unset: created enabled, an existing one is left as it is
        achievement["enabled"] = entry["award_badge"]
    for key in ("description", "points", "category", "icon_url", "hidden"):
        if key in entry:
            achievement[key] = entry[key]
    return achievement


def _event_types(data: Any, errors: list[str]) -> list[admin_pb2.EventType]:
    """`event_types: {type: {path: type name}}`."""
    if not isinstance(data, dict):
        errors.append(
            f"event_types: expected a mapping of event type to properties, got {_kind(data)}"
        )
        return []
    out = []
    for name, props in data.items():
        where = f"event_types.{name}"
        if not isinstance(props, dict):
            errors.append(
                f"{where}: expected a mapping of property path to type, got {_kind(props)}"
            )
            continue
        shape = admin_pb2.EventType(name=str(name))
        for path, type_name in props.items():
            try:
                declared = parse_enum(admin_pb2.PropertyType, type_name, what="a property type")
            except ValueError as exc:
                errors.append(f"{where}.{path}: {exc}")
                continue
            shape.properties.add(path=str(path), declared_type=declared)  # type: ignore[arg-type,unused-ignore]
        out.append(shape)
    return out


def _leaderboards(data: Any, reader: _Reader) -> list[leaderboards_pb2.Leaderboard]:
    """`leaderboards: [Leaderboard, …]` (output-only fields are ignored)."""
    if not isinstance(data, list):
        reader.errors.append(f"`leaderboards` must be a list, got {_kind(data)}")
        return []
    out = []
    for i, item in enumerate(data):
        before = len(reader.errors)
        checked = reader.message(
            item, leaderboards_pb2.Leaderboard.DESCRIPTOR, f"leaderboards[{i}]"
        )
        checked.pop("built_in", None)
        if len(reader.errors) == before:
            out.append(json_format.ParseDict(checked, leaderboards_pb2.Leaderboard()))
    return out


def read(data: Any, source: str = "<definitions>") -> Definitions:
    """Achievements and event types from already-parsed YAML/JSON data in either shape.

    Raises DefinitionError listing every error of the file.
    """
    if not isinstance(data, dict) or not (
        {"achievements", "achievement_rules", "leaderboards"} & set(data)
    ):
        raise DefinitionError(
            f"{source}: expected a top-level `achievements:` or `achievement_rules:` list"
        )
    errors: list[str] = [_unknown(k, "", _TOP_KEYS)[1:] for k in data if k not in _TOP_KEYS]
    reader = _Reader()
    result = Definitions()
    first_of: dict[str, str] = {}
    for key in ("achievements", "achievement_rules"):
        items = data.get(key) or []
        if not isinstance(items, list):
            errors.append(f"`{key}` must be a list, got {_kind(items)}")
            continue
        for i, item in enumerate(items):
            where = f"{key}[{i}]"
            if not isinstance(item, dict):
                errors.append(f"{where}: expected a mapping, got {_kind(item)}")
                continue
            spec = key == "achievement_rules"
            entry = _from_spec_entry(item, where, errors) if spec else item
            before = len(reader.errors)
            checked = reader.message(entry, types_pb2.Achievement.DESCRIPTOR, where)
            if len(reader.errors) > before:
                continue
            aid = checked.get("id", "")
            if aid and aid in first_of:
                derived = key == "achievement_rules" and "badge_id" not in item
                how = f" (from rule_name {item.get('rule_name')!r})" if derived else ""
                errors.append(
                    f"{where}: id {aid!r}{how} is also the id of {first_of[aid]}"
                    + ("; set badge_id to tell them apart" if derived else "")
                )
                continue
            first_of[aid] = where
            try:
                result.achievements.append(json_format.ParseDict(checked, types_pb2.Achievement()))
            except json_format.ParseError as exc:  # not expected after the checks above
                errors.append(f"{where}: {exc}")
                continue
            result.origins.append(where)
    if "event_types" in data:
        result.event_types = _event_types(data["event_types"], errors)
    if "leaderboards" in data:
        result.leaderboards = _leaderboards(data["leaderboards"], reader)
    errors += reader.errors
    if errors:
        if len(errors) == 1:
            raise DefinitionError(f"{source}: {errors[0]}", errors)
        raise DefinitionError(
            f"{source}: {len(errors)} errors:\n" + "\n".join(f"  {e}" for e in errors), errors
        )
    return result


def parse(data: Any, source: str = "<definitions>") -> list[types_pb2.Achievement]:
    """Achievements from already-parsed YAML/JSON data in either shape (see `read`)."""
    return read(data, source).achievements


def load_file(path: str | os.PathLike[str]) -> Definitions:
    """Read a YAML or JSON definitions file: achievements, their origins and event types."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(f"{path}: {exc.strerror}") from exc
    return read(_load_text(text, str(path)), str(path))


def load(path: str | os.PathLike[str]) -> list[types_pb2.Achievement]:
    """Read a YAML or JSON definitions file."""
    return load_file(path).achievements


def to_data(
    achievements: list[types_pb2.Achievement],
    event_types: Sequence[admin_pb2.EventType] = (),
    leaderboards: Sequence[leaderboards_pb2.Leaderboard] = (),
) -> dict[str, Any]:
    """The native shape for `achievements`, without output-only fields, and the declared
    properties of `event_types` (observed-only properties are left out)."""
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
            rule["aggregate"] = short_name(types_pb2.Aggregate, a.rule.aggregate)
        if "repeat" in d:
            d["repeat"] = short_name(types_pb2.Repeat, a.repeat)
        out.append(d)
    data: dict[str, Any] = {"achievements": out}
    declared = {
        t.name: {
            p.path: short_name(admin_pb2.PropertyType, p.declared_type)
            for p in t.properties
            if p.declared_type
        }
        for t in event_types
    }
    declared = {name: props for name, props in declared.items() if props}
    if declared:
        data["event_types"] = declared
    boards = []
    for b in leaderboards:
        if b.built_in:
            continue
        d = json_format.MessageToDict(b, preserving_proto_field_name=True)
        d.pop("create_time", None)
        for name, enum in (
            ("metric", leaderboards_pb2.LeaderboardMetric),
            ("period", leaderboards_pb2.LeaderboardPeriod),
            ("week_start", leaderboards_pb2.Weekday),
        ):
            if name in d:
                d[name] = short_name(enum, getattr(b, name))
        boards.append(d)
    if boards:
        data["leaderboards"] = boards
    return data


def dump(
    achievements: list[types_pb2.Achievement],
    event_types: Sequence[admin_pb2.EventType] = (),
    leaderboards: Sequence[leaderboards_pb2.Leaderboard] = (),
) -> str:
    """YAML text (JSON when PyYAML is not installed) in the native shape."""
    data = to_data(achievements, event_types, leaderboards)
    try:
        import yaml
    except ImportError:
        return json.dumps(data, indent=2) + "\n"
    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
