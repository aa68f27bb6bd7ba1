"""Rewards (named entitlements) of achievements and tiers: validation and expiry."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from accolade_server.domain.errors import InvalidArgument
from accolade_server.domain.model import Achievement, Reward, rewards_of

MAX_REWARDS = 20
MAX_NAME = 128
MAX_VALID_FOR = timedelta(days=36525)
#: The first of the server-wide levels (`use_level_thresholds`): rules.engine.LEVEL_NAMES[0]
#: (a test checks), named here so that notifications need not import the engine.
FIRST_SERVER_LEVEL = "bronze"
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9_.:-]+$")


def check_rewards(rewards: Sequence[Reward], field: str) -> None:
    if len(rewards) > MAX_REWARDS:
        raise InvalidArgument(f"at most {MAX_REWARDS} rewards", field=field)
    seen: set[str] = set()
    for i, r in enumerate(rewards):
        where = f"{field}[{i}]"
        if not r.name:
            raise InvalidArgument("is required, e.g. feature:pro-workouts", field=f"{where}.name")
        if len(r.name) > MAX_NAME or not NAME.match(r.name):
            raise InvalidArgument(
                f"{r.name[:64]!r} is not kind:value (a kind of lower-case letters, digits, '_' "
                "or '-' starting with a letter, then ':' and letters, digits or '_.:-'; at "
                f"most {MAX_NAME} characters), e.g. feature:pro-workouts or coupon:SPRING10",
                field=f"{where}.name",
            )
        if r.name in seen:
            raise InvalidArgument(f"duplicate reward {r.name!r}", field=f"{where}.name")
        seen.add(r.name)
        if r.valid_for is not None and not timedelta(seconds=1) <= r.valid_for <= MAX_VALID_FOR:
            raise InvalidArgument(
                "must be at least 1 second and at most 100 years (unset: until revoked)",
                field=f"{where}.valid_for",
            )


def validate(a: Achievement, prefix: str) -> None:
    check_rewards(a.rewards, f"{prefix}.rewards")
    for i, tier in enumerate(a.tiers):
        check_rewards(tier.rewards, f"{prefix}.tiers[{i}].rewards")


def expiry(r: Reward, granted: datetime) -> datetime | None:
    return None if r.valid_for is None else granted + r.valid_for


def first_level(a: Achievement) -> str:
    """The name of the achievement's first level ("" for a single level)."""
    if a.tiers:
        return a.tiers[0].name
    return FIRST_SERVER_LEVEL if a.use_level_thresholds else ""


def granted(a: Achievement | None, tier: str) -> tuple[Reward, ...]:
    """The rewards the award of `tier` of `a` grants (none for a deleted achievement)."""
    return () if a is None else rewards_of(a, tier, first_level(a))
