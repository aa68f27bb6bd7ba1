"""`accolade keys create|list|revoke` against the database, and the keys at work."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import grpc

from accolade.v1 import tracker_pb2 as tpb
from accolade.v1 import tracker_pb2_grpc
from tests.helpers import expect_error
from tests.processes import ServerProcess


async def accolade(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "accolade.cli",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return int(process.returncode or 0), out.decode(), err.decode()


async def test_keys_are_created_listed_used_and_revoked(tmp_path: Path) -> None:
    env = {
        "ACCOLADE_DATABASE_URL": f"sqlite:///{tmp_path / 'keys.db'}",
        "ACCOLADE_KEY_REFRESH_SECONDS": "0.2",
    }
    url = env["ACCOLADE_DATABASE_URL"]
    code, out, _ = await accolade(
        "keys",
        "create",
        "--scope",
        "read",
        "--scope",
        "track",
        "--name",
        "ingest",
        "--database-url",
        url,  # a new file: named explicitly
        env=env,
    )
    assert code == 0
    assert f"in SQLite file {(tmp_path / 'keys.db').resolve()}" in out  # where it wrote
    token = out.strip().splitlines()[-1]  # the secret, alone on the last line
    assert token.startswith("acc_") and token not in out.strip().splitlines()[0]
    key_id = token.split("_")[1]

    code, out, _ = await accolade("keys", "list", "--json", env=env)
    [listed] = json.loads(out)
    assert (listed["id"], listed["scopes"], listed["revoke_time"]) == (
        key_id,
        ["read", "track"],
        None,
    )
    assert token.split("_", 2)[2] not in out  # never shows the secret again

    code, _, err = await accolade("keys", "create", "--scope", "admin", "--third-party", env=env)
    assert code != 0 and "third-party keys may only have" in err

    server = ServerProcess(env, tmp_path)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            tracker = tracker_pb2_grpc.BadgeTrackerStub(channel)
            metadata = (("authorization", f"Bearer {token}"),)
            await tracker.GetProgress(tpb.GetProgressRequest(user_id="u"), metadata=metadata)
            code, out, _ = await accolade("keys", "revoke", key_id, env=env)
            assert code == 0 and key_id in out
            for _ in range(200):  # the server re-reads its keys (here every 0.2 s)
                try:
                    await tracker.GetProgress(
                        tpb.GetProgressRequest(user_id="u"), metadata=metadata
                    )
                except grpc.aio.AioRpcError:
                    break
                await asyncio.sleep(0.05)
            await expect_error(
                tracker.GetProgress(tpb.GetProgressRequest(user_id="u"), metadata=metadata),
                grpc.StatusCode.UNAUTHENTICATED,
            )
    finally:
        assert await server.stop() == 0
    code, _, err = await accolade("keys", "revoke", key_id, env=env)
    assert code == 1 and "no active API key" in err


async def test_keys_create_refuses_to_create_a_new_sqlite_file_silently(tmp_path: Path) -> None:
    """Run from another directory than the server's, the default relative `accolade.db` would
    be a new, unused database: refused, naming the file and the way out."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for env in (
        {"ACCOLADE_DATABASE_URL": f"sqlite:///{elsewhere / 'accolade.db'}"},
        {"ACCOLADE_DATABASE_URL": "sqlite:///accolade.db"},  # the default, relative
    ):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "accolade.cli",
            "keys",
            "create",
            "--scope",
            "admin",
            env={**os.environ, **env},
            cwd=elsewhere,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
        assert process.returncode == 1
        assert f"SQLite file {(elsewhere / 'accolade.db').resolve()} does not exist" in (
            err.decode()
        )
        assert "--database-url" in err.decode()
        assert not (elsewhere / "accolade.db").exists()
        assert "Traceback" not in err.decode()
