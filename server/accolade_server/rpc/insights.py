"""The Insights service: analytics and explanations (see protos/accolade/v1/insights.proto)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from accolade.v1 import insights_pb2 as pb
from accolade.v1 import insights_pb2_grpc
from accolade_server import wire
from accolade_server.domain.errors import InvalidArgument
from accolade_server.rpc import convert
from accolade_server.service.explain import ExplainService, Explanation, LevelState
from accolade_server.service.insights import (
    AchievementStats,
    InsightsService,
    Interval,
    Metric,
    Order,
    Series,
)

Context = Any  # grpc.aio.ServicerContext
#: Whether the caller (of `context`) also holds the admin scope: hidden achievements.
AdminCheck = Callable[[Context], bool]

_METRIC = {
    pb.GetTrendsRequest.METRIC_AWARDS: Metric.AWARDS,
    pb.GetTrendsRequest.METRIC_EVENTS: Metric.EVENTS,
    pb.GetTrendsRequest.METRIC_ACTIVE_USERS: Metric.ACTIVE_USERS,
    pb.GetTrendsRequest.METRIC_POINTS: Metric.POINTS,
    pb.GetTrendsRequest.METRIC_REDEMPTIONS: Metric.REDEMPTIONS,
}
_INTERVAL = {
    pb.GetTrendsRequest.INTERVAL_UNSPECIFIED: Interval.DAY,
    pb.GetTrendsRequest.INTERVAL_HOUR: Interval.HOUR,
    pb.GetTrendsRequest.INTERVAL_DAY: Interval.DAY,
    pb.GetTrendsRequest.INTERVAL_WEEK: Interval.WEEK,
}
_ORDER = {
    pb.ListAchievementStatsRequest.ORDER_UNSPECIFIED: Order.RARITY,
    pb.ListAchievementStatsRequest.ORDER_RARITY: Order.RARITY,
    pb.ListAchievementStatsRequest.ORDER_COMPLETION: Order.COMPLETION,
}
_STATE = {
    LevelState.HELD: pb.LevelExplanation.STATE_HELD,
    LevelState.OPEN: pb.LevelExplanation.STATE_OPEN,
    LevelState.CLOSED: pb.LevelExplanation.STATE_CLOSED,
}


def _enum(table: dict[Any, Any], value: int, field: str, names: Any) -> Any:
    if value not in table:
        valid = ", ".join(
            v.name for v in names.DESCRIPTOR.values if not v.name.endswith("UNSPECIFIED")
        )
        raise InvalidArgument(f"must be one of {valid}", field=field)
    return table[value]


def stats_to_proto(s: AchievementStats) -> pb.AchievementStats:
    return pb.AchievementStats(
        achievement_id=s.achievement_id,
        title=s.title,
        hidden=s.hidden,
        active_users=s.active_users,
        started=s.started,
        holders=s.holders,
        completed=s.completed,
        rarity_percent=s.rarity_percent,
        completion_percent=s.completion_percent,
        levels=[
            pb.LevelStats(
                tier=lv.tier,
                threshold=lv.threshold,
                holders=lv.holders,
                rarity_percent=lv.rarity_percent,
                conversion_percent=lv.conversion_percent,
                rule_awards=lv.rule_awards,
                manual_awards=lv.manual_awards,
                backfill_awards=lv.backfill_awards,
                revocations=lv.revocations,
                median_seconds_to_earn=lv.median_seconds,
                p90_seconds_to_earn=lv.p90_seconds,
            )
            for lv in s.levels
        ],
        rule_awards=s.rule_awards,
        manual_awards=s.manual_awards,
        backfill_awards=s.backfill_awards,
        revocations=s.revocations,
        condition_errors=s.condition_errors,
        last_condition_error=s.last_condition_error,
        last_condition_error_time=convert.datetime_to_timestamp(s.last_condition_error_time)
        if s.last_condition_error_time
        else None,
        stuck_tier=s.stuck_tier,
        stuck_percent=s.stuck_percent,
    )


def series_to_proto(s: Series) -> pb.TrendSeries:
    return pb.TrendSeries(
        label=s.label,
        points=[
            pb.TrendPoint(start_time=convert.datetime_to_timestamp(p.start_time), value=p.value)
            for p in s.points
        ],
    )


def explanation_to_proto(e: Explanation) -> pb.ExplainProgressResponse:
    out = pb.ExplainProgressResponse(
        achievement_id=e.achievement_id,
        title=e.title,
        status=wire.STATUS_TO_PROTO[e.status],
        aggregate=wire.AGGREGATE_TO_PROTO[e.aggregate],
        field=e.field,
        condition=e.condition,
        value=e.value,
        enabled=e.enabled,
        awards_enabled=e.awards_enabled,
        in_window=e.in_window,
        prerequisites=[
            pb.ExplainProgressResponse.Prerequisite(achievement_id=p.achievement_id, held=p.held)
            for p in e.prerequisites
        ],
        condition_errors=e.condition_errors,
        last_condition_error=e.last_condition_error,
        achievement_condition_errors=e.achievement_condition_errors,
        broken_reason=e.broken_reason,
        summary=e.summary,
    )
    if e.last_condition_error_time is not None:
        out.last_condition_error_time.CopyFrom(
            convert.datetime_to_timestamp(e.last_condition_error_time)
        )
    if e.start_time is not None:
        out.start_time.CopyFrom(convert.datetime_to_timestamp(e.start_time))
    if e.end_time is not None:
        out.end_time.CopyFrom(convert.datetime_to_timestamp(e.end_time))
    for f in e.feeds:
        feed = out.feeds.add(event_type=f.event_type, tracked=f.tracked)
        if f.last_sent is not None:
            feed.last_sent_time.CopyFrom(convert.datetime_to_timestamp(f.last_sent))
    for lv in e.levels:
        level = out.levels.add(
            tier=lv.tier,
            threshold=lv.threshold,
            state=_STATE[lv.state],
            remaining=lv.remaining,
            summary=lv.summary,
        )
        if lv.earned_time is not None:
            level.earned_time.CopyFrom(convert.datetime_to_timestamp(lv.earned_time))
    return out


class InsightsServicer(insights_pb2_grpc.InsightsServicer):
    def __init__(
        self, insights: InsightsService, explain: ExplainService, is_admin: AdminCheck
    ) -> None:
        self.insights = insights
        self.explainer = explain
        self.is_admin = is_admin

    async def GetAchievementStats(
        self, request: pb.GetAchievementStatsRequest, context: Context
    ) -> pb.GetAchievementStatsResponse:
        stats = await self.insights.stats(
            request.achievement_id,
            convert.optional_time(request, "start_time", "start_time"),
            convert.optional_time(request, "end_time", "end_time"),
            include_hidden=self.is_admin(context),
        )
        return pb.GetAchievementStatsResponse(stats=stats_to_proto(stats))

    async def ListAchievementStats(
        self, request: pb.ListAchievementStatsRequest, context: Context
    ) -> pb.ListAchievementStatsResponse:
        order = _enum(_ORDER, request.order_by, "order_by", pb.ListAchievementStatsRequest.Order)
        page, token = await self.insights.list_stats(
            order,
            request.page_size,
            request.page_token,
            include_hidden=self.is_admin(context),
        )
        return pb.ListAchievementStatsResponse(
            stats=[stats_to_proto(s) for s in page], next_page_token=token
        )

    async def GetTrends(
        self, request: pb.GetTrendsRequest, context: Context
    ) -> pb.GetTrendsResponse:
        if request.metric == pb.GetTrendsRequest.METRIC_UNSPECIFIED:
            raise InvalidArgument(
                "is required: METRIC_AWARDS, METRIC_EVENTS, METRIC_ACTIVE_USERS, "
                "METRIC_POINTS or METRIC_REDEMPTIONS",
                field="metric",
            )
        metric = _enum(_METRIC, request.metric, "metric", pb.GetTrendsRequest.Metric)
        interval = _enum(_INTERVAL, request.interval, "interval", pb.GetTrendsRequest.Interval)
        series = await self.insights.trends(
            metric,
            interval,
            convert.optional_time(request, "start_time", "start_time"),
            convert.optional_time(request, "end_time", "end_time"),
            list(request.achievement_ids),
            list(request.event_types),
        )
        return pb.GetTrendsResponse(series=[series_to_proto(s) for s in series])

    async def ExplainProgress(
        self, request: pb.ExplainProgressRequest, context: Context
    ) -> pb.ExplainProgressResponse:
        found = await self.explainer.explain(
            request.user_id, request.achievement_id, include_hidden=self.is_admin(context)
        )
        return explanation_to_proto(found)
