"""The Connect JSON writer gives what json_format gives (zero values printed), for every
response message."""

from __future__ import annotations

from typing import Any, cast

from google.protobuf import json_format
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import types_pb2 as pb
from accolade_server.http.protojson import to_json
from tests.helpers import achievement


def full_achievement() -> pb.Achievement:
    a = achievement(
        "buyer",
        description="d",
        icon_url="https://x/y.png",
        category="shop",
        points=7,
        hidden=True,
        use_level_thresholds=True,
        prerequisites=["a", "b"],
        rule={"event_types": ["buy"], "condition": "true", "aggregate": 2, "field": "f"},
        tiers=[{"name": "bronze", "threshold": 1.5, "points": 2}],
        etag="r3",
    )
    a.enabled = False
    a.start_time.FromSeconds(1_700_000_000)
    a.end_time.FromNanoseconds(1_800_000_000_123_456_789)
    a.create_time.GetCurrentTime()
    return a


def award(cursor: int, **fields: object) -> pb.Award:
    made = pb.Award(cursor=cursor, user_id="u", achievement_id="a", tier="gold", points=-3)
    made.award_time.GetCurrentTime()
    for name, value in fields.items():
        setattr(made, name, value)
    return made


def with_properties(request: tpb.TrackEventRequest) -> tpb.TrackEventRequest:
    request.properties.update({"a": [1, "x", {"b": None}], "n": 1.5})
    return request


MESSAGES: list[Message] = [
    apb.GetAchievementResponse(achievement=full_achievement()),
    apb.ListAchievementsResponse(achievements=[full_achievement()], next_page_token="t"),
    apb.ApplyAchievementsResponse(created=["a"], updated=["b"], unchanged=["c"]),
    apb.GrantAwardResponse(award=award(2**62, source=2, reason="r", actor="me"), already_held=True),
    tpb.GetProgressResponse(
        progress=[
            pb.Progress(
                achievement_id="a",
                status=pb.PROGRESS_STATUS_UNLOCKED,
                current=2.5,
                target=10,
                percent=25,
                tier="x",
            ),
            pb.Progress(achievement_id="b", status=cast(Any, 99)),  # a value this build lacks
        ],
        total_points=-(2**40),
    ),
    tpb.ListAwardsResponse(awards=[award(1, revoked=True), award(2)], total_points=5),
    tpb.TrackEventsResponse(
        results=[
            tpb.TrackEventResult(event_id="e", error=tpb.EventError(code=3, message="m")),
            tpb.TrackEventResult(event_id="f", outcome=tpb.TrackEventResponse(tracked=True)),
        ]
    ),
    tpb.WatchAwardsResponse(cursor=0, subscribed=True),
    tpb.WatchAwardsResponse(cursor=9, award=award(9)),
    with_properties(tpb.TrackEventRequest(event_id="e")),
    apb.UpdateAchievementRequest(update_mask=FieldMask(paths=["title", "rule.event_types"])),
]


def test_the_fast_writer_equals_json_format_on_every_response() -> None:
    for message in MESSAGES:
        assert to_json(message) == json_format.MessageToDict(
            message, always_print_fields_with_no_presence=True
        ), type(message).__name__
