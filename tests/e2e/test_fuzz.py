"""Fuzzing every RPC: arbitrary field values, malformed Structs and undecodable bytes.

The server must answer with a status a client can act on — never UNKNOWN or INTERNAL —
never crash, and keep serving. It runs as a real process on its own PostgreSQL schema.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import admin_pb2_grpc, tracker_pb2_grpc, users_pb2_grpc
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import types_pb2 as pb
from accolade.v1 import users_pb2 as upb
from tests.conftest import POSTGRES_URL, drop_schema, migrated_schema
from tests.processes import ServerProcess

pytestmark = pytest.mark.slow

ACCEPTABLE = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.OUT_OF_RANGE,
}
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

text = st.text(st.characters(exclude_categories=["Cs"]), max_size=80)
ids = st.one_of(text, st.sampled_from(["welcome", "a", "b-1", "x" * 64, "UPPER", ""]))
types = st.one_of(text, st.sampled_from(["purchase", "login", "t", "a.b:c-d"]))
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=30,
)
int64 = st.integers(-(2**63), 2**63 - 1)
int32 = st.integers(-(2**31), 2**31 - 1)
timestamps = st.builds(Timestamp, seconds=int64, nanos=int32)
doubles = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def structs(draw: st.DrawFn) -> Struct:
    s = Struct()
    s.update(draw(st.dictionaries(text, json_values, max_size=6)))
    return s


@st.composite
def events(draw: st.DrawFn) -> tpb.TrackEventRequest:
    request = tpb.TrackEventRequest(
        event_id=draw(text), user_id=draw(ids), type=draw(types), properties=draw(structs())
    )
    if draw(st.booleans()):
        request.occurred_at.CopyFrom(draw(timestamps))
    return request


@st.composite
def achievements(draw: st.DrawFn) -> pb.Achievement:
    a = pb.Achievement(
        id=draw(ids),
        title=draw(text),
        description=draw(text),
        icon_url=draw(text),
        category=draw(ids),
        points=draw(int64),
        hidden=draw(st.booleans()),
        rule=pb.Rule(
            event_types=draw(st.lists(types, max_size=3)),
            condition=draw(
                st.one_of(
                    text,
                    st.sampled_from(
                        [
                            "event.properties.amount > 1",
                            "event.type == 'purchase'",
                            "event.properties.x.exists(k, k == 1)",
                            "1 / 0 == 1",
                        ]
                    ),
                )
            ),
            aggregate=draw(st.integers(-1, 7)),  # type: ignore[arg-type]
            field=draw(text),
            target=draw(doubles),
        ),
        tiers=[
            pb.Tier(name=draw(text), threshold=draw(doubles), points=draw(int64))
            for _ in range(draw(st.integers(0, 3)))
        ],
        prerequisites=draw(st.lists(ids, max_size=3)),
        use_level_thresholds=draw(st.booleans()),
    )
    if draw(st.booleans()):
        a.enabled = draw(st.booleans())
    for name in ("start_time", "end_time"):
        if draw(st.booleans()):
            getattr(a, name).CopyFrom(draw(timestamps))
    return a


@pytest.fixture(scope="module")
async def target(run_id: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    schema = f"accolade_{run_id}_fuzz"
    await migrated_schema(schema)
    server = ServerProcess(
        {
            "ACCOLADE_DATABASE_URL": POSTGRES_URL,
            "ACCOLADE_DATABASE_SCHEMA": schema,
            "ACCOLADE_TRACK_EVENT_TYPES": '["*"]',
            "ACCOLADE_LOG_LEVEL": "error",
        },
        Path(tmp_path_factory.mktemp("fuzz")),
    )
    await server.start()
    try:
        yield server.target
        assert server.process is not None and server.process.returncode is None  # no crash
    finally:
        assert await server.stop() == 0
        await drop_schema(schema)


@pytest.fixture(scope="module")
def channel(target: str) -> Any:
    with grpc.insecure_channel(target) as ch:
        yield ch
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING  # still serving


ACCEPTABLE_NUMBERS = {code.value[0] for code in ACCEPTABLE}


def call(method: Callable[..., Any], request: Any) -> Any:
    """The response, or None when the call failed with an acceptable status."""
    try:
        return method(request, timeout=20)
    except grpc.RpcError as exc:
        code = exc.code()
        assert code in ACCEPTABLE, (code, exc.details(), request)
        return None


@FUZZ
@given(request=events())
def test_track_event(channel: Any, request: tpb.TrackEventRequest) -> None:
    call(tracker_pb2_grpc.BadgeTrackerStub(channel).TrackEvent, request)


@FUZZ
@given(batch=st.lists(events(), max_size=6))
def test_track_events(channel: Any, batch: list[tpb.TrackEventRequest]) -> None:
    response = call(
        tracker_pb2_grpc.BadgeTrackerStub(channel).TrackEvents, tpb.TrackEventsRequest(events=batch)
    )
    if response is None:
        return
    # The call's status says little: each event has its own result, and none may be
    # INTERNAL (or UNKNOWN) either.
    assert len(response.results) == len(batch)
    for event, result in zip(batch, response.results, strict=True):
        if result.WhichOneof("result") == "error":
            assert result.error.code in ACCEPTABLE_NUMBERS, (result.error, event)


@FUZZ
@given(
    user_id=ids,
    fields=st.lists(text, max_size=4),
    zone=st.one_of(text, st.sampled_from(["Europe/Berlin", "UTC", "Mars/Base", ""])),
    attributes=structs(),
    paths=st.lists(
        st.one_of(text, st.sampled_from(["display_name", "attributes", "*", "time_zone"])),
        max_size=3,
    ),
    page_size=int32,
    token=text,
)
def test_user_directory(
    channel: Any,
    user_id: str,
    fields: list[str],
    zone: str,
    attributes: Struct,
    paths: list[str],
    page_size: int,
    token: str,
) -> None:
    users = users_pb2_grpc.UserDirectoryStub(channel)
    name, url, locale = [*fields, "", "", ""][:3]
    user = upb.User(
        user_id=user_id,
        display_name=name,
        avatar_url=url,
        time_zone=zone,
        locale=locale,
        attributes=attributes,
    )
    request = upb.UpsertUserRequest(user=user)
    request.update_mask.paths.extend(paths)
    call(users.UpsertUser, request)
    call(users.GetUser, upb.GetUserRequest(user_id=user_id))
    call(
        users.ListUsers,
        upb.ListUsersRequest(page_size=page_size, page_token=token, user_id_prefix=user_id),
    )


@FUZZ
@given(a=achievements())
def test_create_and_apply_achievements(channel: Any, a: pb.Achievement) -> None:
    admin = admin_pb2_grpc.AchievementAdminStub(channel)
    call(admin.CreateAchievement, apb.CreateAchievementRequest(achievement=a))
    call(admin.ApplyAchievements, apb.ApplyAchievementsRequest(achievements=[a]))


@FUZZ
@given(
    a=achievements(),
    paths=st.lists(
        st.one_of(
            text,
            st.sampled_from(["title", "rule", "rule.condition", "tiers", "*", "id", "enabled"]),
        ),
        max_size=4,
    ),
    etag=text,
)
def test_update_achievement(channel: Any, a: pb.Achievement, paths: list[str], etag: str) -> None:
    a.etag = etag
    call(
        admin_pb2_grpc.AchievementAdminStub(channel).UpdateAchievement,
        apb.UpdateAchievementRequest(achievement=a, update_mask=FieldMask(paths=paths)),
    )


@FUZZ
@given(
    aid=ids,
    user=ids,
    tier=text,
    reason=st.text(max_size=1200),
    size=int32,
    token=text,
    category=text,
)
def test_reads_grants_and_deletes(
    channel: Any, aid: str, user: str, tier: str, reason: str, size: int, token: str, category: str
) -> None:
    admin = admin_pb2_grpc.AchievementAdminStub(channel)
    tracker = tracker_pb2_grpc.BadgeTrackerStub(channel)
    call(admin.GetAchievement, apb.GetAchievementRequest(id=aid))
    call(
        admin.ListAchievements,
        apb.ListAchievementsRequest(page_size=size, page_token=token, category=category),
    )
    call(
        admin.GrantAward,
        apb.GrantAwardRequest(
            user_id=user, achievement_id=aid, tier=tier, reason=reason, actor=reason[:200]
        ),
    )
    call(admin.RevokeAward, apb.RevokeAwardRequest(user_id=user, achievement_id=aid, tier=tier))
    call(
        tracker.GetProgress,
        tpb.GetProgressRequest(user_id=user, achievement_ids=[aid], category=category),
    )
    call(tracker.ListAwards, tpb.ListAwardsRequest(user_id=user, page_size=size, page_token=token))
    call(admin.DeleteAchievement, apb.DeleteAchievementRequest(id=aid, etag=token))


@FUZZ
@given(
    users=st.lists(ids, max_size=3),
    achievement_ids=st.lists(ids, max_size=3),
    after=st.one_of(st.none(), int64),
    source=st.integers(-2, 5),
)
def test_watch_awards(
    channel: Any, users: list[str], achievement_ids: list[str], after: int | None, source: int
) -> None:
    request = tpb.WatchAwardsRequest(user_ids=users, achievement_ids=achievement_ids, source=source)  # type: ignore[arg-type]
    if after is not None:
        request.after_cursor = after
    stream = tracker_pb2_grpc.BadgeTrackerStub(channel).WatchAwards(request, timeout=0.5)
    try:
        for _ in stream:
            break
    except grpc.RpcError as exc:
        code = exc.code()
        assert code in ACCEPTABLE | {grpc.StatusCode.DEADLINE_EXCEEDED}, (code, exc.details())
    finally:
        stream.cancel()


METHODS = [
    "/accolade.v1.BadgeTracker/TrackEvent",
    "/accolade.v1.BadgeTracker/TrackEvents",
    "/accolade.v1.BadgeTracker/GetProgress",
    "/accolade.v1.AchievementAdmin/CreateAchievement",
    "/accolade.v1.AchievementAdmin/UpdateAchievement",
]


@FUZZ
@given(method=st.sampled_from(METHODS), payload=st.binary(max_size=200))
def test_undecodable_bytes_are_invalid_argument(channel: Any, method: str, payload: bytes) -> None:
    raw = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    call(raw, payload)
