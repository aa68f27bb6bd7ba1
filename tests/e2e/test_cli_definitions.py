"""`accolade rules apply`, `achievements delete` and `event-types` without surprises: diffs,
warnings, refusals naming the flag to pass, and errors in the file's terms. Real
subprocesses against a real server on PostgreSQL and SQLite."""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf.struct_pb2 import Struct

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from tests.conftest import Running
from tests.e2e.test_cli import accolade, client, free_port, ok, stored

SPENDER = """\
achievements:
  - id: big-spender
    title: {title}
    description: Spend a lot
    rule:
      event_types: [purchase_completed]
      condition: "event.properties.amount >= 10"
      aggregate: {aggregate}
      {field}
"""


def spender(tmp_path: Path, *, title: str = "Big spender", aggregate: str = "sum") -> Path:
    path = tmp_path / "spender.yaml"
    field = "field: amount" if aggregate in ("sum", "SUM", "AGGREGATE_SUM") else ""
    path.write_text(SPENDER.format(title=title, aggregate=aggregate, field=field), encoding="utf-8")
    return path


async def test_rules_apply_prints_each_change_and_a_dry_run_writes_nothing(
    server: Running, tmp_path: Path
) -> None:
    ok(await client(server, "rules", "apply", str(spender(tmp_path))))
    before = await stored(server)
    changed = spender(tmp_path, title="Huge spender", aggregate="AGGREGATE_SUM")
    dry = ok(await client(server, "rules", "apply", "--dry-run", str(changed)))
    assert "0 would be created, 1 would be updated, 0 unchanged" in dry.out
    assert "updated: big-spender" in dry.out
    assert 'title: "Big spender" -> "Huge spender"' in dry.out
    assert "dry run: nothing was written" in dry.out
    assert await stored(server) == before

    as_json = json.loads(ok(await client(server, "rules", "apply", str(changed), "--json")).out)
    [change] = as_json["changes"]
    assert change["kind"] == "KIND_UPDATE" and change["previous_source"] == "spender.yaml"
    assert change["fields"] == [
        {"field": "title", "old_value": '"Big spender"', "new_value": '"Huge spender"'}
    ]


async def test_rules_apply_warns_about_paths_its_events_never_carried(
    server: Running, tmp_path: Path
) -> None:
    props = Struct()
    props.update({"total": 5})
    await server.tracker.TrackEvent(
        tpb.TrackEventRequest(
            event_id="e1", user_id="u1", type="purchase_completed", properties=props
        )
    )
    applied = ok(await client(server, "rules", "apply", str(spender(tmp_path))))
    assert "accolade: warning: big-spender: rule.condition reads event.properties.amount" in (
        applied.err
    )
    assert "rule.field reads event.properties.amount" in applied.err

    declared = tmp_path / "declared.yaml"
    declared.write_text(
        spender(tmp_path).read_text(encoding="utf-8")
        + "event_types:\n  purchase_completed: {amount: number}\n",
        encoding="utf-8",
    )
    again = ok(await client(server, "rules", "apply", str(declared)))
    assert "warning" not in again.err
    shape = ok(await client(server, "event-types", "get", "purchase_completed")).out
    assert "amount" in shape and "number" in shape and "total" in shape
    listed = ok(await client(server, "event-types", "list")).out
    assert "purchase_completed" in listed


async def test_rules_apply_refuses_to_drop_fields_or_take_over_another_files_entries(
    server: Running, tmp_path: Path
) -> None:
    ok(await client(server, "rules", "apply", str(spender(tmp_path))))
    bare = tmp_path / "bare.yaml"
    bare.write_text(
        "achievements:\n"
        "  - id: big-spender\n"
        "    title: Big spender\n"
        "    rule: {event_types: [purchase_completed], aggregate: sum, field: amount,\n"
        '           condition: "event.properties.amount >= 10"}\n',
        encoding="utf-8",
    )
    refused = await client(server, "rules", "apply", str(bare), "--source", "spender.yaml")
    assert refused.code == 1
    assert "FAILED_PRECONDITION: nothing was applied" in refused.err
    assert f"{bare}: achievements[0]: big-spender would lose description" in refused.err
    assert "--allow-removal" in refused.err

    # Another file's spec-shaped entry whose rule_name slugs to the same id.
    team_a, team_b = tmp_path / "team-a.yaml", tmp_path / "team-b.yaml"
    team_a.write_text(
        'achievement_rules:\n  - {rule_name: FirstPurchase, condition: event == "buy"}\n',
        encoding="utf-8",
    )
    team_b.write_text(
        "achievements:\n  - {id: x, title: X, rule: {event_types: [x]}}\n"
        "achievement_rules:\n"
        '  - {rule_name: "First Purchase", condition: event == "buy", points: 5}\n',
        encoding="utf-8",
    )
    ok(await client(server, "rules", "apply", str(team_a)))
    taken = await client(server, "rules", "apply", str(team_b))
    assert taken.code == 1
    assert (
        f"{team_b}: achievement_rules[0]: first-purchase was applied from 'team-a.yaml', "
        "not 'team-b.yaml'" in taken.err
    )
    assert "--replace" in taken.err
    replaced = ok(await client(server, "rules", "apply", str(team_b), "--replace"))
    assert "updated: first-purchase" in replaced.out and "points: 0 -> 5" in replaced.out


async def test_rules_apply_asks_what_to_do_with_progress_whose_meaning_changes(
    server: Running, tmp_path: Path
) -> None:
    ok(await client(server, "rules", "apply", str(spender(tmp_path))))
    props = Struct()
    props.update({"amount": 30})
    await server.tracker.TrackEvent(
        tpb.TrackEventRequest(
            event_id="p1", user_id="u1", type="purchase_completed", properties=props
        )
    )
    counting = spender(tmp_path, aggregate="count")
    refused = await client(server, "rules", "apply", str(counting))
    assert refused.code == 1
    assert "changing rule.aggregate sum -> count" in refused.err
    assert "--progress keep|reset|reevaluate|revoke_non_qualifying" in refused.err

    bad = await client(server, "rules", "apply", str(counting), "--progress", "later")
    assert bad.code == 2 and "use one of keep, reset" in bad.err

    ok(await client(server, "rules", "apply", str(counting), "--progress", "RESET"))
    progress = await server.tracker.GetProgress(tpb.GetProgressRequest(user_id="u1"))
    assert progress.progress[0].current == 0


async def test_deleting_a_held_achievement_needs_force(server: Running, tmp_path: Path) -> None:
    ok(await client(server, "rules", "apply", str(spender(tmp_path))))
    await server.admin.GrantAward(
        apb.GrantAwardRequest(user_id="u1", achievement_id="big-spender", tier="")
    )
    refused = await client(server, "achievements", "delete", "big-spender")
    assert refused.code == 1
    assert "1 user holds achievement 'big-spender'" in refused.err and "--force" in refused.err
    assert len(await stored(server)) == 1
    forced = ok(await client(server, "achievements", "delete", "big-spender", "--force"))
    assert "deleted big-spender" in forced.out
    assert await stored(server) == []


async def test_every_error_of_a_file_is_printed_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "achievements:\n"
        "  - {id: a, title: A, rule: {event_types: [x], aggregate: summ}}\n"
        "  - {id: b, title: B, rule: {event_types: [x]}, icon: x}\n",
        encoding="utf-8",
    )
    result = await accolade("rules", "apply", str(path), "--target", f"127.0.0.1:{free_port()}")
    assert result.code == 2
    assert f"{path}: 2 errors:" in result.err
    assert "achievements[0].rule.aggregate: 'summ' is not an aggregate; use one of count" in (
        result.err
    )
    assert "achievements[1].icon: unknown field (did you mean icon_url?)" in result.err


async def test_achievements_create_prints_the_servers_warnings(server: Running) -> None:
    created = ok(
        await client(
            server,
            "achievements",
            "create",
            "--id",
            "x",
            "--event",
            "buy",
            "--condition",
            "event.properties.total > 1",
        )
    )
    assert "created x" in created.out
    assert "accolade: warning: x: no event of type buy has been seen or declared yet" in (
        created.err
    )


async def test_create_takes_an_aggregate_in_any_spelling_and_export_keeps_declarations(
    server: Running, tmp_path: Path
) -> None:
    ok(
        await client(
            server,
            "achievements",
            "create",
            "--id",
            "spend",
            "--event",
            "buy",
            "--aggregate",
            "SUM",
            "--field",
            "amount",
            "--rule-target",
            "100",
        )
    )
    [spend] = await stored(server)
    assert spend.rule.aggregate == 2 and spend.rule.field == "amount"  # AGGREGATE_SUM
    bad = await client(server, "achievements", "create", "--id", "x", "--event", "e",
                       "--aggregate", "total")  # fmt: skip
    assert bad.code == 2 and "use one of count, sum, max, distinct, streak_days" in bad.err

    await server.admin.DeclareEventType(
        apb.DeclareEventTypeRequest(
            event_type=apb.EventType(
                name="buy",
                properties=[
                    apb.PropertyShape(path="amount", declared_type=apb.PROPERTY_TYPE_NUMBER)
                ],
            )
        )
    )
    exported = tmp_path / "exported.yaml"
    ok(await client(server, "rules", "export", "-o", str(exported)))
    text = exported.read_text(encoding="utf-8")
    assert "event_types:\n  buy:\n    amount: number\n" in text
    assert "aggregate: sum" in text
    again = ok(await client(server, "rules", "apply", str(exported)))
    assert "0 were created, 0 were updated, 1 unchanged" in again.out and not again.err
