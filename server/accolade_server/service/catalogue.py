"""Achievement definitions by id, as they are now: the presentation of award entries."""

from __future__ import annotations

from collections.abc import Mapping

from accolade_server.domain.model import Achievement
from accolade_server.service.rulecache import RuleCache
from accolade_server.store.repository import Repository
from accolade_server.store.uow import UnitOfWork


class Catalogue:
    """Every stored definition (enabled or not), shared with the rule cache.

    Award entries are sent with the presentation of their achievement as it is defined when
    they are read or sent, not as it was when they were recorded; a deleted achievement has
    none. Nothing of it is stored per entry.
    """

    def __init__(self, uow: UnitOfWork, rules: RuleCache) -> None:
        self.uow = uow
        self.rules = rules

    @property
    def loaded(self) -> Mapping[str, Achievement]:
        """As of the last transaction that checked the definitions version: every
        TrackEvent(s), GetProgress and grant, and every read of the award log by a stream."""
        return self.rules.achievements

    async def refresh(self, repo: Repository) -> Mapping[str, Achievement]:
        """Brought up to date inside the caller's transaction."""
        await self.rules.get(repo)
        return self.rules.achievements

    async def current(self) -> Mapping[str, Achievement]:
        """Brought up to date in a transaction of its own (one small read)."""
        async with self.uow.transaction() as repo:
            return await self.refresh(repo)
