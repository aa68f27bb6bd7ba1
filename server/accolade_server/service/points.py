"""Points: the two balances and levels, redemptions and refunds, and the points ledger.

Lifetime points are `user_points.points` (awards add, revocations remove); spendable points
are lifetime minus `point_balances.redeemed`. Redemptions and refunds are award-log entries
(`AwardKind.REDEMPTION`, `REFUND`) made by `ledger.allocate` and written by the one writer
(`BatchStore.write`), which keeps `redeemed` from them (`port.effects`), so the stream and
webhooks carry them in commit order with the awards. A redemption runs under the user's row
lock (`lock_users`), the lock every award and revocation of the user takes: the balance it
checks cannot change before it commits, on any replica.

Levels: see `service/levels.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from accolade_server.config import Settings
from accolade_server.domain import paging
from accolade_server.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from accolade_server.domain.model import AwardKind, AwardRecord, AwardSource
from accolade_server.domain.points import Balance, Redemption, balance
from accolade_server.service import ledger
from accolade_server.service.tracking import check_id
from accolade_server.store import points as store
from accolade_server.store.port import Changes
from accolade_server.store.repository import Repository
from accolade_server.store.uow import UnitOfWork

MAX_REASON = 1000
MAX_REWARD_ID = 64
#: Points of one redemption at most (far below int64, so sums cannot overflow).
MAX_POINTS = 10**15


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Redeemed:
    redemption: Redemption
    balance: Balance
    replayed: bool


@dataclass(frozen=True, slots=True)
class Entitlement:
    name: str
    achievement_id: str
    tier: str
    award_cursor: int
    grant_time: datetime
    expire_time: datetime | None


@dataclass(frozen=True, slots=True)
class LedgerPage:
    entries: list[AwardRecord]
    next_page_token: str
    balance: Balance


def _check_text(value: str, field: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidArgument(f"is longer than {limit} characters", field=field)


class PointsService:
    def __init__(
        self, uow: UnitOfWork, settings: Settings, *, clock: Callable[[], datetime] = _now
    ) -> None:
        self.uow = uow
        self.settings = settings
        self.clock = clock

    def _balance(self, lifetime: int, redeemed: int) -> Balance:
        return balance(lifetime, redeemed, self.settings.point_levels)

    async def balance_in(self, repo: Repository, user_id: str) -> Balance:
        """The user's balance, read in the caller's transaction."""
        lifetime, redeemed = (await store.totals(repo, [user_id])).get(user_id, (0, 0))
        return self._balance(lifetime, redeemed)

    async def balance(self, user_id: str) -> Balance:
        check_id(user_id, "user_id")
        async with self.uow.transaction() as repo:
            return await self.balance_in(repo, user_id)

    async def redeem(
        self,
        redemption_id: str,
        user_id: str,
        points: int,
        *,
        reason: str,
        reward_id: str,
        actor: str,
    ) -> Redeemed:
        """Spend `points` of the user's spendable points, once per `redemption_id`."""
        check_id(redemption_id, "redemption_id")
        check_id(user_id, "user_id")
        if points < 1:
            raise InvalidArgument("must be at least 1", field="points")
        if points > MAX_POINTS:
            raise InvalidArgument(f"must be at most {MAX_POINTS}", field="points")
        _check_text(reason, "reason", MAX_REASON)
        if reward_id:
            check_id(reward_id, "reward_id")
            _check_text(reward_id, "reward_id", MAX_REWARD_ID)
        now = self.clock()
        async with self.uow.transaction() as repo:
            batch = repo.batch
            await batch.lock_users([user_id], now)
            found = await store.get_redemption(repo, redemption_id)
            if found is not None:
                return self._replay(found, user_id, points, reason, reward_id)
            lifetime, redeemed = (await store.totals(repo, [user_id])).get(user_id, (0, 0))
            spendable = lifetime - redeemed
            if spendable < points:
                raise FailedPrecondition(
                    f"user {user_id!r} has {spendable} spendable points; "
                    f"redeeming {points} needs {points - spendable} more",
                    field="points",
                )
            await store.ensure_balance_row(repo, user_id, now)
            entry = ledger.Pending(
                user_id,
                "",
                reward_id,
                -points,
                AwardSource.MANUAL,
                AwardKind.REDEMPTION,
                reason,
                actor,
                redemption_id,
            )
            [record] = await ledger.allocate(batch, [entry], now)
            made = Redemption(
                redemption_id,
                user_id,
                points,
                reason,
                reward_id,
                actor,
                now,
                record.cursor,
                lifetime,
                spendable - points,
            )
            if not await store.insert_redemption(repo, made):
                raise AlreadyExists(
                    f"redemption {redemption_id!r} exists already, for another user",
                    field="redemption_id",
                )
            await batch.write(Changes(), [record], now)
        return Redeemed(made, self._balance(lifetime, redeemed + points), False)

    def _replay(
        self, found: Redemption, user_id: str, points: int, reason: str, reward_id: str
    ) -> Redeemed:
        if not found.same_request(user_id, points, reason, reward_id):
            raise AlreadyExists(
                f"redemption {found.redemption_id!r} exists already with other content "
                f"(user {found.user_id!r}, {found.points} points); use a new redemption_id",
                field="redemption_id",
            )
        after = self._balance(found.lifetime_after, found.lifetime_after - found.spendable_after)
        return Redeemed(found, after, True)

    async def refund(self, redemption_id: str, *, reason: str, actor: str) -> Redeemed:
        """Give a redemption's points back, once."""
        check_id(redemption_id, "redemption_id")
        _check_text(reason, "reason", MAX_REASON)
        now = self.clock()
        async with self.uow.transaction() as repo:
            found = await store.get_redemption(repo, redemption_id)
            if found is None:
                raise NotFound(f"redemption {redemption_id!r} not found", field="redemption_id")
            batch = repo.batch
            await batch.lock_users([found.user_id], now)
            # Read again under the lock: a concurrent refund of it has committed by now.
            locked = await store.get_redemption(repo, redemption_id, for_update=True)
            if locked is None:  # erased meanwhile
                raise NotFound(f"redemption {redemption_id!r} not found", field="redemption_id")
            if locked.refund_time is not None:
                return Redeemed(locked, await self.balance_in(repo, locked.user_id), True)
            entry = ledger.Pending(
                locked.user_id,
                "",
                locked.reward_id,
                locked.points,
                AwardSource.MANUAL,
                AwardKind.REFUND,
                reason,
                actor,
                redemption_id,
            )
            [record] = await ledger.allocate(batch, [entry], now)
            await store.mark_refunded(
                repo, redemption_id, reason=reason, actor=actor, cursor=record.cursor, now=now
            )
            await batch.write(Changes(), [record], now)
            refunded = replace(
                locked,
                refund_time=now,
                refund_reason=reason,
                refund_actor=actor,
                refund_cursor=record.cursor,
            )
            after = await self.balance_in(repo, locked.user_id)
        return Redeemed(refunded, after, False)

    async def ledger(self, user_id: str, *, page_size: int, page_token: str) -> LedgerPage:
        check_id(user_id, "user_id")
        size = paging.page_size(page_size)
        filters = {"user_id": user_id}
        before = paging.decode(page_token, filters)
        if before is not None and not isinstance(before, int):
            raise InvalidArgument("is not a token this server issued", field="page_token")
        async with self.uow.transaction() as repo:
            items = await store.ledger_page(repo, user_id, before_cursor=before, limit=size + 1)
            now = await self.balance_in(repo, user_id)
        token = paging.encode(items[size - 1].cursor, filters) if len(items) > size else ""
        return LedgerPage(items[:size], token, now)

    async def entitlements(self, user_id: str) -> list[Entitlement]:
        """The user's entitlements that have not expired now, by name."""
        check_id(user_id, "user_id")
        now = self.clock()
        async with self.uow.transaction() as repo:
            rows = await store.entitlements(repo, user_id, now)
        return [Entitlement(*row) for row in rows]
