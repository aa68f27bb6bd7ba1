"""Achievement definitions by id, as they are now: the presentation of award entries."""

from __future__ import annotations

from accolade_server.domain.model import Achievement
from accolade_server.service.rulecache import RuleCache
from accolade_server.store.repository import Repository
from accolade_server.store.uow import UnitOfWork


class Catalogue:
    """Every stored definition, enabled or not, by id.

    Award entries are sent with the presentation of their achievement as it is defined when
    they are read or sent, not as it was when they were recorded; a deleted achievement has
    none. Nothing of it is stored per entry. It does not compile rules, so a definition
    that fails to compile cannot stop a stream.
    """

    def __init__(self, uow: UnitOfWork, rules: RuleCache) -> None:
        self.uow = uow
        self.rules = rules
        self.version: int | None = None
        self.achievements: dict[str, Achievement] = {}

    async def refresh(self, repo: Repository) -> None:
        """Bring it up to date inside the caller's transaction (one small read when nothing
        changed): every read of the award log by a stream does."""
        version = await repo.definitions_version()
        if version != self.version:
            self.achievements = {a.id: a for a in await repo.all_achievements()}
            self.version = version

    async def current(self) -> Catalogue:
        """Brought up to date in a transaction of its own."""
        async with self.uow.transaction() as repo:
            await self.refresh(repo)
        return self

    def get(self, achievement_id: str) -> Achievement | None:
        """As last loaded, here or by the rule cache (each event tracked), whichever saw
        the newer definitions version."""
        rules = self.rules
        if rules.version is not None and (self.version is None or rules.version > self.version):
            compiled = rules.rules.by_id.get(achievement_id)
            if compiled is not None:
                return compiled.achievement
        return self.achievements.get(achievement_id)
