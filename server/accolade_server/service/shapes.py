"""Event shapes: learnt from tracked events (compactly), declared by administrators, and
used to warn about rules that read properties their events do not carry.

Learning never writes per event: each process remembers the (type, path, JSON type)
combinations it knows are stored and writes only new ones, in one statement after the
batch, merged with `|` so replicas cannot lose each other's types. Memory is bounded by
`MAX_TYPES` event types of at most `shapes.MAX_PATHS_PER_TYPE` paths each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from accolade_server.domain import paging, shapes
from accolade_server.domain.errors import InvalidArgument, NotFound
from accolade_server.domain.model import Achievement
from accolade_server.domain.shapes import EventTypeShape, PropertyShape
from accolade_server.domain.validation import EVENT_TYPE
from accolade_server.rules.engine import Event
from accolade_server.store import shapes as store
from accolade_server.store.repository import Repository
from accolade_server.store.uow import UnitOfWork

log = structlog.get_logger("accolade.shapes")

#: Event types a process remembers shapes of; events of further types are not learnt from.
MAX_TYPES = 1000
#: Properties one declaration may name.
MAX_DECLARED = 256


def _now() -> datetime:
    return datetime.now(UTC)


class ShapeRecorder:
    """Learns event shapes from tracked events (see the module docstring)."""

    def __init__(self, uow: UnitOfWork, *, clock: Callable[[], datetime] = _now) -> None:
        self.uow = uow
        self.clock = clock
        self.known: dict[str, dict[str, int]] = {}
        self._full: set[str] = set()

    def new(self, events: Iterable[Event]) -> list[tuple[str, str, int]]:
        """The (type, path, bits) combinations of `events` not yet known to be stored."""
        pending: dict[tuple[str, str], int] = {}
        new_paths: dict[str, int] = {}
        for event in events:
            known = self.known.get(event.type)
            if known is None and len(self.known) + len(new_paths) >= MAX_TYPES:
                continue
            known = known or {}
            for path, bit in shapes.properties_shape(event.properties):
                have = known.get(path)
                if have is not None and have & bit:
                    continue
                key = (event.type, path)
                if have is None and key not in pending:
                    # ROOT is not a property, hence the + 1.
                    if len(known) + new_paths.get(event.type, 0) > shapes.MAX_PATHS_PER_TYPE:
                        self._note_full(event.type)
                        continue
                    new_paths[event.type] = new_paths.get(event.type, 0) + 1
                pending[key] = pending.get(key, 0) | bit
        return [(t, p, bits) for (t, p), bits in pending.items()]

    def _note_full(self, event_type: str) -> None:
        if event_type not in self._full:
            self._full.add(event_type)
            log.info(
                "event type has more properties than are learnt; further paths not recorded",
                event_type=event_type,
                limit=shapes.MAX_PATHS_PER_TYPE,
            )

    async def record(self, events: Sequence[Event]) -> None:
        """Store new combinations; a failure is logged, never raised (tracking succeeded)."""
        rows = self.new(events)
        if not rows:
            return
        try:
            async with self.uow.transaction() as repo:
                await store.record_observed(repo, rows, self.clock())
        except Exception as exc:
            log.warning("could not record event shapes", error=f"{type(exc).__name__}: {exc}")
            return
        for event_type, path, bits in rows:
            known = self.known.setdefault(event_type, {})
            known[path] = known.get(path, 0) | bits


def _shape(name: str, rows: Mapping[str, tuple[int, int]]) -> EventTypeShape:
    return EventTypeShape(
        name,
        tuple(
            PropertyShape(path, declared, observed)
            for path, (observed, declared) in sorted(rows.items())
            if path != shapes.ROOT
        ),
    )


def check_declaration(shape: EventTypeShape, field: str) -> dict[str, int]:
    """path -> declared bit of a declaration, in canonical form; InvalidArgument if bad."""
    if not EVENT_TYPE.match(shape.name):
        raise InvalidArgument(
            f"{shape.name!r} is not a valid event type: 1-128 characters of letters, digits "
            "and _ . : -",
            field=f"{field}.name",
        )
    if len(shape.properties) > MAX_DECLARED:
        raise InvalidArgument(f"at most {MAX_DECLARED} properties", field=f"{field}.properties")
    declared: dict[str, int] = {}
    for i, prop in enumerate(shape.properties):
        where = f"{field}.properties[{i}]"
        try:
            path = shapes.parse_path(prop.path)
        except ValueError as exc:
            raise InvalidArgument(str(exc), field=f"{where}.path") from None
        if path in declared:
            raise InvalidArgument(f"{path!r} is declared twice", field=f"{where}.path")
        if prop.declared not in shapes.TYPE_NAMES:
            raise InvalidArgument(
                f"is required: one of {', '.join(shapes.TYPE_NAMES.values())}",
                field=f"{where}.declared_type",
            )
        declared[path] = prop.declared
    return declared


async def declare_all(
    repo: Repository, declarations: Mapping[str, Mapping[str, int]], now: datetime
) -> None:
    for name, declared in declarations.items():
        await store.declare(repo, name, declared, now)


async def known_shapes(
    repo: Repository,
    achievements: Iterable[Achievement],
    overrides: Mapping[str, Mapping[str, int]] | None = None,
) -> dict[str, dict[str, int]]:
    """event type -> path -> every type bit known (observed or declared) for the event types
    of `achievements`; `overrides` are declarations not stored yet (they replace stored ones)."""
    overrides = overrides or {}
    rows = await store.of_types(repo, (t for a in achievements for t in a.rule.event_types))
    out: dict[str, dict[str, int]] = {}
    for name, paths in rows.items():
        replaced = name in overrides
        out[name] = {
            p: observed | (0 if replaced else declared) for p, (observed, declared) in paths.items()
        }
    for name, declared in overrides.items():
        merged = out.setdefault(name, {})
        merged.setdefault(shapes.ROOT, shapes.OBJECT)
        for path, bit in declared.items():
            merged[path] = merged.get(path, 0) | bit
    return out


async def warnings_for(
    repo: Repository,
    achievements: Sequence[Achievement],
    overrides: Mapping[str, Mapping[str, int]] | None = None,
) -> list[str]:
    known = await known_shapes(repo, achievements, overrides)
    return [w for a in achievements for w in shapes.warnings(a, known)]


@dataclass(frozen=True, slots=True)
class EventTypePage:
    items: list[EventTypeShape]
    next_page_token: str


class EventTypeService:
    """DeclareEventType, GetEventType and ListEventTypes."""

    def __init__(self, uow: UnitOfWork, *, clock: Callable[[], datetime] = _now) -> None:
        self.uow = uow
        self.clock = clock

    async def declare(self, shape: EventTypeShape) -> EventTypeShape:
        declared = check_declaration(shape, "event_type")
        async with self.uow.transaction() as repo:
            await store.declare(repo, shape.name, declared, self.clock())
            rows = await store.of_types(repo, [shape.name])
        return _shape(shape.name, rows.get(shape.name, {}))

    async def get(self, name: str) -> EventTypeShape:
        async with self.uow.transaction() as repo:
            rows = await store.of_types(repo, [name])
        if name not in rows:
            raise NotFound(f"no event of type {name!r} has been seen or declared")
        return _shape(name, rows[name])

    async def list(self, *, page_size: int, page_token: str) -> EventTypePage:
        size = paging.page_size(page_size)
        after = paging.decode(page_token, {}) or ""
        if not isinstance(after, str):
            raise InvalidArgument("is not a token this server issued", field="page_token")
        async with self.uow.transaction() as repo:
            names = await store.type_names(repo, after=after, limit=size + 1)
            rows = await store.of_types(repo, names[:size])
        token = paging.encode(names[size - 1], {}) if len(names) > size else ""
        return EventTypePage([_shape(n, rows.get(n, {})) for n in names[:size]], token)
