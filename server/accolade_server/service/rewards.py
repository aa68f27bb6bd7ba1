"""Rewards: what an award grants (`Achievement.rewards`, `Tier.rewards`), attached to its
award-log entry on the write path so that the one writer keeps the `entitlements` table
(see `port.effects`), and the active entitlements of a user."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from accolade_server.domain.model import AwardKind
from accolade_server.domain.rewards import granted
from accolade_server.rules import engine
from accolade_server.service import ledger
from accolade_server.store.repository import Repository


async def attach(
    repo: Repository, rules: engine.RuleSet, pending: Sequence[ledger.Pending]
) -> list[ledger.Pending]:
    """`pending` with each award carrying what it grants, from the definitions in force
    (stored ones for achievements the rule set leaves out, e.g. disabled ones granted by
    hand)."""
    awarded = {p.achievement_id for p in pending if p.kind is AwardKind.AWARD}
    if not awarded:
        return list(pending)
    defined = {aid: rules.by_id[aid].achievement for aid in awarded if aid in rules.by_id}
    missing = sorted(awarded - set(defined))
    if missing:
        defined.update(await repo.get_achievements(missing))
    out = []
    for p in pending:
        given = granted(defined.get(p.achievement_id), p.tier) if p.kind is AwardKind.AWARD else ()
        out.append(replace(p, rewards=given) if given else p)
    return out
