"""Definition files: the original spec's shape, the native shape, errors, and export."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from google.protobuf.timestamp_pb2 import Timestamp

import accolade
from accolade import definitions
from accolade.definitions import DefinitionError
from accolade.v1 import admin_pb2 as apb
from accolade.v1 import types_pb2 as pb

SPEC_FILE = """\
achievement_rules:
  - rule_name: "FirstPurchase"
    condition: event == "purchase_completed"
    award_badge: true
    badge_id: "welcome-badge"
"""


def test_the_spec_shape_maps_onto_an_achievement(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(SPEC_FILE, encoding="utf-8")
    assert definitions.load(path) == [
        pb.Achievement(
            id="welcome-badge",
            title="FirstPurchase",
            enabled=True,
            rule=pb.Rule(
                event_types=["purchase_completed"], aggregate=pb.AGGREGATE_COUNT, target=1
            ),
        )
    ]


def test_spec_condition_event_in_a_list_feeds_every_listed_type() -> None:
    [parsed] = definitions.parse(
        {
            "achievement_rules": [
                {
                    "rule_name": "Shopper",
                    "condition": "event in [\"purchase_completed\", 'refund_issued']",
                    "badge_id": "shopper",
                }
            ]
        }
    )
    assert list(parsed.rule.event_types) == ["purchase_completed", "refund_issued"]


def test_spec_entry_without_badge_id_gets_a_slug_of_its_name_and_optional_fields() -> None:
    [parsed] = definitions.parse(
        {
            "achievement_rules": [
                {
                    "rule_name": "FirstPurchase",
                    "condition": "event=='purchase_completed'",
                    "award_badge": False,
                    "description": "Buy something",
                    "points": 10,
                    "category": "shopping",
                    "hidden": True,
                }
            ]
        }
    )
    assert parsed.id == "first-purchase"
    assert parsed.HasField("enabled") and parsed.enabled is False
    assert (parsed.description, parsed.points, parsed.category, parsed.hidden) == (
        "Buy something",
        10,
        "shopping",
        True,
    )


def test_spec_entry_without_award_badge_leaves_enabled_unset() -> None:
    # Unset: created enabled, and an apply does not silently re-enable a disabled one.
    [parsed] = definitions.parse(
        {"achievement_rules": [{"rule_name": "Hi", "condition": 'event == "login"'}]}
    )
    assert not parsed.HasField("enabled")


def test_every_error_of_a_file_is_reported_at_once_in_the_files_terms() -> None:
    data = {
        "achievements": [
            {"id": "a", "title": "A", "rule": {"event_types": ["x"], "aggregate": "summ"}},
            {"id": "b", "title": 7, "rule": {"event_types": "x"}, "icon": "x"},
            {"id": "c", "title": "C", "tiers": [{"name": "gold", "threshold": "ten"}]},
        ],
        "achievement_rules": [{"rule_name": "D", "condition": "event.properties.x > 1"}],
    }
    with pytest.raises(DefinitionError) as info:
        definitions.parse(data, "rules.yaml")
    errors = info.value.errors
    assert str(info.value).startswith(f"rules.yaml: {len(errors)} errors:")
    assert any(
        e.startswith(
            "achievements[0].rule.aggregate: 'summ' is not an aggregate; use one of "
            "count, sum, max, distinct, streak_days"
        )
        for e in errors
    ), errors
    assert any(e.startswith("achievements[1].title: expected text, got a number") for e in errors)
    assert any(e.startswith("achievements[1].rule.event_types: expected a list") for e in errors)
    assert any(
        e.startswith("achievements[1].icon: unknown field (did you mean icon_url?)") for e in errors
    )
    assert any(
        e.startswith("achievements[2].tiers[0].threshold: expected a number") for e in errors
    )
    assert any(e.startswith("achievement_rules[0].condition:") for e in errors)
    assert len(errors) == 6, errors


def test_two_spec_entries_whose_names_slug_to_one_id_are_refused() -> None:
    data = {
        "achievement_rules": [
            {"rule_name": "FirstPurchase", "condition": 'event == "a"'},
            {"rule_name": "First Purchase", "condition": 'event == "b"'},
        ]
    }
    with pytest.raises(DefinitionError) as info:
        definitions.parse(data, "rules.yaml")
    assert (
        "achievement_rules[1]: id 'first-purchase' (from rule_name 'First Purchase') is also the "
        "id of achievement_rules[0]; set badge_id" in str(info.value)
    )


def test_event_types_are_read_with_any_spelling_of_their_types() -> None:
    read = definitions.read(
        {
            "achievements": [{"id": "a", "title": "A", "rule": {"event_types": ["buy"]}}],
            "event_types": {"buy": {"amount": "number", "item.sku": "PROPERTY_TYPE_STRING"}},
        }
    )
    [shape] = read.event_types
    assert shape.name == "buy"
    assert [(p.path, p.declared_type) for p in shape.properties] == [
        ("amount", apb.PROPERTY_TYPE_NUMBER),
        ("item.sku", apb.PROPERTY_TYPE_STRING),
    ]
    with pytest.raises(DefinitionError, match=r"event_types.buy.amount: 'numbr' is not a property"):
        definitions.read({"achievements": [], "event_types": {"buy": {"amount": "numbr"}}})


@pytest.mark.parametrize("spelling", ["sum", "SUM", "Sum", "AGGREGATE_SUM", "Aggregate.SUM", 2])
def test_one_spelling_rule_for_enums(spelling: object) -> None:
    assert accolade.parse_enum(accolade.Aggregate, spelling) == pb.AGGREGATE_SUM
    assert accolade.parse_enum(accolade.ProgressPolicy, "reset") == apb.PROGRESS_POLICY_RESET
    assert accolade.parse_enum(accolade.AwardSource, "manual") == pb.AWARD_SOURCE_MANUAL
    assert accolade.parse_enum(accolade.ProgressStatus, "in-progress") == (
        pb.PROGRESS_STATUS_IN_PROGRESS
    )
    with pytest.raises(ValueError, match="use one of count, sum, max, distinct, streak_days"):
        accolade.parse_enum(accolade.Aggregate, "total")


@pytest.mark.parametrize(
    "condition",
    [
        "event.properties.amount >= 100",
        "event == purchase_completed",
        'event != "login"',
        'event == "a" && event == "b"',
        "",
    ],
)
def test_a_spec_condition_that_is_not_understood_names_the_entry(condition: str) -> None:
    data = {
        "achievement_rules": [
            {"rule_name": "Ok", "condition": 'event == "login"'},
            {"rule_name": "Bad", "condition": condition},
        ]
    }
    with pytest.raises(DefinitionError) as info:
        definitions.parse(data, "rules.yaml")
    message = str(info.value)
    assert message.startswith("rules.yaml: achievement_rules[1].condition")
    assert "achievements" in message  # points to the shape that takes CEL


def test_an_unknown_key_in_the_spec_shape_names_the_entry_and_key() -> None:
    data = {
        "achievement_rules": [
            {"rule_name": "A", "condition": 'event == "a"', "badge_idd": "a"},
        ]
    }
    with pytest.raises(DefinitionError, match=r"achievement_rules\[0\].*badge_idd"):
        definitions.parse(data, "rules.yaml")


def test_an_unknown_key_in_the_native_shape_names_the_entry_and_key() -> None:
    data = {
        "achievements": [
            {"id": "a", "title": "A", "rule": {"event_types": ["a"]}},
            {"id": "b", "title": "B", "rule": {"event_types": ["b"], "conditon": "true"}},
        ]
    }
    with pytest.raises(DefinitionError, match=r"rules.yaml: achievements\[1\].*conditon"):
        definitions.parse(data, "rules.yaml")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"rules": []}, "achievements:"),
        ([1, 2], "achievements:"),
        ({"achievements": {"id": "a"}}, "must be a list"),
        ({"achievements": ["a"]}, "achievements[0]: expected a mapping"),
    ],
)
def test_a_file_of_the_wrong_shape_is_refused(data: object, fragment: str) -> None:
    with pytest.raises(DefinitionError) as info:
        definitions.parse(data, "rules.yaml")
    assert fragment in str(info.value)


def test_malformed_yaml_and_missing_files_are_definition_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("achievements:\n  - id: [unclosed\n", encoding="utf-8")
    with pytest.raises(DefinitionError, match="not valid YAML"):
        definitions.load(broken)
    with pytest.raises(DefinitionError, match=r"missing\.yaml"):
        definitions.load(tmp_path / "missing.yaml")


def test_native_aggregate_names_are_accepted_short_and_long() -> None:
    parsed = definitions.parse(
        {
            "achievements": [
                {"id": "a", "title": "A", "rule": {"event_types": ["x"], "aggregate": "sum"}},
                {"id": "b", "title": "B", "rule": {"event_types": ["x"], "aggregate": "MAX"}},
                {
                    "id": "c",
                    "title": "C",
                    "rule": {"event_types": ["x"], "aggregate": "AGGREGATE_STREAK_DAYS"},
                },
            ]
        }
    )
    assert [a.rule.aggregate for a in parsed] == [
        pb.AGGREGATE_SUM,
        pb.AGGREGATE_MAX,
        pb.AGGREGATE_STREAK_DAYS,
    ]


def test_output_only_fields_in_a_file_are_ignored() -> None:
    [parsed] = definitions.parse(
        {
            "achievements": [
                {
                    "id": "a",
                    "title": "A",
                    "rule": {"event_types": ["x"]},
                    "etag": "r3",
                    "create_time": "2026-01-01T00:00:00Z",
                    "update_time": "2026-01-02T00:00:00Z",
                }
            ]
        }
    )
    assert not parsed.etag and not parsed.HasField("create_time")


RICH = [
    pb.Achievement(
        id="big-spender",
        title="Big spender",
        description="Spend a lot",
        icon_url="https://example.com/b.png",
        category="shopping",
        points=25,
        hidden=True,
        enabled=False,
        rule=pb.Rule(
            event_types=["purchase_completed", "gift_sent"],
            condition="event.properties.amount >= 100",
            aggregate=pb.AGGREGATE_SUM,
            field="amount",
        ),
        tiers=[
            pb.Tier(name="bronze", threshold=100),
            pb.Tier(name="gold", threshold=500.5, points=50),
        ],
        prerequisites=["welcome-badge"],
        start_time=Timestamp(seconds=1_700_000_000),
        end_time=Timestamp(seconds=1_800_000_000, nanos=500_000_000),
    ),
    pb.Achievement(
        id="levels",
        title="Levels",
        enabled=True,
        use_level_thresholds=True,
        rule=pb.Rule(event_types=["login"], aggregate=pb.AGGREGATE_STREAK_DAYS),
    ),
]


def test_an_export_parses_back_to_equal_messages() -> None:
    text = definitions.dump(RICH)
    assert "create_time" not in text and "etag" not in text
    assert definitions.parse(yaml.safe_load(text)) == RICH


def test_an_exported_file_of_parsed_definitions_parses_back_equal(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC_FILE, encoding="utf-8")
    parsed = definitions.load(spec)
    exported = tmp_path / "exported.yaml"
    exported.write_text(definitions.dump(parsed), encoding="utf-8")
    assert definitions.load(exported) == parsed


def test_export_leaves_out_output_only_fields() -> None:
    stored = pb.Achievement()
    stored.CopyFrom(RICH[1])
    stored.etag = "r7"
    stored.create_time.FromSeconds(1_700_000_000)
    stored.update_time.FromSeconds(1_700_000_001)
    data = definitions.to_data([stored])
    assert set(data) == {"achievements"}
    [entry] = data["achievements"]
    assert not {"etag", "create_time", "update_time"} & set(entry)
    assert entry["rule"]["aggregate"] == "streak_days"


def test_a_definition_with_enabled_unset_exports_as_enabled() -> None:
    # Unset `enabled` means enabled on create; the export must not turn it into false.
    unset = pb.Achievement(id="a", title="A", rule=pb.Rule(event_types=["x"]))
    [entry] = definitions.to_data([unset])["achievements"]
    assert entry["enabled"] is True
