"""The Prometheus endpoint reports real traffic."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
from prometheus_client.parser import text_string_to_metric_families

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from tests.conftest import Database, start_server, stop_server
from tests.helpers import achievement


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_endpoint_counts_rpcs_events_awards_streams_and_batches(
    db: Database,
) -> None:
    running = await start_server(
        db, metrics_listen="127.0.0.1:0", track_event_types=["buy", "boom"]
    )
    try:
        port = running.app.metrics_port
        assert port
        before = await asyncio.to_thread(scrape, port)
        await running.admin.CreateAchievement(
            apb.CreateAchievementRequest(
                achievement=achievement("first", rule={"event_types": ["buy"]})
            )
        )
        await running.admin.CreateAchievement(
            apb.CreateAchievementRequest(
                achievement=achievement(
                    "big",
                    rule={"event_types": ["boom"], "condition": "event.properties.amount > 3"},
                )
            )
        )
        track = running.tracker.TrackEvent
        await track(tpb.TrackEventRequest(event_id="1", user_id="u", type="buy"))
        await track(tpb.TrackEventRequest(event_id="1", user_id="u", type="buy"))  # duplicate
        await track(tpb.TrackEventRequest(event_id="2", user_id="u", type="page_view"))
        await track(tpb.TrackEventRequest(event_id="3", user_id="u", type="boom"))  # no property
        try:
            await track(tpb.TrackEventRequest(event_id="", user_id="u", type="buy"))
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
        stream = running.tracker.WatchAwards(tpb.WatchAwardsRequest(after_cursor=0))
        await stream.read()  # the award above: the stream is open now
        during = await asyncio.to_thread(scrape, port)
        stream.cancel()
    finally:
        await stop_server(running)

    track_method = "/accolade.v1.BadgeTracker/TrackEvent"
    assert value(during, "accolade_rpc_requests_total", method=track_method, code="OK") == 4
    assert (
        value(during, "accolade_rpc_requests_total", method=track_method, code="INVALID_ARGUMENT")
        == 1
    )
    assert value(during, "accolade_rpc_duration_seconds_count", method=track_method) == 5
    for outcome, count in (("tracked", 2), ("duplicate", 1), ("ignored", 1), ("invalid", 1)):
        assert value(during, "accolade_events_total", outcome=outcome) == count, outcome
    assert (
        value(during, "accolade_awards_total", achievement_id="first", source="rule", kind="award")
        == 1
    )
    assert value(during, "accolade_condition_errors_total", achievement_id="big") == 1
    assert value(during, "accolade_open_streams") == 1
    assert value(during, "accolade_batch_events_count") >= 4
    assert value(during, "accolade_db_acquire_seconds_count") > value(
        before, "accolade_db_acquire_seconds_count"
    )
