"""Micro-batching: concurrent calls share transactions, with per-event exactness."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import types_pb2 as pb
from accolade_server.rules import engine
from tests.conftest import Running
from tests.helpers import achievement


def histogram_count(running: Running, name: str) -> float:
    assert running.app.metrics is not None
    for family in running.app.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == f"{name}_count":
                return float(sample.value)
    return 0.0


async def test_concurrent_calls_share_transactions_and_stay_exact(server: Running) -> None:
    await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(
            achievement=achievement(
                "spender",
                rule={"event_types": ["buy"], "aggregate": pb.AGGREGATE_SUM, "field": "amount"},
                tiers=[{"name": "bronze", "threshold": 3}, {"name": "silver", "threshold": 8}],
            )
        )
    )
    users = [f"u{i}" for i in range(40)]
    requests = []
    for round_ in range(5):
        for user in users:
            request = tpb.TrackEventRequest(event_id=f"{user}-{round_}", user_id=user, type="buy")
            request.properties.update({"amount": 2})
            requests.append(request)
    before = histogram_count(server, "accolade_batch_events")
    results = await asyncio.gather(*(server.tracker.TrackEvent(r) for r in requests))
    transactions = histogram_count(server, "accolade_batch_events") - before
    assert transactions < len(requests)  # events shared transactions
    awarded = sorted((a.user_id, a.tier) for r in results for a in r.awards)
    assert awarded == sorted((u, t) for u in users for t in ("bronze", "silver"))
    progress = await server.tracker.GetProgress(tpb.GetProgressRequest(user_id="u7"))
    assert progress.progress[0].current == 10


async def test_a_failing_event_does_not_fail_its_batch_mates(
    server: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(
            achievement=achievement(
                "counter", rule={"event_types": ["tick", "explode"], "target": 1000}
            )
        )
    )
    real_match = engine.match

    def match(event: engine.Event, rules: engine.RuleSet) -> Any:
        if event.type == "explode":
            raise RuntimeError("injected fault")
        return real_match(event, rules)

    monkeypatch.setattr(engine, "match", match)  # batch.py calls engine.match at run time
    calls = [
        server.tracker.TrackEvent(
            tpb.TrackEventRequest(
                event_id=f"e{i}", user_id="u", type="explode" if i == 7 else "tick"
            )
        )
        for i in range(30)
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    failures = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert [f.code() for f in failures] == [grpc.StatusCode.INTERNAL]
    assert "request id" in (failures[0].details() or "")
    assert isinstance(results[7], grpc.aio.AioRpcError)
    progress = await server.tracker.GetProgress(tpb.GetProgressRequest(user_id="u"))
    assert progress.progress[0].current == 29

    batch = await server.tracker.TrackEvents(
        tpb.TrackEventsRequest(
            events=[
                tpb.TrackEventRequest(event_id="b1", user_id="u", type="tick"),
                tpb.TrackEventRequest(event_id="b2", user_id="u", type="explode"),
                tpb.TrackEventRequest(event_id="b3", user_id="u", type="tick"),
            ]
        )
    )
    assert [r.WhichOneof("result") for r in batch.results] == ["outcome", "error", "outcome"]
    assert batch.results[1].error.code == grpc.StatusCode.INTERNAL.value[0]
    progress = await server.tracker.GetProgress(tpb.GetProgressRequest(user_id="u"))
    assert progress.progress[0].current == 31
