"""Leaderboards: definitions (admin) and ranked reads.

Scores are written by the write path itself (`store/scores.py` `Scorer`, called from the
batch store's `write`), in the transaction of the award or event; this service only defines
boards and reads them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from accolade_server.config import Settings
from accolade_server.domain import paging
from accolade_server.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from accolade_server.domain.leaderboards import (
    ALL_TIME_KEY,
    POINTS,
    POINTS_BOARD,
    Leaderboard,
    validate,
)
from accolade_server.service.tracking import check_id
from accolade_server.store import scores
from accolade_server.store import users as user_store
from accolade_server.store.repository import Repository
from accolade_server.store.uow import UnitOfWork

UPDATABLE = ("title", "description")
#: What a board counts: fixed once it is defined.
FIXED = (
    "metric",
    "achievement_id",
    "period",
    "week_start",
    "time_zone",
    "filter_attribute",
    "filter_value",
)
MAX_APPLY = 1000
MAX_AROUND = 100
MAX_USER_IDS = 100


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Entry:
    rank: int
    user_id: str
    display_name: str
    score: float
    reached_time: datetime


@dataclass(frozen=True, slots=True)
class BoardView:
    """Entries of one period of a board; `period` is None for all-time boards."""

    entries: list[Entry]
    period: tuple[datetime, datetime] | None
    next_page_token: str = ""
    #: GetLeaderboardRank with a user: that user's entry (None when they have none).
    entry: Entry | None = None


@dataclass(frozen=True, slots=True)
class BoardList:
    boards: list[Leaderboard]
    next_page_token: str


class LeaderboardService:
    def __init__(
        self, uow: UnitOfWork, settings: Settings, *, clock: Callable[[], datetime] = _now
    ) -> None:
        self.uow = uow
        self.settings = settings
        self.clock = clock

    # -- definitions -------------------------------------------------------------------

    async def create(self, board: Leaderboard) -> Leaderboard:
        validate(board)
        now = self.clock()
        async with self.uow.transaction() as repo:
            if not await scores.insert_board(repo.conn, board, now):
                raise AlreadyExists(
                    f"leaderboard {board.id!r} exists already", field="leaderboard.id"
                )
            await scores.seed_board(repo.conn, board, now)
            await repo.bump_definitions_version()
        return dataclasses.replace(board, create_time=now)

    async def apply(
        self, boards: Sequence[Leaderboard], *, validate_only: bool
    ) -> list[tuple[str, str, list[str]]]:
        """Create or update `boards` in one transaction; (id, "create" / "update" /
        "unchanged", fields changed) for each, in order."""
        if len(boards) > MAX_APPLY:
            raise InvalidArgument(f"lists more than {MAX_APPLY} boards", field="leaderboards")
        seen: set[str] = set()
        for i, board in enumerate(boards):
            validate(board, f"leaderboards[{i}]")
            if board.id in seen:
                raise InvalidArgument(
                    f"{board.id!r} is listed twice", field=f"leaderboards[{i}].id"
                )
            seen.add(board.id)
        now = self.clock()
        out: list[tuple[str, str, list[str]]] = []
        async with self.uow.transaction() as repo:
            stored = {b.id: b for b in await scores.all_boards(repo.conn)}
            for i, board in enumerate(boards):
                old = stored.get(board.id)
                if old is None:
                    out.append((board.id, "create", []))
                    continue
                for name in FIXED:
                    if getattr(old, name) != getattr(board, name):
                        raise FailedPrecondition(
                            f"{board.id!r} counts {getattr(old, name)!r} here; what a stored "
                            "board counts is fixed: define a board with a new id instead",
                            field=f"leaderboards[{i}].{name}",
                        )
                changed = [n for n in UPDATABLE if getattr(old, n) != getattr(board, n)]
                out.append((board.id, "update" if changed else "unchanged", changed))
            if validate_only:
                return out
            for board, (_, kind, _fields) in zip(boards, out, strict=True):
                if kind == "create":
                    await scores.insert_board(repo.conn, board, now)
                    await scores.seed_board(repo.conn, board, now)
                elif kind == "update":
                    changed_board = dataclasses.replace(
                        stored[board.id], title=board.title, description=board.description
                    )
                    await scores.update_board(repo.conn, changed_board)
            if any(kind == "create" for _, kind, _ in out):
                await repo.bump_definitions_version()
        return out

    async def get(self, board_id: str) -> Leaderboard:
        async with self.uow.transaction() as repo:
            return await self._board(repo, board_id)

    async def list(self, *, page_size: int, page_token: str) -> BoardList:
        size = paging.page_size(page_size)
        after = paging.decode(page_token, {})
        if after is not None and not isinstance(after, str):
            raise InvalidArgument("is not a token this server issued", field="page_token")
        async with self.uow.transaction() as repo:
            boards = [POINTS, *await scores.all_boards(repo.conn)]
        if after == POINTS_BOARD:
            boards = boards[1:]
        elif after is not None:
            boards = [b for b in boards[1:] if b.id > after]
        token = paging.encode(boards[size - 1].id, {}) if len(boards) > size else ""
        return BoardList(boards[:size], token)

    async def update(self, board: Leaderboard, update_mask: Sequence[str]) -> Leaderboard:
        if not update_mask:
            raise InvalidArgument(
                "name the fields to change: title, description", field="update_mask"
            )
        for path in update_mask:
            if path not in UPDATABLE:
                raise InvalidArgument(
                    f"{path!r} cannot be changed (only title, description); what a board "
                    "counts is fixed once defined",
                    field="update_mask",
                )
        if board.id == POINTS_BOARD:
            raise FailedPrecondition("the built-in board cannot be changed", field="leaderboard.id")
        async with self.uow.transaction() as repo:
            stored = await self._board(repo, board.id, field="leaderboard.id")
            changed = dataclasses.replace(
                stored, **{path: getattr(board, path) for path in update_mask}
            )
            validate(changed)
            await scores.update_board(repo.conn, changed)
        return changed

    async def delete(self, board_id: str) -> None:
        if board_id == POINTS_BOARD:
            raise FailedPrecondition("the built-in board cannot be deleted", field="leaderboard_id")
        async with self.uow.transaction() as repo:
            await self._board(repo, board_id)
            await scores.delete_board(repo.conn, board_id)
            await repo.bump_definitions_version()

    async def _board(
        self, repo: Repository, board_id: str, *, field: str = "leaderboard_id"
    ) -> Leaderboard:
        if board_id == POINTS_BOARD:
            return POINTS
        if not board_id:
            raise InvalidArgument("is required", field=field)
        found = await scores.get_board(repo.conn, board_id)
        if found is None:
            raise NotFound(f"leaderboard {board_id!r} not found", field=field)
        return found

    # -- reads -------------------------------------------------------------------------

    def _period(
        self, board: Leaderboard, at: datetime | None
    ) -> tuple[int, tuple[datetime, datetime] | None]:
        """The stored key and span of the period holding `at` (default: now)."""
        now = self.clock()
        span = board.period_of(at or now)
        if span is None:
            return ALL_TIME_KEY, None
        current = board.period_of(now)
        assert current is not None
        oldest = board.previous_start(current[0], self.settings.leaderboard_retention_periods)
        if span[0] < oldest:
            raise FailedPrecondition(
                f"the board keeps {self.settings.leaderboard_retention_periods} past periods; "
                f"the oldest starts at {oldest.isoformat()}",
                field="period_start",
            )
        return int(span[0].timestamp()), span

    async def board(
        self,
        board_id: str,
        *,
        period_start: datetime | None,
        page_size: int,
        page_token: str,
    ) -> BoardView:
        size = paging.page_size(page_size)
        async with self.uow.transaction() as repo:
            board = await self._board(repo, board_id)
            key, span = self._period(board, period_start)
            filters = {"board": board.id, "period": key}
            after = _position(paging.decode(page_token, filters))
            rows = await scores.page(repo.conn, board.id, key, after=after, limit=size + 1)
            entries = await _ranked(repo, board.id, key, rows[:size])
        token = paging.encode(list(rows[size - 1].key), filters) if len(rows) > size else ""
        return BoardView(entries, span, token)

    async def rank(
        self,
        board_id: str,
        *,
        user_id: str,
        around: int,
        user_ids: Sequence[str],
        period_start: datetime | None,
    ) -> BoardView:
        if user_id and user_ids:
            raise InvalidArgument("give either user_id or user_ids, not both", field="user_ids")
        if not user_id and not user_ids:
            raise InvalidArgument("is required (or user_ids)", field="user_id")
        if not 0 <= around <= MAX_AROUND:
            raise InvalidArgument(f"must be between 0 and {MAX_AROUND}", field="around")
        if len(user_ids) > MAX_USER_IDS:
            raise InvalidArgument(f"lists more than {MAX_USER_IDS} users", field="user_ids")
        if user_id:
            check_id(user_id, "user_id")
        for i, u in enumerate(user_ids):
            check_id(u, f"user_ids[{i}]")
        async with self.uow.transaction() as repo:
            board = await self._board(repo, board_id)
            key, span = self._period(board, period_start)
            if user_ids:
                rows = await scores.entries_of(repo.conn, board.id, key, user_ids)
                ranks = [await scores.higher(repo.conn, board.id, key, r.score) + 1 for r in rows]
                names = await user_store.display_names(repo, [r.user_id for r in rows])
                return BoardView(_entries(rows, ranks, names), span)
            found = await scores.entries_of(repo.conn, board.id, key, [user_id])
            if not found:
                return BoardView([], span)
            me = found[0]
            up = await scores.above(repo.conn, board.id, key, me, around) if around else []
            down = (
                await scores.page(repo.conn, board.id, key, after=me.key, limit=around)
                if around
                else []
            )
            entries = await _ranked(repo, board.id, key, [*up, me, *down])
        [mine] = [e for e in entries if e.user_id == user_id]
        return BoardView(entries, span, entry=mine)


def _position(position: object) -> tuple[float, int, str] | None:
    if position is None:
        return None
    if (
        isinstance(position, list)
        and len(position) == 3
        and isinstance(position[0], (int, float))
        and math.isfinite(position[0])
        and isinstance(position[1], int)
        and isinstance(position[2], str)
    ):
        return (float(position[0]), position[1], position[2])
    raise InvalidArgument("is not a token this server issued", field="page_token")


async def _ranked(
    repo: Repository, board_id: str, key: int, rows: Sequence[scores.Row]
) -> list[Entry]:
    """Entries of a contiguous run of the board, ranked (one range count for the run)."""
    if not rows:
        return []
    higher, tied = await scores.ahead(repo.conn, board_id, key, rows[0])
    ranks = scores.rank_window(rows, higher, tied)
    names = await user_store.display_names(repo, [r.user_id for r in rows])
    return _entries(rows, ranks, names)


def _entries(
    rows: Sequence[scores.Row], ranks: Sequence[int], names: dict[str, str]
) -> list[Entry]:
    return [
        Entry(rank, r.user_id, names.get(r.user_id, ""), r.score, scores.from_micros(r.reached))
        for r, rank in zip(rows, ranks, strict=True)
    ]
