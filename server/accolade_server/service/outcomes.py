"""The stored outcome of an event: what a retry of its `event_id` is answered with.

`events.outcome` holds `{"awards": [cursor, …], "wire": "<base64>", "not_counted": [[id,
reason], …]}`: the cursors of the award-log entries the event made (a retry reads them back,
so it sees a later revocation), the achievements that did not count it (a day too late; left
out when none) and, as base64 text, the progress messages sent in the first answer, in
their wire encoding — exactly the bytes of a `TrackEventResponse` with only its `progress`
field set. Writing it costs one C serialization per message (no JSON per view), and a retry
answers with the same messages, parsed in one call, whatever fields later versions add to
`Progress`.

Outcomes stored by the previous release (`"views"`: positional lists of the view's fields)
are still read. A server of that release reads this format as an outcome without progress
(`"views"` absent): rolling back across this change is not supported (see README, Upgrades).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from accolade.v1 import tracker_pb2
from accolade.v1 import types_pb2 as pb
from accolade_server.domain.model import Aggregate, AwardRecord
from accolade_server.rules.progress import ProgressView, Status
from accolade_server.wire import progress_to_proto

#: The tag of `TrackEventResponse.progress` (field 4, length-delimited).
_PROGRESS_TAG = b"\x22"


def _length(n: int) -> bytes:
    """A varint (the length prefix of a length-delimited field)."""
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def messages(views: Sequence[ProgressView]) -> list[pb.Progress]:
    """The progress messages of a response (built once: sent, and stored serialized)."""
    return [progress_to_proto(v) for v in views]


def encode(
    records: Sequence[AwardRecord],
    progress: Sequence[pb.Progress],
    not_counted: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    out: dict[str, Any] = {"awards": [r.cursor for r in records]}
    if not_counted:  # (achievement id, reason) of contributions not counted (late days)
        out["not_counted"] = [list(pair) for pair in not_counted]
    if progress:
        wire = b"".join(
            _PROGRESS_TAG + _length(len(s)) + s for s in (m.SerializeToString() for m in progress)
        )
        out["wire"] = base64.b64encode(wire).decode("ascii")
    return out


def award_cursors(out: dict[str, Any]) -> list[int]:
    return list(out.get("awards", ()))


def not_counted(out: dict[str, Any]) -> list[tuple[str, str]]:
    """The (achievement id, reason) pairs the event was not counted for."""
    return [(a, r) for a, r in out.get("not_counted", ())]


def decode_progress(out: dict[str, Any]) -> list[pb.Progress]:
    """The progress messages of a stored outcome (of this or the previous release)."""
    wire = out.get("wire")
    if wire is not None:
        parsed = tracker_pb2.TrackEventResponse.FromString(base64.b64decode(wire))
        return list(parsed.progress)
    views = (_legacy_view(v) for v in out.get("views", ()))
    # Hidden achievements not earned are not shown (nor stored since), whatever was stored.
    return messages([v for v in views if not v.hidden or v.status is Status.UNLOCKED])


# -- the previous release's format ------------------------------------------------------------

# A view was stored as a list of the ProgressView fields in this order; trailing default
# values were left out (and a shorter list, with fewer fields, reads as the defaults).
_VIEW_FIELDS = (
    "achievement_id",
    "status",
    "current",
    "target",
    "percent",
    "tier",
    "earned_time",
    "title",
    "description",
    "icon_url",
    "category",
    "hidden",
    "levels_earned",
    "levels_total",
    "next_tier",
    "next_threshold",
    "previous_threshold",
    "step_percent",
    "overall_percent",
    "aggregate",
    "current_streak",
    "best_streak",
)


def _legacy_view(stored: list[Any]) -> ProgressView:
    d = dict(zip(_VIEW_FIELDS, stored, strict=False))
    earned = d.get("earned_time")
    aggregate = d.get("aggregate")
    return ProgressView(
        **{
            **d,
            "status": Status(d["status"]),
            "earned_time": datetime.fromisoformat(earned) if earned else None,
            "aggregate": Aggregate(aggregate) if aggregate else None,
        }
    )
