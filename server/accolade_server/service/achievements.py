"""Achievement definitions: create, read, list, update, delete and apply in bulk."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from accolade_server.config import Settings
from accolade_server.domain import paging
from accolade_server.domain.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from accolade_server.domain.model import MUTABLE_FIELDS, RULE_FIELDS, Achievement
from accolade_server.domain.validation import check_slug, validate_achievement, validate_graph
from accolade_server.store.repository import Repository
from accolade_server.store.uow import UnitOfWork

MAX_APPLY = 1000


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Achievement]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class ApplyResult:
    created: list[str]
    updated: list[str]
    unchanged: list[str]


def apply_patch(current: Achievement, patch: Mapping[str, Any]) -> Achievement:
    """A copy of `current` with the patched fields; keys are field names or `rule.<field>`."""
    top: dict[str, Any] = {}
    rule: dict[str, Any] = {}
    for path, value in patch.items():
        head, _, sub = path.partition(".")
        if head == "rule" and sub:
            if sub not in RULE_FIELDS:
                raise InvalidArgument(f"unknown field {path!r}", field="update_mask")
            rule[sub] = value
        elif head in MUTABLE_FIELDS and not sub:
            top[head] = value
        else:
            raise InvalidArgument(
                f"{path!r} cannot be updated; updatable: {', '.join(MUTABLE_FIELDS)}",
                field="update_mask",
            )
    updated = dataclasses.replace(current, **top)
    if rule:
        updated = dataclasses.replace(updated, rule=dataclasses.replace(updated.rule, **rule))
    return updated


class AchievementService:
    def __init__(
        self,
        uow: UnitOfWork,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = _now,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.uow = uow
        self.settings = settings
        self.clock = clock
        self.on_change = on_change or (lambda: None)

    def _check_tracked(self, a: Achievement, prefix: str) -> None:
        untracked = [t for t in a.rule.event_types if not self.settings.tracks(t)]
        if untracked:
            raise FailedPrecondition(
                f"event type(s) {', '.join(untracked)} are not in the track_event_types option "
                f"({self.settings.track_event_types}), so this rule would never fire; add them "
                'there (or use ["*"]) first',
                field=f"{prefix}.rule.event_types",
            )

    def _check(self, a: Achievement, prefix: str) -> None:
        validate_achievement(a, prefix)
        self._check_tracked(a, prefix)

    async def create(self, a: Achievement) -> Achievement:
        self._check(a, "achievement")
        async with self.uow.transaction() as repo:
            graph = await repo.prerequisite_graph()
            if a.id in graph:
                raise AlreadyExists(f"achievement {a.id!r} already exists")
            graph[a.id] = a.prerequisites
            validate_graph([("achievement", a)], graph)
            created = await repo.insert_achievement(a, self.clock())
            if created is None:
                raise AlreadyExists(f"achievement {a.id!r} already exists")
            await repo.bump_definitions_version()
        self.on_change()
        return created

    async def validate(self, a: Achievement, *, replacing: bool) -> None:
        """The checks of `create` (or, `replacing` an existing one, of `update`), without
        writing: for editors that show errors as the user types."""
        self._check(a, "achievement")
        async with self.uow.transaction() as repo:
            graph = await repo.prerequisite_graph()
        if not replacing and a.id in graph:
            raise AlreadyExists(f"achievement {a.id!r} already exists", field="achievement.id")
        graph[a.id] = a.prerequisites
        validate_graph([("achievement", a)], graph)

    async def get(self, achievement_id: str) -> Achievement:
        check_slug(achievement_id, "id")
        async with self.uow.transaction() as repo:
            found = await repo.get_achievement(achievement_id)
        if found is None:
            raise NotFound(f"achievement {achievement_id!r} not found")
        return found

    async def list(
        self, *, category: str, enabled: bool | None, page_size: int, page_token: str
    ) -> Page:
        size = paging.page_size(page_size)
        filters = {"category": category, "enabled": enabled}
        after = paging.decode(page_token, filters) or ""
        if not isinstance(after, str):
            raise InvalidArgument("is not a token this server issued", field="page_token")
        async with self.uow.transaction() as repo:
            items = await repo.list_achievements(
                category=category, enabled=enabled, after_id=after, limit=size + 1
            )
        token = paging.encode(items[size - 1].id, filters) if len(items) > size else ""
        return Page(items[:size], token)

    async def update(
        self, achievement_id: str, patch: Mapping[str, Any], *, etag: str
    ) -> Achievement:
        check_slug(achievement_id, "achievement.id")
        async with self.uow.transaction() as repo:
            current = await repo.get_achievement(achievement_id, for_update=True)
            if current is None:
                raise NotFound(f"achievement {achievement_id!r} not found")
            if etag and etag != current.etag:
                raise Aborted(
                    f"etag {etag!r} does not match the current {current.etag!r}: the achievement "
                    "changed since you read it; read it again and retry",
                    field="achievement.etag",
                )
            updated = apply_patch(current, patch)
            self._check(updated, "achievement")
            graph = await repo.prerequisite_graph()
            graph[updated.id] = updated.prerequisites
            validate_graph([("achievement", updated)], graph)
            if updated.same_definition(current):
                return current
            saved = await repo.update_achievement(
                updated, expected_revision=current.revision, now=self.clock()
            )
            if saved is None:
                raise Aborted("the achievement changed concurrently; read it again and retry")
            await repo.bump_definitions_version()
        self.on_change()
        return saved

    async def delete(self, achievement_id: str, *, etag: str = "") -> None:
        check_slug(achievement_id, "id")
        async with self.uow.transaction() as repo:
            current = await repo.get_achievement(achievement_id, for_update=True)
            if current is None:
                raise NotFound(f"achievement {achievement_id!r} not found")
            if etag and etag != current.etag:
                raise Aborted(
                    f"etag {etag!r} does not match the current {current.etag!r}", field="etag"
                )
            dependents = sorted(
                aid
                for aid, prereqs in (await repo.prerequisite_graph()).items()
                if achievement_id in prereqs
            )
            if dependents:
                raise FailedPrecondition(
                    f"achievement {achievement_id!r} is a prerequisite of "
                    f"{', '.join(dependents)}; remove it from those first"
                )
            await repo.delete_achievement(achievement_id)
            await repo.bump_definitions_version()
        self.on_change()

    async def apply(self, items: Sequence[Achievement], *, validate_only: bool) -> ApplyResult:
        """Validate every definition, then create or replace all of them in one transaction."""
        if len(items) > MAX_APPLY:
            raise InvalidArgument(
                f"at most {MAX_APPLY} achievements per call", field="achievements"
            )
        seen: set[str] = set()
        for i, a in enumerate(items):
            prefix = f"achievements[{i}]"
            self._check(a, prefix)
            if a.id in seen:
                raise InvalidArgument(f"duplicate id {a.id!r}", field=f"{prefix}.id")
            seen.add(a.id)
        created: list[str] = []
        updated: list[str] = []
        unchanged: list[str] = []
        async with self.uow.transaction() as repo:
            graph = await repo.prerequisite_graph()
            graph.update({a.id: a.prerequisites for a in items})
            validate_graph([(f"achievements[{i}]", a) for i, a in enumerate(items)], graph)
            existing = await repo.get_achievements([a.id for a in items])
            for a in items:
                current = existing.get(a.id)
                if current is None:
                    created.append(a.id)
                elif current.same_definition(a):
                    unchanged.append(a.id)
                else:
                    updated.append(a.id)
            if not validate_only and (created or updated):
                await self._write_all(repo, items, existing)
                await repo.bump_definitions_version()
        if not validate_only and (created or updated):
            self.on_change()
        return ApplyResult(created, updated, unchanged)

    async def _write_all(
        self, repo: Repository, items: Sequence[Achievement], existing: Mapping[str, Achievement]
    ) -> None:
        now = self.clock()
        for a in items:
            current = existing.get(a.id)
            if current is None:
                if await repo.insert_achievement(a, now) is None:
                    raise Aborted(f"achievement {a.id!r} was created concurrently; apply again")
            elif not current.same_definition(a):
                saved = await repo.update_achievement(
                    a, expected_revision=current.revision, now=now
                )
                if saved is None:
                    raise Aborted(f"achievement {a.id!r} changed concurrently; apply again")
