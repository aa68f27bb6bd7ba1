"""WatchAwards: replay from a cursor, then live, with no gap and no duplicate at the seam."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from accolade_server.domain.errors import InvalidArgument, Unavailable
from accolade_server.domain.model import AwardRecord, AwardSource
from accolade_server.domain.validation import check_slug
from accolade_server.metrics import Metrics
from accolade_server.notify.broker import PAGE, AwardFilter, Broker, Closed, Lagged, Subscription
from accolade_server.service.catalogue import Catalogue
from accolade_server.service.tracking import check_id
from accolade_server.store.uow import UnitOfWork

MAX_FILTER = 1000


def make_filter(
    user_ids: Sequence[str], achievement_ids: Sequence[str], source: AwardSource | None
) -> AwardFilter:
    for name, values in (("user_ids", user_ids), ("achievement_ids", achievement_ids)):
        if len(values) > MAX_FILTER:
            raise InvalidArgument(f"at most {MAX_FILTER} entries", field=name)
    for i, uid in enumerate(user_ids):
        check_id(uid, f"user_ids[{i}]")
    for i, aid in enumerate(achievement_ids):
        check_slug(aid, f"achievement_ids[{i}]")
    return AwardFilter(frozenset(user_ids), frozenset(achievement_ids), source)


@dataclass(frozen=True, slots=True)
class Subscribed:
    """The first item of every stream: it is live and starts after `cursor`."""

    cursor: int


class WatchService:
    def __init__(
        self,
        uow: UnitOfWork,
        broker: Broker,
        catalogue: Catalogue,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.uow = uow
        self.broker = broker
        self.catalogue = catalogue
        self.metrics = metrics or Metrics()

    async def stream(
        self,
        flt: AwardFilter,
        after_cursor: int | None,
    ) -> AsyncIterator[Subscribed | AwardRecord]:
        """`Subscribed(start)` once the subscription is live, then every matching entry
        after `after_cursor` (None: from now on), in cursor order. Resuming after `start`
        later misses nothing, even before any entry.

        The subscription is registered before the database is read, so an entry committed
        while replaying is either read or queued; queued ones already read are skipped.
        Each read of the log also brings `catalogue` (the entries' presentation) up to date.
        """
        if after_cursor is not None and after_cursor < 0:
            raise InvalidArgument("must not be negative", field="after_cursor")
        sub = self.broker.subscribe(flt)
        self.metrics.open_streams.inc()
        try:
            last = await self.broker.start_cursor() if after_cursor is None else after_cursor
            yield Subscribed(last)
            if after_cursor is not None:
                async for record in self._catch_up(sub, last):
                    last = record.cursor
                    yield record
            while True:
                item = await sub.queue.get()
                if isinstance(item, Closed):
                    raise Unavailable(
                        f"the server is shutting down; resume with after_cursor={last}"
                    )
                if isinstance(item, Lagged):
                    self.metrics.stream_catch_ups.inc()
                    sub.resume()
                    async for record in self._catch_up(sub, last):
                        last = record.cursor
                        yield record
                    continue
                if item.cursor > last:
                    last = item.cursor
                    yield item
        finally:
            self.broker.unsubscribe(sub)
            self.metrics.open_streams.dec()

    async def _catch_up(self, sub: Subscription, after: int) -> AsyncIterator[AwardRecord]:
        flt = sub.filter
        while True:
            async with self.uow.transaction() as repo:
                await self.catalogue.refresh(repo)
                page = await repo.awards_after(
                    after,
                    PAGE,
                    user_ids=flt.user_ids,
                    achievement_ids=flt.achievement_ids,
                    source=flt.source,
                )
            for record in page:
                after = record.cursor
                yield record
            if len(page) < PAGE:
                return
