"""Analytics bookkeeping of the write path, and the reads of the Insights service.

`Books` rides along with a batch store (`store/batchstore.py`): it notes which progress rows
the batch's snapshot found, and adds its counters to the batch's own write — on PostgreSQL as
more parts of the one statement, on SQLite as a few more statements — so they commit or roll
back with what they count (a retried event id counts once; a lost race counts nothing).

What is kept (tables at the end of `store/tables.py`):
- `insights_rollup`: per hour and per UTC day, events by type, awards and revocations by
  achievement, level and source (with their points), the time each rule award took from the
  user's first progress (log2 buckets, 4 per doubling); active users per hour, day and week;
  and, as metric "seen", how many users were last seen on each day (moved as users return).
- `insights_totals`: holders per level and users who started, per achievement.
- `insights_last_seen`, `insights_first`: per user, the last event of each type (to the
  minute on PostgreSQL) and the first progress on each achievement.
- condition errors: per achievement in `insights_totals` (metric "errors"), and per user and
  achievement in `insights_errors` (count, last message, when) — written only by a batch
  that had some.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from accolade_server.domain.model import AwardKind, AwardRecord, AwardSource, Holding
from accolade_server.domain.state import Snapshot, UserKey
from accolade_server.store import columns as C
from accolade_server.store.db import number_array, text_array, utc
from accolade_server.store.port import Changes, Keys
from accolade_server.store.tables import (
    holdings,
    insights_errors,
    insights_first,
    insights_last_seen,
    insights_rollup,
    insights_totals,
)

#: Rows every batch updates (events, active users) are spread over this many shards.
SHARDS = 8
#: Buckets of the time to earn per doubling of the duration.
EARN_STEPS = 4
#: Longest condition error message kept (characters).
MAX_ERROR = 200

RollupKey = tuple[str, str, str, datetime, str, str]  # metric, period, achievement, bucket, …
TotalKey = tuple[str, str, str]  # achievement, metric, tier


def hour_of(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_of(t: datetime) -> datetime:
    return hour_of(t).replace(hour=0)


def week_of(t: datetime) -> datetime:
    d = day_of(t)
    return d - timedelta(days=d.weekday())


def earn_bucket(seconds: float) -> int:
    return math.floor(EARN_STEPS * math.log2(max(seconds, 1.0)))


def earn_upper(bucket: int) -> float:
    """The longest duration in `bucket`, in seconds."""
    return float(2 ** ((bucket + 1) / EARN_STEPS))


@dataclass(slots=True)
class _Plan:
    rollup: Counter[RollupKey]
    amounts: Counter[RollupKey]
    totals: Counter[TotalKey]
    first: list[UserKey]
    seen: list[tuple[str, str]]  # (user, event type)
    users: list[str]  # users who sent an event
    earned: list[AwardRecord]  # rule awards: time to earn
    failed: list[tuple[str, str, int, str]]  # (user, achievement, errors, last message)


class Books:
    def __init__(self) -> None:
        self.asked: set[UserKey] = set()
        self.found: set[UserKey] = set()
        #: The holdings of each user as the transaction's first snapshot of them read them,
        #: and, built from them when an entry needs it, (user, achievement, tier) -> the
        #: periods the user holds it in ("" when it does not repeat): a user holding a level
        #: of a repeating achievement in several periods is one holder.
        self.holdings: dict[str, Sequence[Holding]] = {}
        self.held: dict[tuple[str, str, str], set[str]] = {}

    def saw(self, keys: Keys, snap: Snapshot) -> None:
        self.asked.update(keys.progress)
        self.found.update(snap.progress)
        for user in keys.holdings:
            if user not in self.holdings:  # a later read: what was planned since counts
                self.holdings[user] = tuple(snap.holdings.get(user, ()))

    def _holder_change(self, r: AwardRecord) -> int:
        """+1 when an award makes its user a holder of the level, -1 when a revocation
        ends that: a level of a repeating achievement counts once for a user however many
        periods they hold it in. Users whose holdings no snapshot read (none of the write
        paths) count per entry."""
        award = r.kind is AwardKind.AWARD
        held = self.holdings.get(r.user_id)
        if held is None:
            return 1 if award else -1
        key = (r.user_id, r.achievement_id, r.tier)
        periods = self.held.get(key)
        if periods is None:
            periods = self.held[key] = {
                h.period for h in held if (h.achievement_id, h.tier) == key[1:]
            }
        if award:
            change = 0 if periods else 1
            periods.add(r.period)
            return change
        if not periods:  # not held as far as the snapshot knew: counted per entry
            return -1
        periods.discard(r.period)
        return 0 if periods else -1

    def _plan(self, changes: Changes, records: Sequence[AwardRecord], now: datetime) -> _Plan:
        rollup: Counter[RollupKey] = Counter()
        amounts: Counter[RollupKey] = Counter()
        totals: Counter[TotalKey] = Counter()
        hour, day = hour_of(now), day_of(now)
        for row in changes.events:
            for period, bucket in (("h", hour), ("d", day)):
                rollup["event", period, "", bucket, "", row.event.type] += 1
        for r in records:
            if r.kind is AwardKind.ERASURE:
                continue
            # Counted by kind ("award", "revocation", and kinds added later, under their name).
            for period, bucket in (("h", hour_of(r.award_time)), ("d", day_of(r.award_time))):
                k = (r.kind.value[:16], period, r.achievement_id, bucket, r.tier, r.source.value)
                rollup[k] += 1
                amounts[k] += r.points
            if r.kind in (AwardKind.AWARD, AwardKind.REVOCATION):
                totals[r.achievement_id, "holders", r.tier] += self._holder_change(r)
        first = sorted(k for k in changes.progress if k in self.asked and k not in self.found)
        self.found.update(first)
        for _, aid in first:
            totals[aid, "started", ""] += 1
        seen = sorted({(row.event.user_id, row.event.type) for row in changes.events})
        failed: dict[UserKey, tuple[int, str]] = {}
        for f in changes.failed:
            totals[f.achievement_id, "errors", ""] += 1
            n = failed.get((f.user_id, f.achievement_id), (0, ""))[0]
            failed[f.user_id, f.achievement_id] = (n + 1, f.message[:MAX_ERROR])
        return _Plan(
            rollup,
            amounts,
            Counter({k: v for k, v in totals.items() if v}),
            first,
            seen,
            sorted({u for u, _ in seen}),
            [r for r in records if r.kind is AwardKind.AWARD and r.source is AwardSource.RULE],
            [(u, a, n, m) for (u, a), (n, m) in sorted(failed.items())],
        )

    # -- PostgreSQL: parts of the batch's one statement ---------------------------------

    def pg_parts(
        self, changes: Changes, records: Sequence[AwardRecord], params: C.PgParams, now: datetime
    ) -> list[str]:
        plan = self._plan(changes, records, now)
        parts: list[str] = []
        sources: list[str] = []
        if plan.rollup:
            keys = sorted(plan.rollup)
            cols = list(zip(*keys, strict=True))
            sources.append(
                "SELECT * FROM unnest("
                f"{params.add(text_array(cols[0]), '::text::text[]')}, "
                f"{params.add(text_array(cols[1]), '::text::text[]')}, "
                f"{params.add(text_array(cols[2]), '::text::text[]')}, "
                f"{params.add(list(cols[3]), '::timestamptz[]')}, "
                f"{params.add(text_array(cols[4]), '::text::text[]')}, "
                f"{params.add(text_array(cols[5]), '::text::text[]')}, "
                f"{params.add(number_array(plan.rollup[k] for k in keys), '::text::int8[]')}, "
                f"{params.add(number_array(plan.amounts[k] for k in keys), '::text::int8[]')})"
            )
        if plan.users:
            users = params.add(text_array(plan.users), "::text::text[]")
            parts.append(
                "ius AS (SELECT u.user_id, (SELECT max(s.last_seen) FROM insights_last_seen s "
                f"WHERE s.user_id = u.user_id) AS old FROM unnest({users}) AS u(user_id))"
            )
            h = params.add(hour_of(now), "::timestamptz")
            d = params.add(day_of(now), "::timestamptz")
            w = params.add(week_of(now), "::timestamptz")
            for period, start in (("h", h), ("d", d), ("w", w)):
                sources.append(
                    f"SELECT 'active', '{period}', '', {start}, '', '', "
                    f"count(*) FILTER (WHERE old IS NULL OR old < {start}), 0::int8 FROM ius"
                )
            sources.append(
                f"SELECT 'seen', 'd', '', {d}, '', '', "
                f"count(*) FILTER (WHERE old IS NULL OR old < {d}), 0::int8 FROM ius"
            )
            sources.append(
                "SELECT 'seen', 'd', '', "
                "date_trunc('day', old AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', '', '', "
                f"-count(*), 0::int8 FROM ius WHERE old < {d} GROUP BY 4"
            )
            u, ty = zip(*plan.seen, strict=True)
            parts.append(
                "isn AS (INSERT INTO insights_last_seen AS t (user_id, event_type, last_seen) "
                f"SELECT x.u, x.ty, {params.now(now)} FROM unnest("
                f"{params.add(text_array(u), '::text::text[]')}, "
                f"{params.add(text_array(ty), '::text::text[]')}) AS x(u, ty) "
                "ON CONFLICT (user_id, event_type) DO UPDATE SET last_seen = excluded.last_seen"
                # To the minute, and always into a new hour (active users count on it): most
                # events of a busy user then leave the row as it is (no new row version).
                " WHERE t.last_seen < excluded.last_seen - interval '1 minute'"
                " OR date_trunc('hour', t.last_seen AT TIME ZONE 'UTC')"
                " < date_trunc('hour', excluded.last_seen AT TIME ZONE 'UTC'))"
            )
        if plan.earned:
            e = plan.earned
            sources.append(
                "SELECT 'earn', 'd', v.aid, date_trunc('day', v.t AT TIME ZONE 'UTC') "
                "AT TIME ZONE 'UTC', v.tier, floor("
                f"{EARN_STEPS} * ln(greatest(extract(epoch FROM v.t - coalesce(f.first_time, v.t)),"
                " 1)) / ln(2))::int8::text, 1::int8, 0::int8 FROM unnest("
                f"{params.add(text_array(r.user_id for r in e), '::text::text[]')}, "
                f"{params.add(text_array(r.achievement_id for r in e), '::text::text[]')}, "
                f"{params.add(text_array(r.tier for r in e), '::text::text[]')}, "
                f"{params.add([r.award_time for r in e], '::timestamptz[]')}) "
                "AS v(uid, aid, tier, t) LEFT JOIN insights_first f "
                "ON f.user_id = v.uid AND f.achievement_id = v.aid"
            )
        shard = str(random.randrange(SHARDS))  # a literal: the statement is prepared per text
        if sources:
            union = "\nUNION ALL ".join(sources)
            parts.append(
                "iro AS (INSERT INTO insights_rollup AS t "
                "(metric, period, achievement_id, bucket, tier, key, shard, count, amount) "
                f"SELECT m, p, a, b, ti, k, {shard}, sum(c), sum(am) FROM ({union}) "
                "AS x(m, p, a, b, ti, k, c, am) GROUP BY 1, 2, 3, 4, 5, 6 "
                "HAVING sum(c) <> 0 OR sum(am) <> 0 ORDER BY 1, 2, 3, 4, 5, 6 "
                "ON CONFLICT (metric, period, achievement_id, bucket, tier, key, shard) "
                "DO UPDATE SET count = t.count + excluded.count, "
                "amount = t.amount + excluded.amount)"
            )
        if plan.totals:
            keys2 = sorted(plan.totals)
            a, m, ti = zip(*keys2, strict=True)
            counts = number_array(plan.totals[k] for k in keys2)
            arrays = ", ".join(params.add(text_array(col), "::text::text[]") for col in (a, m, ti))
            parts.append(
                "ito AS (INSERT INTO insights_totals AS t "
                "(achievement_id, metric, tier, shard, count) "
                f"SELECT x.a, x.m, x.ti, {shard}, x.c FROM unnest("
                f"{arrays}, {params.add(counts, '::text::int8[]')}) "
                "AS x(a, m, ti, c) ON CONFLICT (achievement_id, metric, tier, shard) "
                "DO UPDATE SET count = t.count + excluded.count)"
            )
        if plan.first:
            u2, a2 = zip(*plan.first, strict=True)
            parts.append(
                "ifi AS (INSERT INTO insights_first (user_id, achievement_id, first_time) "
                f"SELECT x.u, x.a, {params.now(now)} FROM unnest("
                f"{params.add(text_array(u2), '::text::text[]')}, "
                f"{params.add(text_array(a2), '::text::text[]')}) AS x(u, a) "
                "ON CONFLICT DO NOTHING)"
            )
        if plan.failed:
            u3, a3, n3, m3 = zip(*plan.failed, strict=True)
            parts.append(
                "ier AS (INSERT INTO insights_errors AS t "
                "(user_id, achievement_id, count, last_error, last_time) "
                f"SELECT x.u, x.a, x.n, x.m, {params.now(now)} FROM unnest("
                f"{params.add(text_array(u3), '::text::text[]')}, "
                f"{params.add(text_array(a3), '::text::text[]')}, "
                f"{params.add(number_array(n3), '::text::int8[]')}, "
                f"{params.add(text_array(m3), '::text::text[]')}) AS x(u, a, n, m) "
                "ON CONFLICT (user_id, achievement_id) DO UPDATE SET count = t.count + "
                "excluded.count, last_error = excluded.last_error, last_time = excluded.last_time)"
            )
        return parts

    # -- SQLite: statements after the batch's ---------------------------------------------

    async def sqlite_write(
        self,
        conn: AsyncConnection,
        changes: Changes,
        records: Sequence[AwardRecord],
        now: datetime,
    ) -> None:
        plan = self._plan(changes, records, now)
        rollup, amounts = plan.rollup, plan.amounts
        if plan.users:
            old = dict(
                (
                    await conn.execute(
                        sa.select(
                            insights_last_seen.c.user_id,
                            sa.func.max(insights_last_seen.c.last_seen),
                        )
                        .where(insights_last_seen.c.user_id.in_(plan.users))
                        .group_by(insights_last_seen.c.user_id)
                    )
                ).all()
            )
            for user in plan.users:
                was = utc(old.get(user))
                for period, start in (("h", hour_of(now)), ("d", day_of(now)), ("w", week_of(now))):
                    if was is None or was < start:
                        rollup["active", period, "", start, "", ""] += 1
                if was is None or was < day_of(now):
                    rollup["seen", "d", "", day_of(now), "", ""] += 1
                    if was is not None:
                        rollup["seen", "d", "", day_of(was), "", ""] -= 1
            stmt = sqlite.insert(insights_last_seen)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["user_id", "event_type"],
                    set_={
                        "last_seen": sa.func.max(
                            insights_last_seen.c.last_seen, stmt.excluded.last_seen
                        )
                    },
                ),
                [{"user_id": u, "event_type": t, "last_seen": now} for u, t in plan.seen],
            )
        if plan.earned:
            keys = {(r.user_id, r.achievement_id) for r in plan.earned}
            found = await _first_times(conn, keys)
            for r in plan.earned:
                start = found.get((r.user_id, r.achievement_id), r.award_time)
                secs = (r.award_time - start).total_seconds()
                rollup[
                    "earn",
                    "d",
                    r.achievement_id,
                    day_of(r.award_time),
                    r.tier,
                    str(earn_bucket(secs)),
                ] += 1
        shard = random.randrange(SHARDS)
        rows = [
            {
                "metric": k[0],
                "period": k[1],
                "achievement_id": k[2],
                "bucket": k[3],
                "tier": k[4],
                "key": k[5],
                "shard": shard,
                "count": rollup[k],
                "amount": amounts[k],
            }
            for k in sorted(set(rollup) | set(amounts))
            if rollup[k] or amounts[k]
        ]
        if rows:
            stmt2 = sqlite.insert(insights_rollup)
            await conn.execute(
                stmt2.on_conflict_do_update(
                    index_elements=[c.name for c in insights_rollup.primary_key],
                    set_={
                        "count": insights_rollup.c.count + stmt2.excluded["count"],
                        "amount": insights_rollup.c.amount + stmt2.excluded.amount,
                    },
                ),
                rows,
            )
        if plan.totals:
            await _add_totals(conn, plan.totals, shard)
        if plan.first:
            await conn.execute(
                sqlite.insert(insights_first).on_conflict_do_nothing(),
                [{"user_id": u, "achievement_id": a, "first_time": now} for u, a in plan.first],
            )
        if plan.failed:
            stmt3 = sqlite.insert(insights_errors)
            e = insights_errors.c
            await conn.execute(
                stmt3.on_conflict_do_update(
                    index_elements=["user_id", "achievement_id"],
                    set_={
                        "count": e.count + stmt3.excluded["count"],
                        "last_error": stmt3.excluded.last_error,
                        "last_time": stmt3.excluded.last_time,
                    },
                ),
                [
                    {
                        "user_id": u,
                        "achievement_id": a,
                        "count": n,
                        "last_error": m,
                        "last_time": now,
                    }
                    for u, a, n, m in plan.failed
                ],
            )

    # -- erasure (rare): before the batch's own deletes, on both backends ------------------

    async def erase(
        self, conn: AsyncConnection, state: Iterable[str], log: Iterable[str], now: datetime
    ) -> None:
        """Take erased users out of the counts of current things: holders (their log is
        erased), starts and last-seen days (their state is); their condition errors go (the
        achievement's count of errors stays, like its count of events)."""
        state, log = sorted(set(state)), sorted(set(log))
        totals: Counter[TotalKey] = Counter()
        if log:
            held = await conn.execute(
                sa.select(
                    holdings.c.achievement_id,
                    holdings.c.tier,
                    sa.func.count(sa.distinct(holdings.c.user_id)),  # one per user, any period
                )
                .where(holdings.c.user_id.in_(log))
                .group_by(holdings.c.achievement_id, holdings.c.tier)
            )
            for aid, tier, n in held:
                totals[aid, "holders", tier] -= n
        if state:
            started = await conn.execute(
                sa.select(insights_first.c.achievement_id, sa.func.count())
                .where(insights_first.c.user_id.in_(state))
                .group_by(insights_first.c.achievement_id)
            )
            for aid, n in started:
                totals[aid, "started", ""] -= n
            last = await conn.execute(
                sa.select(sa.func.max(insights_last_seen.c.last_seen))
                .where(insights_last_seen.c.user_id.in_(state))
                .group_by(insights_last_seen.c.user_id)
            )
            days = Counter(day_of(utc(t) or now) for (t,) in last)
            for day, n in sorted(days.items()):
                await _add_rollup(conn, ("seen", "d", "", day, "", ""), -n)
            for table in (insights_first, insights_last_seen, insights_errors):
                await conn.execute(sa.delete(table).where(table.c.user_id.in_(state)))
        if totals:
            await _add_totals(conn, totals, 0)


async def _first_times(conn: AsyncConnection, keys: Iterable[UserKey]) -> dict[UserKey, datetime]:
    t = insights_first
    rows = await conn.execute(
        sa.select(t.c.user_id, t.c.achievement_id, t.c.first_time).where(
            sa.tuple_(t.c.user_id, t.c.achievement_id).in_(sorted(keys))
        )
    )
    return {(u, a): utc(f) or f for u, a, f in rows}


def _upsert(conn: AsyncConnection, table: sa.Table) -> Any:
    return (sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert)(table)


async def _add_totals(conn: AsyncConnection, totals: Counter[TotalKey], shard: int) -> None:
    stmt = _upsert(conn, insights_totals)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["achievement_id", "metric", "tier", "shard"],
            set_={"count": insights_totals.c.count + stmt.excluded["count"]},
        ),
        [
            {"achievement_id": a, "metric": m, "tier": ti, "shard": shard, "count": n}
            for (a, m, ti), n in sorted(totals.items())
        ],
    )


async def _add_rollup(conn: AsyncConnection, key: RollupKey, count: int) -> None:
    stmt = _upsert(conn, insights_rollup)
    values = dict(
        zip(("metric", "period", "achievement_id", "bucket", "tier", "key"), key, strict=True)
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[c.name for c in insights_rollup.primary_key],
            set_={"count": insights_rollup.c.count + stmt.excluded["count"]},
        ),
        [{**values, "shard": 0, "count": count, "amount": 0}],
    )
