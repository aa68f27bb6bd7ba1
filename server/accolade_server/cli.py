"""Server verbs of the `accolade` command: serve and migrate."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy.engine
import sqlalchemy.exc
from pydantic import ValidationError

from accolade_server import app, logs
from accolade_server.auth import keys
from accolade_server.config import Settings
from accolade_server.domain.errors import AccoladeError
from accolade_server.store import migrate as migrations
from accolade_server.store.db import ensure_sqlite_directory, make_engine
from accolade_server.store.repository import Repository
from accolade_server.store.uow import UnitOfWork

_T = TypeVar("_T")


def load_settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Settings from the environment and config file; exit with a clear message if invalid."""
    if getattr(args, "config", None):
        os.environ["ACCOLADE_CONFIG_FILE"] = args.config
    config_file = os.environ.get("ACCOLADE_CONFIG_FILE")
    if config_file and not os.path.isfile(config_file):
        raise SystemExit(f"accolade: configuration file {config_file} does not exist")
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            if err["loc"]:
                option = ".".join(str(p) for p in err["loc"])
                lines.append(f"  {option} (ACCOLADE_{str(err['loc'][0]).upper()}): {err['msg']}")
            else:
                lines.append(f"  {err['msg']}")
        raise SystemExit("accolade: invalid configuration:\n" + "\n".join(lines)) from None


def _first_line(exc: BaseException) -> str:
    """SQLAlchemy appends SQL and a documentation link; the first line is what matters."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed (the default on Linux), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def serve(args: argparse.Namespace) -> int:
    settings = load_settings(
        args,
        listen=getattr(args, "listen", None),
        workers=getattr(args, "workers", None),
        insecure=getattr(args, "insecure", None),
    )
    logs.configure(settings.log_level)
    if settings.workers > 1 and "ACCOLADE_WORKER_INDEX" not in os.environ:
        return supervise(settings)
    if settings.is_sqlite:
        print(
            f"accolade: serving on {settings.listen} with {settings.database_url} "
            "(embedded SQLite; set ACCOLADE_DATABASE_URL for PostgreSQL)",
            file=sys.stderr,
        )
        print(f"  try: accolade achievements list --target {settings.listen}", file=sys.stderr)
    try:
        _run(app.serve(settings))
    except AccoladeError as exc:
        raise SystemExit(f"accolade: {exc}") from None
    except OSError as exc:
        raise SystemExit(f"accolade: cannot reach the database: {exc}") from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise SystemExit(f"accolade: database error: {_first_line(exc)}") from None
    return 0


def supervise(settings: Settings) -> int:
    """Run `settings.workers` server processes on one port and wait for them.

    Each worker is a full server (its own event loop and connection pool); the kernel spreads
    connections across them (SO_REUSEPORT). SIGTERM/SIGINT are passed on; if a worker dies,
    the others are stopped and the exit code is non-zero so a supervisor restarts the set.
    """
    if settings.is_sqlite:
        raise SystemExit("accolade: workers > 1 needs PostgreSQL (SQLite is for a single process)")
    if settings.listen.endswith(":0"):
        raise SystemExit("accolade: workers > 1 needs a fixed port in listen")
    children = []
    for index in range(settings.workers):
        env = {
            **os.environ,
            "ACCOLADE_WORKER_INDEX": str(index),
            "ACCOLADE_LISTEN": settings.listen,
        }
        if settings.metrics_listen:
            host, _, port = settings.metrics_listen.rpartition(":")
            env["ACCOLADE_METRICS_LISTEN"] = f"{host}:{int(port) + index if int(port) else 0}"
        children.append(subprocess.Popen([sys.executable, "-m", "accolade.cli", "serve"], env=env))

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    print(f"accolade: {settings.workers} workers on {settings.listen}", file=sys.stderr)
    codes: list[int] = []
    while len(codes) < len(children):
        pid, status = os.wait()
        code = os.waitstatus_to_exitcode(status)
        codes.append(code)
        if code != 0 and len(codes) == 1:
            print(
                f"accolade: worker {pid} exited with {code}; stopping the others", file=sys.stderr
            )
            forward(signal.SIGTERM, None)
    return max((abs(c) for c in codes), default=0)


def migrate(args: argparse.Namespace) -> int:
    settings = load_settings(args)

    async def run() -> tuple[str | None, str | None]:
        engine = make_engine(settings.database_url, schema=settings.database_schema)
        try:
            before = await migrations.current_revision(engine)
            await migrations.upgrade(engine)
            return before, await migrations.current_revision(engine)
        finally:
            await engine.dispose()

    ensure_sqlite_directory(settings.database_url)
    try:
        before, after = asyncio.run(run())
    except AccoladeError as exc:
        raise SystemExit(f"accolade: {exc}") from None
    except OSError as exc:
        raise SystemExit(f"accolade: cannot reach the database: {exc}") from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise SystemExit(f"accolade: database error: {_first_line(exc)}") from None
    if before == after:
        print(f"database already at revision {after}")
    else:
        print(f"database migrated from {before or 'empty'} to revision {after}")
    return 0


def database_label(settings: Settings) -> str:
    """Where the database is, for messages: a SQLite file's absolute path, or the
    PostgreSQL URL without its password (and the schema)."""
    url = sqlalchemy.engine.make_url(settings.database_url)
    if settings.is_sqlite:
        return f"SQLite file {Path(url.database or '').resolve()}"
    label = url.render_as_string(hide_password=True)
    return f"{label} (schema {settings.database_schema})" if settings.database_schema else label


def _keys_settings(args: argparse.Namespace) -> Settings:
    """Settings of a `keys` verb. These write to the database directly, so a SQLite file that
    does not exist is not created silently (`keys create` run from another directory than the
    server's would make a second, unused database): it must exist, or be named with
    --database-url."""
    explicit = getattr(args, "database_url", None)
    settings = load_settings(args, database_url=explicit)
    if settings.is_sqlite and not explicit:
        path = sqlalchemy.engine.make_url(settings.database_url).database or ""
        if path not in ("", ":memory:") and not Path(path).exists():
            raise SystemExit(
                f"accolade: {database_label(settings)} does not exist. Run this where the server "
                "runs, or name the server's database with --database-url (ACCOLADE_DATABASE_URL"
                " alone is not enough to create a new file)"
            )
    return settings


def _with_repo(settings: Settings, work: Callable[[Repository], Awaitable[_T]]) -> _T:
    """Run `work` in one transaction on the configured database (migrating SQLite first)."""

    async def run() -> _T:
        engine = make_engine(settings.database_url, schema=settings.database_schema)
        try:
            await app.prepare_database(settings, engine)
            async with UnitOfWork(engine, schema=settings.database_schema).transaction() as repo:
                return await work(repo)
        finally:
            await engine.dispose()

    ensure_sqlite_directory(settings.database_url)
    try:
        return asyncio.run(run())
    except AccoladeError as exc:
        raise SystemExit(f"accolade: {exc}") from None
    except OSError as exc:
        raise SystemExit(f"accolade: cannot reach the database: {exc}") from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise SystemExit(f"accolade: database error: {_first_line(exc)}") from None


def keys_create(args: argparse.Namespace) -> int:
    """Create a key; its secret is printed once, alone on the last line."""
    settings = _keys_settings(args)
    key, token = _with_repo(
        settings,
        lambda repo: keys.create(
            repo, name=args.name or "", scopes=args.scope or [], third_party=args.third_party
        ),
    )
    print(
        f"created API key {key.id}"
        f"{f' ({key.name})' if key.name else ''}: scopes {', '.join(sorted(key.scopes))}"
        f"{', third-party' if key.third_party else ''}"
    )
    print(f"in {database_label(settings)}")
    print("store the secret now; it is not shown again:")
    print(token)
    return 0


def keys_list(args: argparse.Namespace) -> int:
    settings = _keys_settings(args)
    items = _with_repo(settings, lambda repo: keys.all_keys(repo, active_only=False))
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": k.id,
                        "name": k.name,
                        "scopes": sorted(k.scopes),
                        "third_party": k.third_party,
                        "create_time": k.create_time.isoformat(),
                        "revoke_time": k.revoke_time.isoformat() if k.revoke_time else None,
                    }
                    for k in items
                ],
                indent=2,
            )
        )
        return 0
    print(f"{'ID':<14}{'NAME':<20}{'SCOPES':<20}{'THIRD-PARTY':<13}STATUS")
    for k in items:
        status = f"revoked {k.revoke_time:%Y-%m-%d}" if k.revoke_time else "active"
        print(
            f"{k.id:<14}{k.name[:19]:<20}{','.join(sorted(k.scopes)):<20}"
            f"{'yes' if k.third_party else 'no':<13}{status}"
        )
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    settings = _keys_settings(args)
    if _with_repo(settings, lambda repo: keys.revoke(repo, args.id)):
        print(f"revoked API key {args.id}")
        return 0
    print(f"accolade: no active API key {args.id}", file=sys.stderr)
    return 1
