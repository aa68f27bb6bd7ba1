"""Fixtures: a real PostgreSQL schema per test run, a SQLite file, and a real grpc.aio server.

PostgreSQL comes from ACCOLADE_TEST_POSTGRES_URL (default: the local trust-auth server,
database `test`). Each run creates its own schema and drops it at the end, so parallel runs
never collide. Tables are emptied before each test.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from accolade.v1 import admin_pb2_grpc, tracker_pb2_grpc
from accolade_server import app
from accolade_server.config import Settings
from accolade_server.store import migrate
from accolade_server.store.db import make_engine
from accolade_server.store.tables import award_log_head, definitions_version, metadata

#: Debian's Chromium, driven by Playwright without a browser download (.ci/run installs it).
CHROMIUM = os.environ.get("ACCOLADE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Screenshots and other files a person looks at after a run (git-ignored).
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-results" / "artifacts"

POSTGRES_URL = os.environ.get(
    "ACCOLADE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgres"]


def pytest_configure(config: pytest.Config) -> None:
    """Temporary files of this checkout's runs under its own `.pytest-tmp/`: runs from two
    checkouts on one machine (a developer's and CI's) would otherwise share
    /tmp/pytest-of-USER, where each run deletes the older runs' directories, SQLite files of
    a run still going included."""
    if not config.option.basetemp:
        config.option.basetemp = str(Path(__file__).resolve().parent.parent / ".pytest-tmp")


@dataclass
class Database:
    backend: str
    url: str
    schema: str | None
    engine: AsyncEngine

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": self.url,
            "database_schema": self.schema,
            "listen": "127.0.0.1:0",
            "http_listen": "127.0.0.1:0",
            "track_event_types": ["*"],
            "shutdown_grace_seconds": 1.0,
        }
        values.update(overrides)
        return Settings(**values)

    async def truncate(self) -> None:
        async with self.engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                await conn.execute(table.delete())
            await conn.execute(award_log_head.insert().values(id=1, last_cursor=0))
            await conn.execute(definitions_version.insert().values(id=1, version=0))


@pytest.fixture(scope="session")
def run_id() -> str:
    return f"t{os.getpid()}_{uuid.uuid4().hex[:8]}"


async def create_schema(name: str) -> None:
    admin = make_engine(POSTGRES_URL)
    try:
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    finally:
        await admin.dispose()


async def migrated_schema(name: str) -> str:
    """Create `name` and apply every migration to it (drop it with `drop_schema`)."""
    await create_schema(name)
    engine = make_engine(POSTGRES_URL, schema=name)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    return name


async def drop_schema(name: str) -> None:
    admin = make_engine(POSTGRES_URL)
    try:
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    finally:
        await admin.dispose()


@pytest.fixture
async def own_schema(run_id: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A migrated PostgreSQL schema of this test alone, for server processes to share."""
    name = f"accolade_{run_id}_{request.node.name[5:25]}"
    await migrated_schema(name)
    try:
        yield name
    finally:
        await drop_schema(name)


@pytest.fixture(scope="session")
async def postgres_db(run_id: str) -> AsyncIterator[Database]:
    schema = f"accolade_{run_id}"
    await create_schema(schema)
    # Pinged: the fault suite restarts PostgreSQL while this engine's connections sit idle.
    engine = make_engine(POSTGRES_URL, schema=schema, pre_ping=True)
    try:
        await migrate.upgrade(engine)
        yield Database("postgres", POSTGRES_URL, schema, engine)
    finally:
        await engine.dispose()
        await drop_schema(schema)


@pytest.fixture(scope="session")
async def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'accolade.db'}"
    engine = make_engine(url)
    try:
        await migrate.upgrade(engine)
        yield Database("sqlite", url, None, engine)
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
async def db(
    request: pytest.FixtureRequest, postgres_db: Database, sqlite_db: Database
) -> Database:
    """A migrated, empty database on each backend in turn."""
    database = postgres_db if request.param == "postgres" else sqlite_db
    await database.truncate()
    return database


@dataclass
class Running:
    app: app.App
    target: str
    channel: grpc.aio.Channel
    admin: admin_pb2_grpc.AchievementAdminAsyncStub
    tracker: tracker_pb2_grpc.BadgeTrackerAsyncStub
    db: Database

    @property
    def http_url(self) -> str:
        """Base URL of the HTTP listener (the fixture always turns it on, on a free port)."""
        assert self.app.http_port is not None, "started with http_listen empty"
        return f"http://127.0.0.1:{self.app.http_port}"


async def start_server(database: Database, **overrides: Any) -> Running:
    built = await app.build(database.settings(**overrides))
    target = f"127.0.0.1:{built.port}"
    channel = grpc.aio.insecure_channel(target)
    return Running(
        app=built,
        target=target,
        channel=channel,
        admin=admin_pb2_grpc.AchievementAdminStub(channel),
        tracker=tracker_pb2_grpc.BadgeTrackerStub(channel),
        db=database,
    )


async def stop_server(running: Running) -> None:
    await running.channel.close()
    await running.app.stop(0.5)


@pytest.fixture
async def server(db: Database) -> AsyncIterator[Running]:
    """A real grpc.aio server on a free port over `db`, with every event type tracked."""
    running = await start_server(db)
    try:
        yield running
    finally:
        await stop_server(running)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright-asyncio's `browser` and `page` fixtures, on Debian's Chromium."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture
def artifacts() -> Path:
    """Where a test saves screenshots for people to look at (test-results/artifacts)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def repo_root() -> Iterator[Path]:
    yield Path(__file__).resolve().parent.parent


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate."""
    d = tmp_path_factory.mktemp("tls")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Accolade test CA",
        cwd=d,
    )
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
            cwd=d,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            cwd=d,
        )
    return d
