"""Generate client/accolade/v1 (messages, stubs and mypy stubs) from protos/.

Usage: python tools/gen_protos.py [OUTPUT_ROOT]   (default: client/)
"""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


def generate(out_root: Path) -> list[Path]:
    """Run protoc over every .proto in protos/accolade/v1; return the files written."""
    from grpc_tools import protoc

    sources = sorted(
        str(p.relative_to(PROTOS)) for p in (PROTOS / "accolade" / "v1").glob("*.proto")
    )
    include = str(resources.files("grpc_tools") / "_proto")
    out = str(out_root)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *sources,
    ]
    # protoc finds the mypy plugins on PATH; they sit beside the running interpreter.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    package = out_root / "accolade" / "v1"
    (package / "__init__.py").write_text('"""Generated from protos/accolade/v1. Do not edit."""\n')
    return sorted(package.iterdir())


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "client"
    for path in generate(target):
        print(path.relative_to(target))
