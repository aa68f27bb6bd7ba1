"""The console's achievement form: parsing, error placement and field diffs (pure)."""

from __future__ import annotations

import pytest
from starlette.datastructures import FormData, UploadFile

from accolade_server.console import forms, transfer
from accolade_server.console.tryit import parse_properties
from accolade_server.domain.errors import InvalidArgument
from accolade_server.domain.model import Aggregate, Rule, Tier


def form(**fields: str | list[str]) -> FormData:
    items: list[tuple[str, str | UploadFile]] = []
    for name, value in fields.items():
        items.extend((name, v) for v in (value if isinstance(value, list) else [value]))
    return FormData(items)


def test_a_form_becomes_the_achievement_it_describes() -> None:
    values = forms.from_form(
        form(
            id="big-spender",
            title="Big spender",
            points="5",
            enabled="1",
            event_types="purchase, refund  order",
            condition="event.properties.amount > 1",
            aggregate="sum",
            field="amount",
            tier_name=["bronze", "gold"],
            tier_threshold=["100", "500"],
            tier_points=["", "50"],
            prerequisites="first-login",
            start_time="2026-01-02T03:04",
        )
    )
    a = forms.to_achievement(values)
    assert a.rule == Rule(
        ("purchase", "refund", "order"), "event.properties.amount > 1", Aggregate.SUM, "amount", 1
    )
    assert a.tiers == (Tier("bronze", 100, 0), Tier("gold", 500, 50))
    assert a.enabled and not a.hidden and a.points == 5
    assert a.prerequisites == ("first-login",)
    assert a.start_time is not None and a.start_time.isoformat() == "2026-01-02T03:04:00+00:00"
    assert forms.to_achievement(forms.from_achievement(a)) == a


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"points": "1.5"}, "achievement.points"),
        ({"target": "many"}, "achievement.rule.target"),
        ({"tier_name": "a", "tier_threshold": "x"}, "achievement.tiers[0].threshold"),
        ({"end_time": "tomorrow"}, "achievement.end_time"),
        ({"aggregate": "median"}, "achievement.rule.aggregate"),
    ],
)
def test_unparseable_fields_are_named(fields: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        forms.to_achievement(forms.from_form(form(id="a", title="A", **fields)))
    assert info.value.field == field


@pytest.mark.parametrize(
    ("field", "slot"),
    [
        ("achievement.rule.condition", "rule-condition"),
        ("achievement.rule.event_types[2]", "rule-event_types"),
        ("achievement.rule", "rule-event_types"),
        ("achievement.tiers[1].threshold", "tiers-1-threshold"),
        ("achievement.tiers[7].name", "tiers"),  # no such row on the form
        ("achievement.prerequisites[0]", "prerequisites"),
        ("update_mask", "general"),
        (None, "general"),
    ],
)
def test_errors_land_next_to_their_field(field: str | None, slot: str) -> None:
    assert forms.slot_of(field, tier_rows=2) == slot


def test_the_position_of_a_cel_syntax_error_is_read_from_its_message() -> None:
    assert forms.condition_position("Syntax error at 2:17: mismatched input") == (2, 17)
    assert forms.condition_position("unknown variable x") is None


def test_try_it_properties_arrive_as_the_grpc_api_delivers_them() -> None:
    assert parse_properties('{"amount": 42, "items": [1, {"n": 2}], "ok": true}') == {
        "amount": 42.0,
        "items": [1.0, {"n": 2.0}],
        "ok": True,
    }
    for text, message in (("[1]", "JSON object"), ("{", "not JSON"), ('{"a": NaN}', "finite")):
        with pytest.raises(InvalidArgument, match=message):
            parse_properties(text)


def test_every_domain_error_has_a_console_status() -> None:
    from accolade_server.console.context import STATUS_BY_ERROR, status_of
    from accolade_server.domain import errors

    for cls in vars(errors).values():
        is_error = isinstance(cls, type) and issubclass(cls, errors.AccoladeError)
        if is_error and cls is not errors.AccoladeError:
            assert cls in STATUS_BY_ERROR, cls
            assert status_of(cls("x")) == STATUS_BY_ERROR[cls]


def test_import_diff_values_read_as_written_not_as_json() -> None:
    assert transfer.shown('"Welcome aboard!"') == "Welcome aboard!"
    assert transfer.shown("5") == "5"
    assert transfer.shown('["login"]') == '["login"]'
    assert transfer.shown("") == "(none)"
