"""User profiles (UserDirectory) on a real server, PostgreSQL and SQLite: gRPC, SDK, CLI,
Connect, scopes, erasure, conditions over `user.attributes`, and the profile page."""

from __future__ import annotations

import json
from typing import Any

import grpc
import httpx
from google.protobuf import field_mask_pb2, struct_pb2

from accolade import AsyncClient, NotFoundError
from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import users_pb2 as upb
from accolade.v1 import users_pb2_grpc
from tests.conftest import Database, Running, start_server, stop_server
from tests.connect import unary
from tests.e2e.console.conftest import http_sign_in, start_console
from tests.e2e.test_auth import auth, with_keys
from tests.e2e.test_cli import client, ok
from tests.helpers import achievement, expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def directory(server: Running) -> users_pb2_grpc.UserDirectoryAsyncStub:
    return users_pb2_grpc.UserDirectoryStub(server.channel)


def upsert(user: upb.User, *paths: str) -> upb.UpsertUserRequest:
    return upb.UpsertUserRequest(user=user, update_mask=field_mask_pb2.FieldMask(paths=paths))


def attrs(**values: Any) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


async def test_upsert_is_idempotent_and_the_mask_writes_only_the_fields_named(
    server: Running,
) -> None:
    users = directory(server)
    ada = upb.User(
        user_id="u1", display_name="Ada", time_zone="Europe/Berlin", attributes=attrs(plan="pro")
    )
    first = await users.UpsertUser(upsert(ada))
    assert first.created and first.user.display_name == "Ada"
    assert first.user.HasField("create_time") and first.user.update_time == first.user.create_time
    again = await users.UpsertUser(upsert(ada))
    assert not again.created and again.user == first.user  # nothing changed, not even the time

    renamed = await users.UpsertUser(
        upsert(upb.User(user_id="u1", display_name="Ada L.", locale="de"), "display_name")
    )
    assert renamed.user.display_name == "Ada L."
    assert renamed.user.locale == ""  # not in the mask: not written
    assert renamed.user.time_zone == "Europe/Berlin" and dict(renamed.user.attributes) == {
        "plan": "pro"
    }
    assert renamed.user.create_time == first.user.create_time

    cleared = await users.UpsertUser(upsert(upb.User(user_id="u1"), "time_zone"))
    assert cleared.user.time_zone == "" and cleared.user.display_name == "Ada L."
    replaced = await users.UpsertUser(upsert(upb.User(user_id="u1", locale="pt-BR"), "*"))
    assert (replaced.user.display_name, replaced.user.locale) == ("", "pt-BR")
    assert not replaced.user.attributes.fields

    got = await users.GetUser(upb.GetUserRequest(user_id="u1"))
    assert got.user == replaced.user


async def test_invalid_fields_are_refused_naming_them(server: Running) -> None:
    users = directory(server)
    cases = [
        (upb.User(user_id="u1", time_zone="Europe/Berln"), "user.time_zone", "Europe/Berlin"),
        (upb.User(user_id="u1", time_zone="+02:00"), "user.time_zone", "IANA"),
        (upb.User(user_id="u1", locale="en_US"), "user.locale", "'en-US'"),
        (upb.User(user_id="u1", avatar_url="javascript:alert(1)"), "user.avatar_url", "http"),
        (upb.User(user_id="u1", display_name="x" * 201), "user.display_name", "200"),
        (upb.User(user_id="", display_name="x"), "user.user_id", "required"),
    ]
    for user, field, hint in cases:
        await expect_error(users.UpsertUser(upsert(user)), INVALID, f"{field}:", hint)
    deep: dict[str, object] = {"a": 1}
    for _ in range(10):
        deep = {"a": deep}
    await expect_error(
        users.UpsertUser(upsert(upb.User(user_id="u1", attributes=attrs(**deep)))),
        INVALID,
        "user.attributes",
        "max_properties_depth",
    )
    await expect_error(
        users.UpsertUser(upsert(upb.User(user_id="u1"), "displayname")),
        INVALID,
        "update_mask.paths[0]",
        "did you mean 'display_name'",
    )
    await expect_error(
        users.GetUser(upb.GetUserRequest(user_id="nobody")), grpc.StatusCode.NOT_FOUND, "nobody"
    )
    listed = await users.ListUsers(upb.ListUsersRequest())
    assert list(listed.users) == []  # nothing was stored by the refused calls


async def test_list_pages_in_id_order_and_filters_by_prefix(server: Running) -> None:
    users = directory(server)
    for uid in ("team-3", "team-1", "Team-9", "other", "team-2", "team-4", "team-5"):
        await users.UpsertUser(upsert(upb.User(user_id=uid, display_name=uid.upper())))
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await users.ListUsers(
            upb.ListUsersRequest(page_size=2, page_token=token, user_id_prefix="team-")
        )
        seen += [u.user_id for u in page.users]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == ["team-1", "team-2", "team-3", "team-4", "team-5"] and pages == 3
    await expect_error(
        users.ListUsers(upb.ListUsersRequest(page_token="not-a-token")),
        INVALID,
        "page_token",
    )
    async with AsyncClient(server.target) as sdk:
        assert [u.user_id async for u in sdk.list_users(prefix="Team-")] == ["Team-9"]
        assert len([u async for u in sdk.list_users(page_size=3)]) == 7


async def test_sdk_upsert_changes_only_the_fields_given(server: Running) -> None:
    async with AsyncClient(server.target) as sdk:
        made = await sdk.upsert_user("u1", display_name="Ada", attributes={"plan": "pro"})
        assert made.display_name == "Ada"
        zoned = await sdk.upsert_user("u1", time_zone="America/Los_Angeles")
        assert (zoned.display_name, zoned.time_zone) == ("Ada", "America/Los_Angeles")
        assert dict(zoned.attributes) == {"plan": "pro"}
        assert (await sdk.upsert_user("u1")).update_time == zoned.update_time
        assert (await sdk.get_user("u1")).time_zone == "America/Los_Angeles"
        cleared = await sdk.upsert_user("u1", display_name="", attributes={})
        assert cleared.display_name == "" and not cleared.attributes.fields
        try:
            await sdk.get_user("ghost")
        except NotFoundError as exc:
            assert "ghost" in str(exc)
        else:
            raise AssertionError("get_user of a missing user must raise NotFoundError")


async def test_a_read_key_reads_users_but_only_admin_writes_them(db: Database) -> None:
    running, tokens = await with_keys(db)
    try:
        users = directory(running)
        request = upsert(upb.User(user_id="u1", display_name="Ada"))
        for name in ("read", "track"):
            await expect_error(
                users.UpsertUser(request, metadata=auth(tokens[name])),
                grpc.StatusCode.PERMISSION_DENIED,
                "'admin' scope",
            )
        await users.UpsertUser(request, metadata=auth(tokens["admin"]))
        got = await users.GetUser(upb.GetUserRequest(user_id="u1"), metadata=auth(tokens["read"]))
        assert got.user.display_name == "Ada"
        listed = await users.ListUsers(upb.ListUsersRequest(), metadata=auth(tokens["read"]))
        assert [u.user_id for u in listed.users] == ["u1"]
        await expect_error(
            users.GetUser(upb.GetUserRequest(user_id="u1"), metadata=auth(tokens["track"])),
            grpc.StatusCode.PERMISSION_DENIED,
            "'read' scope",
        )
    finally:
        await stop_server(running)


async def test_erasure_removes_the_profile(server: Running) -> None:
    users = directory(server)
    await users.UpsertUser(upsert(upb.User(user_id="u1", display_name="Ada")))
    erased = await server.admin.DeleteUserData(apb.DeleteUserDataRequest(user_id="u1"))
    assert erased.HasField("erasure")  # a profile alone is data of the user
    await expect_error(
        users.GetUser(upb.GetUserRequest(user_id="u1")), grpc.StatusCode.NOT_FOUND, "u1"
    )
    again = await server.admin.DeleteUserData(apb.DeleteUserDataRequest(user_id="u1"))
    assert not again.HasField("erasure")


async def test_a_condition_on_user_attributes_awards_only_matching_users(
    server: Running,
) -> None:
    users = directory(server)
    await users.UpsertUser(upsert(upb.User(user_id="pro", attributes=attrs(plan="pro"))))
    await users.UpsertUser(upsert(upb.User(user_id="free", attributes=attrs(plan="free"))))
    await users.UpsertUser(upsert(upb.User(user_id="bare", display_name="No attributes")))
    await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(
            achievement=achievement(
                "pro-visitor",
                rule={"event_types": ["visit"], "condition": 'user.attributes.plan == "pro"'},
            )
        )
    )
    earned = {}
    for uid in ("pro", "free", "bare", "unknown"):
        reply = await server.tracker.TrackEvent(
            tpb.TrackEventRequest(event_id=f"v-{uid}", user_id=uid, type="visit")
        )
        assert reply.tracked
        earned[uid] = [a.achievement_id for a in reply.awards]
    assert earned == {"pro": ["pro-visitor"], "free": [], "bare": [], "unknown": []}
    got = await server.admin.GetAchievement(apb.GetAchievementRequest(id="pro-visitor"))
    # The users without the attribute are "no match", counted as condition errors.
    assert got.achievement.condition_error_count == 2
    assert "plan" in got.achievement.last_condition_error

    # Profile data never changes past counts: the award stays when the plan changes.
    await users.UpsertUser(upsert(upb.User(user_id="pro", attributes=attrs(plan="free"))))
    progress = await server.tracker.GetProgress(tpb.GetProgressRequest(user_id="pro"))
    assert [p.current for p in progress.progress] == [1]
    listed = await server.tracker.ListAwards(tpb.ListAwardsRequest(user_id="pro"))
    assert [a.achievement_id for a in listed.awards] == ["pro-visitor"]
    # A user who becomes pro counts from then on, in a batch too.
    await users.UpsertUser(upsert(upb.User(user_id="free", attributes=attrs(plan="pro"))))
    batch = await server.tracker.TrackEvents(
        tpb.TrackEventsRequest(
            events=[
                tpb.TrackEventRequest(event_id="w-free", user_id="free", type="visit"),
                tpb.TrackEventRequest(event_id="w-bare", user_id="bare", type="visit"),
            ]
        )
    )
    outcomes = [[a.achievement_id for a in r.outcome.awards] for r in batch.results]
    assert outcomes == [["pro-visitor"], []]


async def test_a_condition_naming_an_unknown_variable_is_refused(server: Running) -> None:
    await expect_error(
        server.admin.CreateAchievement(
            apb.CreateAchievementRequest(
                achievement=achievement(
                    "x", rule={"event_types": ["visit"], "condition": "account.plan == 'pro'"}
                )
            )
        ),
        INVALID,
        "rule.condition",
        "user.attributes",
    )


async def test_the_profile_page_shows_the_display_name(db: Database) -> None:
    running = await start_server(db, public_profiles=True)
    try:
        await directory(running).UpsertUser(
            upsert(upb.User(user_id="u1", display_name="Ada <Lovelace>"))
        )
        async with httpx.AsyncClient(base_url=running.http_url) as http:
            page = (await http.get("/u/u1")).text
            assert "<h1>Ada &lt;Lovelace&gt;</h1>" in page
            assert "<h1>u2</h1>" in (await http.get("/u/u2")).text  # no profile: the id
    finally:
        await stop_server(running)


async def test_get_user_over_connect_json(server: Running) -> None:
    await directory(server).UpsertUser(
        upsert(upb.User(user_id="u1", display_name="Ada", attributes=attrs(level=3)))
    )
    async with httpx.AsyncClient() as http:
        got = await unary(
            http,
            server.http_url,
            "UserDirectory/GetUser",
            upb.GetUserRequest(user_id="u1"),
            upb.GetUserResponse,
        )
        assert got.user.display_name == "Ada" and dict(got.user.attributes) == {"level": 3}
        raw = await http.post(
            f"{server.http_url}/accolade.v1.UserDirectory/GetUser",
            json={"userId": "nobody"},
        )
        assert raw.status_code == 404 and raw.json()["code"] == "not_found"


async def test_cli_users_upsert_get_and_list(server: Running) -> None:
    made = json.loads(
        ok(
            await client(
                server,
                "users",
                "upsert",
                "u1",
                "--display-name",
                "Ada",
                "--time-zone",
                "Europe/Berlin",
                "--attr",
                'plan="pro"',
                "--attr",
                "seats=3",
            )
        ).out
    )
    assert made["display_name"] == "Ada" and made["attributes"] == {"plan": "pro", "seats": 3}
    ok(await client(server, "users", "upsert", "u2", "--locale", "fr"))
    got = json.loads(ok(await client(server, "users", "get", "u1")).out)
    assert got["time_zone"] == "Europe/Berlin"
    table = ok(await client(server, "users", "list")).out
    assert "Ada" in table and "Europe/Berlin" in table and "u2" in table
    only = json.loads(ok(await client(server, "users", "list", "--prefix", "u2", "--json")).out)
    assert [u["user_id"] for u in only["users"]] == ["u2"]
    bad = await client(server, "users", "upsert", "u1", "--time-zone", "Mars/Olympus")
    assert bad.code != 0 and "user.time_zone" in bad.err
    missing = await client(server, "users", "get", "ghost")
    assert missing.code != 0 and "ghost" in missing.err


async def test_the_console_users_page_shows_the_display_name(db: Database) -> None:
    console = await start_console(db)
    try:
        users = directory(console.running)
        await users.UpsertUser(
            upsert(upb.User(user_id="u1", display_name="Ada L."), "display_name"),
            metadata=auth(console.admin_key),
        )
        async with httpx.AsyncClient(base_url=console.running.http_url) as http:
            await http_sign_in(http, console.read_key)
            named = (await http.get("/console/users", params={"user_id": "u1"})).text
            assert "Progress of Ada L. (u1)" in named
            plain = (await http.get("/console/users", params={"user_id": "u2"})).text
            assert "Progress of u2 ·" in plain
    finally:
        await stop_server(console.running)
