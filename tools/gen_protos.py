"""Generate client/accolade/v1 (messages, stubs and mypy stubs) from protos/, and the
Connect (HTTP) handlers into the server package (server/accolade_server/http/v1), so the
plain client install does not need the Connect library.

Usage: python tools/gen_protos.py [CLIENT_ROOT [SERVER_ROOT]]   (default: client/ server/)
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


CONNECT_PACKAGE = ("accolade_server", "http", "v1")


def _protoc(*outputs: str) -> None:
    from grpc_tools import protoc

    sources = sorted(
        str(p.relative_to(PROTOS)) for p in (PROTOS / "accolade" / "v1").glob("*.proto")
    )
    include = str(resources.files("grpc_tools") / "_proto")
    # protoc finds the plugins on PATH; they sit beside the running interpreter.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    if protoc.main(["grpc_tools.protoc", f"-I{PROTOS}", f"-I{include}", *outputs, *sources]):
        raise SystemExit("protoc failed")


def generate(out_root: Path) -> list[Path]:
    """Run protoc over every .proto in protos/accolade/v1; return the files written."""
    out = str(out_root)
    _protoc(
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
    )
    package = out_root / "accolade" / "v1"
    (package / "__init__.py").write_text('"""Generated from protos/accolade/v1. Do not edit."""\n')
    return sorted(package.iterdir())


def generate_connect(server_root: Path) -> list[Path]:
    """The Connect handlers (protoc-gen-connectrpc) into the server package; return them.

    The plugin imports a file's own messages relatively (`from .tracker_pb2 import`);
    those messages live in the client package, so the imports are made absolute."""
    package = server_root.joinpath(*CONNECT_PACKAGE)
    package.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        _protoc(f"--connectrpc_out={tmp}", "--connectrpc_opt=protobuf=google")
        for path in sorted((Path(tmp) / "accolade" / "v1").glob("*_connect.py")):
            text = re.sub(
                r"^from \.(\w+_pb2) import",
                r"from accolade.v1.\1 import",
                path.read_text(),
                flags=re.M,
            )
            (package / path.name).write_text(text)
    (package / "__init__.py").write_text(
        '"""Connect handlers generated from protos/accolade/v1. Do not edit."""\n'
    )
    return sorted(package.iterdir())


if __name__ == "__main__":
    client = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "client"
    server = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "server"
    for path in generate(client):
        print(path.relative_to(client))
    for path in generate_connect(server):
        print(path.relative_to(server))
