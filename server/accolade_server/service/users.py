"""User profiles: UpsertUser, GetUser, ListUsers, and the attributes tracked events carry.

Profile data is presentation only: it never changes past counts. Conditions read
`user.attributes` as they are when an event is counted (see `TrackingService`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from accolade_server.config import Settings
from accolade_server.domain import paging
from accolade_server.domain.errors import InvalidArgument, NotFound
from accolade_server.domain.users import User, check_profile, mask_fields
from accolade_server.domain.validation import check_properties
from accolade_server.service.tracking import check_id
from accolade_server.store import users as store
from accolade_server.store.uow import UnitOfWork


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class UserPage:
    users: list[User]
    next_page_token: str


class UserService:
    def __init__(
        self, uow: UnitOfWork, settings: Settings, *, clock: Callable[[], datetime] = _now
    ) -> None:
        self.uow = uow
        self.settings = settings
        self.clock = clock

    async def upsert(self, user: User, update_mask: Sequence[str]) -> tuple[User, bool]:
        """Create the user, or set the masked fields of the stored one; (user, created)."""
        check_id(user.user_id, "user.user_id")
        fields = mask_fields(user, update_mask)
        check_profile(user, fields)
        if "attributes" in fields:
            check_properties(
                user.attributes,
                "user.attributes",
                max_bytes=self.settings.max_properties_bytes,
                max_depth=self.settings.max_properties_depth,
                max_items=self.settings.max_property_list_items,
            )
        async with self.uow.transaction() as repo:
            return await store.upsert(repo, user, fields, self.clock())

    async def get(self, user_id: str) -> User:
        check_id(user_id, "user_id")
        async with self.uow.transaction() as repo:
            found = await store.get(repo, user_id)
        if found is None:
            raise NotFound(f"user {user_id!r} not found", field="user_id")
        return found

    async def find(self, user_id: str) -> User | None:
        """The user's profile, or None (pages that show an id when there is none)."""
        async with self.uow.transaction() as repo:
            return await store.get(repo, user_id)

    async def display_names(self, user_ids: Sequence[str]) -> dict[str, str]:
        async with self.uow.transaction() as repo:
            return await store.display_names(repo, user_ids)

    async def list(self, *, prefix: str, page_size: int, page_token: str) -> UserPage:
        if len(prefix) > 128:
            raise InvalidArgument("is longer than 128 characters", field="user_id_prefix")
        size = paging.page_size(page_size)
        filters = {"user_id_prefix": prefix}
        after = paging.decode(page_token, filters)
        if after is not None and not isinstance(after, str):
            raise InvalidArgument("is not a token this server issued", field="page_token")
        async with self.uow.transaction() as repo:
            found = await store.page(repo, prefix=prefix, after=after, limit=size + 1)
        token = paging.encode(found[size - 1].user_id, filters) if len(found) > size else ""
        return UserPage(found[:size], token)
