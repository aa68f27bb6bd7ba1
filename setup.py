"""Regenerates the protobuf code from protos/ as part of every build."""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithProtos(build_py):
    def run(self) -> None:
        root = Path(__file__).resolve().parent
        if (root / "protos").is_dir():  # absent when building from an sdist without protos
            sys.path.insert(0, str(root / "tools"))
            from gen_protos import generate

            generate(root / "client")
        super().run()


setup(cmdclass={"build_py": BuildWithProtos})
