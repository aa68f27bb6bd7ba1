"""The asyncio client. `_client.py` (the blocking one) is generated from this file by
`tools/unasync.py` (`make proto`); edit this one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import grpc
from google.protobuf import field_mask_pb2

from accolade import _common
from accolade._common import DEFAULT_TIMEOUT, TLS, AchievementLike, AchievementSource
from accolade._enums import parse_enum
from accolade._errors import code_of, from_grpc, is_retryable
from accolade._retry import NO_RETRY, RetryPolicy
from accolade._state import Batch, Watch
from accolade._streams import AsyncAwardStream
from accolade.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    backfills_pb2,
    backfills_pb2_grpc,
    insights_pb2,
    insights_pb2_grpc,
    leaderboards_pb2,
    leaderboards_pb2_grpc,
    points_pb2,
    points_pb2_grpc,
    tracker_pb2,
    tracker_pb2_grpc,
    types_pb2,
    users_pb2,
    users_pb2_grpc,
)

log = logging.getLogger("accolade")
R = TypeVar("R")


class AsyncClient:
    """A connection to an Accolade server (asyncio: await each call).

    ``AsyncClient()`` talks to ``127.0.0.1:50051`` (or ``$ACCOLADE_TARGET``) with the API key in
    ``$ACCOLADE_API_KEY``, if any. `timeout` is the deadline of each unary call in seconds.
    Idempotent calls (tracking, reads, `apply_achievements`) are retried on transient
    failures according to `retry`; tracking retries keep the event's `event_id`, so a retry
    is never counted twice. Every failure raises an `accolade.AccoladeError`.

    Use it as a context manager, or call `close()`. One client serves any number of
    concurrent calls over one connection: share it rather than making one per call.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        api_key: str | None = None,
        tls: bool | TLS | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        conn = _common.connection(target, api_key, tls)
        self.target = conn.target
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._metadata = conn.metadata
        channel_options = [*conn.options, *options]
        if conn.credentials is None:
            self.channel = grpc.aio.insecure_channel(conn.target, options=channel_options)
        else:
            self.channel = grpc.aio.secure_channel(conn.target, conn.credentials, channel_options)
        #: The generated stubs, for anything the client does not wrap.
        self.tracker = tracker_pb2_grpc.BadgeTrackerStub(self.channel)
        self.admin = admin_pb2_grpc.AchievementAdminStub(self.channel)
        self.users = users_pb2_grpc.UserDirectoryStub(self.channel)
        self.points = points_pb2_grpc.PointsLedgerStub(self.channel)
        self.leaderboards = leaderboards_pb2_grpc.LeaderboardsStub(self.channel)
        self.insights = insights_pb2_grpc.InsightsStub(self.channel)
        self.backfills = backfills_pb2_grpc.BackfillsStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _call(
        self,
        method: Callable[..., Awaitable[R]],
        request: Any,
        *,
        idempotent: bool,
        timeout: float | None,
    ) -> R:
        policy = self.retry if idempotent else NO_RETRY
        attempt = 1
        while True:
            try:
                return await method(
                    request, timeout=timeout or self.timeout, metadata=self._metadata
                )
            except grpc.RpcError as exc:
                code = code_of(exc)
                if attempt >= policy.max_attempts or not is_retryable(exc):
                    raise from_grpc(exc) from exc
                delay = policy.backoff(attempt)
                log.info("retrying %s after %s in %.2fs", type(request).__name__, code, delay)
                await asyncio.sleep(delay)
                attempt += 1

    # Tracking -----------------------------------------------------------------------------

    async def track_event(
        self,
        type: str,
        user_id: str,
        *,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
        properties: Mapping[str, Any] | None = None,
        time_zone: str | None = None,
        timeout: float | None = None,
        **props: Any,
    ) -> tracker_pb2.TrackEventResponse:
        """Record that `user_id` did `type`; keyword arguments become event properties.

        ``client.track_event("purchase_completed", user_id="u1", amount=42)``. Properties
        named like a parameter go in `properties`. `time_zone` (an IANA name) is the zone
        the user was in, which decides the local day of streaks. Returns the awards this
        event earned, the progress it changed and the achievements it did not count for
        (`not_counted`); `duplicate` is true when `event_id` was seen before.
        """
        request = _common.track_request(
            type,
            user_id,
            event_id=event_id,
            occurred_at=occurred_at,
            properties=properties,
            extra=props,
            time_zone=time_zone,
        )
        return await self._call(self.tracker.TrackEvent, request, idempotent=True, timeout=timeout)

    async def track_events(
        self,
        events: Iterable[tracker_pb2.TrackEventRequest | Mapping[str, Any]],
        *,
        timeout: float | None = None,
    ) -> list[tracker_pb2.TrackEventResult]:
        """Record many events: one result per event, in order (see `accolade.event_error`).

        Each event is a `TrackEventRequest` or a mapping with `type`, `user_id` and optional
        `event_id`, `occurred_at`, `time_zone`, `properties` and further properties. Large
        lists are sent in several calls; events that fail transiently are re-sent with their
        `event_id`.
        """
        batch = Batch([_common.event_request(e) for e in events])
        attempt = 1
        while True:
            for chunk in batch.chunks():
                response = await self._call(
                    self.tracker.TrackEvents,
                    batch.request(chunk),
                    idempotent=True,
                    timeout=timeout,
                )
                batch.record(chunk, response)
            if attempt >= self.retry.max_attempts or not batch.retry_transient():
                return batch.final()
            await asyncio.sleep(self.retry.backoff(attempt))
            attempt += 1

    # Reading ------------------------------------------------------------------------------

    async def get_progress(
        self,
        user_id: str,
        *,
        achievement_ids: Sequence[str] = (),
        category: str = "",
        timeout: float | None = None,
    ) -> tracker_pb2.GetProgressResponse:
        """The user's progress on each visible achievement, their total (lifetime) points,
        and `balance`: lifetime and spendable points and their level."""
        request = tracker_pb2.GetProgressRequest(
            user_id=user_id, achievement_ids=list(achievement_ids), category=category
        )
        return await self._call(self.tracker.GetProgress, request, idempotent=True, timeout=timeout)

    async def list_awards(
        self, user_id: str, *, page_size: int = 100, timeout: float | None = None
    ) -> AsyncIterator[types_pb2.Award]:
        """Every award the user holds, newest first, fetched page by page as you iterate."""
        token = ""
        while True:
            page = await self._call(
                self.tracker.ListAwards,
                tracker_pb2.ListAwardsRequest(
                    user_id=user_id, page_size=page_size, page_token=token
                ),
                idempotent=True,
                timeout=timeout,
            )
            for award in page.awards:
                yield award
            token = page.next_page_token
            if not token:
                return

    def watch_awards(
        self,
        *,
        user_ids: Iterable[str] = (),
        achievement_ids: Iterable[str] = (),
        source: types_pb2.AwardSource.ValueType | str = types_pb2.AWARD_SOURCE_UNSPECIFIED,
        after_cursor: int | None = None,
        max_reconnects: int | None = None,
    ) -> AsyncAwardStream:
        """Awards (and revocations) as they are committed, as an iterator that never ends.

        Without `after_cursor` it starts with awards made from now on; with one it first
        replays every entry after it (0: from the beginning). It reconnects by itself after
        a disconnect or server restart, resuming after the last cursor delivered (`.cursor`,
        which you may save and pass back as `after_cursor` later), so each entry is seen
        once. Use ``async with client.watch_awards() as awards:`` to be subscribed before the
        block runs; `close()` ends the iteration.
        """
        return AsyncAwardStream(
            self.tracker,
            self._metadata,
            Watch(
                user_ids=user_ids,
                achievement_ids=achievement_ids,
                source=parse_enum(types_pb2.AwardSource, source),  # type: ignore[arg-type]
                after_cursor=after_cursor,
                retry=self.retry,
                max_reconnects=max_reconnects,
            ),
        )

    # Administration -----------------------------------------------------------------------

    async def create_achievement(
        self, achievement: AchievementLike, *, timeout: float | None = None
    ) -> types_pb2.Achievement:
        """Create a definition (a message, or a mapping as in a definitions file).

        Warnings about its rule (a property path its events have never carried, a comparison
        with another type than they had) are logged at WARNING on the ``accolade`` logger.
        """
        request = admin_pb2.CreateAchievementRequest(achievement=_common.achievement(achievement))
        response = await self._call(
            self.admin.CreateAchievement, request, idempotent=False, timeout=timeout
        )
        _common.log_warnings(response.warnings)
        return response.achievement

    async def get_achievement(
        self, achievement_id: str, *, timeout: float | None = None
    ) -> types_pb2.Achievement:
        request = admin_pb2.GetAchievementRequest(id=achievement_id)
        response = await self._call(
            self.admin.GetAchievement, request, idempotent=True, timeout=timeout
        )
        return response.achievement

    async def list_achievements(
        self,
        *,
        category: str = "",
        enabled: bool | None = None,
        page_size: int = 100,
        timeout: float | None = None,
    ) -> AsyncIterator[types_pb2.Achievement]:
        """Every definition (optionally of one category or enabled state), page by page."""
        token = ""
        while True:
            request = admin_pb2.ListAchievementsRequest(
                page_size=page_size, page_token=token, category=category, enabled=enabled
            )
            page = await self._call(
                self.admin.ListAchievements, request, idempotent=True, timeout=timeout
            )
            for achievement in page.achievements:
                yield achievement
            token = page.next_page_token
            if not token:
                return

    async def update_achievement(
        self,
        achievement: AchievementLike,
        *,
        update_mask: Sequence[str] = (),
        progress_policy: admin_pb2.ProgressPolicy.ValueType | str | None = None,
        timeout: float | None = None,
    ) -> types_pb2.Achievement:
        """Change the fields in `update_mask` (default: those set in `achievement`; "*":
        replace all). A non-empty `etag` must match the stored one (else `AbortedError`).

        Changing what stored progress means (the rule's event types, aggregate, field,
        condition or thresholds) while users have progress needs `progress_policy` ("keep",
        "reset", "reevaluate" or "revoke_non_qualifying"; the last two start a backfill, see
        `list_backfills`), else `FailedPreconditionError`. Warnings about the rule are logged
        (see `create_achievement`).
        """
        request = admin_pb2.UpdateAchievementRequest(
            achievement=_common.achievement(achievement),
            update_mask=field_mask_pb2.FieldMask(paths=list(update_mask)),
            progress_policy=_common.progress_policy(progress_policy),
        )
        response = await self._call(
            self.admin.UpdateAchievement, request, idempotent=False, timeout=timeout
        )
        _common.log_warnings(response.warnings)
        return response.achievement

    async def delete_achievement(
        self,
        achievement_id: str,
        *,
        etag: str = "",
        force: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Delete a definition and every user's progress towards it. While users hold it,
        this fails with `FailedPreconditionError` unless `force`; holders keep what they
        hold and its points, and the award log keeps their awards."""
        request = admin_pb2.DeleteAchievementRequest(id=achievement_id, etag=etag, force=force)
        await self._call(self.admin.DeleteAchievement, request, idempotent=False, timeout=timeout)

    async def apply_achievements(
        self,
        source: AchievementSource,
        *,
        validate_only: bool = False,
        source_name: str | None = None,
        allow_replace: bool = False,
        allow_field_removal: bool = False,
        progress_policy: admin_pb2.ProgressPolicy.ValueType | str | None = None,
        backfill: bool = False,
        notify: bool = False,
        timeout: float | None = None,
    ) -> admin_pb2.ApplyAchievementsResponse:
        """Create or replace every definition in a YAML/JSON file or an iterable, all or
        nothing (a file's `event_types:` are declared too); reports per achievement what
        changes, field by field (`changes`), and `warnings` about conditions.

        `source_name` is recorded with each achievement (default: the file's name when
        `source` is a path). The call fails with `FailedPreconditionError`, changing
        nothing, when it would replace achievements applied from another source (unless
        `allow_replace`), clear fields the definitions leave unset (unless
        `allow_field_removal`), or change what users' stored progress means (unless
        `progress_policy` is "keep", "reset", "reevaluate" or "revoke_non_qualifying"; the
        last two queue a backfill per changed achievement). `validate_only` reports without
        writing. `backfill` queues a backfill of each achievement the apply creates or
        enables; `notify` lets those backfills' awards notify webhook and email sinks. The
        jobs are in the response's `backfills`.
        """
        defs = _common.definitions_of(source)
        request = admin_pb2.ApplyAchievementsRequest(
            achievements=defs.achievements,
            event_types=defs.event_types,
            validate_only=validate_only,
            source=_common.source_name(source) if source_name is None else source_name,
            allow_replace=allow_replace,
            allow_field_removal=allow_field_removal,
            progress_policy=_common.progress_policy(progress_policy),
            backfill=backfill,
            notify=notify,
        )
        return await self._call(
            self.admin.ApplyAchievements, request, idempotent=True, timeout=timeout
        )

    async def grant(
        self,
        user_id: str,
        achievement_id: str,
        *,
        tier: str = "",
        reason: str = "",
        actor: str = "",
        timeout: float | None = None,
    ) -> admin_pb2.GrantAwardResponse:
        """Award an achievement by hand; `already_held` tells whether anything changed."""
        request = admin_pb2.GrantAwardRequest(
            user_id=user_id, achievement_id=achievement_id, tier=tier, reason=reason, actor=actor
        )
        return await self._call(self.admin.GrantAward, request, idempotent=False, timeout=timeout)

    async def revoke(
        self,
        user_id: str,
        achievement_id: str,
        *,
        tier: str = "",
        all_tiers: bool = False,
        reason: str = "",
        actor: str = "",
        timeout: float | None = None,
    ) -> admin_pb2.RevokeAwardResponse:
        """Take an award back: the highest tier held when `tier` is empty, `tier` and every
        higher tier held, or every tier with `all_tiers`."""
        request = admin_pb2.RevokeAwardRequest(
            user_id=user_id,
            achievement_id=achievement_id,
            tier=tier,
            all_tiers=all_tiers,
            reason=reason,
            actor=actor,
        )
        return await self._call(self.admin.RevokeAward, request, idempotent=False, timeout=timeout)

    # Event types -------------------------------------------------------------------------

    async def declare_event_type(
        self,
        name: str,
        properties: Mapping[str, admin_pb2.PropertyType.ValueType | str],
        *,
        timeout: float | None = None,
    ) -> admin_pb2.EventType:
        """Declare what events of a type carry, e.g. ``{"amount": "number", "item.sku":
        "string"}``, so conditions are checked before the first event arrives. Replaces the
        type's earlier declaration; returns its declared and observed shape."""
        request = admin_pb2.DeclareEventTypeRequest(event_type=_common.event_type(name, properties))
        response = await self._call(
            self.admin.DeclareEventType, request, idempotent=True, timeout=timeout
        )
        return response.event_type

    async def get_event_type(
        self, name: str, *, timeout: float | None = None
    ) -> admin_pb2.EventType:
        """The declared and observed properties of an event type (`NotFoundError` if none)."""
        request = admin_pb2.GetEventTypeRequest(name=name)
        response = await self._call(
            self.admin.GetEventType, request, idempotent=True, timeout=timeout
        )
        return response.event_type

    async def list_event_types(
        self, *, page_size: int = 100, timeout: float | None = None
    ) -> AsyncIterator[admin_pb2.EventType]:
        """Every event type seen or declared, in name order, page by page."""
        token = ""
        while True:
            request = admin_pb2.ListEventTypesRequest(page_size=page_size, page_token=token)
            page = await self._call(
                self.admin.ListEventTypes, request, idempotent=True, timeout=timeout
            )
            for event_type in page.event_types:
                yield event_type
            token = page.next_page_token
            if not token:
                return

    async def delete_user_data(
        self, user_id: str, *, timeout: float | None = None
    ) -> types_pb2.Award | None:
        """Erase everything stored of a user; returns the erasure entry appended to the award
        log, or None when nothing of the user was stored. Safe to retry."""
        request = admin_pb2.DeleteUserDataRequest(user_id=user_id)
        response = await self._call(
            self.admin.DeleteUserData, request, idempotent=True, timeout=timeout
        )
        return response.erasure if response.HasField("erasure") else None

    # Users -------------------------------------------------------------------------------

    async def upsert_user(
        self,
        user_id: str,
        *,
        display_name: str | None = None,
        avatar_url: str | None = None,
        time_zone: str | None = None,
        locale: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> users_pb2.User:
        """Create the user, or change the fields given (others keep their values; pass ""
        or ``{}`` to clear one). `time_zone` is an IANA name ("Europe/Berlin"), `locale` a
        BCP 47 tag ("pt-BR"); `attributes` are readable by conditions as `user.attributes`.
        Idempotent; returns the user as stored."""
        given = {
            "display_name": display_name,
            "avatar_url": avatar_url,
            "time_zone": time_zone,
            "locale": locale,
        }
        user = users_pb2.User(
            user_id=user_id,
            display_name=display_name or "",
            avatar_url=avatar_url or "",
            time_zone=time_zone or "",
            locale=locale or "",
        )
        mask = [k for k, v in given.items() if v is not None]
        if attributes is not None:
            user.attributes.CopyFrom(_common._struct(attributes))
            mask.append("attributes")
        request = users_pb2.UpsertUserRequest(
            user=user, update_mask=field_mask_pb2.FieldMask(paths=mask)
        )
        response = await self._call(
            self.users.UpsertUser, request, idempotent=True, timeout=timeout
        )
        return response.user

    async def get_user(self, user_id: str, *, timeout: float | None = None) -> users_pb2.User:
        """The user's profile (`NotFoundError` if none is stored)."""
        request = users_pb2.GetUserRequest(user_id=user_id)
        response = await self._call(self.users.GetUser, request, idempotent=True, timeout=timeout)
        return response.user

    async def list_users(
        self, *, prefix: str = "", page_size: int = 100, timeout: float | None = None
    ) -> AsyncIterator[users_pb2.User]:
        """Every user (optionally those whose id starts with `prefix`), in id order."""
        token = ""
        while True:
            request = users_pb2.ListUsersRequest(
                page_size=page_size, page_token=token, user_id_prefix=prefix
            )
            page = await self._call(self.users.ListUsers, request, idempotent=True, timeout=timeout)
            for user in page.users:
                yield user
            token = page.next_page_token
            if not token:
                return

    # Points ---------------------------------------------------------------------------------

    async def redeem_points(
        self,
        redemption_id: str,
        user_id: str,
        points: int,
        *,
        reason: str = "",
        reward_id: str = "",
        timeout: float | None = None,
    ) -> points_pb2.RedeemPointsResponse:
        """Spend `points` of the user's spendable points (needs the `redeem` scope).
        Idempotent by `redemption_id`: retried safely, a repeat answers the first result
        (`replayed` true). `FailedPreconditionError` when the balance is too small,
        `AlreadyExistsError` when the id was used with other content."""
        request = points_pb2.RedeemPointsRequest(
            redemption_id=redemption_id,
            user_id=user_id,
            points=points,
            reason=reason,
            reward_id=reward_id,
        )
        return await self._call(self.points.RedeemPoints, request, idempotent=True, timeout=timeout)

    async def refund_redemption(
        self, redemption_id: str, *, reason: str = "", timeout: float | None = None
    ) -> points_pb2.RefundRedemptionResponse:
        """Give a redemption's points back, once (a repeat changes nothing)."""
        request = points_pb2.RefundRedemptionRequest(redemption_id=redemption_id, reason=reason)
        return await self._call(
            self.points.RefundRedemption, request, idempotent=True, timeout=timeout
        )

    async def get_entitlements(
        self, user_id: str, *, timeout: float | None = None
    ) -> list[points_pb2.Entitlement]:
        """The user's active entitlements (rewards of awards they hold, not expired now)."""
        request = points_pb2.GetEntitlementsRequest(user_id=user_id)
        response = await self._call(
            self.points.GetEntitlements, request, idempotent=True, timeout=timeout
        )
        return list(response.entitlements)

    async def list_points_ledger(
        self, user_id: str, *, page_size: int = 100, timeout: float | None = None
    ) -> AsyncIterator[points_pb2.PointsLedgerEntry]:
        """Every change to the user's points (awards, revocations, redemptions, refunds),
        newest first, fetched page by page as you iterate."""
        token = ""
        while True:
            request = points_pb2.ListPointsLedgerRequest(
                user_id=user_id, page_size=page_size, page_token=token
            )
            page = await self._call(
                self.points.ListPointsLedger, request, idempotent=True, timeout=timeout
            )
            for entry in page.entries:
                yield entry
            token = page.next_page_token
            if not token:
                return

    # Insights ----------------------------------------------------------------------------

    async def get_achievement_stats(
        self,
        achievement_id: str,
        *,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        timeout: float | None = None,
    ) -> insights_pb2.AchievementStats:
        """Holders per level, rarity, completion, the tier funnel and time to earn of one
        achievement; awards, revocations and time to earn within [start_time, end_time)."""
        request = insights_pb2.GetAchievementStatsRequest(achievement_id=achievement_id)
        if start_time is not None:
            request.start_time.FromDatetime(start_time)
        if end_time is not None:
            request.end_time.FromDatetime(end_time)
        response = await self._call(
            self.insights.GetAchievementStats, request, idempotent=True, timeout=timeout
        )
        return response.stats

    async def list_achievement_stats(
        self, *, order_by: str = "rarity", page_size: int = 100, timeout: float | None = None
    ) -> AsyncIterator[insights_pb2.AchievementStats]:
        """The stats of every achievement, rarest first (`order_by="completion"`: least
        completed first)."""
        order = parse_enum(
            insights_pb2.ListAchievementStatsRequest.Order,
            order_by,
            what="an order",
        )
        token = ""
        while True:
            request = insights_pb2.ListAchievementStatsRequest(
                order_by=order,  # type: ignore[arg-type]
                page_size=page_size,
                page_token=token,
            )
            page = await self._call(
                self.insights.ListAchievementStats, request, idempotent=True, timeout=timeout
            )
            for stats in page.stats:
                yield stats
            token = page.next_page_token
            if not token:
                return

    async def get_trends(
        self,
        metric: str,
        start_time: datetime,
        *,
        end_time: datetime | None = None,
        interval: str = "day",
        achievement_ids: Iterable[str] = (),
        event_types: Iterable[str] = (),
        timeout: float | None = None,
    ) -> list[insights_pb2.TrendSeries]:
        """A metric (awards, events, active_users, points, redemptions) per hour, day or
        week from `start_time`, zero-filled: one series per achievement id (awards,
        points) or event type (events)."""
        request = insights_pb2.GetTrendsRequest(
            metric=parse_enum(insights_pb2.GetTrendsRequest.Metric, metric, what="a metric"),  # type: ignore[arg-type]
            interval=parse_enum(  # type: ignore[arg-type]
                insights_pb2.GetTrendsRequest.Interval,
                interval,
                what="an interval",
            ),
            achievement_ids=list(achievement_ids),
            event_types=list(event_types),
        )
        request.start_time.FromDatetime(start_time)
        if end_time is not None:
            request.end_time.FromDatetime(end_time)
        response = await self._call(
            self.insights.GetTrends, request, idempotent=True, timeout=timeout
        )
        return list(response.series)

    async def explain_progress(
        self, user_id: str, achievement_id: str, *, timeout: float | None = None
    ) -> insights_pb2.ExplainProgressResponse:
        """Why the user has (not yet) earned each level of the achievement: `summary` says
        it in words; `levels`, `prerequisites` and `feeds` in detail."""
        request = insights_pb2.ExplainProgressRequest(
            user_id=user_id, achievement_id=achievement_id
        )
        return await self._call(
            self.insights.ExplainProgress, request, idempotent=True, timeout=timeout
        )

    # Leaderboards --------------------------------------------------------------------------

    async def create_leaderboard(
        self, leaderboard: leaderboards_pb2.Leaderboard, *, timeout: float | None = None
    ) -> leaderboards_pb2.Leaderboard:
        """Define a board (`AlreadyExistsError` if the id is taken); returns it as stored."""
        request = leaderboards_pb2.CreateLeaderboardRequest(leaderboard=leaderboard)
        response = await self._call(
            self.leaderboards.CreateLeaderboard, request, idempotent=False, timeout=timeout
        )
        return response.leaderboard

    async def list_leaderboards(
        self, *, page_size: int = 100, timeout: float | None = None
    ) -> AsyncIterator[leaderboards_pb2.Leaderboard]:
        """Every board: the built-in "points" first, then the defined ones by id."""
        token = ""
        while True:
            request = leaderboards_pb2.ListLeaderboardsRequest(
                page_size=page_size, page_token=token
            )
            page = await self._call(
                self.leaderboards.ListLeaderboards, request, idempotent=True, timeout=timeout
            )
            for board in page.leaderboards:
                yield board
            token = page.next_page_token
            if not token:
                return

    async def apply_leaderboards(
        self,
        source: AchievementSource,
        *,
        validate_only: bool = False,
        timeout: float | None = None,
    ) -> leaderboards_pb2.ApplyLeaderboardsResponse:
        """Create or update the `leaderboards:` of a definitions file, all or nothing;
        reports per board what changes. Changing what a stored board counts is refused
        (`FailedPreconditionError`). `validate_only` reports without writing."""
        request = leaderboards_pb2.ApplyLeaderboardsRequest(
            leaderboards=_common.definitions_of(source).leaderboards, validate_only=validate_only
        )
        return await self._call(
            self.leaderboards.ApplyLeaderboards, request, idempotent=True, timeout=timeout
        )

    async def delete_leaderboard(
        self, leaderboard_id: str, *, timeout: float | None = None
    ) -> None:
        """Delete a board's definition and entries (the built-in "points" board stays)."""
        request = leaderboards_pb2.DeleteLeaderboardRequest(leaderboard_id=leaderboard_id)
        await self._call(
            self.leaderboards.DeleteLeaderboard, request, idempotent=False, timeout=timeout
        )

    async def get_leaderboard(
        self,
        leaderboard_id: str = "points",
        *,
        period_start: datetime | None = None,
        page_size: int = 50,
        page_token: str = "",
        timeout: float | None = None,
    ) -> leaderboards_pb2.GetLeaderboardResponse:
        """A page of the board, best first (`period_start`: any instant of a past period;
        default the current one). Pass `next_page_token` of the answer for the next page."""
        request = leaderboards_pb2.GetLeaderboardRequest(
            leaderboard_id=leaderboard_id, page_size=page_size, page_token=page_token
        )
        if period_start is not None:
            request.period_start.FromDatetime(period_start)
        return await self._call(
            self.leaderboards.GetLeaderboard, request, idempotent=True, timeout=timeout
        )

    async def get_leaderboard_rank(
        self,
        leaderboard_id: str,
        user_id: str = "",
        *,
        around: int = 0,
        user_ids: Iterable[str] = (),
        period_start: datetime | None = None,
        timeout: float | None = None,
    ) -> leaderboards_pb2.GetLeaderboardRankResponse:
        """The user's entry (`entry`) with `around` neighbours each side (`entries`), or,
        with `user_ids` instead, those users' entries (e.g. friends) ranked on the board."""
        request = leaderboards_pb2.GetLeaderboardRankRequest(
            leaderboard_id=leaderboard_id, user_id=user_id, around=around, user_ids=list(user_ids)
        )
        if period_start is not None:
            request.period_start.FromDatetime(period_start)
        return await self._call(
            self.leaderboards.GetLeaderboardRank, request, idempotent=True, timeout=timeout
        )

    # Backfills ----------------------------------------------------------------------------

    async def preview_achievement(
        self,
        achievement: AchievementLike,
        *,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        sample_size: int = 10,
        timeout: float | None = None,
    ) -> backfills_pb2.PreviewAchievementResponse:
        """What a definition (new, or a changed version of a stored one) would do over the
        stored events, without writing: users reaching each level, awards, revocations, a
        sample of affected users. The server stops at the call's deadline (`incomplete`)."""
        request = backfills_pb2.PreviewAchievementRequest(
            achievement=_common.achievement(achievement), sample_size=sample_size
        )
        if start_time is not None:
            request.start_time.FromDatetime(start_time)
        if end_time is not None:
            request.end_time.FromDatetime(end_time)
        return await self._call(
            self.backfills.PreviewAchievement, request, idempotent=True, timeout=timeout
        )

    async def start_backfill(
        self,
        achievement_id: str,
        *,
        mode: backfills_pb2.BackfillMode.ValueType | str | None = None,
        notify: bool = False,
        reason: str = "",
        timeout: float | None = None,
    ) -> backfills_pb2.Backfill:
        """Queue a backfill of a stored, enabled achievement ("reevaluate", the default, or
        "revoke_non_qualifying"); its awards are not notified unless `notify`."""
        request = backfills_pb2.StartBackfillRequest(
            achievement_id=achievement_id,
            mode=_common.backfill_mode(mode),
            notify=notify,
            reason=reason,
        )
        response = await self._call(
            self.backfills.StartBackfill, request, idempotent=False, timeout=timeout
        )
        return response.backfill

    async def get_backfill(
        self, name: str, *, timeout: float | None = None
    ) -> backfills_pb2.Backfill:
        """A backfill by name ("backfills/{id}"), with its state and progress."""
        request = backfills_pb2.GetBackfillRequest(name=name)
        response = await self._call(
            self.backfills.GetBackfill, request, idempotent=True, timeout=timeout
        )
        return response.backfill

    async def list_backfills(
        self, *, achievement_id: str = "", page_size: int = 100, timeout: float | None = None
    ) -> AsyncIterator[backfills_pb2.Backfill]:
        """Every backfill (optionally of one achievement), newest first."""
        token = ""
        while True:
            request = backfills_pb2.ListBackfillsRequest(
                page_size=page_size, page_token=token, achievement_id=achievement_id
            )
            page = await self._call(
                self.backfills.ListBackfills, request, idempotent=True, timeout=timeout
            )
            for job in page.backfills:
                yield job
            token = page.next_page_token
            if not token:
                return

    async def cancel_backfill(
        self, name: str, *, timeout: float | None = None
    ) -> backfills_pb2.Backfill:
        """Cancel a queued or running backfill (it stops after its current chunk)."""
        request = backfills_pb2.CancelBackfillRequest(name=name)
        response = await self._call(
            self.backfills.CancelBackfill, request, idempotent=True, timeout=timeout
        )
        return response.backfill
