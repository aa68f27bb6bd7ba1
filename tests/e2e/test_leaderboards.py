"""Leaderboards on a real server, PostgreSQL and SQLite: exact ranks under ties, stable
paging, neighbours and friends, the built-in points board, boards of achievement values
and per-period points with an attribute filter, erasure, bad input and Connect JSON."""

from __future__ import annotations

import random
from pathlib import Path

import grpc
import httpx
import sqlalchemy as sa
from google.protobuf import field_mask_pb2, struct_pb2

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import leaderboards_pb2 as lpb
from accolade.v1 import leaderboards_pb2_grpc, users_pb2_grpc
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import users_pb2 as upb
from tests.conftest import Running
from tests.connect import unary
from tests.e2e.test_cli import client, ok
from tests.helpers import achievement, expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
LIFETIME = lpb.LEADERBOARD_METRIC_LIFETIME_POINTS
PERIOD = lpb.LEADERBOARD_METRIC_PERIOD_POINTS
VALUE = lpb.LEADERBOARD_METRIC_ACHIEVEMENT_VALUE


async def assert_counts_agree(server: Running) -> None:
    """The per-score counts that ranks are summed from match the entries exactly."""
    async with server.db.engine.connect() as conn:
        counts = await conn.execute(
            sa.text(
                "SELECT board_id, period_start, neg_score, entries FROM leaderboard_counts"
                " WHERE entries <> 0 ORDER BY 1, 2, 3"
            )
        )
        entries = await conn.execute(
            sa.text(
                "SELECT board_id, period_start, neg_score, count(*) FROM leaderboard_scores"
                " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
            )
        )
        assert [tuple(r) for r in counts] == [tuple(r) for r in entries]


def boards(server: Running) -> leaderboards_pb2_grpc.LeaderboardsAsyncStub:
    return leaderboards_pb2_grpc.LeaderboardsStub(server.channel)


async def points_achievements(server: Running) -> None:
    for aid, points in (("big", 20), ("small", 10), ("tiny", 5)):
        await server.admin.CreateAchievement(
            apb.CreateAchievementRequest(
                achievement=achievement(aid, rule={"event_types": [f"do-{aid}"]}, points=points)
            )
        )


async def grant(server: Running, user: str, aid: str) -> None:
    await server.admin.GrantAward(apb.GrantAwardRequest(user_id=user, achievement_id=aid))


def ranked(
    page: lpb.GetLeaderboardResponse | lpb.GetLeaderboardRankResponse,
) -> list[tuple[int, str, float]]:
    return [(e.rank, e.user_id, e.score) for e in page.entries]


async def test_points_board_ranks_ties_alike_and_orders_them_by_who_reached_first(
    server: Running,
) -> None:
    await points_achievements(server)
    # Granted in this order: u3 reaches 10 before u2 does.
    for user, aid in (("u4", "tiny"), ("u3", "small"), ("u1", "big"), ("u2", "small")):
        await grant(server, user, aid)
    await users_pb2_grpc.UserDirectoryStub(server.channel).UpsertUser(
        upb.UpsertUserRequest(user=upb.User(user_id="u1", display_name="Ada"))
    )
    page = await boards(server).GetLeaderboard(lpb.GetLeaderboardRequest(leaderboard_id="points"))
    assert ranked(page) == [(1, "u1", 20), (2, "u3", 10), (2, "u2", 10), (4, "u4", 5)]
    assert page.entries[0].display_name == "Ada" and page.entries[1].display_name == ""
    assert not page.HasField("period_start") and not page.next_page_token
    reached = [e.reached_time.ToDatetime() for e in page.entries]
    assert reached[1] <= reached[2]

    # A revocation lowers the score in the same call; u2 now holds 10 alone after u3 left.
    await server.admin.RevokeAward(apb.RevokeAwardRequest(user_id="u3", achievement_id="small"))
    await grant(server, "u4", "small")  # 15
    page = await boards(server).GetLeaderboard(lpb.GetLeaderboardRequest(leaderboard_id="points"))
    # A user whose score returns to 0 keeps an entry (with 0).
    assert ranked(page) == [(1, "u1", 20), (2, "u4", 15), (3, "u2", 10), (4, "u3", 0)]

    listed = await boards(server).ListLeaderboards(lpb.ListLeaderboardsRequest())
    assert [(b.id, b.built_in) for b in listed.leaderboards] == [("points", True)]
    await expect_error(
        boards(server).DeleteLeaderboard(lpb.DeleteLeaderboardRequest(leaderboard_id="points")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "built-in",
    )
    await assert_counts_agree(server)


async def test_paging_never_skips_or_repeats_a_user_and_ranks_stay_exact(
    server: Running,
) -> None:
    await points_achievements(server)
    plan = {f"u{i:02}": ("big", "small", "tiny")[i % 3] for i in range(11)}
    for user, aid in plan.items():
        await grant(server, user, aid)
    whole = await boards(server).GetLeaderboard(
        lpb.GetLeaderboardRequest(leaderboard_id="points", page_size=100)
    )
    seen: list[tuple[int, str, float]] = []
    token = ""
    while True:
        page = await boards(server).GetLeaderboard(
            lpb.GetLeaderboardRequest(leaderboard_id="points", page_size=2, page_token=token)
        )
        seen += ranked(page)
        token = page.next_page_token
        if not token:
            break
    assert seen == ranked(whole) and len(seen) == 11
    assert [r for r, _, _ in seen] == [1, 1, 1, 1, 5, 5, 5, 5, 9, 9, 9]
    # Within a score, who reached it first comes first.
    assert [u for _, u, s in seen if s == 20] == ["u00", "u03", "u06", "u09"]

    around = await boards(server).GetLeaderboardRank(
        lpb.GetLeaderboardRankRequest(leaderboard_id="points", user_id="u04", around=2)
    )
    assert around.entry.user_id == "u04" and around.entry.rank == 5
    assert ranked(around) == seen[3:8]
    friends = await boards(server).GetLeaderboardRank(
        lpb.GetLeaderboardRankRequest(leaderboard_id="points", user_ids=["u10", "u02", "nobody"])
    )
    assert ranked(friends) == [(5, "u10", 10), (9, "u02", 5)]
    # A token for another board or period is refused, naming it.
    await expect_error(
        boards(server).GetLeaderboard(
            lpb.GetLeaderboardRequest(leaderboard_id="points", page_token="garbage")
        ),
        INVALID,
        "page_token",
    )
    # Erasure removes the user's entries.
    await server.admin.DeleteUserData(apb.DeleteUserDataRequest(user_id="u00"))
    page = await boards(server).GetLeaderboard(
        lpb.GetLeaderboardRequest(leaderboard_id="points", page_size=3)
    )
    assert [u for _, u, _ in ranked(page)] == ["u03", "u06", "u09"]
    gone = await boards(server).GetLeaderboardRank(
        lpb.GetLeaderboardRankRequest(leaderboard_id="points", user_id="u00")
    )
    assert not gone.HasField("entry") and not gone.entries
    await assert_counts_agree(server)


async def test_achievement_value_and_period_points_boards_follow_track_event(
    server: Running,
) -> None:
    users = users_pb2_grpc.UserDirectoryStub(server.channel)
    for uid, country in (("de1", "DE"), ("de2", "DE"), ("fr1", "FR")):
        attrs = struct_pb2.Struct()
        attrs.update({"country": country})
        await users.UpsertUser(upb.UpsertUserRequest(user=upb.User(user_id=uid, attributes=attrs)))
    await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(
            achievement=achievement(
                "buyer",
                rule={"event_types": ["buy"]},
                tiers=[{"name": "first", "threshold": 1, "points": 10}],
            )
        )
    )
    await boards(server).CreateLeaderboard(
        lpb.CreateLeaderboardRequest(
            leaderboard=lpb.Leaderboard(
                id="most-purchases",
                metric=lpb.LEADERBOARD_METRIC_ACHIEVEMENT_VALUE,
                achievement_id="buyer",
            )
        )
    )
    weekly = await boards(server).CreateLeaderboard(
        lpb.CreateLeaderboardRequest(
            leaderboard=lpb.Leaderboard(
                id="weekly-de",
                title="This week in Germany",
                metric=lpb.LEADERBOARD_METRIC_PERIOD_POINTS,
                period=lpb.LEADERBOARD_PERIOD_WEEKLY,
                week_start=lpb.WEEKDAY_SUNDAY,
                time_zone="Europe/Berlin",
                filter_attribute="country",
                filter_value="DE",
            )
        )
    )
    assert weekly.leaderboard.HasField("create_time")
    n = 0
    for uid, count in (("de1", 1), ("fr1", 3), ("de2", 2)):
        for done in range(1, count + 1):
            n += 1
            reply = await server.tracker.TrackEvent(
                tpb.TrackEventRequest(event_id=f"e{n}", user_id=uid, type="buy")
            )
            # Read right after the event: it is included.
            mine = await boards(server).GetLeaderboardRank(
                lpb.GetLeaderboardRankRequest(leaderboard_id="most-purchases", user_id=uid)
            )
            assert reply.tracked and mine.entry.score == done
    most = await boards(server).GetLeaderboard(
        lpb.GetLeaderboardRequest(leaderboard_id="most-purchases")
    )
    assert ranked(most) == [(1, "fr1", 3), (2, "de2", 2), (3, "de1", 1)]
    week = await boards(server).GetLeaderboard(
        lpb.GetLeaderboardRequest(leaderboard_id="weekly-de")
    )
    assert ranked(week) == [(1, "de1", 10), (1, "de2", 10)]
    start, end = week.period_start.ToDatetime(), week.period_end.ToDatetime()
    assert start.weekday() in (5, 6) and (end - start).days in (6, 7)  # Sunday 00:00 Berlin
    # An old period beyond retention is refused, naming the field; a past one reads empty.
    last_week = await boards(server).GetLeaderboard(
        lpb.GetLeaderboardRequest(
            leaderboard_id="weekly-de",
            period_start=type(week.period_start)(seconds=week.period_start.seconds - 1),
        )
    )
    assert not last_week.entries and last_week.period_end == week.period_start

    # A new all-time board starts from the stored totals.
    await boards(server).CreateLeaderboard(
        lpb.CreateLeaderboardRequest(
            leaderboard=lpb.Leaderboard(
                id="fr-points",
                metric=lpb.LEADERBOARD_METRIC_LIFETIME_POINTS,
                filter_attribute="country",
                filter_value="FR",
            )
        )
    )
    fr = await boards(server).GetLeaderboard(lpb.GetLeaderboardRequest(leaderboard_id="fr-points"))
    assert ranked(fr) == [(1, "fr1", 10)]

    updated = await boards(server).UpdateLeaderboard(
        lpb.UpdateLeaderboardRequest(
            leaderboard=lpb.Leaderboard(id="weekly-de", title="Wochenbeste"),
            update_mask=field_mask_pb2.FieldMask(paths=["title"]),
        )
    )
    assert updated.leaderboard.title == "Wochenbeste"
    assert updated.leaderboard.time_zone == "Europe/Berlin"
    await boards(server).DeleteLeaderboard(lpb.DeleteLeaderboardRequest(leaderboard_id="fr-points"))
    await expect_error(
        boards(server).GetLeaderboard(lpb.GetLeaderboardRequest(leaderboard_id="fr-points")),
        grpc.StatusCode.NOT_FOUND,
        "fr-points",
    )
    await assert_counts_agree(server)


async def test_bad_definitions_and_reads_are_refused_naming_the_field(server: Running) -> None:
    stub = boards(server)
    cases = [
        (lpb.Leaderboard(id="x"), "leaderboard.metric"),
        (lpb.Leaderboard(id="Bad Id", metric=LIFETIME), "leaderboard.id"),
        (lpb.Leaderboard(id="points", metric=LIFETIME), "leaderboard.id"),
        (
            lpb.Leaderboard(id="x", metric=LIFETIME, period=lpb.LEADERBOARD_PERIOD_DAILY),
            "leaderboard.period",
        ),
        (lpb.Leaderboard(id="x", metric=VALUE), "leaderboard.achievement_id"),
        (lpb.Leaderboard(id="x", metric=PERIOD, time_zone="Europe/Berln"), "leaderboard.time_zone"),
        (lpb.Leaderboard(id="x", metric=PERIOD, filter_value="DE"), "leaderboard.filter_value"),
    ]
    for board, field in cases:
        await expect_error(
            stub.CreateLeaderboard(lpb.CreateLeaderboardRequest(leaderboard=board)),
            INVALID,
            f"{field}:",
        )
    await stub.CreateLeaderboard(
        lpb.CreateLeaderboardRequest(
            leaderboard=lpb.Leaderboard(id="x", metric=PERIOD, period=lpb.LEADERBOARD_PERIOD_DAILY)
        )
    )
    await expect_error(
        stub.CreateLeaderboard(
            lpb.CreateLeaderboardRequest(leaderboard=lpb.Leaderboard(id="x", metric=PERIOD))
        ),
        grpc.StatusCode.ALREADY_EXISTS,
        "leaderboard.id",
    )
    await expect_error(
        stub.UpdateLeaderboard(
            lpb.UpdateLeaderboardRequest(
                leaderboard=lpb.Leaderboard(id="x", period=lpb.LEADERBOARD_PERIOD_WEEKLY),
                update_mask=field_mask_pb2.FieldMask(paths=["period"]),
            )
        ),
        INVALID,
        "update_mask",
    )
    reads = [
        (lpb.GetLeaderboardRankRequest(leaderboard_id="points"), "user_id"),
        (lpb.GetLeaderboardRankRequest(leaderboard_id="points", user_id="u", around=101), "around"),
        (
            lpb.GetLeaderboardRankRequest(leaderboard_id="points", user_id="u", user_ids=["v"]),
            "user_ids",
        ),
    ]
    for request, field in reads:
        await expect_error(stub.GetLeaderboardRank(request), INVALID, f"{field}:")
    await expect_error(
        stub.GetLeaderboard(lpb.GetLeaderboardRequest(leaderboard_id="nope")),
        grpc.StatusCode.NOT_FOUND,
        "leaderboard_id",
    )
    await expect_error(
        stub.GetLeaderboard(lpb.GetLeaderboardRequest(leaderboard_id="points", page_size=-1)),
        INVALID,
        "page_size",
    )


async def test_connect_json_reads_a_board(server: Running) -> None:
    await points_achievements(server)
    await grant(server, "u1", "small")
    async with httpx.AsyncClient() as http:
        page = await unary(
            http,
            server.http_url,
            "Leaderboards/GetLeaderboard",
            lpb.GetLeaderboardRequest(leaderboard_id="points"),
            lpb.GetLeaderboardResponse,
        )
        assert ranked(page) == [(1, "u1", 10)]
        reply = await http.post(
            f"{server.http_url}/accolade.v1.Leaderboards/GetLeaderboardRank",
            json={"leaderboardId": "points", "userId": "u1", "around": 500},
        )
        assert reply.status_code == 400
        assert reply.json()["code"] == "invalid_argument"
        assert reply.json()["message"].startswith("around:")


async def test_ranks_match_a_naive_ranking_after_random_grants_and_revocations(
    server: Running,
) -> None:
    await points_achievements(server)
    worth = {"big": 20, "small": 10, "tiny": 5}
    held: dict[str, set[str]] = {f"r{i}": set() for i in range(12)}
    rng = random.Random(16)
    for _ in range(60):
        user, aid = rng.choice(sorted(held)), rng.choice(sorted(worth))
        if aid in held[user] and rng.random() < 0.5:
            await server.admin.RevokeAward(apb.RevokeAwardRequest(user_id=user, achievement_id=aid))
            held[user].discard(aid)
        else:
            await grant(server, user, aid)
            held[user].add(aid)
    page = await boards(server).GetLeaderboard(
        lpb.GetLeaderboardRequest(leaderboard_id="points", page_size=100)
    )
    scores = {e.user_id: e.score for e in page.entries}
    for user, aids in held.items():
        assert scores.get(user, 0) == sum(worth[a] for a in aids)
    for e in page.entries:
        assert e.rank == 1 + sum(1 for s in scores.values() if s > e.score)
    assert [e.score for e in page.entries] == sorted(scores.values(), reverse=True)
    for e in page.entries:
        alone = await boards(server).GetLeaderboardRank(
            lpb.GetLeaderboardRankRequest(leaderboard_id="points", user_id=e.user_id, around=1)
        )
        assert alone.entry == e
    await assert_counts_agree(server)


async def test_cli_shows_a_board_and_a_users_rank(server: Running) -> None:
    await points_achievements(server)
    for user, aid in (("u1", "big"), ("u2", "small"), ("u3", "tiny")):
        await grant(server, user, aid)
    shown = ok(await client(server, "leaderboard", "show", "points", "--page-size", "2"))
    lines = shown.out.splitlines()
    assert lines[0].split() == ["RANK", "USER", "NAME", "SCORE", "REACHED"]
    assert [line.split()[:4] for line in lines[1:3]] == [
        ["1", "u1", "-", "20"],
        ["2", "u2", "-", "10"],
    ]
    assert "--page-token" in lines[-1]
    token = lines[-1].split()[-1]
    rest = ok(await client(server, "leaderboard", "show", "points", "--page-token", token))
    assert [line.split()[:2] for line in rest.out.splitlines()[1:]] == [["3", "u3"]]
    ranked_out = ok(await client(server, "leaderboard", "rank", "points", "u2", "--around", "1"))
    assert [line.split()[:3] for line in ranked_out.out.splitlines()[1:]] == [
        ["1", "u1", "-"],
        ["2", "<", "u2"],
        ["3", "u3", "-"],
    ]
    listed = ok(await client(server, "leaderboard", "list"))
    assert listed.out.splitlines()[1].split()[:3] == ["points", "Points", "lifetime_points"]
    missing = await client(server, "leaderboard", "show", "nope")
    assert missing.code != 0 and "nope" in missing.err


async def test_definitions_files_apply_and_export_leaderboards(
    server: Running, tmp_path: Path
) -> None:
    path = tmp_path / "defs.yaml"
    path.write_text(
        "achievements:\n"
        "  - {id: buyer, title: Buyer, rule: {event_types: [buy]}}\n"
        "leaderboards:\n"
        "  - {id: weekly, title: Weekly, metric: period_points, period: weekly,\n"
        "     week_start: sunday, time_zone: Europe/Berlin}\n"
        "  - {id: buys, metric: achievement_value, achievement_id: buyer}\n"
    )
    dry = ok(await client(server, "rules", "apply", str(path), "--dry-run"))
    assert "2 leaderboards: 2 would be created" in dry.out
    listed = await boards(server).ListLeaderboards(lpb.ListLeaderboardsRequest())
    assert [b.id for b in listed.leaderboards] == ["points"]  # a dry run writes nothing
    applied = ok(await client(server, "rules", "apply", str(path)))
    assert "created: weekly" in applied.out and "created: buys" in applied.out
    again = ok(await client(server, "rules", "apply", str(path)))
    assert "2 unchanged" in again.out.splitlines()[-1]

    exported = ok(await client(server, "rules", "export"))
    assert "leaderboards:" in exported.out and "week_start: sunday" in exported.out
    (tmp_path / "back.yaml").write_text(exported.out.replace("title: Weekly", "title: Week"))
    renamed = ok(await client(server, "rules", "apply", str(tmp_path / "back.yaml")))
    assert "updated: weekly (title)" in renamed.out

    path.write_text(path.read_text().replace("period: weekly", "period: daily"))
    refused = await client(server, "rules", "apply", str(path))
    assert refused.code != 0 and "leaderboards[0].period" in refused.err
    bad = tmp_path / "bad.yaml"
    bad.write_text("leaderboards:\n  - {id: x, metric: sideways}\n")
    wrong = await client(server, "rules", "apply", str(bad))
    assert wrong.code != 0 and "leaderboards[0].metric" in wrong.err
