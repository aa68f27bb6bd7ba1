"""The committed generated code is exactly what regenerating it produces: the protobuf code
from protos/, and the blocking client from the asyncio one."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "client" / "accolade" / "v1"
CONNECT = ROOT / "server" / "accolade_server" / "http" / "v1"


def load_generator(name: str = "gen_protos") -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def source_files(directory: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in sorted(directory.iterdir())
        if p.is_file() and p.suffix in (".py", ".pyi")
    }


def test_regenerating_the_protobuf_code_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", os.environ["PATH"])  # the generator prepends to PATH
    written = load_generator().generate(tmp_path)
    assert written, "the generator wrote nothing"

    fresh = source_files(tmp_path / "accolade" / "v1")
    committed = source_files(COMMITTED)
    assert sorted(fresh) == sorted(committed), "generated file names differ: run `make proto`"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"client/accolade/v1 is stale, run `make proto`: {stale}"


def test_regenerating_the_connect_handlers_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", os.environ["PATH"])
    written = load_generator().generate_connect(tmp_path)
    fresh = source_files(tmp_path / "accolade_server" / "http" / "v1")
    committed = source_files(CONNECT)
    assert fresh and [p.name for p in written] == sorted(fresh)
    assert sorted(fresh) == sorted(committed), "Connect file names differ: run `make proto`"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"server/accolade_server/http/v1 is stale, run `make proto`: {stale}"
    for text in fresh.values():  # the messages come from the client package
        assert b"from ." not in text


def test_every_proto_has_messages_stubs_and_type_stubs() -> None:
    protos = sorted(p.stem for p in (ROOT / "protos" / "accolade" / "v1").glob("*.proto"))
    assert protos
    names = set(source_files(COMMITTED))
    for stem in protos:
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"):
            assert f"{stem}{suffix}" in names


def test_the_blocking_client_is_the_async_one_unasynced(tmp_path: Path) -> None:
    package = tmp_path / "accolade"
    package.mkdir()
    source = ROOT / "client" / "accolade" / "_aio.py"
    (package / "_aio.py").write_bytes(source.read_bytes())
    fresh = load_generator("unasync").generate(tmp_path).read_text()
    committed = (ROOT / "client" / "accolade" / "_client.py").read_text()
    assert fresh == committed, "client/accolade/_client.py is stale: run `make proto`"
    assert "await " not in fresh and "async def" not in fresh
