"""Balances and levels (pure), and the `point_levels` option's validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from accolade_server.config import PointLevel, Settings
from accolade_server.domain.model import AwardKind, AwardRecord, AwardSource
from accolade_server.domain.points import balance, crossed
from accolade_server.store.port import effects

LEVELS = [PointLevel(name="Novice", threshold=0), PointLevel(name="Regular", threshold=100)]


def test_the_level_is_the_highest_threshold_reached_and_the_next_is_counted_down() -> None:
    assert balance(0, 0, []) == balance(0, 0, [])
    assert (balance(0, 0, []).level, balance(0, 0, []).to_next_level) == ("", 0)
    b = balance(99, 9, LEVELS)
    assert (b.lifetime, b.spendable, b.level, b.next_level, b.to_next_level) == (
        99,
        90,
        "Novice",
        "Regular",
        1,
    )
    top = balance(100, 0, LEVELS)
    assert (top.level, top.next_level, top.next_threshold, top.to_next_level) == (
        "Regular",
        "",
        0,
        0,
    )
    above_none = balance(5, 0, [PointLevel(name="Gold", threshold=10)])
    assert (above_none.level, above_none.next_level) == ("", "Gold")


def test_a_level_is_crossed_going_from_below_to_at_or_above_its_threshold() -> None:
    assert [lv.name for lv in crossed(LEVELS, 0, 100)] == ["Regular"]  # 0 is never crossed
    assert crossed(LEVELS, 100, 150) == []
    assert crossed(LEVELS, 150, 40) == []


@pytest.mark.parametrize(
    ("levels", "fragment"),
    [
        ([{"name": "A", "threshold": 10}, {"name": "B", "threshold": 10}], "strictly increasing"),
        ([{"name": "A", "threshold": 10}, {"name": "B", "threshold": 5}], "'B'"),
        ([{"name": "A", "threshold": 0}, {"name": "A", "threshold": 5}], "unique"),
        ([{"name": "", "threshold": 0}], "1-64 letters"),
        ([{"name": "A", "threshold": -1}], "greater than or equal to 0"),
        ([{"name": "A"}], "threshold"),
    ],
)
def test_bad_point_levels_are_refused_at_startup_saying_why(
    levels: list[dict[str, object]], fragment: str
) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(point_levels=levels)
    assert "point_levels" in str(info.value) and fragment in str(info.value)


def _entry(kind: AwardKind, points: int) -> AwardRecord:
    return AwardRecord(1, "u", "", "", points, AwardSource.MANUAL, None, kind)  # type: ignore[arg-type]


def test_redemptions_change_what_was_spent_and_levels_change_nothing() -> None:
    fx = effects(
        [
            _entry(AwardKind.REDEMPTION, -30),
            _entry(AwardKind.REFUND, 10),
            _entry(AwardKind.LEVEL, 0),
        ]
    )
    assert fx.spent == {"u": 20}
    assert (fx.points, fx.held, fx.unheld, fx.erased) == ({}, [], [], [])


def test_webhooks_carry_the_rewards_of_an_award_and_name_the_new_kinds() -> None:
    from datetime import UTC, datetime, timedelta

    from accolade_server.domain.model import Achievement, Reward, Rule
    from accolade_server.notify.sinks import award_payload

    when = datetime(2026, 12, 1, tzinfo=UTC)
    a = Achievement(
        "pro",
        "Pro",
        Rule(("buy",)),
        rewards=(Reward("feature:pro"), Reward("coupon:X1", timedelta(days=2))),
    )
    award = AwardRecord(7, "u", "pro", "", 10, AwardSource.RULE, when)
    body = award_payload(award, a)
    assert body["type"] == "award.granted"
    assert body["award"]["rewards"] == [
        {"name": "feature:pro", "expire_time": None},
        {"name": "coupon:X1", "expire_time": "2026-12-03T00:00:00+00:00"},
    ]
    level = AwardRecord(8, "u", "", "Regular", 0, AwardSource.RULE, when, AwardKind.LEVEL)
    assert award_payload(level, None)["type"] == "level.reached"
    spent = AwardRecord(
        9, "u", "", "mug", -5, AwardSource.MANUAL, when, AwardKind.REDEMPTION, event_id="r1"
    )
    body = award_payload(spent, None)
    assert body["type"] == "points.redeemed"
    assert (body["award"]["redemption_id"], body["award"]["reward_id"]) == ("r1", "mug")


def test_rewards_in_definition_files_take_durations_and_round_trip(tmp_path: object) -> None:
    from pathlib import Path

    from accolade import definitions

    path = Path(str(tmp_path)) / "defs.yaml"
    path.write_text(
        "achievements:\n"
        "  - id: golden-fit\n"
        "    title: Golden Fit\n"
        "    rule: {event_types: [workout]}\n"
        '    rewards: [{name: "feature:pro"}, {name: "coupon:X", valid_for: 30d}]\n'
        '    tiers: [{name: b, threshold: 1, rewards: [{name: "frame:b", valid_for: 90}]}]\n'
    )
    [a] = definitions.load_file(path).achievements
    assert [(r.name, r.valid_for.seconds) for r in a.rewards] == [
        ("feature:pro", 0),
        ("coupon:X", 30 * 86400),
    ]
    assert a.tiers[0].rewards[0].valid_for.seconds == 90
    exported = definitions.to_data([a])["achievements"][0]
    assert exported["rewards"][1] == {"name": "coupon:X", "valid_for": "2592000s"}
    path.write_text(
        "achievements:\n"
        "  - id: g\n"
        "    title: G\n"
        "    rule: {event_types: [w]}\n"
        '    rewards: [{name: "feature:pro", valid_for: soon}]\n'
    )
    with pytest.raises(
        definitions.DefinitionError, match=r"rewards\[0\]\.valid_for: expected a dur"
    ):
        definitions.load_file(path)


def test_a_level_reached_is_emailed_with_its_own_template() -> None:
    from datetime import UTC, datetime

    from accolade_server.notify.sinks import EmailSink

    when = datetime(2026, 12, 1, tzinfo=UTC)
    level = AwardRecord(
        8, "a@example.com", "", "Regular", 0, AwardSource.RULE, when, AwardKind.LEVEL
    )
    sink = EmailSink(Settings(email_to="{user_id}"))
    msg = sink.message(level, None)
    assert msg is not None and msg["Subject"] == "You reached Regular!"
    custom = EmailSink(
        Settings(
            email_to="{user_id}",
            email_templates={"level": {"subject": "Level {tier}", "body": "{title}"}},
        )
    )
    again = custom.message(level, None)
    assert again is not None and again["Subject"] == "Level Regular"


def test_apply_reports_reward_changes_and_refuses_their_silent_removal() -> None:
    from datetime import timedelta

    from accolade_server.domain.changes import diff, removed_fields
    from accolade_server.domain.model import Achievement, Reward, Rule, Tier

    old = Achievement(
        "a",
        "A",
        Rule(("buy",)),
        rewards=(Reward("feature:x"),),
        tiers=(Tier("b", 1, rewards=(Reward("frame:b", timedelta(days=1)),)), Tier("s", 2)),
    )
    new = Achievement("a", "A", Rule(("buy",)), tiers=(Tier("b", 1), Tier("s", 2)))
    changed = {c.field: (c.old, c.new) for c in diff(old, new)}
    assert changed == {
        "rewards": ('[{"name":"feature:x"}]', "[]"),
        "tiers[0].rewards": ('[{"name":"frame:b","valid_for":"86400s"}]', ""),
    }
    assert removed_fields(old, new, says_enabled=True) == ["rewards"]
