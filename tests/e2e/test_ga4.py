"""The analytics channel: award-log entries reach GA4's Measurement Protocol in its documented
format, at least once through the durable sink cursor, retried after 5xx, on both backends,
and the API secret never shows in logs or in the stored error."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import httpx
import pytest

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import points_pb2 as ppb
from accolade.v1 import points_pb2_grpc
from accolade.v1 import tracker_pb2 as tpb
from accolade_server.notify.ga4 import client_id
from accolade_server.store import delivery
from accolade_server.store.repository import Repository
from tests.conftest import Database, start_server, stop_server
from tests.e2e.console.conftest import http_sign_in, make_key
from tests.e2e.test_delivery import earn_first, eventually
from tests.ga4 import API_SECRET, MEASUREMENT_ID, Collector
from tests.helpers import achievement


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    try:
        yield c
    finally:
        c.stop()


async def ga4_state(db: Database) -> delivery.SinkState:
    async with db.engine.connect() as conn:
        states = await delivery.states(Repository(conn, schema=db.schema))
    return next(s for s in states if s.sink == f"ga4:{MEASUREMENT_ID}")


async def test_an_award_is_sent_as_unlock_achievement(db: Database, collector: Collector) -> None:
    running = await start_server(db, **collector.settings())
    try:
        await earn_first(running, user="u1")
        await eventually(lambda: len(collector.requests) == 1)
    finally:
        await stop_server(running)
    assert collector.problems() == []
    [payload] = collector.payloads()
    assert payload["client_id"] == client_id(MEASUREMENT_ID, "u1") != "u1"
    assert payload["user_id"] == "u1"
    [event] = payload["events"]
    assert event["name"] == "unlock_achievement"
    params = event["params"]
    assert (params["achievement_id"], params["achievement_title"]) == ("first", "First steps")
    assert params["points"] == 5 and params["source"] == "rule"
    assert isinstance(event["timestamp_micros"], int)


async def test_levels_redemptions_and_refunds_carry_ga4s_recommended_parameters(
    db: Database, collector: Collector
) -> None:
    levels = [{"name": "Starter", "threshold": 1}, {"name": "Regular", "threshold": 5}]
    running = await start_server(db, **collector.settings(point_levels=levels))
    try:
        await earn_first(running, user="u1")  # 5 points: Starter and Regular reached
        ledger = points_pb2_grpc.PointsLedgerStub(running.channel)
        await ledger.RedeemPoints(
            ppb.RedeemPointsRequest(redemption_id="r1", user_id="u1", points=3, reward_id="mug")
        )
        await ledger.RefundRedemption(ppb.RefundRedemptionRequest(redemption_id="r1"))
        await eventually(lambda: len(collector.events()) == 5)
    finally:
        await stop_server(running)
    assert collector.problems() == []
    by_name: dict[str, list[dict[str, object]]] = {}
    for e in collector.events():
        by_name.setdefault(e["name"], []).append(e["params"])
    assert [p["achievement_id"] for p in by_name["unlock_achievement"]] == ["first"]
    assert [(p["level"], p["level_name"]) for p in by_name["level_up"]] == [
        (1, "Starter"),
        (2, "Regular"),
    ]
    [spent] = by_name["spend_virtual_currency"]
    [back] = by_name["earn_virtual_currency"]
    for params in (spent, back):
        assert params["value"] == 3 and params["virtual_currency_name"] == "points"
        assert (params["item_name"], params["redemption_id"]) == ("mug", "r1")
        assert "achievement_id" not in params


async def test_revocations_are_sent_and_erasures_are_not(
    db: Database, collector: Collector
) -> None:
    running = await start_server(db, **collector.settings(ga4_send_user_id=False))
    try:
        await earn_first(running, user="u1")
        await running.admin.RevokeAward(
            apb.RevokeAwardRequest(user_id="u1", achievement_id="first", reason="x" * 300)
        )
        await eventually(lambda: len(collector.events()) == 2)
        await running.admin.DeleteUserData(apb.DeleteUserDataRequest(user_id="u1"))
        # The erasure (the last entry) moves the cursor to the head without a request.
        async with db.engine.connect() as conn:
            head = await Repository(conn, schema=db.schema).last_cursor()
        await _cursor_reaches(db, head)
    finally:
        await stop_server(running)
    # The erasure sent nothing (the award and the revocation may share one request).
    assert collector.problems() == [] and len(collector.events()) == 2
    names = [e["name"] for e in collector.events()]
    assert names == ["unlock_achievement", "accolade_revocation"]
    assert all("user_id" not in p for p in collector.payloads())
    assert collector.events()[1]["params"]["reason"] == "x" * 100


async def _cursor_reaches(db: Database, cursor: int) -> None:
    for _ in range(750):
        if (await ga4_state(db)).cursor >= cursor:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the GA4 cursor did not reach the head")


async def test_one_request_carries_at_most_25_events_of_one_user(
    db: Database, collector: Collector
) -> None:
    running = await start_server(db, **collector.settings())
    try:
        await running.admin.ApplyAchievements(
            apb.ApplyAchievementsRequest(
                achievements=[
                    achievement(f"a{i:02}", rule={"event_types": ["e"]}) for i in range(30)
                ]
            )
        )
        await running.tracker.TrackEvent(
            tpb.TrackEventRequest(event_id="x", user_id="u1", type="e")
        )
        await eventually(lambda: len(collector.events()) == 30)
    finally:
        await stop_server(running)
    assert collector.problems() == []
    assert [len(p["events"]) for p in collector.payloads()] == [25, 5]
    ids = [e["params"]["achievement_id"] for e in collector.events()]
    assert sorted(ids) == [f"a{i:02}" for i in range(30)] and len(set(ids)) == 30


async def test_a_5xx_is_retried_until_accepted_and_the_secret_stays_out_of_logs(
    db: Database,
    collector: Collector,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    collector.statuses = [503, 500, 204]
    running = await start_server(db, **collector.settings())
    try:
        await earn_first(running, user="u1")
        await eventually(lambda: len(collector.requests) == 3)
        await _cursor_reaches(db, 1)
        state = await ga4_state(db)
    finally:
        await stop_server(running)
    assert collector.problems() == []
    # The same entry each time: at least once, nothing skipped.
    assert [p["events"][0]["params"]["award_cursor"] for p in collector.payloads()] == [1, 1, 1]
    assert state.attempts == 0 and state.delivered == 1 and state.last_error is None
    logged = caplog.text + "".join(capsys.readouterr())
    assert "HTTP 503" in logged and "mp/collect" in logged
    assert API_SECRET not in logged
    # httpx did log the request URL, with the secret blanked: the check above could fail.
    assert "api_secret=<redacted>" in logged


async def test_an_unreachable_endpoint_keeps_the_entry_and_no_secret_in_the_error(
    db: Database, collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint = collector.endpoint
    collector.stop()  # nothing listens there any more
    running = await start_server(db, **collector.settings(ga4_endpoint=endpoint))
    try:
        await earn_first(running, user="u1")
        for _ in range(750):
            state = await ga4_state(db)
            if state.attempts >= 2:
                break
            await asyncio.sleep(0.02)
    finally:
        await stop_server(running)
    assert state.attempts >= 2 and state.cursor == 0 and state.last_error
    assert API_SECRET not in state.last_error
    assert API_SECRET not in caplog.text


async def test_the_console_shows_the_ga4_sinks_status_and_tracing(
    db: Database, collector: Collector
) -> None:
    admin = await make_key(db, "ops", "admin")
    collector.statuses = [503]
    running = await start_server(db, **collector.settings())
    try:
        auth = (("authorization", f"Bearer {admin}"),)
        await running.admin.ApplyAchievements(
            apb.ApplyAchievementsRequest(achievements=[achievement("first")]), metadata=auth
        )
        await running.admin.GrantAward(
            apb.GrantAwardRequest(user_id="u1", achievement_id="first"), metadata=auth
        )
        for _ in range(750):
            if (await ga4_state(db)).attempts:
                break
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=running.http_url) as http:
            await http_sign_in(http, admin)
            page = await http.get("/console/live")
    finally:
        await stop_server(running)
    assert page.status_code == 200
    assert f"ga4:{MEASUREMENT_ID}" in page.text
    assert "retrying (attempt" in page.text and "HTTP 503" in page.text
    assert "Tracing: off" in page.text
    assert API_SECRET not in page.text
