"""Domain values as the proto messages the service layer itself stores or sends.

The stored outcome of an event is the wire encoding of its progress messages
(`service/outcomes.py`), so building a `Progress` message belongs below both the servicers
(`rpc/`) and the services; `rpc/convert.py` takes these from here.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from accolade.v1 import types_pb2 as pb
from accolade_server.domain.model import Aggregate
from accolade_server.rules.progress import ProgressView, Status

AGGREGATE_TO_PROTO = {
    Aggregate.COUNT: pb.AGGREGATE_COUNT,
    Aggregate.SUM: pb.AGGREGATE_SUM,
    Aggregate.MAX: pb.AGGREGATE_MAX,
    Aggregate.DISTINCT: pb.AGGREGATE_DISTINCT,
    Aggregate.STREAK_DAYS: pb.AGGREGATE_STREAK_DAYS,
    Aggregate.PERIOD_STREAK: pb.AGGREGATE_PERIOD_STREAK,
}
STATUS_TO_PROTO = {
    Status.LOCKED: pb.PROGRESS_STATUS_LOCKED,
    Status.IN_PROGRESS: pb.PROGRESS_STATUS_IN_PROGRESS,
    Status.UNLOCKED: pb.PROGRESS_STATUS_UNLOCKED,
    Status.CLOSED: pb.PROGRESS_STATUS_CLOSED,
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)


def set_timestamp(ts: Timestamp, value: datetime) -> None:
    """`ts.FromDatetime(value)` (a naive value is UTC) without its time-tuple round trip,
    which cost more than the rest of a Progress message."""
    delta = value - (_EPOCH_NAIVE if value.tzinfo is None else _EPOCH)
    ts.seconds = delta.days * 86_400 + delta.seconds
    ts.nanos = value.microsecond * 1000


def progress_to_proto(v: ProgressView) -> pb.Progress:
    msg = pb.Progress(
        achievement_id=v.achievement_id,
        status=STATUS_TO_PROTO[v.status],
        current=v.current,
        target=v.target,
        percent=v.percent,
        tier=v.tier,
        title=v.title,
        description=v.description,
        icon_url=v.icon_url,
        category=v.category,
        hidden=v.hidden,
        next_tier=v.next_tier,
        next_threshold=v.next_threshold,
        previous_threshold=v.previous_threshold,
        step_percent=v.step_percent,
        overall_percent=v.overall_percent,
        levels_total=v.levels_total,
        levels_earned=v.levels_earned,
        aggregate=AGGREGATE_TO_PROTO[v.aggregate] if v.aggregate else pb.AGGREGATE_UNSPECIFIED,
        current_streak=v.current_streak,
        best_streak=v.best_streak,
        last_counted_day=v.last_counted_day,
        streak_alive=v.streak_alive,
        freezes_used=v.freezes_used,
    )
    if v.earned_time is not None:
        set_timestamp(msg.earned_time, v.earned_time)
    if v.period:
        msg.periods_completed = v.periods_completed
        msg.period = v.period
        msg.current_period_streak = v.current_period_streak
        msg.best_period_streak = v.best_period_streak
        if v.period_start is not None:
            set_timestamp(msg.period_start_time, v.period_start)
    return msg
