"""Achievement definitions: create, read, list, update, delete and apply in bulk."""

from __future__ import annotations

import builtins
import dataclasses
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from accolade_server.config import Settings
from accolade_server.domain import paging
from accolade_server.domain.changes import (
    FieldChange,
    Kind,
    ProgressPolicy,
    diff,
    meaning_changes,
    removed_fields,
)
from accolade_server.domain.errors import (
    Aborted,
    AccoladeError,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from accolade_server.domain.model import (
    MUTABLE_FIELDS,
    RULE_FIELDS,
    Achievement,
    Aggregate,
    DefinitionStatus,
)
from accolade_server.domain.periods import Repeat
from accolade_server.domain.shapes import EventTypeShape
from accolade_server.domain.validation import (
    check_period_source,
    check_slug,
    validate_achievement,
    validate_graph,
)
from accolade_server.rules.engine import load_problem
from accolade_server.service import shapes
from accolade_server.service.backfills import StartOptions, queue_job
from accolade_server.service.recompute import Mode
from accolade_server.store import backfills, insights_read, progress_admin
from accolade_server.store.repository import Repository
from accolade_server.store.uow import UnitOfWork

MAX_APPLY = 1000


async def _check_sources(
    repo: Repository, changed: Sequence[tuple[str, Achievement]], stored: Mapping[str, str]
) -> None:
    """PERIOD_STREAK rules name a repeating achievement (one of `changed`, or stored), and an
    achievement a stored PERIOD_STREAK rule counts keeps repeating (unless that rule changes
    too, in `changed`). `stored` is `Links.period_sources`, read with the prerequisites."""
    batch = {a.id: a for _, a in changed}
    for prefix, a in changed:
        if a.rule.aggregate is Aggregate.PERIOD_STREAK:
            name = a.rule.achievement_id
            source = batch.get(name) or await repo.get_achievement(name)
            check_period_source(a, source, prefix)
    stopping = {a.id: prefix for prefix, a in changed if a.repeat is Repeat.NONE}
    if not stopping:
        return
    counted_by = _period_streaks(stored, batch)
    for aid, prefix in stopping.items():
        if counted_by.get(aid):
            raise FailedPrecondition(
                f"achievement {aid!r} is counted by the PERIOD_STREAK rule of "
                f"{', '.join(repr(x) for x in counted_by[aid])}, so it must keep repeating; "
                "change or delete those first (or in the same apply)",
                field=f"{prefix}.repeat",
            )


def _period_streaks(
    stored: Mapping[str, str], batch: Mapping[str, Achievement]
) -> dict[str, list[str]]:
    """Repeating achievement -> the achievements whose PERIOD_STREAK rule counts it, as they
    are stored (`stored`: id -> source) or, for those in `batch`, as they will be."""
    sources = dict(stored)
    for aid, a in batch.items():
        sources.pop(aid, None)
        if a.rule.aggregate is Aggregate.PERIOD_STREAK:
            sources[aid] = a.rule.achievement_id
    counted_by: dict[str, list[str]] = {}
    for aid, source in sorted(sources.items()):
        counted_by.setdefault(source, []).append(aid)
    return counted_by


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Achievement]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class Saved:
    """A created or updated achievement, and warnings about its rule (see service.shapes)."""

    achievement: Achievement
    warnings: list[str]
    #: The backfill queued with the change, if one was asked for (see service/backfills.py).
    backfill: backfills.Job | None = None


@dataclass(frozen=True, slots=True)
class ApplyItem:
    achievement: Achievement
    #: Whether the request set `enabled` (an entry that does not say it must not enable a
    #: disabled achievement silently).
    says_enabled: bool = True


@dataclass(frozen=True, slots=True)
class ApplyOptions:
    validate_only: bool = False
    source: str = ""
    allow_replace: bool = False
    allow_field_removal: bool = False
    progress_policy: ProgressPolicy = ProgressPolicy.UNSPECIFIED
    event_types: Sequence[EventTypeShape] = ()
    #: Backfill the achievements the apply creates or enables (see `_queue_backfills`).
    backfill: bool = False
    #: With `backfill` or a recomputing policy: whether the backfills notify, and who asked
    #: (their actor).
    notify: bool = False
    actor: str = ""


@dataclass(frozen=True, slots=True)
class Change:
    id: str
    kind: Kind
    fields: list[FieldChange]
    previous_source: str


@dataclass(frozen=True, slots=True)
class ApplyResult:
    changes: list[Change]
    warnings: list[str]
    #: Backfills queued by a recomputing progress policy, one per changed achievement.
    backfills: list[backfills.Job] = dataclasses.field(default_factory=list)

    def ids(self, kind: Kind) -> list[str]:
        return [c.id for c in self.changes if c.kind is kind]


_POLICY_HINT = (
    "say what to do with it: progress_policy KEEP (keep every user's value as it is), RESET "
    "(start everyone at 0; awards already made stay), REEVALUATE (recompute from stored "
    "events; award new levels, keep those held) or REVOKE_NON_QUALIFYING (recompute; revoke "
    "levels no longer reached); CLI: --progress keep|reset|reevaluate|revoke_non_qualifying"
)


async def _check_progress_meaning(
    repo: Repository,
    pairs: Sequence[tuple[str, Achievement, Achievement]],
    policy: ProgressPolicy,
) -> tuple[list[str], list[str]]:
    """(problems, ids to reset) for changes that alter what stored progress means."""
    changed = {a.id: (prefix, meaning_changes(old, a)) for prefix, old, a in pairs}
    changed = {aid: v for aid, v in changed.items() if v[1]}
    if not changed:
        return [], []
    users = await progress_admin.users_with_progress(repo, list(changed))
    if policy is ProgressPolicy.RESET:
        return [], [aid for aid in changed if users.get(aid)]
    if policy is ProgressPolicy.KEEP or policy.recomputes:  # recomputed by a backfill
        return [], []
    problems = [
        f"{prefix}: {aid}: changing {'; '.join(what)} changes what the stored progress of "
        f"{users[aid]} user{'s' if users[aid] != 1 else ''} means"
        for aid, (prefix, what) in changed.items()
        if users.get(aid)
    ]
    if problems:
        problems.append(_POLICY_HINT)
    return problems, []


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


def _plan(
    items: Sequence[ApplyItem],
    existing: Mapping[str, Achievement],
    options: ApplyOptions,
) -> tuple[list[Change], list[Achievement], list[str]]:
    """What each item changes, the definitions to write, and what is refused."""
    changes: list[Change] = []
    writes: list[Achievement] = []
    replaced: list[str] = []
    removals: list[str] = []
    for i, item in enumerate(items):
        a = item.achievement
        current = existing.get(a.id)
        if current is None:
            changes.append(Change(a.id, Kind.CREATE, [], ""))
            writes.append(dataclasses.replace(a, source=options.source))
            continue
        fields = diff(current, a)
        if not fields:
            changes.append(Change(a.id, Kind.UNCHANGED, [], current.source))
            continue
        changes.append(Change(a.id, Kind.UPDATE, fields, current.source))
        writes.append(dataclasses.replace(a, source=options.source or current.source))
        if options.source and current.source and current.source != options.source:
            replaced.append(
                f"achievements[{i}]: {a.id} was applied from {current.source!r}, not "
                f"{options.source!r}"
            )
        gone = removed_fields(current, a, says_enabled=item.says_enabled)
        if gone:
            removals.append(
                f"achievements[{i}]: {a.id} would lose {', '.join(gone)} (set in the stored "
                "definition, unset in this one)"
            )
    problems: list[str] = []
    if replaced and not options.allow_replace:
        problems += [
            *replaced,
            "another source's achievements are only replaced with allow_replace "
            "(CLI: --replace); check that the ids do not collide by accident (the "
            "achievement_rules shape derives an id from rule_name unless badge_id is set)",
        ]
    if removals and not options.allow_field_removal:
        problems += [
            *removals,
            "add those fields to the definitions to keep them, or pass allow_field_removal "
            "(CLI: --allow-removal) to clear them",
        ]
    return changes, writes, problems


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
        #: Called after a change queued a backfill (wakes the backfill worker).
        self.on_backfill: Callable[[], None] = lambda: None

    async def statuses(self, items: Sequence[Achievement]) -> dict[str, DefinitionStatus]:
        """Whether this server can run each stored definition (compiled the way loading
        compiles it), and its condition errors as the database counts them: those of every
        replica, in the transactions that recorded the events (store/insights.py). The last
        message is that of the newest error of a user not erased."""
        ids = sorted({a.id for a in items})
        last: dict[str, tuple[str, datetime]] = {}
        async with self.uow.transaction() as repo:
            counts = await insights_read.totals(repo.conn, ids) if ids else Counter()
            erring = [aid for aid in ids if counts[aid, "errors", ""]]
            if erring:
                last = await insights_read.last_errors(repo.conn, erring)
        out = {}
        for a in items:
            message, when = last.get(a.id, ("", None))
            out[a.id] = DefinitionStatus(
                broken_reason=load_problem(a),
                condition_error_count=counts[a.id, "errors", ""],
                last_condition_error=message,
                last_condition_error_time=when,
            )
        return out

    async def status(self, a: Achievement) -> DefinitionStatus:
        return (await self.statuses([a]))[a.id]

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

    async def create(self, a: Achievement, *, backfill: StartOptions | None = None) -> Saved:
        """Create `a`; with `backfill`, queue a backfill of it in the same transaction."""
        self._check(a, "achievement")
        async with self.uow.transaction() as repo:
            links = await repo.links()
            graph = links.prerequisites
            if a.id in graph:
                raise AlreadyExists(f"achievement {a.id!r} already exists")
            graph[a.id] = a.prerequisites
            validate_graph([("achievement", a)], graph)
            await _check_sources(repo, [("achievement", a)], links.period_sources)
            created = await repo.insert_achievement(a, self.clock())
            if created is None:
                raise AlreadyExists(f"achievement {a.id!r} already exists")
            await repo.bump_definitions_version()
            warnings = await shapes.warnings_for(repo, [created])
            job = None
            if backfill is not None:
                reason = backfill.reason or f"CreateAchievement {a.id}"
                job = await queue_job(
                    repo, created, dataclasses.replace(backfill, reason=reason), self.clock()
                )
        self.on_change()
        if job is not None:
            self.on_backfill()
        return Saved(created, warnings, job)

    async def validate(self, a: Achievement, *, replacing: bool) -> None:
        """The checks of `create` (or, `replacing` an existing one, of `update`), without
        writing: for editors that show errors as the user types."""
        self._check(a, "achievement")
        async with self.uow.transaction() as repo:
            links = await repo.links()
            graph = links.prerequisites
            if not replacing and a.id in graph:
                raise AlreadyExists(f"achievement {a.id!r} already exists", field="achievement.id")
            graph[a.id] = a.prerequisites
            validate_graph([("achievement", a)], graph)
            await _check_sources(repo, [("achievement", a)], links.period_sources)

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
        self,
        achievement_id: str,
        patch: Mapping[str, Any],
        *,
        etag: str,
        progress_policy: ProgressPolicy = ProgressPolicy.UNSPECIFIED,
        backfill: StartOptions | None = None,
    ) -> Saved:
        """Apply `patch`. A recomputing policy (REEVALUATE, REVOKE_NON_QUALIFYING) or
        `backfill` queues a backfill in the same transaction, whose award-log entries carry
        the change as their reason."""
        check_slug(achievement_id, "achievement.id")
        if progress_policy.recomputes:
            mode = (
                Mode.REVOKE_NON_QUALIFYING
                if progress_policy is ProgressPolicy.REVOKE_NON_QUALIFYING
                else Mode.REEVALUATE
            )
            backfill = dataclasses.replace(backfill or StartOptions(), mode=mode)
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
            links = await repo.links()
            graph = links.prerequisites
            graph[updated.id] = updated.prerequisites
            validate_graph([("achievement", updated)], graph)
            await _check_sources(repo, [("achievement", updated)], links.period_sources)
            if updated.same_definition(current):
                job = None
                if backfill is not None:  # asked for explicitly: run it on the definition
                    reason = backfill.reason or f"UpdateAchievement {achievement_id}"
                    options = dataclasses.replace(backfill, reason=reason)
                    job = await queue_job(repo, current, options, self.clock())
                if job is not None:
                    self.on_backfill()
                return Saved(current, await shapes.warnings_for(repo, [current]), job)
            problems, reset = await _check_progress_meaning(
                repo, [("achievement", current, updated)], progress_policy
            )
            if problems:
                raise FailedPrecondition("\n".join(problems))
            saved = await repo.update_achievement(
                updated, expected_revision=current.revision, now=self.clock()
            )
            if saved is None:
                raise Aborted("the achievement changed concurrently; read it again and retry")
            await progress_admin.reset_progress(repo, reset)
            await repo.bump_definitions_version()
            warnings = await shapes.warnings_for(repo, [saved])
            job = None
            if backfill is not None:
                changed = "; ".join(
                    f"{f.field} {f.old or '(none)'} -> {f.new or '(none)'}"
                    for f in diff(current, saved)
                )
                reason = backfill.reason or f"UpdateAchievement {achievement_id}: {changed}"
                options = dataclasses.replace(backfill, reason=reason[:4000])
                job = await queue_job(repo, saved, options, self.clock())
        self.on_change()
        if job is not None:
            self.on_backfill()
        return Saved(saved, warnings, job)

    async def delete(self, achievement_id: str, *, etag: str = "", force: bool = False) -> None:
        """Delete the definition and every user's progress towards it. Awards stay in the log;
        holders keep their holdings and points. Refused while users hold it, unless `force`."""
        check_slug(achievement_id, "id")
        async with self.uow.transaction() as repo:
            current = await repo.get_achievement(achievement_id, for_update=True)
            if current is None:
                raise NotFound(f"achievement {achievement_id!r} not found")
            if etag and etag != current.etag:
                raise Aborted(
                    f"etag {etag!r} does not match the current {current.etag!r}", field="etag"
                )
            links = await repo.links()
            dependents = sorted(
                aid for aid, prereqs in links.prerequisites.items() if achievement_id in prereqs
            )
            if dependents:
                raise FailedPrecondition(
                    f"achievement {achievement_id!r} is a prerequisite of "
                    f"{', '.join(dependents)}; remove it from those first"
                )
            streaks = _period_streaks(links.period_sources, {}).get(achievement_id)
            if streaks:
                raise FailedPrecondition(
                    f"achievement {achievement_id!r} is counted by the PERIOD_STREAK rule of "
                    f"{', '.join(repr(x) for x in streaks)}; change or delete those first"
                )
            holders = await progress_admin.holder_count(repo, achievement_id)
            if holders and not force:
                raise FailedPrecondition(
                    f"{holders} user{'s hold' if holders != 1 else ' holds'} achievement "
                    f"{achievement_id!r}. Deleting it keeps their awards in the award log and "
                    "their points, and they keep holding it (listed by ListAwards); their "
                    "progress towards further levels is removed. Pass force (CLI: --force) "
                    "to delete it anyway, or disable it (enabled: false) to stop new awards"
                )
            await progress_admin.delete_progress(repo, achievement_id)
            await repo.delete_achievement(achievement_id)
            await repo.bump_definitions_version()
        self.on_change()

    async def apply(self, items: Sequence[ApplyItem], options: ApplyOptions) -> ApplyResult:
        """Validate every definition, then create or replace all of them in one transaction.

        Refused (FAILED_PRECONDITION, every problem at once) when it would take over
        achievements applied from another source, clear fields the new definitions leave
        unset, or change what users' stored progress means, unless `options` allow it.
        """
        if len(items) > MAX_APPLY:
            raise InvalidArgument(
                f"at most {MAX_APPLY} achievements per call", field="achievements"
            )
        declarations = {
            shape.name: shapes.check_declaration(shape, f"event_types[{i}]")
            for i, shape in enumerate(options.event_types)
        }
        self._check_all([item.achievement for item in items])
        jobs: list[backfills.Job] = []
        async with self.uow.transaction() as repo:
            links = await repo.links()
            graph = links.prerequisites
            graph.update({item.achievement.id: item.achievement.prerequisites for item in items})
            changed = [(f"achievements[{i}]", item.achievement) for i, item in enumerate(items)]
            validate_graph(changed, graph)
            await _check_sources(repo, changed, links.period_sources)
            existing = await repo.get_achievements([item.achievement.id for item in items])
            changes, writes, problems = _plan(items, existing, options)
            written = {a.id for a in writes}
            pairs = [
                (f"achievements[{i}]", existing[item.achievement.id], item.achievement)
                for i, item in enumerate(items)
                if item.achievement.id in written and item.achievement.id in existing
            ]
            progress_problems, reset = await _check_progress_meaning(
                repo, pairs, options.progress_policy
            )
            problems += progress_problems
            if problems:
                raise FailedPrecondition("nothing was applied:\n" + "\n".join(problems))
            warnings = await shapes.warnings_for(
                repo, [item.achievement for item in items], declarations
            )
            if not options.validate_only:
                await shapes.declare_all(repo, declarations, self.clock())
                if writes:
                    await self._write_all(repo, writes, existing)
                    await progress_admin.reset_progress(repo, reset)
                    await repo.bump_definitions_version()
                    jobs = await self._queue_recomputes(repo, pairs, options)
                    jobs += await self._queue_backfills(
                        repo, writes, existing, options, {j.achievement_id for j in jobs}
                    )
        if not options.validate_only and writes:
            self.on_change()
        if jobs:
            self.on_backfill()
        return ApplyResult(changes, warnings, jobs)

    async def _queue_recomputes(
        self,
        repo: Repository,
        pairs: Sequence[tuple[str, Achievement, Achievement]],
        options: ApplyOptions,
    ) -> builtins.list[backfills.Job]:
        """A backfill per changed, enabled achievement under a recomputing policy."""
        if not options.progress_policy.recomputes:
            return []
        mode = (
            Mode.REVOKE_NON_QUALIFYING
            if options.progress_policy is ProgressPolicy.REVOKE_NON_QUALIFYING
            else Mode.REEVALUATE
        )
        jobs = []
        for _prefix, old, new in pairs:
            if not new.enabled or not new.rule.event_types:
                continue
            changed = "; ".join(f"{f.field} {f.old} -> {f.new}" for f in diff(old, new))
            reason = f"ApplyAchievements {options.source or new.id}: {changed}"[:4000]
            start = StartOptions(mode, options.notify, reason, options.actor)
            jobs.append(await queue_job(repo, new, start, self.clock()))
        return jobs

    async def _queue_backfills(
        self,
        repo: Repository,
        writes: Sequence[Achievement],
        existing: Mapping[str, Achievement],
        options: ApplyOptions,
        queued: set[str],
    ) -> builtins.list[backfills.Job]:
        """With `backfill`: a backfill (REEVALUATE) per achievement the apply creates or
        enables, unless the policy queued one already; disabled achievements and
        meta-achievements (nothing to read) are skipped."""
        if not options.backfill:
            return []
        jobs = []
        for a in writes:
            old = existing.get(a.id)
            fresh = old is None or not old.enabled
            if not fresh or a.id in queued or not a.enabled or not a.rule.event_types:
                continue
            verb = "created" if old is None else "enabled"
            reason = f"ApplyAchievements {options.source or a.id}: {a.id} {verb}"
            start = StartOptions(Mode.REEVALUATE, options.notify, reason[:4000], options.actor)
            jobs.append(await queue_job(repo, a, start, self.clock()))
        return jobs

    def _check_all(self, items: Sequence[Achievement]) -> None:
        """Every entry's first error at once (each prefixed with its path), and duplicates."""
        errors: list[AccoladeError] = []
        seen: set[str] = set()
        for i, a in enumerate(items):
            prefix = f"achievements[{i}]"
            try:
                self._check(a, prefix)
            except InvalidArgument as exc:
                errors.append(exc)
            if a.id in seen:
                errors.append(InvalidArgument(f"duplicate id {a.id!r}", field=f"{prefix}.id"))
            seen.add(a.id)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise InvalidArgument(f"{len(errors)} errors:\n" + "\n".join(str(e) for e in errors))

    async def _write_all(
        self, repo: Repository, writes: Sequence[Achievement], existing: Mapping[str, Achievement]
    ) -> None:
        now = self.clock()
        for a in writes:
            current = existing.get(a.id)
            if current is None:
                if await repo.insert_achievement(a, now) is None:
                    raise Aborted(f"achievement {a.id!r} was created concurrently; apply again")
            else:
                saved = await repo.update_achievement(
                    a, expected_revision=current.revision, now=now
                )
                if saved is None:
                    raise Aborted(f"achievement {a.id!r} changed concurrently; apply again")
