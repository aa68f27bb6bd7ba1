"""Text output of the `accolade` command: aligned tables, progress bars and JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from accolade.v1 import types_pb2

BAR_WIDTH = 20


def as_dict(message: Message) -> dict[str, Any]:
    """Every field, zero values too: a reader never has to guess what a missing one means."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def print_json(message: Message | dict[str, Any], *, indent: int | None = 2) -> None:
    data = as_dict(message) if isinstance(message, Message) else message
    print(json.dumps(data, indent=indent), flush=True)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def bar(percent: float) -> str:
    filled = round(max(0.0, min(100.0, percent)) / 100 * BAR_WIDTH)
    return "[" + "#" * filled + "." * (BAR_WIDTH - filled) + f"] {percent:5.1f}%"


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


STATUS = {
    types_pb2.PROGRESS_STATUS_LOCKED: "locked",
    types_pb2.PROGRESS_STATUS_IN_PROGRESS: "in progress",
    types_pb2.PROGRESS_STATUS_UNLOCKED: "unlocked",
    types_pb2.PROGRESS_STATUS_CLOSED: "closed",
}


PROGRESS_HEADER = ("ACHIEVEMENT", "PROGRESS", "", "TIER", "NEXT", "STEP", "STREAK", "STATUS")


def next_level(p: types_pb2.Progress) -> str:
    if p.levels_earned >= p.levels_total:
        return "-"
    return f"{p.next_tier} at {number(p.next_threshold)}".lstrip()


def streak(p: types_pb2.Progress) -> str:
    if p.period:  # a repeating achievement: its period and the periods completed
        return (
            f"{p.period}: {p.current_period_streak} in a row (best {p.best_period_streak}, "
            f"{count(p.periods_completed, 'period')} completed)"
        )
    if p.aggregate != types_pb2.AGGREGATE_STREAK_DAYS:
        return "-"
    details = [f"best {p.best_streak}"]
    if p.last_counted_day:
        details.append(f"last {p.last_counted_day}")
    if p.freezes_used:
        details.append(count(p.freezes_used, "freeze"))
    if p.last_counted_day and not p.streak_alive:
        details.append("ended")
    return f"{p.current_streak} ({', '.join(details)})"


def progress_rows(items: Sequence[types_pb2.Progress]) -> list[tuple[str, ...]]:
    return [
        (
            p.achievement_id,
            bar(p.percent),
            f"{number(p.current)}/{number(p.target)}",
            p.tier or "-",
            next_level(p),
            f"{p.step_percent:.1f}%",
            streak(p),
            STATUS.get(p.status, "-"),
        )
        for p in items
    ]


def award_name(award: types_pb2.Award) -> str:
    """`big-spender (gold) "Big spender"`, `weekly-warrior (2026-W48) …` for a repeating
    achievement's award; the title is absent once the achievement is gone."""
    level = ", ".join(part for part in (award.tier, award.period) if part)
    name = award.achievement_id + (f" ({level})" if level else "")
    return name + (f" {json.dumps(award.title, ensure_ascii=False)}" if award.title else "")


def award_line(award: types_pb2.Award) -> str:
    when = award.award_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") + "Z"
    if award.kind == types_pb2.AWARD_KIND_ERASURE:
        return f"{award.cursor:>8}  {when}  {award.user_id}  erased"
    verb = "revoked" if award.revoked else "awarded"
    points = f" +{award.points} points" if award.points and not award.revoked else ""
    return f"{award.cursor:>8}  {when}  {award.user_id}  {verb} {award_name(award)}{points}"


def error(message: str) -> None:
    print(f"accolade: {message}", file=sys.stderr)


def count(n: int, singular: str, plural: str | None = None) -> str:
    """`1 condition error`, `3 condition errors`."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def definition_status(a: types_pb2.Achievement) -> str:
    """`BROKEN`, `3 condition errors` or `ok` (the STATUS column of `achievements list`)."""
    if a.broken_reason:
        return "BROKEN"
    if a.condition_error_count:
        return count(a.condition_error_count, "condition error")
    return "ok"


def definition_problems(a: types_pb2.Achievement) -> list[str]:
    """Lines explaining a broken definition and the last condition error, if any."""
    lines = []
    if a.broken_reason:
        lines.append(f"BROKEN {a.id}: {a.broken_reason} (skipped by the server until fixed)")
    if a.condition_error_count:
        when = a.last_condition_error_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") + "Z"
        lines.append(
            f"{a.id}: {count(a.condition_error_count, 'condition error')} on this server "
            f"process; last at {when}: {a.last_condition_error}"
        )
    return lines
