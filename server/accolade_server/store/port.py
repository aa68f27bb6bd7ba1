"""The store port of the write path: lock users, read a snapshot, allocate cursors, write.

One implementation per backend (`store/batchstore.py`), chosen once in `app.py`. `write` is
the one writer of the award log: every entry — rule awards, grants, revocations, the
prerequisite cascade, erasures, levels reached, redemptions and refunds — is written by it,
and with each entry it updates holdings, points, points spent and entitlements (see
`effects`), NOTIFYs other replicas and keeps the entry for the local broker
(`appended`, handed over by the unit of work once the transaction commits). Cursors come
from `allocate_cursors` (see `service/ledger.py`, its only caller).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from accolade_server.domain.model import SPENDING, AwardKind, AwardRecord
from accolade_server.domain.rewards import expiry
from accolade_server.domain.state import DistinctKey, Event, ProgressState, Snapshot, UserKey


@dataclass(frozen=True, slots=True)
class Keys:
    """What to read: stored outcomes of event ids, progress of (user, achievement) keys,
    holdings of users, and which DISTINCT values were already counted."""

    event_ids: Collection[str] = ()
    progress: Collection[UserKey] = ()
    holdings: Collection[str] = ()
    distinct: Collection[DistinctKey] = ()


@dataclass(frozen=True, slots=True)
class EventRow:
    """An event to record, with the outcome a retry of it will get (None: untracked)."""

    event: Event
    tracked: bool
    outcome: Any = None


@dataclass(frozen=True, slots=True)
class FailedCondition:
    """An achievement's condition (or its aggregate's field) failed on a user's event."""

    user_id: str
    achievement_id: str
    message: str


@dataclass(frozen=True, slots=True)
class Changes:
    """What a transaction writes besides the award log."""

    events: Sequence[EventRow] = ()
    progress: Mapping[UserKey, ProgressState] = field(default_factory=dict)
    distinct: Sequence[DistinctKey] = ()
    #: Users whose events, progress and DISTINCT values are erased.
    erased: Sequence[str] = ()
    #: Conditions that failed on the recorded events (counted in `store/insights.py`).
    failed: Sequence[FailedCondition] = ()


@dataclass(slots=True)
class Effects:
    """What award-log entries do to the other tables."""

    held: list[AwardRecord]  # new holdings
    unheld: list[AwardRecord]  # holdings removed by revocations
    erased: list[str]  # users whose holdings, points and earlier log entries go
    points: dict[str, int]  # user -> points added (non-zero)
    #: user -> points redeemed (redemptions minus refunds, non-zero); lifetime points as is.
    spent: dict[str, int] = field(default_factory=dict)
    #: (award, reward name, expiry) of the entitlements new awards grant; revocations
    #: remove those of their (achievement, tier), as `unheld` lists them.
    entitled: list[tuple[AwardRecord, str, datetime | None]] = field(default_factory=list)


def effects(records: Sequence[AwardRecord]) -> Effects:
    """Holdings and points follow from the log entries, and only from them."""
    out = Effects([], [], [], {})
    for r in records:
        if r.kind is AwardKind.AWARD:
            out.held.append(r)
            out.entitled.extend((r, w.name, expiry(w, r.award_time)) for w in r.rewards)
        elif r.kind is AwardKind.REVOCATION:
            out.unheld.append(r)
        elif r.kind in SPENDING:
            out.spent[r.user_id] = out.spent.get(r.user_id, 0) - r.points
            continue
        elif r.kind is AwardKind.LEVEL:
            continue
        else:
            out.erased.append(r.user_id)
            continue
        if r.points:
            out.points[r.user_id] = out.points.get(r.user_id, 0) + r.points
    out.points = {u: d for u, d in out.points.items() if d}
    out.spent = {u: d for u, d in out.spent.items() if d}
    return out


@dataclass(frozen=True, slots=True)
class Locked:
    """What `BatchStore.lock` read with the locks."""

    definitions_version: int
    #: user id -> the time zone their profile names, for the users asked about who have one.
    zones: dict[str, str]


class BatchStore(Protocol):
    #: Entries this transaction wrote to the award log, for the local broker after commit.
    appended: list[AwardRecord]

    async def lock_users(self, user_ids: Collection[str], now: datetime) -> None:
        """Lock each user's row until commit, in a fixed order so batches cannot deadlock."""

    async def lock(
        self, user_ids: Collection[str], now: datetime, *, zones_of: Collection[str] = ()
    ) -> Locked:
        """`lock_users`, and the definitions version and the profile zones of `zones_of`,
        in the same round trip where the backend allows (the live path's first statement).
        The version and zones are as they were when the statement started, before any
        wait for a lock, as if read just before locking."""

    async def read(self, keys: Keys) -> Snapshot:
        """The stored state of `keys`, in one round trip where the backend allows."""

    async def allocate_cursors(self, count: int) -> int:
        """Reserve `count` cursors and return the first. The award log's head row stays
        locked until commit, so transactions append in cursor order."""

    async def write(self, changes: Changes, records: Sequence[AwardRecord], now: datetime) -> int:
        """Write `changes` and the award-log `records` (cursors allocated) with their effects;
        return how many of `changes.events` were new."""
