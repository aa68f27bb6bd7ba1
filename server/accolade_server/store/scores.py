"""SQL of leaderboards: definitions, score updates on the write path, and rank reads.

Score updates run in the write path's transaction, with the batch store's `write` (the one
writer of the award log): on PostgreSQL as CTEs of its one statement (`Scorer.ctes`), on
SQLite as statements just before its own (`Scorer.apply`); either way the stored points and
progress they read are those before the write. Users are locked by then (`lock_users`), so
reading a user's old score and writing the new one cannot race.

Order on a board is (score desc, reached asc, user_id asc), the ranking index's order; a
rank is 1 + the number of entries with a higher score (standard competition ranking), summed
from the per-score counts kept beside the entries.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from accolade_server.domain.leaderboards import (
    ALL_TIME_KEY,
    POINTS,
    Leaderboard,
    Metric,
    Period,
)
from accolade_server.domain.model import AwardRecord
from accolade_server.store.db import utc
from accolade_server.store.port import Changes, effects
from accolade_server.store.tables import (
    definitions_version,
    leaderboard_counts,
    leaderboard_scores,
    leaderboards,
    progress,
    user_points,
    users,
)

S = leaderboard_scores.c
C = leaderboard_counts.c


def micros(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000 + t.microsecond


def from_micros(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


# -- definitions ---------------------------------------------------------------------------


def _to_json(board: Leaderboard) -> dict[str, Any]:
    d = asdict(board)
    del d["create_time"]
    d["metric"] = board.metric.value
    d["period"] = board.period.value
    return d


def _from_row(row: Any) -> Leaderboard:
    d = dict(row.definition)
    return Leaderboard(
        **{
            **d,
            "metric": Metric(d["metric"]),
            "period": Period(d["period"]),
            "create_time": utc(row.create_time),
        }
    )


async def all_boards(conn: AsyncConnection) -> list[Leaderboard]:
    """Every defined board in id order (without the built-in one)."""
    rows = await conn.execute(sa.select(leaderboards).order_by(leaderboards.c.id))
    return [_from_row(r) for r in rows]


async def get_board(conn: AsyncConnection, board_id: str) -> Leaderboard | None:
    row = (await conn.execute(sa.select(leaderboards).where(leaderboards.c.id == board_id))).first()
    return None if row is None else _from_row(row)


async def insert_board(conn: AsyncConnection, board: Leaderboard, now: datetime) -> bool:
    """Store a new definition; False when the id is taken."""
    found = await conn.execute(sa.select(leaderboards.c.id).where(leaderboards.c.id == board.id))
    if found.first() is not None:
        return False
    await conn.execute(
        sa.insert(leaderboards).values(id=board.id, definition=_to_json(board), create_time=now)
    )
    return True


async def update_board(conn: AsyncConnection, board: Leaderboard) -> None:
    await conn.execute(
        sa.update(leaderboards)
        .where(leaderboards.c.id == board.id)
        .values(definition=_to_json(board))
    )


async def delete_board(conn: AsyncConnection, board_id: str) -> bool:
    """Remove the definition and every entry of the board."""
    await conn.execute(sa.delete(leaderboard_scores).where(S.board_id == board_id))
    await conn.execute(sa.delete(leaderboard_counts).where(C.board_id == board_id))
    result = await conn.execute(sa.delete(leaderboards).where(leaderboards.c.id == board_id))
    return bool(result.rowcount)


async def seed_board(conn: AsyncConnection, board: Leaderboard, now: datetime) -> None:
    """Start a new all-time board from the stored totals (lifetime points, or the
    achievement's values) of the users it counts; period boards start empty."""
    if board.period is not Period.ALL_TIME:
        return
    if board.metric is Metric.ACHIEVEMENT_VALUE:
        source = sa.select(progress.c.user_id, progress.c.value.label("score")).where(
            progress.c.achievement_id == board.achievement_id, progress.c.value != 0
        )
    else:
        source = sa.select(user_points.c.user_id, user_points.c.points.label("score")).where(
            user_points.c.points != 0
        )
    rows = [(r.user_id, float(r.score)) for r in await conn.execute(source)]
    if board.filter_attribute and rows:
        attrs = await attributes(conn, [u for u, _ in rows])
        rows = [(u, s) for u, s in rows if board.matches(attrs.get(u))]
    reached = micros(now)
    for start in range(0, len(rows), 1000):
        await conn.execute(
            sa.insert(leaderboard_scores),
            [
                {
                    "board_id": board.id,
                    "period_start": ALL_TIME_KEY,
                    "user_id": u,
                    "neg_score": -s,
                    "reached": reached,
                }
                for u, s in rows[start : start + 1000]
            ],
        )
    await count_board(conn, board.id)


async def attributes(conn: AsyncConnection, user_ids: Iterable[str]) -> dict[str, Any]:
    ids = sorted(set(user_ids))
    out: dict[str, Any] = {}
    for start in range(0, len(ids), 1000):
        rows = await conn.execute(
            sa.select(users.c.user_id, users.c.attributes).where(
                users.c.user_id.in_(ids[start : start + 1000])
            )
        )
        out.update({r.user_id: r.attributes or {} for r in rows})
    return out


# -- the write path ------------------------------------------------------------------------


class Update(NamedTuple):
    """One entry to set. `mode`: 't' the user's points total (before the write) + amount,
    'a' the entry's score + amount, 's' amount itself, 'g' the entry's score + how much the
    achievement's value grew (amount less the stored value, if positive). A tuple: a batch
    makes many, and they sort by key (board, period, user) as they are."""

    board_id: str
    period_start: int
    user_id: str
    mode: str
    amount: float
    achievement_id: str = ""
    #: The board's filter, applied in SQL on PostgreSQL (in `plan` on SQLite).
    filter_attribute: str = ""
    filter_value: str = ""


def plan(
    boards: Sequence[Leaderboard],
    changes: Changes,
    records: Sequence[AwardRecord],
    now: datetime,
    attrs: Mapping[str, Any] | None = None,
    keys: Mapping[str, int] | None = None,
) -> list[Update]:
    """The entries a write changes, one per (board, period, user), sorted by key. With
    `attrs` (user → attributes), users filtered boards do not count are left out; without,
    the SQL filters them (PostgreSQL). `keys`: each board's current period key, if known."""
    points = effects(records).points if records else {}
    values: dict[str, list[tuple[str, float]]] = {}
    if changes.progress:
        wanted = {b.achievement_id for b in boards if b.metric is Metric.ACHIEVEMENT_VALUE}
        for (u, a), st in changes.progress.items():
            if a in wanted:
                values.setdefault(a, []).append((u, st.value))
    out: list[Update] = []
    for b in boards:
        if b.metric is Metric.ACHIEVEMENT_VALUE:
            found = values.get(b.achievement_id)
            mode, aid = ("s" if b.period is Period.ALL_TIME else "g"), b.achievement_id
        else:
            found = [(u, float(d)) for u, d in points.items()]
            mode, aid = ("t" if b.metric is Metric.LIFETIME_POINTS else "a"), ""
        if not found:
            continue
        key = keys[b.id] if keys is not None else b.period_key(now)
        fa, fv = b.filter_attribute, b.filter_value
        if attrs is not None and fa:
            found = [(u, v) for u, v in found if b.matches(attrs.get(u))]
        out += [Update(b.id, key, u, mode, v, aid, fa, fv) for u, v in found]
    out.sort()
    return out


def users_to_check(
    boards: Sequence[Leaderboard], changes: Changes, records: Sequence[AwardRecord]
) -> set[str]:
    """Users whose attributes filtered boards need."""
    if not any(b.filter_attribute for b in boards):
        return set()
    return {r.user_id for r in records} | {u for u, _ in changes.progress}


# The entries a write changes, with the old and the new (negated) score: `n` of the write.
_CHANGED = """
SELECT board_id, period_start, user_id, old_neg, -score AS new_neg FROM (
  SELECT v.board_id, v.period_start, v.user_id, o.neg_score AS old_neg,
    CASE v.mode WHEN 's' THEN v.amount
      WHEN 't' THEN coalesce(p.points, 0) + v.amount
      WHEN 'a' THEN coalesce(-o.neg_score, 0) + v.amount
      ELSE coalesce(-o.neg_score, 0) + {greatest}(v.amount - coalesce(g.value, 0), 0)
    END AS score
  FROM {values}
  LEFT JOIN leaderboard_scores o ON o.board_id = v.board_id
    AND o.period_start = v.period_start AND o.user_id = v.user_id
  LEFT JOIN user_points p ON p.user_id = v.user_id
  LEFT JOIN progress g ON g.user_id = v.user_id AND g.achievement_id = v.achievement_id
) x WHERE (old_neg IS NOT NULL OR score <> 0) AND (old_neg IS NULL OR old_neg <> -score)
"""
_UPSERT_SCORES = """
INSERT INTO leaderboard_scores (board_id, period_start, user_id, neg_score, reached)
{rows}
ON CONFLICT (board_id, period_start, user_id) DO UPDATE
SET neg_score = excluded.neg_score, reached = excluded.reached
"""
# Count rows are taken in key order, so concurrent writers cannot deadlock on them.
_ADD_COUNTS = """
INSERT INTO leaderboard_counts (board_id, period_start, neg_score, entries)
{rows}
ON CONFLICT (board_id, period_start, neg_score) DO UPDATE
SET entries = leaderboard_counts.entries + excluded.entries
"""
_PG_COUNTS = (
    "SELECT board_id, period_start, neg, sum(d) FROM ("
    " SELECT board_id, period_start, new_neg AS neg, 1 AS d FROM lb_n"
    " UNION ALL SELECT board_id, period_start, old_neg, -1 FROM lb_n WHERE old_neg IS NOT NULL"
    ") c GROUP BY board_id, period_start, neg HAVING sum(d) <> 0"
    " ORDER BY board_id, period_start, neg"
)
_PG_FORGET = (
    "SELECT board_id, period_start, neg_score, -count(*) FROM leaderboard_scores"
    " WHERE user_id = ANY({users}) GROUP BY board_id, period_start, neg_score"
    " ORDER BY board_id, period_start, neg_score"
)


def pg_ctes(
    updates: Sequence[Update],
    erased: Collection[str],
    now: datetime,
    add: Callable[[Any, str], str],
) -> list[str]:
    """The score changes as CTEs of the batch write's one statement on PostgreSQL: all its
    parts read one snapshot, so points and progress are read as they were before the write.
    Filtered boards are filtered here (by the users' stored attributes)."""
    ctes = []
    if erased:  # the erasure's own part deletes the entries
        users = add(sorted(erased), "::text[]")
        ctes.append(f"lb_f AS ({_ADD_COUNTS.format(rows=_PG_FORGET.format(users=users))})")
    if updates:
        casts = ("text", "int8", "text", "text", "float8", "text", "text", "text")
        columns = [
            add(list(column), f"::{cast}[]")
            for column, cast in zip(zip(*updates, strict=True), casts, strict=True)
        ]
        values = (
            "(SELECT w.* FROM unnest("
            + ", ".join(columns)
            + ") AS w(board_id, period_start, user_id, mode, amount, achievement_id,"
            " filter_attribute, filter_value) LEFT JOIN users u ON u.user_id = w.user_id"
            " WHERE w.filter_attribute = ''"
            " OR u.attributes ->> w.filter_attribute = w.filter_value) v"
        )
        reached = add(micros(now), "::int8")
        rows = f"SELECT board_id, period_start, user_id, new_neg, {reached} FROM lb_n"
        ctes += [
            f"lb_n AS ({_CHANGED.format(greatest='greatest', values=values)})",
            f"lb_s AS ({_UPSERT_SCORES.format(rows=rows)})",
            f"lb_c AS ({_ADD_COUNTS.format(rows=_PG_COUNTS)})",
        ]
    return ctes


_COLUMNS = ("board_id", "period_start", "user_id", "mode", "amount", "achievement_id")
_SQLITE_ROWS = "SELECT * FROM (VALUES {values}) WHERE true"


async def sqlite_write(conn: AsyncConnection, updates: Sequence[Update], now: datetime) -> None:
    """Set the entries and keep the per-score counts (SQLite: a few statements)."""
    if not updates:
        return
    reached = micros(now)
    changed: list[tuple[Any, ...]] = []
    for start in range(0, len(updates), 500):
        chunk = updates[start : start + 500]
        values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk))
        sql = f"WITH v({', '.join(_COLUMNS)}) AS (VALUES {values}) " + _CHANGED.format(
            greatest="max", values="v"
        )
        params = [getattr(u, c) for u in chunk for c in _COLUMNS]
        changed += [tuple(r) for r in await conn.exec_driver_sql(sql, tuple(params))]
    if not changed:
        return
    rows = [(b, p, u, new, reached) for b, p, u, _old, new in changed]
    await _sqlite_many(conn, _UPSERT_SCORES, rows)
    deltas: dict[tuple[str, int, float], int] = {}
    for b, p, _u, old, new in changed:
        deltas[(b, p, new)] = deltas.get((b, p, new), 0) + 1
        if old is not None:
            deltas[(b, p, old)] = deltas.get((b, p, old), 0) - 1
    await add_counts(conn, deltas)


async def _sqlite_many(
    conn: AsyncConnection, template: str, rows: Sequence[tuple[Any, ...]]
) -> None:
    width = len(rows[0])
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        values = ", ".join(["(" + ", ".join(["?"] * width) + ")"] * len(chunk))
        sql = template.format(rows=_SQLITE_ROWS.format(values=values))
        await conn.exec_driver_sql(sql, tuple(x for row in chunk for x in row))


async def add_counts(conn: AsyncConnection, deltas: Mapping[tuple[str, int, float], int]) -> None:
    """Add to the per-score counts, in key order (SQLite)."""
    rows = [(*k, d) for k, d in sorted(deltas.items()) if d]
    if rows:
        await _sqlite_many(conn, _ADD_COUNTS, rows)


async def forget(conn: AsyncConnection, user_ids: Collection[str]) -> None:
    """Take erased users' entries out of the counts (SQLite; the entries go with the
    erasure)."""
    rows = await conn.execute(
        sa.select(S.board_id, S.period_start, S.neg_score).where(S.user_id.in_(sorted(user_ids)))
    )
    deltas: dict[tuple[str, int, float], int] = {}
    for r in rows:
        key = (r.board_id, int(r.period_start), float(r.neg_score))
        deltas[key] = deltas.get(key, 0) - 1
    await add_counts(conn, deltas)


async def count_board(conn: AsyncConnection, board_id: str) -> None:
    """Build a (seeded) board's per-score counts from its entries."""
    await conn.execute(
        sa.insert(leaderboard_counts).from_select(
            ["board_id", "period_start", "neg_score", "entries"],
            sa.select(S.board_id, S.period_start, S.neg_score, sa.func.count())
            .where(S.board_id == board_id)
            .group_by(S.board_id, S.period_start, S.neg_score),
        )
    )


async def prune(conn: AsyncConnection, board_id: str, before: int) -> None:
    """Drop a period board's periods that started before `before` (retention)."""
    for table in (leaderboard_scores, leaderboard_counts):
        await conn.execute(
            sa.delete(table).where(
                table.c.board_id == board_id,
                table.c.period_start < before,
                table.c.period_start != ALL_TIME_KEY,
            )
        )


class Versioned(Protocol):
    version: int | None


class Scorer:
    """The boards of the current definitions version, and the score updates of a write.

    Board changes bump the definitions version (like achievement changes), which every
    transaction of the write path reads first (`RuleCache`), so a board defined on one
    replica is scored by the next event everywhere. `retention` periods are kept per
    period board; older ones are dropped with the first write of a new period.
    """

    def __init__(self, rules: Versioned, *, retention: int) -> None:
        self.rules = rules
        self.retention = retention
        self.version: int | None = None
        self.boards: list[Leaderboard] = [POINTS]
        self._pruned: dict[str, int] = {}
        self._spans: dict[str, tuple[datetime, datetime]] = {}

    async def current(self, conn: AsyncConnection) -> list[Leaderboard]:
        version = self.rules.version
        if version is None:
            version = (
                await conn.execute(
                    sa.select(definitions_version.c.version).where(definitions_version.c.id == 1)
                )
            ).scalar_one()
        if version != self.version:
            self.boards = [POINTS, *await all_boards(conn)]
            self.version = version
            self._spans.clear()  # a board may have been defined again differently
        return self.boards

    async def _updates(
        self,
        conn: AsyncConnection,
        changes: Changes,
        records: Sequence[AwardRecord],
        now: datetime,
        *,
        filter_here: bool,
    ) -> list[Update]:
        if not records and not changes.progress:
            return []
        boards = await self.current(conn)
        attrs = None
        if filter_here:
            wanted = users_to_check(boards, changes, records)
            attrs = await attributes(conn, wanted) if wanted else {}
        await self._prune(conn, boards, now)
        return plan(boards, changes, records, now, attrs)

    async def _prune(
        self, conn: AsyncConnection, boards: Sequence[Leaderboard], now: datetime
    ) -> None:
        for b in boards:
            if b.period is not Period.ALL_TIME:
                key = b.period_key(now)
                if self._pruned.get(b.id) != key:
                    span = b.period_of(now)
                    assert span is not None
                    oldest = b.previous_start(span[0], self.retention)
                    await prune(conn, b.id, int(oldest.timestamp()))
                    self._pruned[b.id] = key

    async def apply(
        self, conn: AsyncConnection, changes: Changes, records: Sequence[AwardRecord], now: datetime
    ) -> None:
        """SQLite: update the entries a write changes, before the write's own statements."""
        if changes.erased:
            await forget(conn, changes.erased)
        await sqlite_write(
            conn, await self._updates(conn, changes, records, now, filter_here=True), now
        )

    async def ctes(
        self,
        conn: AsyncConnection,
        changes: Changes,
        records: Sequence[AwardRecord],
        now: datetime,
        add: Callable[[Any, str], str],
    ) -> list[str]:
        """PostgreSQL: the same, as CTEs of the write's one statement (see `pg_ctes`)."""
        updates = await self._updates(conn, changes, records, now, filter_here=False)
        return pg_ctes(updates, changes.erased, now, add)


# -- reads ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    user_id: str
    score: float
    reached: int

    @property
    def key(self) -> tuple[float, int, str]:
        """The position in board order (also what page tokens hold)."""
        return (self.score, self.reached, self.user_id)


_ORDER = sa.tuple_(S.neg_score, S.reached, S.user_id)


def _at(key: tuple[float, int, str]) -> sa.ColumnElement[Any]:
    score, reached, user_id = key
    return sa.tuple_(sa.literal(-score), sa.literal(reached), sa.literal(user_id))


def _board(board_id: str, period: int) -> sa.ColumnElement[bool]:
    return sa.and_(S.board_id == board_id, S.period_start == period)


def _select() -> sa.Select[Any]:
    return sa.select(S.user_id, S.neg_score, S.reached)


def _rows(result: Iterable[Any]) -> list[Row]:
    return [Row(r.user_id, -float(r.neg_score), int(r.reached)) for r in result]


async def page(
    conn: AsyncConnection,
    board_id: str,
    period: int,
    *,
    after: tuple[float, int, str] | None,
    limit: int,
) -> list[Row]:
    """Up to `limit` entries in board order, after the position `after`."""
    query = (
        _select()
        .where(_board(board_id, period))
        .order_by(S.neg_score, S.reached, S.user_id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(_at(after) < _ORDER)
    return _rows(await conn.execute(query))


async def above(
    conn: AsyncConnection, board_id: str, period: int, row: Row, limit: int
) -> list[Row]:
    """Up to `limit` entries just before `row`, in board order."""
    query = (
        _select()
        .where(_board(board_id, period), _at(row.key) > _ORDER)
        .order_by(S.neg_score.desc(), S.reached.desc(), S.user_id.desc())
        .limit(limit)
    )
    return list(reversed(_rows(await conn.execute(query))))


async def entries_of(
    conn: AsyncConnection, board_id: str, period: int, user_ids: Collection[str]
) -> list[Row]:
    """The entries of these users, in board order."""
    if not user_ids:
        return []
    query = _select().where(_board(board_id, period), S.user_id.in_(sorted(set(user_ids))))
    return sorted(_rows(await conn.execute(query)), key=lambda r: (-r.score, r.reached, r.user_id))


async def ahead(conn: AsyncConnection, board_id: str, period: int, row: Row) -> tuple[int, int]:
    """(entries with a higher score, entries with the same score before `row`)."""
    tied = sa.select(sa.func.count()).where(
        _board(board_id, period),
        S.neg_score == -row.score,
        sa.tuple_(S.reached, S.user_id)
        < sa.tuple_(sa.literal(row.reached), sa.literal(row.user_id)),
    )
    return await higher(conn, board_id, period, row.score), int(
        (await conn.execute(tied)).scalar_one()
    )


async def higher(conn: AsyncConnection, board_id: str, period: int, score: float) -> int:
    """How many entries have a higher score: a sum over the per-score counts above it."""
    query = sa.select(sa.func.coalesce(sa.func.sum(C.entries), 0)).where(
        C.board_id == board_id, C.period_start == period, C.neg_score < -score
    )
    return int((await conn.execute(query)).scalar_one())


def rank_window(rows: Sequence[Row], higher_than_first: int, tied_before_first: int) -> list[int]:
    """Ranks of a contiguous run of entries in board order, given how many entries have a
    higher score than its first and how many with the first's score come before it."""
    ranks: list[int] = []
    for i, row in enumerate(rows):
        if i == 0 or row.score == rows[0].score:
            ranks.append(higher_than_first + 1)
        elif row.score == rows[i - 1].score:
            ranks.append(ranks[-1])
        else:  # everyone before it in the run, and those tied with the first before the run
            ranks.append(higher_than_first + tied_before_first + i + 1)
    return ranks
