"""Redemptions on two server processes over one PostgreSQL database stay exact."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import admin_pb2_grpc, points_pb2_grpc
from accolade.v1 import points_pb2 as ppb
from tests.e2e.test_replicas import replicas
from tests.helpers import achievement
from tests.processes import ServerProcess

pytestmark = pytest.mark.slow
__all__ = ["replicas"]  # the fixture, shared


async def test_200_redemptions_split_across_two_replicas_spend_exactly_the_balance(
    replicas: list[ServerProcess],
) -> None:
    channels = [grpc.aio.insecure_channel(s.target) for s in replicas]
    try:
        admin = admin_pb2_grpc.AchievementAdminStub(channels[0])
        await admin.CreateAchievement(
            apb.CreateAchievementRequest(achievement=achievement("fifty", points=50))
        )
        await admin.GrantAward(apb.GrantAwardRequest(user_id="u1", achievement_id="fifty"))
        ledgers = [points_pb2_grpc.PointsLedgerStub(c) for c in channels]

        async def one(n: int, rid: str) -> bool:
            request = ppb.RedeemPointsRequest(redemption_id=rid, user_id="u1", points=1)
            try:
                await ledgers[n % 2].RedeemPoints(request)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION, exc.details()
                return False
            return True

        # Every id is sent to both replicas at once: retries count once.
        outcomes = await asyncio.gather(
            *(one(n + side, f"r{n}") for n in range(200) for side in (0, 1))
        )
        by_id = [outcomes[2 * n] or outcomes[2 * n + 1] for n in range(200)]
        assert sum(by_id) == 50
        # Both calls of an id answer alike: a success is replayed, and a refusal is not
        # followed by a success (the balance only goes down).
        assert all(outcomes[2 * n] == outcomes[2 * n + 1] for n in range(200))
        page = await ledgers[1].ListPointsLedger(
            ppb.ListPointsLedgerRequest(user_id="u1", page_size=1000)
        )
        assert page.balance.spendable_points == 0 and page.balance.lifetime_points == 50
        assert len([e for e in page.entries if e.source == ppb.POINTS_SOURCE_REDEMPTION]) == 50
    finally:
        for c in channels:
            await c.close()
