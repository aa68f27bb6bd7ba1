"""The AchievementAdmin service."""

from __future__ import annotations

from typing import Any

from accolade.v1 import admin_pb2 as pb
from accolade.v1 import admin_pb2_grpc
from accolade_server.rpc import convert
from accolade_server.service.achievements import AchievementService
from accolade_server.service.awards import AwardService

Context = Any  # grpc.aio.ServicerContext


class AchievementAdminServicer(admin_pb2_grpc.AchievementAdminServicer):
    def __init__(self, achievements: AchievementService, awards: AwardService) -> None:
        self.achievements = achievements
        self.awards = awards

    async def CreateAchievement(
        self, request: pb.CreateAchievementRequest, context: Context
    ) -> pb.CreateAchievementResponse:
        created = await self.achievements.create(
            convert.achievement_from_proto(request.achievement)
        )
        return pb.CreateAchievementResponse(achievement=convert.achievement_to_proto(created))

    async def GetAchievement(
        self, request: pb.GetAchievementRequest, context: Context
    ) -> pb.GetAchievementResponse:
        found = await self.achievements.get(request.id)
        return pb.GetAchievementResponse(achievement=convert.achievement_to_proto(found))

    async def ListAchievements(
        self, request: pb.ListAchievementsRequest, context: Context
    ) -> pb.ListAchievementsResponse:
        page = await self.achievements.list(
            category=request.category,
            enabled=request.enabled if request.HasField("enabled") else None,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListAchievementsResponse(
            achievements=[convert.achievement_to_proto(a) for a in page.items],
            next_page_token=page.next_page_token,
        )

    async def UpdateAchievement(
        self, request: pb.UpdateAchievementRequest, context: Context
    ) -> pb.UpdateAchievementResponse:
        patch = convert.patch_from_mask(request.achievement, list(request.update_mask.paths))
        updated = await self.achievements.update(
            request.achievement.id, patch, etag=request.achievement.etag
        )
        return pb.UpdateAchievementResponse(achievement=convert.achievement_to_proto(updated))

    async def DeleteAchievement(
        self, request: pb.DeleteAchievementRequest, context: Context
    ) -> pb.DeleteAchievementResponse:
        await self.achievements.delete(request.id, etag=request.etag)
        return pb.DeleteAchievementResponse()

    async def ApplyAchievements(
        self, request: pb.ApplyAchievementsRequest, context: Context
    ) -> pb.ApplyAchievementsResponse:
        items = [
            convert.achievement_from_proto(a, f"achievements[{i}]")
            for i, a in enumerate(request.achievements)
        ]
        result = await self.achievements.apply(items, validate_only=request.validate_only)
        return pb.ApplyAchievementsResponse(
            created=result.created, updated=result.updated, unchanged=result.unchanged
        )

    async def GrantAward(
        self, request: pb.GrantAwardRequest, context: Context
    ) -> pb.GrantAwardResponse:
        award, already_held = await self.awards.grant(
            request.user_id,
            request.achievement_id,
            request.tier,
            reason=request.reason,
            actor=request.actor,
        )
        return pb.GrantAwardResponse(award=convert.award_to_proto(award), already_held=already_held)

    async def RevokeAward(
        self, request: pb.RevokeAwardRequest, context: Context
    ) -> pb.RevokeAwardResponse:
        revocations = await self.awards.revoke(
            request.user_id,
            request.achievement_id,
            request.tier,
            all_tiers=request.all_tiers,
            reason=request.reason,
            actor=request.actor,
        )
        return pb.RevokeAwardResponse(revocations=[convert.award_to_proto(r) for r in revocations])

    async def DeleteUserData(
        self, request: pb.DeleteUserDataRequest, context: Context
    ) -> pb.DeleteUserDataResponse:
        erasure = await self.awards.erase_user(request.user_id)
        if erasure is None:
            return pb.DeleteUserDataResponse()
        return pb.DeleteUserDataResponse(erasure=convert.award_to_proto(erasure))
