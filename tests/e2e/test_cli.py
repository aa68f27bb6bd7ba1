"""The `accolade` command, run as a real subprocess against real servers and databases.

Commands run with asyncio.create_subprocess_exec: a blocking gRPC call made from the event
loop would hang against the in-process server, which shares that loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from accolade.v1 import admin_pb2 as apb
from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import types_pb2 as pb
from accolade_server.store import migrate
from accolade_server.store.db import make_engine
from tests.conftest import POSTGRES_URL, Running, create_schema, drop_schema
from tests.e2e.test_broken_definitions import store_behind_the_servers_back
from tests.helpers import achievement

COMMAND = [sys.executable, "-m", "accolade.cli"]
HEALTH_DEADLINE = 60.0

SPEC_FILE = """\
achievement_rules:
  - rule_name: "FirstPurchase"
    condition: event == "purchase_completed"
    award_badge: true
    badge_id: "welcome-badge"
"""

NATIVE_FILE = """\
achievements:
  - id: big-spender
    title: Big spender
    category: shopping
    points: 25
    rule:
      event_types: [purchase_completed]
      condition: "event.properties.amount >= 100"
      aggregate: sum
      field: amount
    tiers:
      - {name: bronze, threshold: 100}
      - {name: gold, threshold: 500, points: 50}
  - id: regular
    title: Regular
    enabled: false
    prerequisites: [big-spender]
    rule: {event_types: [login], aggregate: streak_days, target: 7}
"""


@dataclass
class Result:
    code: int
    out: str
    err: str


def clean_env(**accolade: str) -> dict[str, str]:
    """The caller's environment without any ACCOLADE_* variable, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ACCOLADE_")}
    env["ACCOLADE_HTTP_LISTEN"] = "127.0.0.1:0"  # not the default port: tests run side by side
    env.update({f"ACCOLADE_{k.upper()}": v for k, v in accolade.items()})
    return env


async def accolade(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Result:
    proc = await asyncio.create_subprocess_exec(
        *COMMAND,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env if env is not None else clean_env(),
        cwd=cwd,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


async def client(server: Running, *args: str) -> Result:
    return await accolade(*args, "--target", server.target)


def ok(result: Result) -> Result:
    assert result.code == 0, f"exit {result.code}\nstdout: {result.out}\nstderr: {result.err}"
    return result


async def stored(server: Running) -> list[pb.Achievement]:
    listed = await server.admin.ListAchievements(apb.ListAchievementsRequest(page_size=1000))
    return list(listed.achievements)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- rules apply / export -------------------------------------------------------------------


async def test_spec_shaped_rules_apply_and_export_round_trip(
    server: Running, tmp_path: Path
) -> None:
    spec = tmp_path / "rules.yaml"
    spec.write_text(SPEC_FILE, encoding="utf-8")

    applied = ok(await client(server, "rules", "apply", str(spec)))
    assert f"1 achievement in {spec}: 1 was created, 0 were updated, 0 unchanged" in applied.out
    assert "created: welcome-badge" in applied.out
    got = (
        await server.admin.GetAchievement(apb.GetAchievementRequest(id="welcome-badge"))
    ).achievement
    assert list(got.rule.event_types) == ["purchase_completed"]
    assert got.title == "FirstPurchase" and got.enabled is True

    exported = tmp_path / "out.yaml"
    ok(await client(server, "rules", "export", "-o", str(exported)))
    assert yaml.safe_load(exported.read_text(encoding="utf-8"))["achievements"][0]["id"] == (
        "welcome-badge"
    )
    again = ok(await client(server, "rules", "apply", str(exported)))
    assert "0 were created, 0 were updated, 1 unchanged" in again.out
    assert [a.etag for a in await stored(server)] == [got.etag]  # nothing was rewritten


async def test_native_rules_with_tiers_and_aggregates_round_trip(
    server: Running, tmp_path: Path
) -> None:
    native = tmp_path / "native.yaml"
    native.write_text(NATIVE_FILE, encoding="utf-8")
    applied = json.loads(ok(await client(server, "rules", "apply", str(native), "--json")).out)
    assert applied["created"] == ["big-spender", "regular"]
    assert [c["kind"] for c in applied["changes"]] == ["KIND_CREATE", "KIND_CREATE"]
    assert applied["updated"] == [] and applied["unchanged"] == []
    before = await stored(server)
    big = before[0]
    assert big.rule.condition == "event.properties.amount >= 100"
    assert big.rule.aggregate == pb.AGGREGATE_SUM and big.rule.field == "amount"
    assert [(t.name, t.threshold, t.points) for t in big.tiers] == [
        ("bronze", 100, 0),
        ("gold", 500, 50),
    ]
    regular = before[1]
    assert regular.enabled is False and list(regular.prerequisites) == ["big-spender"]
    assert regular.rule.aggregate == pb.AGGREGATE_STREAK_DAYS and regular.rule.target == 7

    exported = ok(await client(server, "rules", "export")).out  # standard output
    out_file = tmp_path / "exported.yaml"
    out_file.write_text(exported, encoding="utf-8")
    again = json.loads(ok(await client(server, "rules", "apply", str(out_file), "--json")).out)
    assert again["unchanged"] == ["big-spender", "regular"]
    assert again["created"] == [] and again["updated"] == []
    assert await stored(server) == before


async def test_rules_apply_reports_updates(server: Running, tmp_path: Path) -> None:
    await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=achievement("welcome-badge", title="Old"))
    )
    spec = tmp_path / "rules.yaml"
    spec.write_text(SPEC_FILE, encoding="utf-8")
    applied = ok(await client(server, "rules", "apply", str(spec)))
    assert "0 were created, 1 was updated, 0 unchanged" in applied.out
    assert "updated: welcome-badge" in applied.out
    [only] = await stored(server)
    assert only.title == "FirstPurchase"


async def test_rules_apply_dry_run_writes_nothing(server: Running, tmp_path: Path) -> None:
    native = tmp_path / "native.yaml"
    native.write_text(NATIVE_FILE, encoding="utf-8")
    dry = ok(await client(server, "rules", "apply", "--dry-run", str(native)))
    assert "2 would be created" in dry.out
    assert await stored(server) == []


async def test_rules_apply_with_one_invalid_entry_writes_nothing(
    server: Running, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "achievements:\n"
        "  - {id: fine, title: Fine, rule: {event_types: [login]}}\n"
        "  - {id: broken, title: Broken, rule: {event_types: [purchase], aggregate: sum}}\n",
        encoding="utf-8",
    )
    result = await client(server, "rules", "apply", str(bad))
    assert result.code != 0
    assert "INVALID_ARGUMENT" in result.err
    assert "achievements[1].rule.field" in result.err
    assert await stored(server) == []


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("achievements:\n  - id: [unclosed\n", ["not valid YAML"]),
        (
            "achievement_rules:\n  - {rule_name: A, condition: 'event == \"a\"'}\n"
            "  - {rule_name: B, condition: 'event.properties.amount > 5'}\n",
            ["achievement_rules[1].condition"],
        ),
        (
            "achievements:\n  - {id: a, title: A, rule: {event_types: [a]}, colour: red}\n",
            [
                "achievements[0]",
                "colour",
            ],
        ),
    ],
    ids=["malformed-yaml", "unknown-spec-condition", "unknown-key"],
)
async def test_an_unreadable_definitions_file_exits_2_naming_the_entry(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    # No server is needed: the file is refused before anything is sent.
    result = await accolade("rules", "apply", str(path), "--target", f"127.0.0.1:{free_port()}")
    assert result.code == 2, result
    assert str(path) in result.err
    for fragment in fragments:
        assert fragment in result.err


# --- achievements ---------------------------------------------------------------------------


async def test_achievements_list_shows_a_table_and_json(server: Running) -> None:
    for a in (
        achievement("welcome-badge", title="Welcome"),
        achievement(
            "big-spender",
            title="Big spender",
            category="shopping",
            enabled=False,
            rule={"event_types": ["purchase_completed", "refund"]},
        ),
    ):
        await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=a))

    table = ok(await client(server, "achievements", "list")).out.splitlines()
    assert table[0].split() == ["ID", "TITLE", "CATEGORY", "ENABLED", "EVENTS", "STATUS"]
    assert table[1].split() == [
        "big-spender",
        "Big",
        "spender",
        "shopping",
        "no",
        "purchase_completed,refund",
        "ok",
    ]
    assert table[2].split() == [
        "welcome-badge",
        "Welcome",
        "-",
        "yes",
        "purchase_completed",
        "ok",
    ]
    assert len(table) == 3

    listed = json.loads(ok(await client(server, "achievements", "list", "--json")).out)
    assert [a["id"] for a in listed["achievements"]] == ["big-spender", "welcome-badge"]

    shopping = json.loads(
        ok(await client(server, "achievements", "list", "--category", "shopping", "--json")).out
    )
    assert [a["id"] for a in shopping["achievements"]] == ["big-spender"]


async def test_achievements_list_of_nothing_is_just_the_header(server: Running) -> None:
    table = ok(await client(server, "achievements", "list")).out.splitlines()
    assert table == ["ID  TITLE  CATEGORY  ENABLED  EVENTS  STATUS"]


async def test_achievements_get_prints_json_and_a_missing_one_exits_1(server: Running) -> None:
    await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=achievement("welcome-badge", points=5))
    )
    got = json.loads(ok(await client(server, "achievements", "get", "welcome-badge", "--json")).out)
    assert got["id"] == "welcome-badge"
    assert got["rule"]["event_types"] == ["purchase_completed"]
    assert got["enabled"] is True and got["etag"]

    missing = await client(server, "achievements", "get", "missing")
    assert missing.code == 1
    assert "NOT_FOUND" in missing.err and "missing" in missing.err


async def test_achievements_list_and_get_show_broken_definitions_and_condition_errors(
    server: Running,
) -> None:
    for a in (
        achievement("old", rule={"event_types": ["buy"], "condition": "true"}),
        achievement("big", rule={"event_types": ["buy"], "condition": "event.properties.n > 3"}),
    ):
        await server.admin.CreateAchievement(apb.CreateAchievementRequest(achievement=a))
    await store_behind_the_servers_back(server.db, "old", "event.properties.x >")
    await server.tracker.TrackEvent(tpb.TrackEventRequest(event_id="e", user_id="u", type="buy"))

    listed = ok(await client(server, "achievements", "list")).out.splitlines()
    assert listed[1].split()[-4:] == ["buy", "1", "condition", "error"]
    assert listed[2].split()[-1] == "BROKEN"
    assert any(line.startswith("BROKEN old: rule.condition: Syntax error") for line in listed)
    assert any(line.startswith("big: 1 condition error") and "'n'" in line for line in listed)

    got = ok(await client(server, "achievements", "get", "old"))
    assert json.loads(got.out)["broken_reason"].startswith("rule.condition: Syntax error")
    assert got.err.startswith("BROKEN old: rule.condition: Syntax error")


async def test_achievements_delete_removes_it(server: Running) -> None:
    await server.admin.CreateAchievement(
        apb.CreateAchievementRequest(achievement=achievement("welcome-badge"))
    )
    assert (
        "deleted welcome-badge"
        in ok(await client(server, "achievements", "delete", "welcome-badge")).out
    )
    assert await stored(server) == []


async def test_a_client_command_without_a_server_exits_1_unavailable() -> None:
    target = f"127.0.0.1:{free_port()}"
    result = await accolade("achievements", "list", "--target", target, "--timeout", "5")
    assert result.code == 1
    assert "UNAVAILABLE" in result.err and target in result.err


# --- serve and migrate ----------------------------------------------------------------------


@dataclass
class Served:
    proc: asyncio.subprocess.Process
    target: str
    log: Path

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Served]]]:
    """`accolade serve` in an empty working directory, killed at the end if still running."""
    port = free_port()
    workdir = tmp_path / "work"
    workdir.mkdir()
    log = tmp_path / "serve.log"
    started: list[asyncio.subprocess.Process] = []

    async def start(**env: str) -> Served:
        with log.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *COMMAND,
                "serve",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=err,
                env=clean_env(listen=f"127.0.0.1:{port}", **env),
                cwd=workdir,
            )
        started.append(proc)
        return Served(proc, f"127.0.0.1:{port}", log)

    try:
        yield start
    finally:
        for proc in started:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def health_status(served: Served) -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
    """The server's overall health once it answers, or fail if it exits or misses the deadline."""
    options = [
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 500),
    ]
    async with grpc.aio.insecure_channel(served.target, options=options) as channel:
        check = asyncio.ensure_future(
            health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""),
                timeout=HEALTH_DEADLINE,
                wait_for_ready=True,
            )
        )
        exited = asyncio.ensure_future(served.proc.wait())
        done, _ = await asyncio.wait({check, exited}, return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        if check not in done:
            check.cancel()
            pytest.fail(f"server exited with {served.proc.returncode}:\n{served.stderr()}")
        return check.result().status


async def terminate(served: Served) -> int:
    served.proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(served.proc.wait(), 20)


async def test_serve_defaults_to_an_sqlite_file_and_stops_cleanly_on_sigterm(
    serve: Callable[..., Awaitable[Served]], tmp_path: Path
) -> None:
    served = await serve()
    assert await health_status(served) == health_pb2.HealthCheckResponse.SERVING
    assert (tmp_path / "work" / "accolade.db").is_file()

    listed = ok(await accolade("achievements", "list", "--json", "--target", served.target))
    assert json.loads(listed.out) == {"achievements": [], "next_page_token": ""}

    assert await terminate(served) == 0, served.stderr()


@pytest.fixture
async def empty_schema() -> AsyncIterator[str]:
    schema = f"accolade_cli_{uuid.uuid4().hex[:12]}"
    await create_schema(schema)
    try:
        yield schema
    finally:
        await drop_schema(schema)


async def test_serve_on_an_unmigrated_postgres_schema_needs_accolade_migrate(
    serve: Callable[..., Awaitable[Served]], empty_schema: str, tmp_path: Path
) -> None:
    # The plain postgresql:// spelling people paste is accepted too.
    url = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    env = {"database_url": url, "database_schema": empty_schema}

    refused = await serve(**env)
    code = await asyncio.wait_for(refused.proc.wait(), HEALTH_DEADLINE)
    assert code != 0
    assert "accolade migrate" in refused.stderr()

    migrated = ok(await accolade("migrate", env=clean_env(**env), cwd=tmp_path))
    assert f"to revision {migrate.head_revision()}" in migrated.out
    again = ok(await accolade("migrate", env=clean_env(**env), cwd=tmp_path))
    assert "already at revision" in again.out

    engine = make_engine(POSTGRES_URL, schema=empty_schema)
    try:
        assert await migrate.current_revision(engine) == migrate.head_revision()
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        assert "achievements" in tables
    finally:
        await engine.dispose()

    served = await serve(**env)
    assert await health_status(served) == health_pb2.HealthCheckResponse.SERVING
    assert not (tmp_path / "work" / "accolade.db").exists()
    assert await terminate(served) == 0, served.stderr()


BAD_SETTINGS = {
    "badge_level_threshold": "[500,100]",
    "notification_type": "carrier-pigeon",
    "listen": "nonsense",
}


async def test_a_bad_configuration_value_stops_start_up_naming_the_option(tmp_path: Path) -> None:
    async def start_with(option: str, value: str) -> Result:
        workdir = tmp_path / option
        workdir.mkdir()
        settings = {"listen": f"127.0.0.1:{free_port()}", option: value}
        return await accolade("serve", env=clean_env(**settings), cwd=workdir)

    # Independent start-ups, run side by side to keep the suite fast.
    results = await asyncio.gather(*(start_with(o, v) for o, v in BAD_SETTINGS.items()))
    for option, result in zip(BAD_SETTINGS, results, strict=True):
        assert result.code != 0, option
        assert "invalid configuration" in result.err, result.err
        assert option in result.err and f"ACCOLADE_{option.upper()}" in result.err, result.err
        assert not (tmp_path / option / "accolade.db").exists()


async def test_serve_with_an_unreachable_database_exits_with_a_clear_message(
    tmp_path: Path,
) -> None:
    env = clean_env(
        listen=f"127.0.0.1:{free_port()}",
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/test",
    )
    result = await accolade("serve", env=env, cwd=tmp_path)
    assert result.code != 0
    assert "cannot reach the database" in result.err
    assert "Traceback" not in result.err


async def test_migrate_names_a_missing_postgres_schema_and_how_to_create_it(
    serve: Callable[..., Awaitable[Served]], tmp_path: Path
) -> None:
    missing = f"accolade_missing_{uuid.uuid4().hex[:8]}"
    env = {"database_url": POSTGRES_URL, "database_schema": missing}
    result = await accolade("migrate", env=clean_env(**env), cwd=tmp_path)
    assert result.code == 1
    assert f"PostgreSQL schema {missing!r} (option database_schema) does not exist" in result.err
    assert f'CREATE SCHEMA "{missing}"' in result.err
    assert "no schema has been selected" not in result.err  # not the driver's words
    refused = await serve(**env)  # the server says the same
    assert await asyncio.wait_for(refused.proc.wait(), HEALTH_DEADLINE) != 0
    assert f'CREATE SCHEMA "{missing}"' in refused.stderr()


async def test_a_closed_pipe_ends_the_command_quietly(server: Running) -> None:
    """`accolade achievements list | head -1`: no traceback once the reader is gone."""
    await server.admin.ApplyAchievements(
        apb.ApplyAchievementsRequest(
            achievements=[achievement(f"a-{n:04}", title="t" * 200) for n in range(600)]
        )
    )  # a table far larger than a pipe's buffer
    command = " ".join(shlex.quote(part) for part in COMMAND)
    proc = await asyncio.create_subprocess_exec(
        "sh",
        "-c",
        f"{command} achievements list --target {server.target} | head -n 1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_env(),
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert out.split()[0] == b"ID" and len(out.splitlines()) == 1
    assert b"Traceback" not in err and b"Broken pipe" not in err, err.decode()
