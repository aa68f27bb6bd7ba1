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
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


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


def progress_rows(items: Sequence[types_pb2.Progress]) -> list[tuple[str, ...]]:
    return [
        (
            p.achievement_id,
            bar(p.percent),
            f"{number(p.current)}/{number(p.target)}",
            p.tier or "-",
            STATUS.get(p.status, "-"),
        )
        for p in items
    ]


def award_line(award: types_pb2.Award) -> str:
    when = award.award_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") + "Z"
    what = award.achievement_id + (f" ({award.tier})" if award.tier else "")
    if award.kind == types_pb2.AWARD_KIND_ERASURE:
        return f"{award.cursor:>8}  {when}  {award.user_id}  erased"
    verb = "revoked" if award.revoked else "awarded"
    points = f" +{award.points} points" if award.points and not award.revoked else ""
    return f"{award.cursor:>8}  {when}  {award.user_id}  {verb} {what}{points}"


def error(message: str) -> None:
    print(f"accolade: {message}", file=sys.stderr)
