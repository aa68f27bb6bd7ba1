"""User profiles in the pure parts: validation with hints, update masks, and conditions over
`user.attributes` in the engine (passed in with the event, never read by the engine)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from accolade_server.domain.errors import InvalidArgument
from accolade_server.domain.model import Achievement, Rule
from accolade_server.domain.state import Event
from accolade_server.domain.users import (
    PROFILE_FIELDS,
    User,
    check_locale,
    check_time_zone,
    mask_fields,
)
from accolade_server.rules.cel import compile_condition
from accolade_server.rules.engine import RuleSet, match

T0 = datetime(2026, 12, 1, tzinfo=UTC)
PRO = 'user.attributes.plan == "pro"'


def rules(*conditions: str) -> RuleSet:
    return RuleSet(
        Achievement(f"a{i}", f"A{i}", Rule(("visit",), c)) for i, c in enumerate(conditions)
    )


def visit(attributes: dict[str, object] | None) -> Event:
    return Event("e1", "u1", "visit", {}, T0, user_attributes=attributes)


def test_a_rule_set_knows_whether_a_condition_reads_the_user() -> None:
    assert rules(PRO).reads_user
    assert not rules("event.properties.n > 1", "").reads_user
    assert rules("event.type == 'visit'", "user.attributes.n > 1 && true").reads_user


def test_conditions_read_attributes_and_a_missing_one_is_no_match() -> None:
    ruleset = rules(PRO)
    assert [c.achievement_id for c in match(visit({"plan": "pro"}), ruleset).contributions] == [
        "a0"
    ]
    assert not match(visit({"plan": "free"}), ruleset).contributions
    no_attributes: list[dict[str, object] | None] = [{}, None]  # none stored; not loaded
    for attributes in no_attributes:
        missing = match(visit(attributes), ruleset)
        assert not missing.contributions and "plan" in missing.errors[0].message


@pytest.mark.parametrize(
    ("zone", "hint"),
    [("Europe/Berln", "Europe/Berlin"), ("america/los_angeles", "IANA"), ("+02:00", "IANA")],
)
def test_an_unknown_time_zone_names_the_field_with_a_hint(zone: str, hint: str) -> None:
    with pytest.raises(InvalidArgument, match=hint) as info:
        check_time_zone(zone, "user.time_zone")
    assert info.value.field == "user.time_zone"


def test_valid_zones_and_locales_pass() -> None:
    for zone in ("", "UTC", "Australia/Lord_Howe", "Pacific/Kiritimati"):
        check_time_zone(zone, "user.time_zone")
    for tag in ("", "en", "pt-BR", "zh-Hant-TW", "es-419"):
        check_locale(tag, "user.locale")
    with pytest.raises(InvalidArgument, match="'en-US'"):
        check_locale("en_US", "user.locale")


def test_the_update_mask_names_fields_or_implies_the_set_ones() -> None:
    user = User("u1", display_name="Ada", attributes={"plan": "pro"})
    assert mask_fields(user, []) == ("display_name", "attributes")
    assert mask_fields(user, ["*"]) == PROFILE_FIELDS
    assert mask_fields(user, ["locale", "locale"]) == ("locale",)
    with pytest.raises(InvalidArgument, match="did you mean 'time_zone'") as info:
        mask_fields(user, ["locale", "timezone"])
    assert info.value.field == "update_mask.paths[1]"
    with pytest.raises(InvalidArgument):
        mask_fields(user, ["create_time"])  # output only


def test_a_condition_reading_user_beyond_attributes_is_refused() -> None:
    with pytest.raises(InvalidArgument, match=r"user\.plan does not exist"):
        compile_condition('user.plan == "pro"')
    compile_condition('event.properties.user.plan == "x" && user.attributes.n > 1')
    compile_condition('"user.x" == event.type')  # inside a string: no variable
