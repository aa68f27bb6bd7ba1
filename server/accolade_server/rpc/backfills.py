"""The Backfills service: proto in, BackfillService, proto out."""

from __future__ import annotations

import time
from typing import Any

from accolade.v1 import backfills_pb2 as pb
from accolade.v1 import backfills_pb2_grpc
from accolade_server.auth.guard import Guard
from accolade_server.domain.errors import InvalidArgument
from accolade_server.rpc import convert
from accolade_server.service.backfills import BackfillService, StartOptions, job_name
from accolade_server.service.recompute import Mode
from accolade_server.store.backfills import Job

Context = Any  # grpc.aio.ServicerContext

_STATE = {
    "queued": pb.Backfill.STATE_QUEUED,
    "running": pb.Backfill.STATE_RUNNING,
    "succeeded": pb.Backfill.STATE_SUCCEEDED,
    "failed": pb.Backfill.STATE_FAILED,
    "cancelled": pb.Backfill.STATE_CANCELLED,
}
_MODE_TO_PROTO = {
    Mode.REEVALUATE: pb.BACKFILL_MODE_REEVALUATE,
    Mode.REVOKE_NON_QUALIFYING: pb.BACKFILL_MODE_REVOKE_NON_QUALIFYING,
}


def mode_from_proto(value: int) -> Mode:
    """UNSPECIFIED is REEVALUATE (never revokes unless asked)."""
    if value == pb.BACKFILL_MODE_UNSPECIFIED:
        return Mode.REEVALUATE
    for mode, proto in _MODE_TO_PROTO.items():
        if proto == value:
            return mode
    raise InvalidArgument(
        f"unknown value {value}; one of REEVALUATE, REVOKE_NON_QUALIFYING", field="mode"
    )


def job_to_proto(job: Job) -> pb.Backfill:
    out = pb.Backfill(
        name=job_name(job.id),
        achievement_id=job.achievement_id,
        state=_STATE.get(job.state, pb.Backfill.STATE_UNSPECIFIED),
        mode=_MODE_TO_PROTO[Mode(job.mode)],
        notify=job.notify,
        reason=job.reason,
        actor=job.actor,
        events_total=job.events_total,
        events_scanned=job.events_scanned,
        users_done=job.users_done,
        awards_made=job.awards_made,
        revocations_made=job.revocations_made,
        create_time=convert.datetime_to_timestamp(job.create_time),
        error=job.error,
        history_truncated=job.history_truncated,
    )
    if job.start_time is not None:
        out.start_time.CopyFrom(convert.datetime_to_timestamp(job.start_time))
    if job.finish_time is not None:
        out.finish_time.CopyFrom(convert.datetime_to_timestamp(job.finish_time))
    return out


def caller(guard: Guard | None, context: Context) -> str:
    if guard is None:
        return ""
    return guard.caller(context.invocation_metadata() or ())


def _deadline_seconds(context: Context) -> float | None:
    remaining = getattr(context, "time_remaining", None)
    left = remaining() if callable(remaining) else None
    return max(left - 0.5, 0.1) if isinstance(left, int | float) else None


class BackfillsServicer(backfills_pb2_grpc.BackfillsServicer):
    def __init__(self, backfills: BackfillService, guard: Guard | None = None) -> None:
        self.backfills = backfills
        self.guard = guard

    async def PreviewAchievement(
        self, request: pb.PreviewAchievementRequest, context: Context
    ) -> pb.PreviewAchievementResponse:
        a = convert.achievement_from_proto(request.achievement)
        start = (
            convert.timestamp_to_datetime(request.start_time, "start_time")
            if request.HasField("start_time")
            else None
        )
        end = (
            convert.timestamp_to_datetime(request.end_time, "end_time")
            if request.HasField("end_time")
            else None
        )
        began = time.monotonic()
        p = await self.backfills.preview(
            a,
            start=start,
            end=end,
            sample_size=request.sample_size,
            max_seconds=_deadline_seconds(context),
        )
        out = pb.PreviewAchievementResponse(
            levels=[
                pb.LevelReach(tier=x.tier, threshold=x.threshold, users=x.users) for x in p.levels
            ],
            users_scanned=p.users_scanned,
            awards=p.awards,
            notifications=p.notifications,
            holders_losing=p.holders_losing,
            revocations=p.revocations,
            sample=[
                pb.PreviewUser(
                    user_id=r.user_id,
                    value=r.state.value,
                    levels_reached=r.reached,
                    levels_held=r.held,
                )
                for r in p.sample
            ],
            events_scanned=p.events_scanned,
            elapsed_seconds=max(p.elapsed_seconds, time.monotonic() - began),
            incomplete=p.incomplete,
            scanned_through_user=p.scanned_through_user,
            history_truncated=p.history_truncated,
        )
        if p.oldest_event_time is not None:
            out.oldest_event_time.CopyFrom(convert.datetime_to_timestamp(p.oldest_event_time))
        if p.retention_cutoff is not None:
            out.retention_cutoff.CopyFrom(convert.datetime_to_timestamp(p.retention_cutoff))
        return out

    async def StartBackfill(
        self, request: pb.StartBackfillRequest, context: Context
    ) -> pb.StartBackfillResponse:
        job = await self.backfills.start(
            request.achievement_id,
            StartOptions(
                mode=mode_from_proto(request.mode),
                notify=request.notify,
                reason=request.reason or f"StartBackfill {request.achievement_id}",
                actor=caller(self.guard, context),
            ),
        )
        return pb.StartBackfillResponse(backfill=job_to_proto(job))

    async def GetBackfill(
        self, request: pb.GetBackfillRequest, context: Context
    ) -> pb.GetBackfillResponse:
        return pb.GetBackfillResponse(backfill=job_to_proto(await self.backfills.get(request.name)))

    async def ListBackfills(
        self, request: pb.ListBackfillsRequest, context: Context
    ) -> pb.ListBackfillsResponse:
        jobs, token = await self.backfills.list(
            achievement_id=request.achievement_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListBackfillsResponse(
            backfills=[job_to_proto(j) for j in jobs], next_page_token=token
        )

    async def CancelBackfill(
        self, request: pb.CancelBackfillRequest, context: Context
    ) -> pb.CancelBackfillResponse:
        job = await self.backfills.cancel(request.name)
        return pb.CancelBackfillResponse(backfill=job_to_proto(job))
