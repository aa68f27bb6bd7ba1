"""The Leaderboards service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from accolade.v1 import leaderboards_pb2 as pb
from accolade.v1 import leaderboards_pb2_grpc
from accolade_server.domain.errors import InvalidArgument
from accolade_server.domain.leaderboards import Leaderboard, Metric, Period
from accolade_server.rpc import convert
from accolade_server.service.leaderboards import BoardView, Entry, LeaderboardService

Context = Any  # grpc.aio.ServicerContext

METRICS = {
    pb.LEADERBOARD_METRIC_LIFETIME_POINTS: Metric.LIFETIME_POINTS,
    pb.LEADERBOARD_METRIC_PERIOD_POINTS: Metric.PERIOD_POINTS,
    pb.LEADERBOARD_METRIC_ACHIEVEMENT_VALUE: Metric.ACHIEVEMENT_VALUE,
}
PERIODS = {
    pb.LEADERBOARD_PERIOD_UNSPECIFIED: Period.ALL_TIME,
    pb.LEADERBOARD_PERIOD_ALL_TIME: Period.ALL_TIME,
    pb.LEADERBOARD_PERIOD_DAILY: Period.DAILY,
    pb.LEADERBOARD_PERIOD_WEEKLY: Period.WEEKLY,
    pb.LEADERBOARD_PERIOD_MONTHLY: Period.MONTHLY,
}
CHANGE_KINDS = {
    "create": pb.LeaderboardChange.KIND_CREATE,
    "update": pb.LeaderboardChange.KIND_UPDATE,
    "unchanged": pb.LeaderboardChange.KIND_UNCHANGED,
}
METRIC_OF = {v: k for k, v in METRICS.items()}
PERIOD_OF = {v: k for k, v in PERIODS.items() if k != pb.LEADERBOARD_PERIOD_UNSPECIFIED}


def board_from_proto(
    b: pb.Leaderboard, *, metric_required: bool = True, prefix: str = "leaderboard"
) -> Leaderboard:
    metric = METRICS.get(b.metric)
    if metric is None and metric_required:
        raise InvalidArgument(
            "is required: LIFETIME_POINTS, PERIOD_POINTS or ACHIEVEMENT_VALUE",
            field=f"{prefix}.metric",
        )
    period = PERIODS.get(b.period)
    if period is None:
        raise InvalidArgument("is not a known period", field=f"{prefix}.period")
    if not 0 <= b.week_start <= 7:
        raise InvalidArgument("is not a day of the week", field=f"{prefix}.week_start")
    return Leaderboard(
        id=b.id,
        metric=metric or Metric.LIFETIME_POINTS,
        period=period,
        title=b.title,
        description=b.description,
        achievement_id=b.achievement_id,
        week_start=b.week_start or 1,
        time_zone=b.time_zone,
        filter_attribute=b.filter_attribute,
        filter_value=b.filter_value,
    )


def board_to_proto(b: Leaderboard) -> pb.Leaderboard:
    message = pb.Leaderboard(
        id=b.id,
        title=b.title,
        description=b.description,
        metric=METRIC_OF[b.metric],
        achievement_id=b.achievement_id,
        period=PERIOD_OF[b.period],
        week_start=b.week_start if b.period is Period.WEEKLY else 0,  # type: ignore[arg-type]
        time_zone=b.time_zone,
        filter_attribute=b.filter_attribute,
        filter_value=b.filter_value,
        built_in=b.built_in,
    )
    if b.create_time is not None:
        message.create_time.CopyFrom(convert.datetime_to_timestamp(b.create_time))
    return message


def entry_to_proto(e: Entry) -> pb.LeaderboardEntry:
    return pb.LeaderboardEntry(
        rank=e.rank,
        user_id=e.user_id,
        display_name=e.display_name,
        score=e.score,
        reached_time=convert.datetime_to_timestamp(e.reached_time),
    )


def _period_start(request: Any) -> datetime | None:
    if not request.HasField("period_start"):
        return None
    return convert.timestamp_to_datetime(request.period_start, "period_start")


def _span(message: Any, view: BoardView) -> None:
    if view.period is not None:
        message.period_start.CopyFrom(convert.datetime_to_timestamp(view.period[0]))
        message.period_end.CopyFrom(convert.datetime_to_timestamp(view.period[1]))


class LeaderboardsServicer(leaderboards_pb2_grpc.LeaderboardsServicer):
    def __init__(self, boards: LeaderboardService) -> None:
        self.boards = boards

    async def CreateLeaderboard(
        self, request: pb.CreateLeaderboardRequest, context: Context
    ) -> pb.CreateLeaderboardResponse:
        board = await self.boards.create(board_from_proto(request.leaderboard))
        return pb.CreateLeaderboardResponse(leaderboard=board_to_proto(board))

    async def GetLeaderboardDefinition(
        self, request: pb.GetLeaderboardDefinitionRequest, context: Context
    ) -> pb.GetLeaderboardDefinitionResponse:
        board = await self.boards.get(request.leaderboard_id)
        return pb.GetLeaderboardDefinitionResponse(leaderboard=board_to_proto(board))

    async def ListLeaderboards(
        self, request: pb.ListLeaderboardsRequest, context: Context
    ) -> pb.ListLeaderboardsResponse:
        found = await self.boards.list(page_size=request.page_size, page_token=request.page_token)
        return pb.ListLeaderboardsResponse(
            leaderboards=[board_to_proto(b) for b in found.boards],
            next_page_token=found.next_page_token,
        )

    async def UpdateLeaderboard(
        self, request: pb.UpdateLeaderboardRequest, context: Context
    ) -> pb.UpdateLeaderboardResponse:
        board = await self.boards.update(
            board_from_proto(request.leaderboard, metric_required=False),
            list(request.update_mask.paths),
        )
        return pb.UpdateLeaderboardResponse(leaderboard=board_to_proto(board))

    async def DeleteLeaderboard(
        self, request: pb.DeleteLeaderboardRequest, context: Context
    ) -> pb.DeleteLeaderboardResponse:
        await self.boards.delete(request.leaderboard_id)
        return pb.DeleteLeaderboardResponse()

    async def ApplyLeaderboards(
        self, request: pb.ApplyLeaderboardsRequest, context: Context
    ) -> pb.ApplyLeaderboardsResponse:
        boards = [
            board_from_proto(b, prefix=f"leaderboards[{i}]")
            for i, b in enumerate(request.leaderboards)
        ]
        changes = await self.boards.apply(boards, validate_only=request.validate_only)
        return pb.ApplyLeaderboardsResponse(
            changes=[
                pb.LeaderboardChange(id=board_id, kind=CHANGE_KINDS[kind], fields=fields)
                for board_id, kind, fields in changes
            ]
        )

    async def GetLeaderboard(
        self, request: pb.GetLeaderboardRequest, context: Context
    ) -> pb.GetLeaderboardResponse:
        view = await self.boards.board(
            request.leaderboard_id,
            period_start=_period_start(request),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        response = pb.GetLeaderboardResponse(
            entries=[entry_to_proto(e) for e in view.entries],
            next_page_token=view.next_page_token,
        )
        _span(response, view)
        return response

    async def GetLeaderboardRank(
        self, request: pb.GetLeaderboardRankRequest, context: Context
    ) -> pb.GetLeaderboardRankResponse:
        view = await self.boards.rank(
            request.leaderboard_id,
            user_id=request.user_id,
            around=request.around,
            user_ids=list(request.user_ids),
            period_start=_period_start(request),
        )
        response = pb.GetLeaderboardRankResponse(entries=[entry_to_proto(e) for e in view.entries])
        if view.entry is not None:
            response.entry.CopyFrom(entry_to_proto(view.entry))
        _span(response, view)
        return response
