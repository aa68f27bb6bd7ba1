"""WatchAwards: live, replay, resume, slow consumers and shutdown, on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable

import grpc
import pytest

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import types_pb2 as pb
from accolade_server.notify import broker as broker_module
from tests.conftest import Database, Running, start_server, stop_server
from tests.helpers import achievement, expect_error


async def collect(
    stream: AsyncIterable[tpb.WatchAwardsResponse], count: int, seconds: float = 20.0
) -> list[tpb.WatchAwardsResponse]:
    """The next `count` log entries of a stream (fails after `seconds`), past the first
    `subscribed` message."""
    items: list[tpb.WatchAwardsResponse] = []
    async with asyncio.timeout(seconds):
        async for item in stream:
            if item.subscribed:
                continue
            items.append(item)
            if len(items) == count:
                break
    return items


async def subscribed(running: Running, count: int = 1) -> None:
    """Wait until the server has registered `count` live subscriptions."""
    for _ in range(1000):
        if running.app.broker.subscriber_count >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} subscription(s) not registered within 10 s")


async def setup_first_event_badge(server: Running) -> None:
    await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=achievement("first", rule={"event_types": ["e"]}))
    )


async def award_users(server: Running, users: list[str]) -> list[int]:
    """Earn `first` for each user in one batch; the cursors of the awards made."""
    response = await server.tracker.TrackEvents(
        tpb.TrackEventsRequest(
            events=[tpb.TrackEventRequest(event_id=f"ev-{u}", user_id=u, type="e") for u in users]
        )
    )
    return [a.cursor for r in response.results for a in r.outcome.awards]


async def test_live_watcher_receives_each_award_with_its_cursor(server: Running) -> None:
    await setup_first_event_badge(server)
    stream = server.tracker.WatchAwards(tpb.WatchAwardsRequest())
    pending = asyncio.ensure_future(collect(stream, 3))
    await subscribed(server)
    cursors = await award_users(server, ["u1", "u2", "u3"])
    got = await pending
    assert [m.cursor for m in got] == cursors
    assert [(m.award.user_id, m.award.achievement_id) for m in got] == [
        ("u1", "first"),
        ("u2", "first"),
        ("u3", "first"),
    ]
    assert all(m.award.cursor == m.cursor for m in got)
    stream.cancel()


async def test_the_first_message_says_subscribed_with_the_start_cursor(server: Running) -> None:
    await setup_first_event_badge(server)
    before = await award_users(server, ["u1", "u2"])
    live = server.tracker.WatchAwards(tpb.WatchAwardsRequest())
    first = await live.read()
    assert isinstance(first, tpb.WatchAwardsResponse)
    assert first.subscribed and first.cursor == before[-1] and not first.HasField("award")
    assert ("accolade-start-cursor", str(before[-1])) in tuple(await live.initial_metadata())
    later = await award_users(server, ["u3"])
    entry = await live.read()
    assert isinstance(entry, tpb.WatchAwardsResponse)
    assert (entry.cursor, entry.subscribed) == (later[0], False)
    live.cancel()

    replay = server.tracker.WatchAwards(tpb.WatchAwardsRequest(after_cursor=before[0]))
    first = await replay.read()
    assert isinstance(first, tpb.WatchAwardsResponse)
    assert first.subscribed and first.cursor == before[0]
    replay.cancel()


async def test_filters_select_users_achievements_and_source(server: Running) -> None:
    await setup_first_event_badge(server)
    await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=achievement("vip", rule={"event_types": ["x"]}))
    )
    by_user = server.tracker.WatchAwards(tpb.WatchAwardsRequest(user_ids=["u2"], after_cursor=0))
    manual = server.tracker.WatchAwards(
        tpb.WatchAwardsRequest(source=pb.AWARD_SOURCE_MANUAL, after_cursor=0)
    )
    vip = server.tracker.WatchAwards(
        tpb.WatchAwardsRequest(achievement_ids=["vip"], after_cursor=0)
    )
    await award_users(server, ["u1", "u2"])
    await server.admin.GrantAward(
        apb.GrantAwardRequest(user_id="u1", achievement_id="vip", reason="vip", actor="ops")
    )
    assert [(m.award.user_id, m.award.achievement_id) for m in await collect(by_user, 1)] == [
        ("u2", "first")
    ]
    [grant] = await collect(manual, 1)
    assert (grant.award.source, grant.award.actor) == (pb.AWARD_SOURCE_MANUAL, "ops")
    assert [m.award.user_id for m in await collect(vip, 1)] == ["u1"]
    for s in (by_user, manual, vip):
        s.cancel()


async def test_resuming_after_a_cursor_replays_then_continues_live(server: Running) -> None:
    await setup_first_event_badge(server)
    cursors = await award_users(server, [f"u{i}" for i in range(10)])
    stream = server.tracker.WatchAwards(tpb.WatchAwardsRequest(after_cursor=cursors[3]))
    replayed = await collect(stream, 6)
    assert [m.cursor for m in replayed] == cursors[4:]
    later = await award_users(server, ["late"])
    assert [m.cursor for m in await collect(stream, 1)] == later
    stream.cancel()

    everything = server.tracker.WatchAwards(tpb.WatchAwardsRequest(after_cursor=0))
    assert [m.cursor for m in await collect(everything, 11)] == [*cursors, *later]
    everything.cancel()


async def test_revocations_are_streamed_as_log_entries(server: Running) -> None:
    await setup_first_event_badge(server)
    await award_users(server, ["u1"])
    await server.admin.RevokeAward(
        apb.RevokeAwardRequest(user_id="u1", achievement_id="first", reason="fraud", actor="ops")
    )
    stream = server.tracker.WatchAwards(tpb.WatchAwardsRequest(after_cursor=0))
    award, revocation = await collect(stream, 2)
    assert (award.award.revoked, revocation.award.revoked) == (False, True)
    assert revocation.award.points == -award.award.points and revocation.award.reason == "fraud"
    stream.cancel()


async def test_resume_at_the_seam_under_concurrent_awarding_sees_each_award_once_in_order(
    server: Running,
) -> None:
    await setup_first_event_badge(server)
    first = await award_users(server, [f"a{i}" for i in range(20)])
    start = first[9]

    async def produce() -> list[int]:
        made: list[int] = []
        for batch in range(10):
            made += await award_users(server, [f"b{batch}-{i}" for i in range(15)])
        return made

    producer = asyncio.ensure_future(produce())
    stream = server.tracker.WatchAwards(tpb.WatchAwardsRequest(after_cursor=start))
    made = await producer
    expected = [c for c in [*first, *made] if c > start]
    got = [m.cursor for m in await collect(stream, len(expected))]
    assert got == expected  # every award after the cursor, exactly once, in cursor order
    stream.cancel()


async def test_slow_consumer_is_switched_to_catch_up_and_loses_nothing(
    server: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker_module, "QUEUE_SIZE", 4)
    await setup_first_event_badge(server)
    stream = server.tracker.WatchAwards(tpb.WatchAwardsRequest())
    reader = stream.__aiter__()
    assert (await reader.__anext__()).subscribed
    first_message = asyncio.ensure_future(reader.__anext__())
    [sub] = list(server.app.broker._subscribers)
    made: list[int] = []
    for batch in range(6):  # the reader is not reading: the server side falls behind
        made += await award_users(server, [f"s{batch}-{i}" for i in range(200)])
    got = [(await first_message).cursor]
    async with asyncio.timeout(30):
        while len(got) < len(made):
            got.append((await reader.__anext__()).cursor)
    assert got == made
    assert sub.lags >= 1 and sub.queue.maxsize == 4
    stream.cancel()


async def test_invalid_filters_are_invalid_argument(server: Running) -> None:
    for request, field in (
        (tpb.WatchAwardsRequest(after_cursor=-1), "after_cursor"),
        (tpb.WatchAwardsRequest(achievement_ids=["Not A Slug"]), "achievement_ids[0]"),
        (tpb.WatchAwardsRequest(user_ids=[""]), "user_ids[0]"),
    ):
        stream = server.tracker.WatchAwards(request)
        await expect_error(collect(stream, 1), grpc.StatusCode.INVALID_ARGUMENT, field)


async def test_shutdown_ends_streams_unavailable_and_a_restarted_server_resumes_them(
    db: Database,
) -> None:
    running = await start_server(db)
    await setup_first_event_badge(running)
    before = await award_users(running, ["u1", "u2"])
    stream = running.tracker.WatchAwards(tpb.WatchAwardsRequest(after_cursor=0))
    seen = [m.cursor for m in await collect(stream, 2)]
    stopping = asyncio.ensure_future(running.app.stop(5))
    details = await expect_error(collect(stream, 1), grpc.StatusCode.UNAVAILABLE, "after_cursor")
    assert f"after_cursor={before[-1]}" in details
    await stopping
    await running.channel.close()

    restarted = await start_server(db)
    try:
        missed = await award_users(restarted, ["u3", "u4"])  # made while the client was away
        resumed = restarted.tracker.WatchAwards(tpb.WatchAwardsRequest(after_cursor=seen[-1]))
        assert [m.cursor for m in await collect(resumed, 2)] == missed
        resumed.cancel()
    finally:
        await stop_server(restarted)
