"""The PointsLedger service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from accolade.v1 import points_pb2 as pb
from accolade.v1 import points_pb2_grpc
from accolade_server.domain.model import AwardKind, AwardRecord
from accolade_server.domain.points import Redemption
from accolade_server.rpc import convert
from accolade_server.service.points import Entitlement, PointsService, Redeemed

Context = Any  # grpc.aio.ServicerContext

_SOURCE = {
    AwardKind.AWARD: pb.POINTS_SOURCE_AWARD,
    AwardKind.REVOCATION: pb.POINTS_SOURCE_REVOCATION,
    AwardKind.REDEMPTION: pb.POINTS_SOURCE_REDEMPTION,
    AwardKind.REFUND: pb.POINTS_SOURCE_REFUND,
}


def redemption_to_proto(r: Redemption) -> pb.Redemption:
    message = pb.Redemption(
        redemption_id=r.redemption_id,
        user_id=r.user_id,
        points=r.points,
        reason=r.reason,
        reward_id=r.reward_id,
        actor=r.actor,
        create_time=convert.datetime_to_timestamp(r.create_time),
        cursor=r.cursor,
        refund_reason=r.refund_reason,
        refund_actor=r.refund_actor,
        refund_cursor=r.refund_cursor,
    )
    if r.refund_time is not None:
        message.refund_time.CopyFrom(convert.datetime_to_timestamp(r.refund_time))
    return message


def entry_to_proto(r: AwardRecord) -> pb.PointsLedgerEntry:
    return pb.PointsLedgerEntry(
        cursor=r.cursor,
        source=_SOURCE[r.kind],
        points=r.points,
        achievement_id=r.achievement_id,
        tier="" if r.redemption_id else r.tier,
        redemption_id=r.redemption_id,
        reward_id=r.reward_id,
        reason=r.reason,
        actor=r.actor,
        time=convert.datetime_to_timestamp(r.award_time),
    )


class PointsLedgerServicer(points_pb2_grpc.PointsLedgerServicer):
    """`actor(context)` names the caller (its API key) for the ledger."""

    def __init__(self, points: PointsService, actor: Callable[[Context], str]) -> None:
        self.points = points
        self.actor = actor

    async def RedeemPoints(
        self, request: pb.RedeemPointsRequest, context: Context
    ) -> pb.RedeemPointsResponse:
        done = await self.points.redeem(
            request.redemption_id,
            request.user_id,
            request.points,
            reason=request.reason,
            reward_id=request.reward_id,
            actor=self.actor(context),
        )
        return pb.RedeemPointsResponse(**_redeemed(done))

    async def RefundRedemption(
        self, request: pb.RefundRedemptionRequest, context: Context
    ) -> pb.RefundRedemptionResponse:
        done = await self.points.refund(
            request.redemption_id, reason=request.reason, actor=self.actor(context)
        )
        return pb.RefundRedemptionResponse(**_redeemed(done))

    async def ListPointsLedger(
        self, request: pb.ListPointsLedgerRequest, context: Context
    ) -> pb.ListPointsLedgerResponse:
        page = await self.points.ledger(
            request.user_id, page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListPointsLedgerResponse(
            entries=[entry_to_proto(r) for r in page.entries],
            next_page_token=page.next_page_token,
            balance=convert.balance_to_proto(page.balance),
        )

    async def GetEntitlements(
        self, request: pb.GetEntitlementsRequest, context: Context
    ) -> pb.GetEntitlementsResponse:
        found = await self.points.entitlements(request.user_id)
        return pb.GetEntitlementsResponse(entitlements=[entitlement_to_proto(e) for e in found])


def entitlement_to_proto(e: Entitlement) -> pb.Entitlement:
    message = pb.Entitlement(
        name=e.name,
        achievement_id=e.achievement_id,
        tier=e.tier,
        award_cursor=e.award_cursor,
        grant_time=convert.datetime_to_timestamp(e.grant_time),
    )
    if e.expire_time is not None:
        message.expire_time.CopyFrom(convert.datetime_to_timestamp(e.expire_time))
    return message


def _redeemed(done: Redeemed) -> dict[str, Any]:
    return {
        "redemption": redemption_to_proto(done.redemption),
        "balance": convert.balance_to_proto(done.balance),
        "replayed": done.replayed,
    }
