"""Regenerates the Python stubs of protos/tfgate/ next to the .proto files (`make protos`).

`python protos/generate.py --out DIR` writes them under DIR instead; the stale-stub test
uses that to compare a fresh generation with the committed files.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "tfgate"
INIT_DOC = '"""Generated from protos/{0}/*.proto by protos/generate.py; do not edit."""\n'


def proto_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.proto"))


def generate(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    include = str(Path(protoc.__file__).parent / "_proto")
    files = [str(p.relative_to(ROOT)) for p in proto_files()]
    args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}",
            f"--grpc_python_out={out}", *files]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Each directory on the way down is a regular package so setuptools maps it.
    for proto in proto_files():
        rel = proto.parent.relative_to(ROOT)
        for depth in range(1, len(rel.parts) + 1):
            pkg = Path(*rel.parts[:depth])
            init = out / pkg / "__init__.py"
            init.write_text(INIT_DOC.format(pkg.as_posix()))
    return sorted(p for p in out.rglob("*") if p.is_file() and p.suffix in (".py", ".pyi"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT)
    out = parser.parse_args().out
    if out.resolve() == ROOT:
        for old in PACKAGE.rglob("*_pb2*.py*"):
            old.unlink()
    for path in generate(out):
        print(path)
    shutil.rmtree(out / "tfgate" / "__pycache__", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
