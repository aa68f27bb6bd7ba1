"""The write path's store port (`store/batchstore.py`) on each backend, without a server."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from accolade_server.domain.model import AwardKind, AwardRecord, AwardSource, Holding
from accolade_server.domain.state import Event, ProgressState
from accolade_server.service import ledger
from accolade_server.store import batchstore
from accolade_server.store.port import Changes, EventRow, Keys, Locked
from accolade_server.store.tables import awards, events, user_points, users
from accolade_server.store.uow import UnitOfWork
from tests.conftest import Database

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def uow(db: Database) -> UnitOfWork:
    return UnitOfWork(
        db.engine, schema=db.schema, batch_store=batchstore.for_backend(db.backend == "sqlite")
    )


def ev(event_id: str, user: str = "u1", **properties: object) -> Event:
    return Event(event_id, user, "buy", properties, NOW)


def award(user: str, aid: str, tier: str = "", points: int = 0) -> ledger.Pending:
    return ledger.Pending(user, aid, tier, points, AwardSource.RULE)


async def test_a_written_batch_reads_back_as_its_snapshot(db: Database) -> None:
    async with uow(db).transaction() as repo:
        store = repo.batch
        await store.lock_users(["u2", "u1"], NOW)
        changes = Changes(
            events=[
                EventRow(ev("e1", sku="a"), True, {"awards": [], "views": []}),
                EventRow(ev("e2", user="u2"), False),
            ],
            progress={
                ("u1", "buyer"): ProgressState(2.5, 1, 20000, 3),
                ("u2", "x"): ProgressState(),
            },
            distinct=[("u1", "buyer", "hash-a")],
        )
        assert await store.write(changes, [], NOW) == 2
    async with uow(db).transaction() as repo:
        snap = await repo.batch.read(
            Keys(
                event_ids=["e1", "e2", "e3"],
                progress=[("u1", "buyer"), ("u1", "nothing")],
                holdings=["u1", "nobody"],
                distinct=[("u1", "buyer", "hash-a"), ("u1", "buyer", "hash-b")],
            )
        )
    assert snap.outcomes == {"e1": (True, {"awards": [], "views": []}), "e2": (False, None)}
    assert snap.progress == {("u1", "buyer"): ProgressState(2.5, 1, 20000, 3)}
    assert snap.holdings == {"u1": [], "nobody": []}
    assert snap.distinct == {("u1", "buyer", "hash-a")}


async def test_events_already_recorded_are_not_counted_as_written(db: Database) -> None:
    for expected in (1, 0):
        async with uow(db).transaction() as repo:
            assert await repo.batch.write(Changes(events=[EventRow(ev("e1"), True)]), [], NOW) == (
                expected
            )


async def test_progress_is_upserted(db: Database) -> None:
    for state in (ProgressState(1, 0), ProgressState(7, 2, None, 0)):
        async with uow(db).transaction() as repo:
            await repo.batch.write(Changes(progress={("u1", "a"): state}), [], NOW)
    async with uow(db).transaction() as repo:
        snap = await repo.batch.read(Keys(progress=[("u1", "a")]))
    assert snap.progress == {("u1", "a"): ProgressState(7, 2, None, 0)}


async def test_log_entries_carry_their_holdings_and_points(db: Database) -> None:
    unit = uow(db)
    committed: list[AwardRecord] = []
    unit.on_awards = committed.extend
    async with unit.transaction() as repo:
        store = repo.batch
        await store.lock_users(["u1"], NOW)
        records = await ledger.allocate(
            store, [award("u1", "a", "bronze", 5), award("u1", "a", "silver", 10)], NOW
        )
        await store.write(Changes(), records, NOW)
    assert [r.cursor for r in committed] == [1, 2]
    async with unit.transaction() as repo:
        assert await repo.points("u1") == 15
        store = repo.batch
        [silver] = await ledger.allocate(
            store,
            [ledger.Pending("u1", "a", "silver", -10, AwardSource.MANUAL, AwardKind.REVOCATION)],
            NOW,
        )
        await store.write(Changes(), [silver], NOW)
    async with unit.transaction() as repo:
        snap = await repo.batch.read(Keys(holdings=["u1"]))
        assert snap.holdings["u1"] == [Holding("a", "bronze", 1, 5, NOW)]
        assert await repo.points("u1") == 5
        log = await repo.awards_after(0, 10)
    assert [(r.cursor, r.tier, r.kind) for r in log] == [
        (1, "bronze", AwardKind.AWARD),
        (2, "silver", AwardKind.AWARD),
        (3, "silver", AwardKind.REVOCATION),
    ]
    assert [r.cursor for r in committed] == [1, 2, 3]


async def test_cursors_are_consecutive_across_transactions(db: Database) -> None:
    firsts = []
    for count in (3, 1, 2):
        async with uow(db).transaction() as repo:
            firsts.append(await repo.batch.allocate_cursors(count))
    assert firsts == [1, 4, 5]


async def test_an_erasure_leaves_one_entry_and_nothing_else_of_the_user(db: Database) -> None:
    unit = uow(db)
    for user in ("gone", "kept"):
        async with unit.transaction() as repo:
            store = repo.batch
            await store.lock_users([user], NOW)
            records = await ledger.allocate(store, [award(user, "a", "", 3)], NOW)
            changes = Changes(
                events=[EventRow(ev(f"{user}-e", user=user, sku="x"), True)],
                progress={(user, "a"): ProgressState(1, 1)},
                distinct=[(user, "a", "h")],
            )
            await store.write(changes, records, NOW)
    async with unit.transaction() as repo:
        assert await repo.has_data("gone")
        store = repo.batch
        await store.lock_users(["gone"], NOW)
        erasure = await ledger.allocate(store, [ledger.Pending.erasure("gone")], NOW)
        await store.write(Changes(erased=["gone"]), erasure, NOW)
    async with unit.transaction() as repo:
        assert not await repo.has_data("gone")
        log = await repo.awards_after(0, 10)
        snap = await repo.batch.read(
            Keys(
                event_ids=["gone-e", "kept-e"],
                progress=[("gone", "a"), ("kept", "a")],
                holdings=["gone", "kept"],
                distinct=[("gone", "a", "h"), ("kept", "a", "h")],
            )
        )
        users = {row.user_id for row in await repo.conn.execute(sa.select(user_points))}
        event_users = {row.user_id for row in await repo.conn.execute(sa.select(events))}
        log_users = [row.user_id for row in await repo.conn.execute(sa.select(awards))]
    assert [(r.user_id, r.kind, r.achievement_id, r.points) for r in log] == [
        ("kept", AwardKind.AWARD, "a", 3),
        ("gone", AwardKind.ERASURE, "", 0),
    ]
    assert set(snap.outcomes) == {"kept-e"}
    assert set(snap.progress) == {("kept", "a")}
    assert snap.holdings["gone"] == [] and len(snap.holdings["kept"]) == 1
    assert snap.distinct == {("kept", "a", "h")}
    assert users == {"kept"} and event_users == {"kept"} and log_users == ["kept", "gone"]


async def test_lock_reads_the_definitions_version_and_profile_zones_with_the_locks(
    db: Database,
) -> None:
    async with uow(db).transaction() as repo:
        await repo.conn.execute(
            sa.insert(users),
            [
                {"user_id": u, "time_zone": z, "attributes": {}, "create_time": NOW}
                | {"update_time": NOW}
                for u, z in (("ana", "Europe/Berlin"), ("bo", ""), ("cy", "Asia/Tokyo"))
            ],
        )
        await repo.bump_definitions_version()
        version = await repo.definitions_version()
    async with uow(db).transaction() as repo:
        locked = await repo.batch.lock(["ana", "bo", "dee"], NOW, zones_of=["ana", "bo", "dee"])
        # Only profiles naming a zone; cy has one but was not asked about.
        assert locked == Locked(version, {"ana": "Europe/Berlin"})
        assert (await repo.batch.lock([], NOW)) == Locked(version, {})
    async with uow(db).transaction() as repo:
        rows = await repo.conn.execute(sa.select(user_points.c.user_id).order_by("user_id"))
        # The lock rows exist (the lock TrackEvent's transactions serialize on).
        assert [r[0] for r in rows] == ["ana", "bo", "dee"]
