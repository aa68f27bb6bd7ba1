"""The BadgeTracker service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from accolade.v1 import tracker_pb2 as pb
from accolade.v1 import tracker_pb2_grpc
from accolade_server.domain.errors import AccoladeError
from accolade_server.domain.model import Achievement
from accolade_server.domain.validation import PropertyStats
from accolade_server.rpc import convert
from accolade_server.rpc.errors import status_and_message
from accolade_server.service.awards import AwardService
from accolade_server.service.batch import TrackResult
from accolade_server.service.catalogue import Catalogue
from accolade_server.service.tracking import EventInput, TrackingService
from accolade_server.service.watch import Subscribed, WatchService, make_filter

# Initial metadata of WatchAwards for clients older than `WatchAwardsResponse.subscribed`:
# the cursor the stream starts after, as in that first message.
START_CURSOR_HEADER = "accolade-start-cursor"

Context = Any  # grpc.aio.ServicerContext


def event_input(request: pb.TrackEventRequest, prefix: str = "") -> EventInput:
    stats = PropertyStats()  # checked against the limits by TrackingService.validate
    return EventInput(
        event_id=request.event_id,
        user_id=request.user_id,
        type=request.type,
        properties=convert.struct_to_dict(request.properties, f"{prefix}properties", stats),
        occurred_at=convert.timestamp_to_datetime(request.occurred_at, f"{prefix}occurred_at")
        if request.HasField("occurred_at")
        else None,
        time_zone=request.time_zone,
        property_stats=stats,
    )


def result_to_proto(
    result: TrackResult, definition: Callable[[str], Achievement | None]
) -> pb.TrackEventResponse:
    out = pb.TrackEventResponse()
    fill_response(out, result, definition)
    return out


def fill_response(
    out: pb.TrackEventResponse,
    result: TrackResult,
    definition: Callable[[str], Achievement | None],
) -> None:
    """`result` into `out`, which may be part of a larger response being built.

    Filled in place because a message passed to a constructor is copied, and so is a message
    holding it passed to the next one: TrackEvents used to copy each event's progress
    messages three times on their way into the response.
    """
    out.SetInParent()  # an outcome with every field at its default is still an outcome
    out.duplicate = result.duplicate
    out.tracked = result.tracked
    out.awards.extend(convert.awards_to_proto(result.awards, definition))
    out.progress.extend(result.progress)
    out.untracked_reason = result.untracked_reason
    for aid, reason in result.not_counted:
        out.not_counted.add(achievement_id=aid, reason=reason)


def _error(exc: Exception) -> pb.EventError:
    code, message = status_and_message(exc, "/accolade.v1.BadgeTracker/TrackEvents")
    return pb.EventError(code=code.value[0], status=code.name, message=message)


class BadgeTrackerServicer(tracker_pb2_grpc.BadgeTrackerServicer):
    def __init__(
        self,
        tracking: TrackingService,
        awards: AwardService,
        watch: WatchService,
        catalogue: Catalogue,
    ) -> None:
        self.tracking = tracking
        self.awards = awards
        self.watch = watch
        self.catalogue = catalogue

    async def TrackEvent(
        self, request: pb.TrackEventRequest, context: Context
    ) -> pb.TrackEventResponse:
        result = await self.tracking.track(event_input(request))
        return result_to_proto(result, self.catalogue.get)

    async def TrackEvents(
        self, request: pb.TrackEventsRequest, context: Context
    ) -> pb.TrackEventsResponse:
        inputs: list[EventInput | AccoladeError] = []
        for i, event in enumerate(request.events):
            try:
                inputs.append(event_input(event, f"events[{i}]."))
            except AccoladeError as exc:
                inputs.append(exc)
        outcomes = await self.tracking.track_many(inputs)
        response = pb.TrackEventsResponse()
        for event, outcome in zip(request.events, outcomes, strict=True):
            result = response.results.add(event_id=event.event_id)
            if isinstance(outcome, Exception):
                result.error.CopyFrom(_error(outcome))
            else:
                fill_response(result.outcome, outcome, self.catalogue.get)
        return response

    async def GetProgress(
        self, request: pb.GetProgressRequest, context: Context
    ) -> pb.GetProgressResponse:
        views, points = await self.tracking.progress(
            request.user_id, list(request.achievement_ids), request.category
        )
        return pb.GetProgressResponse(
            progress=[convert.progress_to_proto(v) for v in views],
            total_points=points.lifetime,
            balance=convert.balance_to_proto(points),
        )

    async def ListAwards(
        self, request: pb.ListAwardsRequest, context: Context
    ) -> pb.ListAwardsResponse:
        page = await self.awards.list(
            request.user_id, page_size=request.page_size, page_token=request.page_token
        )
        return pb.ListAwardsResponse(
            awards=convert.awards_to_proto(page.awards, (await self.catalogue.current()).get),
            next_page_token=page.next_page_token,
            total_points=page.total_points,
            balance=convert.balance_to_proto(page.balance),
        )

    async def WatchAwards(
        self, request: pb.WatchAwardsRequest, context: Context
    ) -> AsyncIterator[pb.WatchAwardsResponse]:
        source = convert.source_from_proto(request.source)
        flt = make_filter(list(request.user_ids), list(request.achievement_ids), source)
        after = request.after_cursor if request.HasField("after_cursor") else None

        async for item in self.watch.stream(flt, after):
            if isinstance(item, Subscribed):
                await context.send_initial_metadata(((START_CURSOR_HEADER, str(item.cursor)),))
                yield pb.WatchAwardsResponse(cursor=item.cursor, subscribed=True)
            else:
                # As loaded now: every read of the log (replay, catch-up, tail) refreshes it.
                award = convert.award_to_proto(item, self.catalogue.get(item.achievement_id))
                yield pb.WatchAwardsResponse(cursor=item.cursor, award=award)
