"""Manual grants and revocations, and listing a user's awards."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from accolade_server.config import Settings
from accolade_server.domain import paging
from accolade_server.domain.errors import InvalidArgument, NotFound
from accolade_server.domain.model import AwardRecord, AwardSource
from accolade_server.domain.validation import check_slug
from accolade_server.rules import engine
from accolade_server.service import ledger
from accolade_server.service.rulecache import RuleCache
from accolade_server.service.tracking import check_id
from accolade_server.service.watch import make_filter
from accolade_server.store.uow import UnitOfWork

MAX_TEXT = 1000


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AwardPage:
    awards: list[AwardRecord]
    next_page_token: str
    total_points: int


def _check_text(reason: str, actor: str) -> None:
    if len(reason) > MAX_TEXT:
        raise InvalidArgument(f"is longer than {MAX_TEXT} characters", field="reason")
    if len(actor) > 128:
        raise InvalidArgument("is longer than 128 characters", field="actor")


class AwardService:
    def __init__(
        self,
        uow: UnitOfWork,
        settings: Settings,
        rules: RuleCache,
        *,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.uow = uow
        self.settings = settings
        self.rules = rules
        self.clock = clock

    async def grant(
        self, user_id: str, achievement_id: str, tier: str, *, reason: str, actor: str
    ) -> tuple[AwardRecord, bool]:
        """Grant a level by hand; returns (award, already_held). Idempotent."""
        check_id(user_id, "user_id")
        check_slug(achievement_id, "achievement_id")
        _check_text(reason, actor)
        now = self.clock()
        async with self.uow.transaction() as repo:
            rules = await self.rules.get(repo)
            a = await repo.get_achievement(achievement_id)
            if a is None:
                raise NotFound(f"achievement {achievement_id!r} not found", field="achievement_id")
            levels = engine.levels_of(
                a, self.settings.badge_level_threshold, self.settings.points_per_badge
            )
            names = [level.name for level in levels]
            chosen = tier or names[0]
            if chosen not in names:
                known = ", ".join(n for n in names if n) or "none (single level: leave it empty)"
                raise InvalidArgument(
                    f"{tier!r} is not a tier of {achievement_id!r}; its tiers: {known}",
                    field="tier",
                )
            index = names.index(chosen)
            await repo.lock_users([user_id], now)
            holdings = await repo.holdings(user_id)
            for h in holdings:
                if (h.achievement_id, h.tier) == (achievement_id, chosen):
                    existing = await repo.awards_by_cursor([h.award_cursor])
                    return existing[0], True
            decision = engine.AwardDecision(achievement_id, index, chosen, levels[index].points)
            records = await ledger.record_awards(
                repo,
                user_id,
                [decision],
                holdings,
                source=AwardSource.MANUAL,
                now=now,
                reason=reason,
                actor=actor,
            )
            # Earning this may complete prerequisites of others.
            await ledger.cascade(
                repo,
                rules,
                user_id,
                holdings,
                [achievement_id],
                awards_enabled=self.settings.enable_achievements,
                now=now,
            )
        return records[0], False

    async def revoke(
        self, user_id: str, achievement_id: str, tier: str, *, reason: str, actor: str
    ) -> list[AwardRecord]:
        """Revoke a held level (or every level when `tier` is empty). Idempotent."""
        check_id(user_id, "user_id")
        check_slug(achievement_id, "achievement_id")
        _check_text(reason, actor)
        now = self.clock()
        async with self.uow.transaction() as repo:
            await repo.lock_users([user_id], now)
            holdings = [
                h
                for h in await repo.holdings(user_id)
                if h.achievement_id == achievement_id and (not tier or h.tier == tier)
            ]
            if not holdings:
                return []
            await repo.delete_holdings(user_id, [(h.achievement_id, h.tier) for h in holdings])
            first = await repo.allocate_cursors(len(holdings))
            records = [
                AwardRecord(
                    cursor=first + i,
                    user_id=user_id,
                    achievement_id=h.achievement_id,
                    tier=h.tier,
                    points=-h.points,
                    source=AwardSource.MANUAL,
                    award_time=now,
                    revoked=True,
                    reason=reason,
                    actor=actor,
                )
                for i, h in enumerate(holdings)
            ]
            await repo.append_awards(records)
            await repo.add_points(user_id, -sum(h.points for h in holdings), now)
        return records

    async def history(
        self, user_ids: Sequence[str], achievement_ids: Sequence[str], *, limit: int
    ) -> tuple[list[AwardRecord], int]:
        """The newest award log entries matching the filters (newest first), and the log's
        head cursor read in the same transaction: a stream after it misses nothing."""
        make_filter(user_ids, achievement_ids, None)  # validates the filters
        async with self.uow.transaction() as repo:
            head = await repo.last_cursor()
            entries = await repo.recent_awards(
                paging.page_size(limit), user_ids=user_ids, achievement_ids=achievement_ids
            )
        return entries, head

    async def list(self, user_id: str, *, page_size: int, page_token: str) -> AwardPage:
        check_id(user_id, "user_id")
        size = paging.page_size(page_size)
        filters = {"user_id": user_id}
        before = paging.decode(page_token, filters)
        if before is not None and not isinstance(before, int):
            raise InvalidArgument("is not a token this server issued", field="page_token")
        async with self.uow.transaction() as repo:
            items = await repo.held_awards(user_id, before_cursor=before, limit=size + 1)
            points = await repo.points(user_id)
        token = paging.encode(items[size - 1].cursor, filters) if len(items) > size else ""
        return AwardPage(items[:size], token, points)
