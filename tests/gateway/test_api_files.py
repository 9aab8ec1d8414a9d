"""The API files: stubs match the protos, import without TensorFlow, buf lint is clean."""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
import sys

import pytest

from .helpers import REPO

PROTOS = REPO / "protos"


def test_generated_stubs_are_fresh(tmp_path):
    subprocess.run([sys.executable, str(PROTOS / "generate.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.suffix in (".py", ".pyi"))
    committed = sorted(p.relative_to(PROTOS) for p in (PROTOS / "tfgate").rglob("*")
                       if p.suffix in (".py", ".pyi"))
    assert fresh == committed, "stub files differ from the protos: run `make protos`"
    stale = [str(p) for p in fresh if not filecmp.cmp(tmp_path / p, PROTOS / p, shallow=False)]
    assert not stale, f"stale generated stubs {stale}: run `make protos`"


def test_client_stubs_import_without_tensorflow():
    code = ("import sys; from tfgate.v1 import gateway_pb2, gateway_pb2_grpc, tensor_pb2; "
            "assert 'tensorflow' not in sys.modules, 'TF imported'; "
            "print(gateway_pb2_grpc.InferenceGatewayStub.__name__, tensor_pb2.DATA_TYPE_FLOAT32)")
    out = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["InferenceGatewayStub", "1"]


def test_buf_lint_is_clean():
    buf = PROTOS / "node_modules" / ".bin" / "buf"
    if not buf.exists():
        if shutil.which("npm") is None:
            pytest.skip("npm not installed")
        # `npm ci` rejects this lock under npm 11 (other platforms' optional binaries); buf is pinned
        # exactly in package.json and pins its platform binary exactly, so install is reproducible.
        subprocess.run(["npm", "install", "--no-save", "--prefix", str(PROTOS), "--no-audit", "--no-fund"],
                       check=True, capture_output=True)
    pinned = json.loads((PROTOS / "package.json").read_text())["devDependencies"]["@bufbuild/buf"]
    version = subprocess.run([str(buf), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == pinned
    out = subprocess.run([str(buf), "lint"], cwd=PROTOS, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
