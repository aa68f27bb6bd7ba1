"""What a new definition changes in a stored one: the diff in a file's terms, the fields it
would clear, and the changes that alter what stored progress means. Pure."""

from __future__ import annotations

import dataclasses

from accolade_server.domain.changes import diff, meaning_changes, removed_fields
from accolade_server.domain.model import Achievement, Aggregate, Rule, Tier

BASE = Achievement(
    "a",
    "A",
    Rule(("buy",), "event.properties.amount > 1", Aggregate.SUM, "amount"),
    description="Spend",
    tiers=(Tier("bronze", 10), Tier("gold", 100, 5)),
)


def test_a_diff_lists_changed_fields_by_their_file_paths_with_json_values() -> None:
    new = dataclasses.replace(
        BASE,
        title="B",
        rule=dataclasses.replace(BASE.rule, event_types=("buy", "gift")),
        tiers=(Tier("bronze", 10), Tier("gold", 200, 5), Tier("platinum", 500)),
    )
    assert [(c.field, c.old, c.new) for c in diff(BASE, new)] == [
        ("title", '"A"', '"B"'),
        ("rule.event_types", '["buy"]', '["buy","gift"]'),
        ("tiers[1].threshold", "100", "200"),
        ("tiers[2]", "", '{"name":"platinum","threshold":500,"points":0}'),
    ]
    assert diff(BASE, BASE) == []


def test_fields_the_new_definition_leaves_unset_are_removals() -> None:
    bare = Achievement("a", "A", Rule(("buy",), "", Aggregate.SUM, "amount"))
    assert removed_fields(BASE, bare, says_enabled=True) == [
        "description",
        "tiers",
        "rule.condition",
    ]
    disabled = dataclasses.replace(BASE, enabled=False)
    assert removed_fields(disabled, BASE, says_enabled=False) == ["enabled"]
    assert removed_fields(disabled, BASE, says_enabled=True) == []  # `enabled: true` said so
    levels = dataclasses.replace(BASE, tiers=(), use_level_thresholds=True)
    assert removed_fields(BASE, levels, says_enabled=True) == []  # tiers replaced, not dropped


def test_event_types_aggregate_field_condition_and_thresholds_change_what_progress_means() -> None:
    reordered = dataclasses.replace(BASE, rule=dataclasses.replace(BASE.rule, event_types=("buy",)))
    assert meaning_changes(BASE, reordered) == []
    counting = dataclasses.replace(BASE, rule=Rule(("buy",), BASE.rule.condition))
    assert meaning_changes(BASE, counting) == [
        "rule.aggregate sum -> count",
        'rule.field "amount" -> ""',
    ]
    other_field = dataclasses.replace(BASE, rule=dataclasses.replace(BASE.rule, field="total"))
    assert meaning_changes(BASE, other_field) == ['rule.field "amount" -> "total"']
    condition_only = dataclasses.replace(BASE, rule=dataclasses.replace(BASE.rule, condition=""))
    assert meaning_changes(BASE, condition_only) == [
        'rule.condition "event.properties.amount > 1" -> ""'
    ]
    higher = dataclasses.replace(BASE, tiers=(Tier("bronze", 10), Tier("gold", 150, 5)))
    assert meaning_changes(BASE, higher) == ["tiers thresholds [10,100] -> [10,150]"]
    renamed = dataclasses.replace(BASE, tiers=(Tier("copper", 10), Tier("gold", 100, 9)))
    assert meaning_changes(BASE, renamed) == []  # names and points only
    single = Achievement("s", "S", Rule(("buy",), target=3))
    assert meaning_changes(single, dataclasses.replace(single, rule=Rule(("buy",), target=5))) == [
        "rule.target thresholds [3] -> [5]"
    ]
    levels = dataclasses.replace(single, use_level_thresholds=True)
    assert meaning_changes(single, levels) == ['rule.target thresholds [3] -> "level thresholds"']
