"""Manual grants and revocations, erasing a user, and listing a user's awards."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from accolade_server.config import Settings
from accolade_server.domain import paging
from accolade_server.domain.errors import InvalidArgument, NotFound
from accolade_server.domain.model import AwardRecord
from accolade_server.domain.points import Balance, balance
from accolade_server.domain.state import Snapshot
from accolade_server.domain.validation import check_slug
from accolade_server.rules import engine
from accolade_server.service import economy, ledger
from accolade_server.service.rulecache import RuleCache
from accolade_server.service.tracking import check_id
from accolade_server.service.watch import make_filter
from accolade_server.store import points as points_store
from accolade_server.store import users
from accolade_server.store.port import Changes, Keys
from accolade_server.store.repository import Repository
from accolade_server.store.uow import UnitOfWork

MAX_TEXT = 1000


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AwardPage:
    awards: list[AwardRecord]
    next_page_token: str
    total_points: int
    balance: Balance


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
        """Grant a level by hand; returns (award, already_held). Idempotent.

        Lower tiers count as decided (the rule never awards them later); what the grant
        completes (prerequisites of others, meta-achievements) is awarded with it.
        """
        check_id(user_id, "user_id")
        check_slug(achievement_id, "achievement_id")
        _check_text(reason, actor)
        now = self.clock()
        async with self.uow.transaction() as repo:
            rules = await self.rules.get(repo)
            levels = await self._levels(repo, achievement_id, required=True)
            names = [level.name for level in levels]
            chosen = tier or names[0]
            if chosen not in names:
                known = ", ".join(n for n in names if n) or "none (single level: leave it empty)"
                raise InvalidArgument(
                    f"{tier!r} is not a tier of {achievement_id!r}; its tiers: {known}",
                    field="tier",
                )
            step = engine.Grant(user_id, achievement_id, levels, names.index(chosen))
            records, snapshot = await _manual(repo, rules, self.settings, step, reason, actor, now)
            if not records:
                [held] = [
                    h
                    for h in snapshot.holdings[user_id]
                    if (h.achievement_id, h.tier) == (achievement_id, chosen)
                ]
                existing = await repo.awards_by_cursor([held.award_cursor])
                return existing[0], True
        return records[0], False

    async def revoke(
        self,
        user_id: str,
        achievement_id: str,
        tier: str,
        *,
        all_tiers: bool = False,
        reason: str,
        actor: str,
    ) -> list[AwardRecord]:
        """Revoke the highest tier held (`tier` empty), `tier` and every higher tier held, or
        every tier (`all_tiers`). The rule does not award a revoked tier again. Idempotent."""
        check_id(user_id, "user_id")
        check_slug(achievement_id, "achievement_id")
        _check_text(reason, actor)
        if tier and all_tiers:
            raise InvalidArgument("give either a tier or all_tiers, not both", field="all_tiers")
        now = self.clock()
        async with self.uow.transaction() as repo:
            rules = await self.rules.get(repo)
            levels = await self._levels(repo, achievement_id, required=False)
            step = engine.Revoke(user_id, achievement_id, levels, tier or None, all_tiers)
            records, _ = await _manual(repo, rules, self.settings, step, reason, actor, now)
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

    async def erase_user(self, user_id: str) -> AwardRecord | None:
        """Erase everything stored of a user (profile, events, progress, holdings, points,
        award-log entries) and append one erasure entry; None when nothing was stored.
        Idempotent."""
        check_id(user_id, "user_id")
        now = self.clock()
        async with self.uow.transaction() as repo:
            store = repo.batch
            await store.lock_users([user_id], now)
            had_profile = await users.delete(repo, user_id)
            stored = had_profile or await repo.has_data(user_id)
            erase = [ledger.Pending.erasure(user_id)] if stored else []
            records = await ledger.allocate(store, erase, now)
            await store.write(Changes(erased=[user_id]), records, now)
        return records[0] if records else None

    async def _levels(
        self, repo: Repository, achievement_id: str, *, required: bool
    ) -> tuple[engine.Level, ...]:
        a = await repo.get_achievement(achievement_id)
        if a is None:
            if required:
                raise NotFound(f"achievement {achievement_id!r} not found", field="achievement_id")
            return ()
        return engine.levels_of(
            a, self.settings.badge_level_threshold, self.settings.points_per_badge
        )

    async def list(self, user_id: str, *, page_size: int, page_token: str) -> AwardPage:
        check_id(user_id, "user_id")
        size = paging.page_size(page_size)
        filters = {"user_id": user_id}
        before = paging.decode(page_token, filters)
        if before is not None and not isinstance(before, int):
            raise InvalidArgument("is not a token this server issued", field="page_token")
        async with self.uow.transaction() as repo:
            items = await repo.held_awards(user_id, before_cursor=before, limit=size + 1)
            lifetime, redeemed = (await points_store.totals(repo, [user_id])).get(user_id, (0, 0))
        token = paging.encode(items[size - 1].cursor, filters) if len(items) > size else ""
        points = balance(lifetime, redeemed, self.settings.point_levels)
        return AwardPage(items[:size], token, lifetime, points)


async def _manual(
    repo: Repository,
    rules: engine.RuleSet,
    settings: Settings,
    step: engine.Grant | engine.Revoke,
    reason: str,
    actor: str,
    now: datetime,
) -> tuple[list[AwardRecord], Snapshot]:
    """Lock → snapshot → fold → allocate → write, for one grant or revocation."""
    store = repo.batch
    user = step.user_id
    await store.lock_users([user], now)
    ids = rules.closure([step.achievement_id]) | {step.achievement_id}
    snapshot = await store.read(Keys(progress={(user, a) for a in ids}, holdings=[user]))
    folded = engine.fold(
        [step], snapshot, rules, now=now, awards_enabled=settings.enable_achievements
    )
    pending = [
        ledger.Pending.of(user, d, reason=reason, actor=actor) for d in folded.steps[0].decisions
    ]
    pending = await economy.extend(repo, rules, settings, pending)  # rewards, levels
    records = await ledger.allocate(store, pending, now)
    if records or folded.progress:
        await store.write(Changes(progress=folded.progress), records, now)
    return records, snapshot
