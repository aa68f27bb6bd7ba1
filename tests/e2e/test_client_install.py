"""The client installed alone: a wheel of this project in a fresh virtualenv, no extras.

It must pull in only grpcio and protobuf, import, run the `accolade` command against a real
server, point server verbs at the `[server]` extra, and type-check user code with
`mypy --strict` through its `py.typed` and generated stubs.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Running

pytestmark = pytest.mark.slow

SOURCES = ("client", "server", "protos", "tools", "setup.py", "pyproject.toml", "README.md")
# What grpcio and protobuf need, and what every virtualenv has.
ALLOWED = {"accolade", "grpcio", "protobuf", "typing-extensions", "pip", "setuptools"}

USER_PROGRAM = """\
from accolade import Client, RPCError, event_error


def main() -> int:
    with Client(timeout=5) as client:
        try:
            result = client.track_event("purchase_completed", user_id="u1", amount=42)
        except RPCError as exc:
            print(exc.code.name, exc)
            return 1
        cursors: list[int] = [award.cursor for award in result.awards]
        names: list[str] = [p.achievement_id for p in client.get_progress("u1").progress]
        batch = client.track_events([{"type": "login", "user_id": "u1"}])
        failed = [str(e) for e in map(event_error, batch) if e is not None]
        print(cursors, names, failed)
    return 0
"""
MISUSE = "from accolade import Client\n\nClient().track_event('t', 'u').awards[0].cursor.upper()\n"


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def checked(*args: str | Path, cwd: Path | None = None) -> str:
    done = run(*args, cwd=cwd)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory, repo_root_path: Path) -> Path:
    work = tmp_path_factory.mktemp("client-install")
    source = work / "src"
    source.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".mypy_cache")
    for name in SOURCES:
        path = repo_root_path / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=skip)
        else:
            shutil.copy2(path, source / name)
    wheels = work / "wheels"
    checked(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--wheel-dir",
        wheels,
        source,
    )
    [wheel] = wheels.glob("accolade-*.whl")
    venv = work / "venv"
    checked(sys.executable, "-m", "venv", venv)
    checked(venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel)
    return venv


@pytest.fixture(scope="module")
def repo_root_path() -> Path:
    return Path(__file__).resolve().parents[2]


def test_a_plain_install_pulls_only_grpcio_and_protobuf(client_venv: Path) -> None:
    listed = json.loads(
        checked(client_venv / "bin" / "python", "-m", "pip", "list", "--format", "json")
    )
    names = {p["name"].lower().replace("_", "-") for p in listed}
    assert {"accolade", "grpcio", "protobuf"} <= names
    assert names <= ALLOWED, f"unexpected packages: {sorted(names - ALLOWED)}"
    out = checked(
        client_venv / "bin" / "python",
        "-c",
        "import accolade; from accolade import AsyncClient, Client; print(accolade.__version__)",
    )
    assert out.strip() == "0.1.0"


def test_the_wheel_ships_the_console_templates_and_static_files(client_venv: Path) -> None:
    out = checked(
        client_venv / "bin" / "python",
        "-c",
        "from importlib import metadata; "
        "print([str(f) for f in metadata.files('accolade') if '/console/' in str(f)])",
    )
    for name in ("templates/base.html", "templates/achievement_form.html", "static/htmx.min.js"):
        assert f"accolade_server/console/{name}" in out


def test_server_verbs_say_the_server_extra_is_needed(client_venv: Path) -> None:
    served = run(client_venv / "bin" / "accolade", "serve")
    assert served.returncode != 0
    assert "[server] extra" in served.stderr and "pip install 'accolade[server]'" in served.stderr


async def test_the_client_only_command_talks_to_a_real_server(
    client_venv: Path, server: Running
) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(client_venv / "bin" / "accolade"),
        "track",
        "login",
        "--user",
        "u1",
        "--prop",
        "device=phone",
        "--target",
        server.target,
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out)["tracked"] is True


def test_user_code_type_checks_with_mypy_strict(client_venv: Path, tmp_path: Path) -> None:
    # A user who type-checks installs the stub packages of grpcio and protobuf.
    checked(
        client_venv / "bin" / "python",
        "-m",
        "pip",
        "install",
        "--quiet",
        "types-grpcio",
        "types-protobuf",
    )
    (tmp_path / "good.py").write_text(USER_PROGRAM)
    (tmp_path / "bad.py").write_text(MISUSE)
    mypy = (
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--no-incremental",
        "--python-executable",
        client_venv / "bin" / "python",
    )
    good = run(*mypy, "good.py", cwd=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    bad = run(*mypy, "bad.py", cwd=tmp_path)
    assert bad.returncode == 1
    assert '"int" has no attribute "upper"' in bad.stdout  # the stubs are seen, not Any
