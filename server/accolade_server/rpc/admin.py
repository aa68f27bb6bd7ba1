"""The AchievementAdmin service."""

from __future__ import annotations

from typing import Any

from accolade.v1 import admin_pb2 as pb
from accolade.v1 import admin_pb2_grpc
from accolade_server.auth.guard import Guard
from accolade_server.rpc import convert
from accolade_server.rpc.backfills import caller, job_to_proto
from accolade_server.service.achievements import AchievementService, ApplyItem, ApplyOptions
from accolade_server.service.awards import AwardService
from accolade_server.service.backfills import StartOptions
from accolade_server.service.catalogue import Catalogue
from accolade_server.service.shapes import EventTypeService

Context = Any  # grpc.aio.ServicerContext


class AchievementAdminServicer(admin_pb2_grpc.AchievementAdminServicer):
    def __init__(
        self,
        achievements: AchievementService,
        awards: AwardService,
        catalogue: Catalogue,
        event_types: EventTypeService,
        *,
        guard: Guard | None = None,
    ) -> None:
        #: Names the admin (API key) recorded as the actor of backfills a change starts.
        self.guard = guard
        self.achievements = achievements
        self.awards = awards
        self.catalogue = catalogue
        self.event_types = event_types

    async def CreateAchievement(
        self, request: pb.CreateAchievementRequest, context: Context
    ) -> pb.CreateAchievementResponse:
        backfill = None
        if request.backfill:
            backfill = StartOptions(notify=request.notify, actor=caller(self.guard, context))
        created = await self.achievements.create(
            convert.achievement_from_proto(request.achievement), backfill=backfill
        )
        out = pb.CreateAchievementResponse(
            achievement=convert.achievement_to_proto(created.achievement),
            warnings=created.warnings,
        )
        if created.backfill is not None:
            out.backfill.CopyFrom(job_to_proto(created.backfill))
        return out

    async def GetAchievement(
        self, request: pb.GetAchievementRequest, context: Context
    ) -> pb.GetAchievementResponse:
        found = await self.achievements.get(request.id)
        status = await self.achievements.status(found)
        return pb.GetAchievementResponse(achievement=convert.achievement_to_proto(found, status))

    async def ListAchievements(
        self, request: pb.ListAchievementsRequest, context: Context
    ) -> pb.ListAchievementsResponse:
        page = await self.achievements.list(
            category=request.category,
            enabled=request.enabled if request.HasField("enabled") else None,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        statuses = await self.achievements.statuses(page.items)
        return pb.ListAchievementsResponse(
            achievements=[convert.achievement_to_proto(a, statuses[a.id]) for a in page.items],
            next_page_token=page.next_page_token,
        )

    async def UpdateAchievement(
        self, request: pb.UpdateAchievementRequest, context: Context
    ) -> pb.UpdateAchievementResponse:
        patch = convert.patch_from_mask(request.achievement, list(request.update_mask.paths))
        policy = convert.progress_policy_from_proto(request.progress_policy)
        backfill = None
        if request.backfill or policy.recomputes:
            backfill = StartOptions(notify=request.notify, actor=caller(self.guard, context))
        updated = await self.achievements.update(
            request.achievement.id,
            patch,
            etag=request.achievement.etag,
            progress_policy=policy,
            backfill=backfill,
        )
        out = pb.UpdateAchievementResponse(
            achievement=convert.achievement_to_proto(updated.achievement),
            warnings=updated.warnings,
        )
        if updated.backfill is not None:
            out.backfill.CopyFrom(job_to_proto(updated.backfill))
        return out

    async def DeleteAchievement(
        self, request: pb.DeleteAchievementRequest, context: Context
    ) -> pb.DeleteAchievementResponse:
        await self.achievements.delete(request.id, etag=request.etag, force=request.force)
        return pb.DeleteAchievementResponse()

    async def ApplyAchievements(
        self, request: pb.ApplyAchievementsRequest, context: Context
    ) -> pb.ApplyAchievementsResponse:
        items = [
            ApplyItem(
                convert.achievement_from_proto(a, f"achievements[{i}]"), a.HasField("enabled")
            )
            for i, a in enumerate(request.achievements)
        ]
        options = ApplyOptions(
            validate_only=request.validate_only,
            source=convert.source_name(request.source),
            allow_replace=request.allow_replace,
            allow_field_removal=request.allow_field_removal,
            progress_policy=convert.progress_policy_from_proto(request.progress_policy),
            event_types=[convert.event_type_from_proto(t) for t in request.event_types],
            backfill=request.backfill,
            notify=request.notify,
            actor=caller(self.guard, context),
        )
        result = await self.achievements.apply(items, options)
        out = convert.apply_result_to_proto(result)
        out.backfills.extend(job_to_proto(j) for j in result.backfills)
        return out

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
        definition = (await self.catalogue.current()).get(award.achievement_id)
        return pb.GrantAwardResponse(
            award=convert.award_to_proto(award, definition), already_held=already_held
        )

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
        definitions = await self.catalogue.current()
        return pb.RevokeAwardResponse(
            revocations=convert.awards_to_proto(revocations, definitions.get)
        )

    async def DeclareEventType(
        self, request: pb.DeclareEventTypeRequest, context: Context
    ) -> pb.DeclareEventTypeResponse:
        shape = await self.event_types.declare(convert.event_type_from_proto(request.event_type))
        return pb.DeclareEventTypeResponse(event_type=convert.event_type_to_proto(shape))

    async def GetEventType(
        self, request: pb.GetEventTypeRequest, context: Context
    ) -> pb.GetEventTypeResponse:
        shape = await self.event_types.get(request.name)
        return pb.GetEventTypeResponse(event_type=convert.event_type_to_proto(shape))

    async def ListEventTypes(
        self, request: pb.ListEventTypesRequest, context: Context
    ) -> pb.ListEventTypesResponse:
        page = await self.event_types.list(
            page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListEventTypesResponse(
            event_types=[convert.event_type_to_proto(t) for t in page.items],
            next_page_token=page.next_page_token,
        )

    async def DeleteUserData(
        self, request: pb.DeleteUserDataRequest, context: Context
    ) -> pb.DeleteUserDataResponse:
        erasure = await self.awards.erase_user(request.user_id)
        if erasure is None:
            return pb.DeleteUserDataResponse()
        return pb.DeleteUserDataResponse(erasure=convert.award_to_proto(erasure, None))
