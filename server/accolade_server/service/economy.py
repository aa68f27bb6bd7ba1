"""What awards do beyond holdings and lifetime points, on the write path: the rewards each
award grants (`service/rewards.py`) and the levels it reaches (`service/levels.py`). Called
by `service/batch.py` (rule awards) and `service/awards.py` (grants), with the users locked,
between the engine's decisions and `ledger.allocate`."""

from __future__ import annotations

from collections.abc import Sequence

from accolade_server.config import Settings
from accolade_server.rules import engine
from accolade_server.service import ledger, levels, rewards
from accolade_server.store.repository import Repository


async def extend(
    repo: Repository,
    rules: engine.RuleSet,
    settings: Settings,
    pending: Sequence[ledger.Pending],
) -> list[ledger.Pending]:
    """`pending` with rewards attached, followed by the LEVEL entries it makes."""
    with_rewards = await rewards.attach(repo, rules, pending)
    return await levels.with_levels(repo, settings.point_levels, with_rewards)
